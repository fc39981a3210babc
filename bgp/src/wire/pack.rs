//! Packing many prefixes into as few UPDATEs as the session's maximum length allows.

use std::net::IpAddr;

use bytes::{Bytes, BytesMut};

use super::nlri::Ip;
use super::HEADER_LEN;
use super::{encode, AfiSafi, Attributes, Context, Message, MpReach, MpUnreach, Nlri, Update};

/// Withdrawn Routes Length + Total Path Attribute Length.
const UPDATE_FIXED: usize = HEADER_LEN + 4;
/// Flags, type and a two-octet length: what an MP attribute header takes once its value
/// passes 255 octets, which it does whenever packing matters.
const MP_HEADER: usize = 4;

/// Splits `nlri` into runs whose encoded size stays within `room`. A prefix that could
/// not fit even alone is left out (only possible with absurdly large attributes).
fn runs(nlri: &[Nlri], add_path: bool, room: usize) -> Vec<Vec<Nlri>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut used = 0;
    for n in nlri {
        let len = n.encoded_len(add_path);
        if len > room {
            continue;
        }
        if used + len > room {
            out.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(*n);
        used += len;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn to_bytes(update: Update, ctx: &Context) -> Bytes {
    let mut out = BytesMut::new();
    encode(&Message::Update(update), ctx, &mut out);
    out.freeze()
}

fn of_family(family: AfiSafi, nlri: &[Nlri]) -> Vec<Nlri> {
    nlri.iter()
        .filter(|n| n.family() == family)
        .copied()
        .collect()
}

/// Packs announcements of `nlri` with `attrs` into as few UPDATEs as fit the negotiated max length.
/// IPv4 unicast NLRI go in the NLRI field with attrs.next_hop; IPv6 in MP_REACH_NLRI with `next_hop`.
/// Returns whole encoded messages (header included).
///
/// For IPv4 an IPv4 `next_hop` replaces `attrs.next_hop`. For IPv6 the NEXT_HOP
/// attribute is left out (RFC 4760 §3) and `next_hop` is the global next hop. Prefixes of
/// another family than `family` are ignored; families other than IPv4/IPv6 unicast give
/// no messages. Any MP_REACH/MP_UNREACH in `attrs` is ignored.
pub fn pack_announce(
    attrs: &Attributes,
    next_hop: IpAddr,
    family: AfiSafi,
    nlri: &[Nlri],
    ctx: &Context,
) -> Vec<Bytes> {
    let Some(ip) = Ip::of(family) else {
        return Vec::new();
    };
    let nlri = of_family(family, nlri);
    let mut base = Attributes {
        mp_reach: None,
        mp_unreach: None,
        ..attrs.clone()
    };
    let add_path = ctx.add_path_tx.get(family);
    let max = ctx.max_message_len();
    match ip {
        Ip::V4 => {
            if let IpAddr::V4(nh) = next_hop {
                base.next_hop = Some(nh);
            }
            let mut attr_bytes = BytesMut::new();
            base.encode(ctx, &mut attr_bytes);
            let room = max.saturating_sub(UPDATE_FIXED + attr_bytes.len());
            runs(&nlri, add_path, room)
                .into_iter()
                .map(|run| {
                    to_bytes(
                        Update {
                            attributes: base.clone(),
                            nlri: run,
                            ..Update::default()
                        },
                        ctx,
                    )
                })
                .collect()
        }
        Ip::V6 => {
            base.next_hop = None;
            let mut attr_bytes = BytesMut::new();
            base.encode(ctx, &mut attr_bytes);
            let nh_len = if next_hop.is_ipv4() { 4 } else { 16 };
            let mp_fixed = MP_HEADER + 3 + 1 + nh_len + 1;
            let room = max.saturating_sub(UPDATE_FIXED + attr_bytes.len() + mp_fixed);
            runs(&nlri, add_path, room)
                .into_iter()
                .map(|run| {
                    let mut attributes = base.clone();
                    attributes.mp_reach = Some(MpReach {
                        afi_safi: family,
                        next_hops: vec![next_hop],
                        nlri: run,
                    });
                    to_bytes(
                        Update {
                            attributes,
                            ..Update::default()
                        },
                        ctx,
                    )
                })
                .collect()
        }
    }
}

/// Packs withdrawals of `nlri` into as few UPDATEs as fit: IPv4 unicast in the Withdrawn
/// Routes field, IPv6 unicast in MP_UNREACH_NLRI. Prefixes of another family are ignored.
pub fn pack_withdraw(family: AfiSafi, nlri: &[Nlri], ctx: &Context) -> Vec<Bytes> {
    let Some(ip) = Ip::of(family) else {
        return Vec::new();
    };
    let nlri = of_family(family, nlri);
    let add_path = ctx.add_path_tx.get(family);
    let max = ctx.max_message_len();
    match ip {
        Ip::V4 => runs(&nlri, add_path, max - UPDATE_FIXED)
            .into_iter()
            .map(|run| {
                to_bytes(
                    Update {
                        withdrawn: run,
                        ..Update::default()
                    },
                    ctx,
                )
            })
            .collect(),
        Ip::V6 => runs(&nlri, add_path, max - UPDATE_FIXED - MP_HEADER - 3)
            .into_iter()
            .map(|run| {
                to_bytes(
                    Update {
                        attributes: Attributes {
                            mp_unreach: Some(MpUnreach {
                                afi_safi: family,
                                withdrawn: run,
                            }),
                            ..Attributes::default()
                        },
                        ..Update::default()
                    },
                    ctx,
                )
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::*;
    use std::net::Ipv4Addr;

    fn v4_26s(n: u32) -> Vec<Nlri> {
        (0..n)
            .map(|i| {
                let a = Ipv4Addr::from(0x0a00_0000 + i * 64);
                Nlri::new(ipnet::IpNet::V4(ipnet::Ipv4Net::new(a, 26).unwrap()))
            })
            .collect()
    }

    fn v6_122s(n: u32) -> Vec<Nlri> {
        (0..n)
            .map(|i| {
                let a = std::net::Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i) << 6);
                Nlri::new(ipnet::IpNet::V6(ipnet::Ipv6Net::new(a, 122).unwrap()))
            })
            .collect()
    }

    fn attrs() -> Attributes {
        Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            local_pref: Some(100),
            ..Attributes::default()
        }
    }

    fn decode_all(msgs: &[bytes::Bytes], ctx: &Context) -> Vec<Update> {
        msgs.iter()
            .map(|m| {
                assert!(m.len() <= ctx.max_message_len());
                assert_eq!(frame(m, ctx), Ok(Some(m.len())));
                match decode(m, ctx).unwrap() {
                    Message::Update(u) => {
                        assert_eq!(u.outcome, Outcome::Accepted);
                        u
                    }
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn ipv4_fills_messages() {
        let ctx = Context::default();
        let nlri = v4_26s(2000);
        let msgs = pack_announce(
            &attrs(),
            "192.0.2.1".parse().unwrap(),
            AfiSafi::IPV4_UNICAST,
            &nlri,
            &ctx,
        );
        // 5 octets per /26; 4096 - 23 - 21 octets of attributes leave room for 810.
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs.first().unwrap().len(), 4096 - 2);
        let ups = decode_all(&msgs, &ctx);
        let got: Vec<Nlri> = ups.iter().flat_map(|u| u.nlri.clone()).collect();
        assert_eq!(got, nlri);
        assert_eq!(
            ups[0].attributes.next_hop,
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
    }

    #[test]
    fn ipv6_in_mp_reach_with_add_path() {
        let mut ctx = Context::default();
        ctx.add_path_tx.ipv6 = true;
        ctx.add_path_rx.ipv6 = true;
        let nlri: Vec<Nlri> = v6_122s(600)
            .into_iter()
            .map(|n| Nlri::with_path_id(n.prefix, 1))
            .collect();
        let msgs = pack_announce(
            &attrs(),
            "fd00::1".parse().unwrap(),
            AfiSafi::IPV6_UNICAST,
            &nlri,
            &ctx,
        );
        assert_eq!(msgs.len(), 4); // 4 + 1 + 16 = 21 octets each, ~193 per message
        let ups = decode_all(&msgs, &ctx);
        let got: Vec<Nlri> = ups
            .iter()
            .flat_map(|u| u.attributes.mp_reach.clone().unwrap().nlri)
            .collect();
        assert_eq!(got, nlri);
        assert_eq!(ups[0].attributes.next_hop, None);
    }

    #[test]
    fn withdraw_both_families() {
        let ctx = Context {
            extended_message: true,
            ..Context::default()
        };
        let msgs = pack_withdraw(AfiSafi::IPV4_UNICAST, &v4_26s(20000), &ctx);
        assert_eq!(msgs.len(), 2);
        let ups = decode_all(&msgs, &ctx);
        assert_eq!(ups.iter().map(|u| u.withdrawn.len()).sum::<usize>(), 20000);
        let msgs = pack_withdraw(AfiSafi::IPV6_UNICAST, &v6_122s(300), &Context::default());
        let ups = decode_all(&msgs, &Context::default());
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            ups.iter()
                .map(|u| u.attributes.mp_unreach.as_ref().unwrap().withdrawn.len())
                .sum::<usize>(),
            300
        );
    }

    #[test]
    fn nothing_to_pack() {
        let ctx = Context::default();
        assert!(pack_withdraw(AfiSafi::IPV4_UNICAST, &[], &ctx).is_empty());
        assert!(pack_announce(
            &attrs(),
            "10.0.0.1".parse().unwrap(),
            AfiSafi { afi: 25, safi: 65 },
            &v4_26s(1),
            &ctx
        )
        .is_empty());
    }
}
