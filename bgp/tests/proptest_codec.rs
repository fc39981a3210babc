//! Round trips encode → decode → equal for every message type and every attribute, under
//! the session contexts that change the encoding (2/4-octet AS, ADD-PATH, Extended
//! Message), plus packing and "never panics" properties.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp::wire::*;
use bytes::Bytes;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// 512 cases unless PROPTEST_CASES says otherwise.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/proptest_codec.txt",
        ))),
        ..ProptestConfig::default()
    }
}

fn afi_safi() -> impl Strategy<Value = AfiSafi> {
    prop_oneof![
        Just(AfiSafi::IPV4_UNICAST),
        Just(AfiSafi::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| AfiSafi { afi, safi }),
    ]
}

fn short_string() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9.é-]{0,40}"
}

fn capability() -> impl Strategy<Value = Capability> {
    let known = [1u8, 2, 6, 64, 65, 69, 70, 73];
    prop_oneof![
        afi_safi().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            vec((afi_safi(), any::<bool>()), 0..20)
        )
            .prop_map(|(restart, notification, time, families)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart,
                    notification,
                    time,
                    families,
                })
            }),
        vec(
            (
                afi_safi(),
                prop_oneof![
                    Just(AddPathMode::Receive),
                    Just(AddPathMode::Send),
                    Just(AddPathMode::Both)
                ]
            ),
            0..20
        )
        .prop_map(Capability::AddPath),
        (short_string(), short_string())
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (
            any::<u8>().prop_filter("unknown code", move |c| !known.contains(c)),
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(code, value)| Capability::Unknown {
                code,
                value: Bytes::from(value)
            }),
    ]
}

fn bgp_id() -> impl Strategy<Value = Ipv4Addr> {
    (0x0100_0000u32..0xe000_0000).prop_map(Ipv4Addr::from)
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        any::<u16>().prop_filter("hold time 1 and 2 are errors", |h| *h != 1 && *h != 2),
        bgp_id(),
        // Up to 80 capabilities: long lists need the RFC 9072 encoding.
        vec(capability(), 0..80),
    )
        .prop_map(|(my_as, hold_time, bgp_id, capabilities)| Open {
            version: 4,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
}

fn notification() -> impl Strategy<Value = Notification> {
    (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..300))
        .prop_map(|(c, s, d)| Notification::new(c, s, d))
}

fn route_refresh() -> impl Strategy<Value = RouteRefresh> {
    (afi_safi(), any::<u8>()).prop_map(|(afi_safi, subtype)| RouteRefresh { afi_safi, subtype })
}

fn nlri_v4(add_path: bool) -> impl Strategy<Value = Nlri> {
    (any::<u32>(), 0u8..=32, any::<u32>()).prop_map(move |(a, len, id)| Nlri {
        path_id: add_path.then_some(id),
        prefix: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc()),
    })
}

fn nlri_v6(add_path: bool) -> impl Strategy<Value = Nlri> {
    (any::<u128>(), 0u8..=128, any::<u32>()).prop_map(move |(a, len, id)| Nlri {
        path_id: add_path.then_some(id),
        prefix: IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc()),
    })
}

fn segment(kind: SegmentKind, max_as: u32) -> impl Strategy<Value = AsSegment> {
    vec(0..=max_as, 1..12).prop_map(move |asns| AsSegment { kind, asns })
}

/// With a 2-octet peer, confederation segments must lead and hold 2-octet ASNs (RFC 6793
/// keeps them out of AS4_PATH).
fn as_path(four_octet: bool) -> impl Strategy<Value = AsPath> {
    let confed_max = if four_octet { u32::MAX } else { 65535 };
    (
        vec(
            prop_oneof![
                segment(SegmentKind::ConfedSequence, confed_max),
                segment(SegmentKind::ConfedSet, confed_max)
            ],
            0..2,
        ),
        vec(
            prop_oneof![
                3 => segment(SegmentKind::Sequence, u32::MAX),
                1 => segment(SegmentKind::Set, u32::MAX),
                1 => segment(SegmentKind::Sequence, 70000),
            ],
            0..4,
        ),
    )
        .prop_map(|(mut confed, rest)| {
            confed.extend(rest);
            AsPath { segments: confed }
        })
}

fn unknown_attrs() -> impl Strategy<Value = Vec<RawAttribute>> {
    let known = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32];
    prop::collection::btree_map(
        any::<u8>().prop_filter("unknown type", move |t| !known.contains(t)),
        vec(any::<u8>(), 0..300),
        0..4,
    )
    .prop_map(|m: BTreeMap<u8, Vec<u8>>| {
        m.into_iter()
            .map(|(type_code, v)| RawAttribute {
                flags: 0xe0,
                type_code,
                value: Bytes::from(v),
            })
            .collect()
    })
}

fn ipv6() -> impl Strategy<Value = IpAddr> {
    any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
}

fn mp_reach(ctx: Context) -> impl Strategy<Value = MpReach> {
    prop_oneof![
        (bgp_id(), vec(nlri_v4(ctx.add_path_tx.ipv4), 0..20)).prop_map(|(nh, nlri)| MpReach {
            afi_safi: AfiSafi::IPV4_UNICAST,
            next_hops: vec![IpAddr::V4(nh)],
            nlri,
        }),
        (
            vec(ipv6(), 1..=2),
            vec(nlri_v6(ctx.add_path_tx.ipv6), 0..20)
        )
            .prop_map(|(next_hops, nlri)| MpReach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                next_hops,
                nlri
            }),
    ]
}

fn mp_unreach(ctx: Context) -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        vec(nlri_v4(ctx.add_path_tx.ipv4), 0..20).prop_map(|withdrawn| MpUnreach {
            afi_safi: AfiSafi::IPV4_UNICAST,
            withdrawn
        }),
        vec(nlri_v6(ctx.add_path_tx.ipv6), 0..20).prop_map(|withdrawn| MpUnreach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            withdrawn
        }),
    ]
}

fn large_community() -> impl Strategy<Value = LargeCommunity> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(global, local1, local2)| LargeCommunity {
        global,
        local1,
        local2,
    })
}

/// An iBGP session (so LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are accepted) with
/// symmetric ADD-PATH, either AS width, and Extended Message so big UPDATEs frame.
fn context() -> impl Strategy<Value = Context> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(four_octet_as, v4, v6)| {
        let ap = Families { ipv4: v4, ipv6: v6 };
        Context {
            four_octet_as,
            extended_message: true,
            add_path_rx: ap,
            add_path_tx: ap,
            ebgp: false,
        }
    })
}

/// A valid UPDATE: the mandatory attributes are present and the next hop is unicast, so
/// decoding must accept it unchanged.
fn update(ctx: Context) -> impl Strategy<Value = Update> {
    let attrs = (
        (
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ],
            as_path(ctx.four_octet_as),
            bgp_id(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
            proptest::option::of((any::<u32>(), bgp_id())),
            vec(any::<u32>(), 0..10),
        ),
        (
            proptest::option::of(bgp_id()),
            vec(bgp_id(), 0..5),
            proptest::option::of(mp_reach(ctx)),
            proptest::option::of(mp_unreach(ctx)),
            vec(any::<u64>(), 0..5),
            vec(large_community(), 0..5),
            unknown_attrs(),
        ),
    )
        .prop_map(
            |(
                (origin, as_path, nh, med, local_pref, atomic_aggregate, agg, communities),
                (
                    originator_id,
                    cluster_list,
                    mp_reach,
                    mp_unreach,
                    extended_communities,
                    large_communities,
                    unknown,
                ),
            )| Attributes {
                origin: Some(origin),
                as_path: Some(as_path),
                next_hop: Some(nh),
                med,
                local_pref,
                atomic_aggregate,
                aggregator: agg.map(|(asn, address)| Aggregator { asn, address }),
                communities,
                originator_id,
                cluster_list,
                mp_reach,
                mp_unreach,
                extended_communities,
                large_communities,
                unknown,
            },
        );
    (
        vec(nlri_v4(ctx.add_path_tx.ipv4), 0..30),
        attrs,
        vec(nlri_v4(ctx.add_path_tx.ipv4), 0..30),
    )
        .prop_map(|(withdrawn, attributes, nlri)| Update {
            withdrawn,
            attributes,
            nlri,
            outcome: Outcome::Accepted,
        })
}

fn round_trip(msg: &Message, ctx: &Context) -> Result<(), TestCaseError> {
    let wire = encode_to_bytes(msg, ctx);
    prop_assert_eq!(frame(&wire, ctx), Ok(Some(wire.len())));
    prop_assert_eq!(decode(&wire, ctx), Ok(msg.clone()));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn open_round_trip(o in open()) {
        round_trip(&Message::Open(o), &Context::default())?;
    }

    #[test]
    fn each_capability_round_trips(c in capability()) {
        let o = Open::new(65000, 90, Ipv4Addr::new(10, 0, 0, 1), vec![c]);
        round_trip(&Message::Open(o), &Context::default())?;
    }

    #[test]
    fn notification_round_trip(n in notification()) {
        round_trip(&Message::Notification(n), &Context::default())?;
    }

    #[test]
    fn shutdown_communication_round_trip(s in "\\PC{0,300}", reset in any::<bool>()) {
        let sub = if reset { codes::ADMINISTRATIVE_RESET } else { codes::ADMINISTRATIVE_SHUTDOWN };
        let n = Notification::shutdown(sub, &s);
        let text = n.shutdown_message().unwrap();
        prop_assert!(s.starts_with(&text) && text.len() <= 255);
        round_trip(&Message::Notification(n), &Context::default())?;
    }

    #[test]
    fn keepalive_and_route_refresh_round_trip(r in route_refresh()) {
        round_trip(&Message::Keepalive, &Context::default())?;
        round_trip(&Message::RouteRefresh(r), &Context::default())?;
    }

    #[test]
    fn update_round_trip((ctx, u) in context().prop_flat_map(|c| (Just(c), update(c)))) {
        round_trip(&Message::Update(u), &ctx)?;
    }

    /// A 4-octet path reaches a 2-octet peer as AS_PATH + AS4_PATH and comes back whole.
    #[test]
    fn as4_round_trip(path in as_path(false), agg in proptest::option::of(any::<u32>())) {
        let ctx = Context::default();
        let u = Update {
            attributes: Attributes {
                origin: Some(Origin::Igp),
                as_path: Some(path),
                aggregator: agg.map(|asn| Aggregator { asn, address: Ipv4Addr::new(10, 0, 0, 1) }),
                ..Attributes::default()
            },
            ..Update::default()
        };
        round_trip(&Message::Update(u), &ctx)?;
    }

    #[test]
    fn end_of_rib_round_trip(f in afi_safi()) {
        let u = Update::end_of_rib(f);
        prop_assert_eq!(u.end_of_rib_family(), Some(f));
        let ctx = Context::default();
        let wire = encode_to_bytes(&Message::Update(u), &ctx);
        let Ok(Message::Update(back)) = decode(&wire, &ctx) else { panic!("not an UPDATE") };
        if f == AfiSafi::IPV4_UNICAST || f == AfiSafi::IPV6_UNICAST {
            prop_assert_eq!(back.end_of_rib_family(), Some(f));
        }
    }

    /// Every prefix comes out once, in order, in messages that fit the session.
    #[test]
    fn packing(
        ctx in context(),
        v6 in any::<bool>(),
        count in 0usize..3000,
        seed in any::<u32>(),
    ) {
        let (family, add_path) = if v6 {
            (AfiSafi::IPV6_UNICAST, ctx.add_path_tx.ipv6)
        } else {
            (AfiSafi::IPV4_UNICAST, ctx.add_path_tx.ipv4)
        };
        let ctx = Context { extended_message: seed % 2 == 0, ..ctx };
        let nlri: Vec<Nlri> = (0..count as u32)
            .map(|i| {
                let id = add_path.then_some(i);
                let prefix = if v6 {
                    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(u128::from(seed) << 64 | u128::from(i) << 6), 122).unwrap())
                } else {
                    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(seed.wrapping_add(i << 6)), 26).unwrap().trunc())
                };
                Nlri { path_id: id, prefix }
            })
            .collect();
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65000, 4_200_000_000])),
            local_pref: Some(100),
            communities: vec![1, 2, 3],
            ..Attributes::default()
        };
        let nh: IpAddr = if v6 { "fd00::1".parse().unwrap() } else { "10.0.0.1".parse().unwrap() };
        for (announce, msgs) in [
            (true, pack_announce(&attrs, nh, family, &nlri, &ctx)),
            (false, pack_withdraw(family, &nlri, &ctx)),
        ] {
            let mut got = Vec::new();
            for m in &msgs {
                prop_assert!(m.len() <= ctx.max_message_len());
                let Ok(Message::Update(u)) = decode(m, &ctx) else { panic!("bad UPDATE") };
                prop_assert_eq!(&u.outcome, &Outcome::Accepted);
                match (announce, v6) {
                    (true, false) => got.extend(u.nlri),
                    (true, true) => got.extend(u.attributes.mp_reach.unwrap().nlri),
                    (false, false) => got.extend(u.withdrawn),
                    (false, true) => got.extend(u.attributes.mp_unreach.unwrap().withdrawn),
                }
            }
            prop_assert_eq!(&got, &nlri);
            // As few messages as fit: all but the last are nearly full.
            for m in msgs.iter().rev().skip(1) {
                prop_assert!(m.len() + 21 > ctx.max_message_len());
            }
        }
    }

    /// Arbitrary bytes behind a valid header never panic, and whatever decodes re-encodes
    /// to something that decodes to the same value.
    #[test]
    fn arbitrary_bodies(kind in 1u8..=5, body in vec(any::<u8>(), 0..600), ctx in context()) {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&u16::try_from(body.len() + 19).unwrap().to_be_bytes());
        m.push(kind);
        m.extend_from_slice(&body);
        if let Ok(msg) = decode(&m, &ctx) {
            let again = encode_to_bytes(&msg, &ctx);
            let back = decode(&again, &ctx).unwrap();
            match (&msg, &back) {
                (Message::Update(a), Message::Update(b)) => {
                    prop_assert_eq!(&a.withdrawn, &b.withdrawn);
                    prop_assert_eq!(&a.nlri, &b.nlri);
                    prop_assert_eq!(&a.attributes, &b.attributes);
                }
                _ => prop_assert_eq!(&msg, &back),
            }
        }
    }
}
