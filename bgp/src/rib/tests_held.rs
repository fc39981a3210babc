//! A held peer (its socket behind) is told, once released, exactly what a peer that
//! heard every change ends up knowing; nothing it never heard is withdrawn; what is
//! noted for it is one entry per prefix however much churns.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::wire::{self, AsPath, Message, Nlri, Origin, Update};

const CLIENT: &str = "10.0.0.2";
const FAST: &str = "10.0.0.3";
const SLOW: &str = "10.0.0.4";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn reflector() -> Rib {
    let policy = PolicyConfig {
        local_as: 64512,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        cluster_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
        pools: vec!["101.64.0.0/10".parse().expect("pool")],
        own_blocks: Vec::new(),
        next_hop_v4: Ipv4Addr::new(10, 0, 0, 1),
        next_hop_v6: None,
    };
    let mut rib = Rib::new(policy, 4);
    for (i, addr) in [CLIENT, FAST, SLOW].into_iter().enumerate() {
        rib.peer_up(PeerInfo {
            address: ip(addr),
            router_id: Ipv4Addr::new(10, 0, 0, 2 + i as u8),
            asn: 64512,
            ibgp: true,
            rr_client: true,
            ipv4: true,
            ipv6: false,
            context: ctx(),
            max_prefixes: None,
            enhanced_route_refresh: false,
        });
    }
    rib.flush();
    rib
}

fn ctx() -> Context {
    Context {
        four_octet_as: true,
        ..Context::default()
    }
}

fn block(i: u8) -> IpNet {
    IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::new(101, 64, i, 0), 26).expect("block"))
}

/// One change the client makes: announce block `i` with local-pref `pref`, or withdraw it.
#[derive(Debug, Clone, Copy)]
enum Change {
    Announce(u8, u32),
    Withdraw(u8),
}

fn apply(rib: &mut Rib, c: Change) {
    let nlri = |i| {
        vec![Nlri {
            path_id: None,
            prefix: block(i),
        }]
    };
    let u = match c {
        Change::Announce(i, pref) => Update {
            nlri: nlri(i),
            attributes: Attributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                local_pref: Some(pref),
                next_hop: Some(Ipv4Addr::new(10, 0, 0, 2)),
                ..Attributes::default()
            },
            ..Update::default()
        },
        Change::Withdraw(i) => Update {
            withdrawn: nlri(i),
            ..Update::default()
        },
    };
    rib.update(ip(CLIENT), u);
}

/// What a peer knows: each prefix with the local-pref it heard last.
type Known = BTreeMap<IpNet, u32>;

/// Applies the messages `fx` has for `to` to what it knows; returns the prefixes each
/// message named, and the withdrawals of prefixes it did not know.
fn hear(fx: &Effects, to: &str, known: &mut Known) -> (Vec<IpNet>, Vec<IpNet>) {
    let mut named = Vec::new();
    let mut unknown = Vec::new();
    for (addr, bytes) in &fx.each_message() {
        if *addr != ip(to) {
            continue;
        }
        let Ok(Message::Update(u)) = wire::decode(bytes, &ctx()) else {
            panic!("not an update")
        };
        for n in &u.withdrawn {
            named.push(n.prefix);
            if known.remove(&n.prefix).is_none() {
                unknown.push(n.prefix);
            }
        }
        for n in &u.nlri {
            named.push(n.prefix);
            known.insert(n.prefix, u.attributes.local_pref.unwrap_or_default());
        }
    }
    (named, unknown)
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u8..12, 100u32..103).prop_map(|(i, p)| Change::Announce(i, p)),
        (0u8..12).prop_map(Change::Withdraw),
    ]
}

proptest! {
    /// Rounds of changes, the slow peer held and released at random points, a few
    /// prefixes at a time: once everything is released it knows what the fast peer knows.
    #[test]
    fn a_released_peer_ends_knowing_what_a_fast_one_knows(
        rounds in proptest::collection::vec(
            (proptest::collection::vec(change(), 1..8), any::<bool>(), 0usize..4),
            1..20,
        )
    ) {
        let mut rib = reflector();
        let (mut fast, mut slow) = (Known::new(), Known::new());
        for (changes, hold, release) in rounds {
            if hold {
                rib.hold(ip(SLOW));
            }
            for c in changes {
                apply(&mut rib, c);
            }
            if release > 0 {
                rib.release(ip(SLOW), release);
            }
            let fx = rib.flush();
            hear(&fx, FAST, &mut fast);
            let (_, unknown) = hear(&fx, SLOW, &mut slow);
            prop_assert!(unknown.is_empty(), "withdrawn without being heard: {unknown:?}");
        }
        while rib.release(ip(SLOW), 3) {
            let (_, unknown) = hear(&rib.flush(), SLOW, &mut slow);
            prop_assert!(unknown.is_empty(), "withdrawn without being heard: {unknown:?}");
        }
        let (_, unknown) = hear(&rib.flush(), SLOW, &mut slow);
        prop_assert!(unknown.is_empty(), "withdrawn without being heard: {unknown:?}");
        prop_assert!(!rib.is_held(ip(SLOW)));
        prop_assert_eq!(&slow, &fast);
    }
}

/// A held peer hears nothing while held; on release it hears each prefix once, as it is
/// then, however many times it changed, and the fast peer is not held up by it.
#[test]
fn churn_while_held_is_sent_once_per_prefix() {
    let mut rib = reflector();
    rib.hold(ip(SLOW));
    let (mut fast, mut slow) = (Known::new(), Known::new());
    for round in 0..50u32 {
        for i in 0..10 {
            apply(&mut rib, Change::Announce(i, 100 + round));
        }
        if round % 2 == 1 {
            apply(&mut rib, Change::Withdraw(3));
        }
        let fx = rib.flush();
        let (named, _) = hear(&fx, FAST, &mut fast);
        // Each block once: announced, or block 3 withdrawn in odd rounds.
        assert_eq!(named.len(), 10, "round {round}");
        assert!(
            hear(&fx, SLOW, &mut slow).0.is_empty(),
            "held: nothing sent"
        );
    }
    assert!(rib.release(ip(SLOW), 4), "six prefixes left after four");
    let (first, _) = hear(&rib.flush(), SLOW, &mut slow);
    assert!(!rib.release(ip(SLOW), 100));
    let (second, unknown) = hear(&rib.flush(), SLOW, &mut slow);
    // Blocks 0 to 3 first, then 4 to 9; block 3 ended withdrawn and was never
    // heard: not named at all.
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(!first.contains(&block(3)));
    assert_eq!(second.len(), 6, "{second:?}");
    assert!(unknown.is_empty());
    assert_eq!(slow, fast);
    assert_eq!(slow.get(&block(0)), Some(&149));
}

/// A peer that goes down and comes back is not held any more: it gets the table.
#[test]
fn a_new_session_is_not_held() {
    let mut rib = reflector();
    apply(&mut rib, Change::Announce(1, 100));
    rib.flush();
    rib.hold(ip(SLOW));
    apply(&mut rib, Change::Announce(2, 100));
    rib.flush();
    assert!(rib.is_held(ip(SLOW)));
    rib.peer_down(ip(SLOW), false);
    assert!(!rib.is_held(ip(SLOW)));
    rib.hold(ip(SLOW));
    assert!(!rib.is_held(ip(SLOW)), "a peer that is down cannot be held");
}
