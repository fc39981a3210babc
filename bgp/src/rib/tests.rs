use std::net::Ipv4Addr;

use super::*;
use crate::wire::{self, AsPath, Message, Nlri, Origin, Update};

pub(super) fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

pub(super) fn policy(cluster_id: Option<Ipv4Addr>) -> PolicyConfig {
    PolicyConfig {
        local_as: 64512,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        cluster_id,
        pools: vec![net("101.64.0.0/10")],
        own_blocks: vec![net("101.76.9.128/26")],
        next_hop_v4: Ipv4Addr::new(10, 0, 0, 1),
        next_hop_v6: None,
    }
}

pub(super) fn peer(addr: &str, id: [u8; 4], rr_client: bool) -> PeerInfo {
    PeerInfo {
        address: ip(addr),
        router_id: Ipv4Addr::from(id),
        asn: 64512,
        ibgp: true,
        rr_client,
        ipv4: true,
        ipv6: false,
        context: Context {
            four_octet_as: true,
            ..Context::default()
        },
        max_prefixes: None,
        enhanced_route_refresh: false,
    }
}

pub(super) fn attrs(local_pref: u32) -> Attributes {
    Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        local_pref: Some(local_pref),
        ..Attributes::default()
    }
}

pub(super) fn announce(prefixes: &[&str], next_hop: &str, a: Attributes) -> Update {
    let mut a = a;
    a.next_hop = match ip(next_hop) {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    };
    Update {
        nlri: prefixes
            .iter()
            .map(|p| Nlri {
                path_id: None,
                prefix: net(p),
            })
            .collect(),
        attributes: a,
        ..Update::default()
    }
}

/// Decodes what the RIB sent to `to`: (announced prefixes with attributes, withdrawn prefixes).
pub(super) fn sent_to(fx: &Effects, to: &str) -> (Vec<(IpNet, Attributes)>, Vec<IpNet>) {
    let ctx = Context {
        four_octet_as: true,
        ..Context::default()
    };
    let mut ann = Vec::new();
    let mut wd = Vec::new();
    for (addr, bytes) in &fx.each_message() {
        if *addr != ip(to) {
            continue;
        }
        let Ok(Message::Update(u)) = wire::decode(bytes, &ctx) else {
            panic!("not an update")
        };
        for n in &u.nlri {
            ann.push((n.prefix, u.attributes.clone()));
        }
        wd.extend(u.withdrawn.iter().map(|n| n.prefix));
    }
    (ann, wd)
}

#[test]
fn own_blocks_are_sent_with_next_hop_self_and_end_of_rib() {
    let mut rib = Rib::new(policy(None), 4);
    rib.flush();
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    let fx = rib.flush();
    let (ann, _) = sent_to(&fx, "10.0.0.2");
    assert_eq!(ann.len(), 1);
    assert_eq!(ann[0].0, net("101.76.9.128/26"));
    assert_eq!(ann[0].1.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(ann[0].1.local_pref, Some(100));
    assert_eq!(ann[0].1.origin, Some(Origin::Igp));
    // The last message is End-of-RIB.
    let last = fx.each_message().last().cloned().expect("messages");
    assert_eq!(last.1.len(), 23);
}

#[test]
fn learned_route_goes_to_fib_and_not_to_other_ibgp_peers() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.peer_up(peer("10.0.0.3", [10, 0, 0, 3], false));
    rib.flush();
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.228.192/26"], "10.0.0.2", attrs(100)),
    );
    let fx = rib.flush();
    assert!(fx.fib_changed);
    assert_eq!(
        rib.fib_view().get(&net("101.88.228.192/26")),
        Some(&vec![ip("10.0.0.2")])
    );
    assert!(
        sent_to(&fx, "10.0.0.3").0.is_empty(),
        "iBGP route must not be re-advertised"
    );
}

#[test]
fn routes_outside_pools_or_overlapping_own_blocks_are_refused() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(
            &["10.99.0.0/26", "101.76.9.128/27", "101.76.0.0/16"],
            "10.0.0.2",
            attrs(100),
        ),
    );
    rib.flush();
    assert!(rib.fib_view().is_empty());
    let c = rib.counts()[&ip("10.0.0.2")];
    assert_eq!(
        (c.received, c.accepted, c.refused_overlap, c.refused),
        (3, 0, 2, 1)
    );
}

#[test]
fn a_borrowed_host_route_passes_the_owners_block_and_the_borrowers_host_route_passes_the_block() {
    // Owner's view: its block 101.76.9.128/26; another node's pod borrowed .130.
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(
            &["101.76.9.130/32", "101.76.9.128/26", "101.76.9.192/26"],
            "10.0.0.2",
            attrs(100),
        ),
    );
    rib.flush();
    let view = rib.fib_view();
    assert_eq!(
        view.get(&net("101.76.9.130/32")),
        Some(&vec![ip("10.0.0.2")]),
        "the borrowed /32 inside the own block is installed: {view:?}"
    );
    assert!(
        !view.contains_key(&net("101.76.9.128/26")),
        "the own block itself is still refused: {view:?}"
    );
    // Borrower's view: it announces a /32 of its own inside another node's block,
    // and that block, learned, is accepted; the same /32 learned is not.
    let mut pol = policy(None);
    pol.own_blocks.push(net("101.88.0.7/32"));
    let mut rib = Rib::new(pol, 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26", "101.88.0.7/32"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    let view = rib.fib_view();
    assert!(view.contains_key(&net("101.88.0.0/26")), "{view:?}");
    assert!(!view.contains_key(&net("101.88.0.7/32")), "{view:?}");
}

#[test]
fn higher_local_pref_wins_then_lower_router_id() {
    let mut rib = Rib::new(policy(None), 1);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 9], false));
    rib.peer_up(peer("10.0.0.3", [10, 0, 0, 3], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.update(
        ip("10.0.0.3"),
        announce(&["101.88.0.0/26"], "10.0.0.3", attrs(100)),
    );
    rib.flush();
    assert_eq!(
        rib.fib_view()[&net("101.88.0.0/26")],
        vec![ip("10.0.0.3")],
        "lower router id"
    );
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(200)),
    );
    rib.flush();
    assert_eq!(
        rib.fib_view()[&net("101.88.0.0/26")],
        vec![ip("10.0.0.2")],
        "higher LOCAL_PREF"
    );
}

#[test]
fn equal_cost_paths_form_a_multipath_set() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.peer_up(peer("10.0.0.3", [10, 0, 0, 3], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.update(
        ip("10.0.0.3"),
        announce(&["101.88.0.0/26"], "10.0.0.3", attrs(100)),
    );
    rib.flush();
    assert_eq!(
        rib.fib_view()[&net("101.88.0.0/26")],
        vec![ip("10.0.0.2"), ip("10.0.0.3")]
    );
}

#[test]
fn shorter_cluster_list_breaks_ties_after_router_id() {
    let mut rib = Rib::new(policy(None), 1);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.peer_up(peer("10.0.0.3", [10, 0, 0, 3], false));
    let mut a = attrs(100);
    a.originator_id = Some(Ipv4Addr::new(10, 9, 9, 9));
    a.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2)];
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.9", a.clone()),
    );
    a.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1)];
    rib.update(ip("10.0.0.3"), announce(&["101.88.0.0/26"], "10.0.0.9", a));
    rib.flush();
    let routes = rib.routes();
    let best = routes
        .iter()
        .find(|r| r.best && r.prefix == net("101.88.0.0/26"))
        .expect("best");
    assert_eq!(best.peer, Some(ip("10.0.0.3")));
}

#[test]
fn withdraw_removes_route_everywhere() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    let u = Update {
        withdrawn: vec![Nlri {
            path_id: None,
            prefix: net("101.88.0.0/26"),
        }],
        ..Update::default()
    };
    rib.update(ip("10.0.0.2"), u);
    rib.flush();
    assert!(rib.fib_view().is_empty());
    assert_eq!(rib.counts()[&ip("10.0.0.2")].accepted, 0);
}

#[test]
fn treat_as_withdraw_removes_the_previous_route() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    let mut u = announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100));
    u.outcome = wire::Outcome::TreatAsWithdraw(vec![]);
    rib.update(ip("10.0.0.2"), u);
    rib.flush();
    assert!(rib.fib_view().is_empty());
    assert_eq!(rib.counts()[&ip("10.0.0.2")].treat_as_withdraw, 1);
}

#[test]
fn graceful_restart_keeps_stale_routes_until_end_of_rib() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26", "101.89.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    rib.peer_down(ip("10.0.0.2"), true);
    rib.flush();
    assert_eq!(rib.fib_view().len(), 2, "stale routes stay installed");
    assert!(rib.routes().iter().all(|r| r.local || r.stale));
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    assert_eq!(rib.fib_view().len(), 2, "still waiting for End-of-RIB");
    rib.update(ip("10.0.0.2"), Update::end_of_rib(AfiSafi::IPV4_UNICAST));
    rib.flush();
    assert_eq!(
        rib.fib_view().keys().copied().collect::<Vec<_>>(),
        vec![net("101.88.0.0/26")]
    );
    assert!(rib.eor_complete(ip("10.0.0.2")));
}

#[test]
fn stale_timer_expiry_removes_stale_routes() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    rib.peer_down(ip("10.0.0.2"), true);
    rib.stale_expired(ip("10.0.0.2"));
    rib.flush();
    assert!(rib.fib_view().is_empty());
}

#[test]
fn down_without_graceful_restart_drops_routes() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    rib.peer_down(ip("10.0.0.2"), false);
    rib.flush();
    assert!(rib.fib_view().is_empty());
}

#[test]
fn max_prefix_asks_for_cease_6_1_with_limit() {
    let mut rib = Rib::new(policy(None), 4);
    let mut p = peer("10.0.0.2", [10, 0, 0, 2], false);
    p.max_prefixes = Some(1);
    rib.peer_up(p);
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26", "101.89.0.0/26"], "10.0.0.2", attrs(100)),
    );
    let fx = rib.flush();
    let (_, n) = fx.resets.first().expect("reset");
    assert_eq!((n.code, n.subcode), (6, 1));
    assert_eq!(&n.data[..], &[0, 1, 1, 0, 0, 0, 1]);
}

/// RFC 4486 §4: the data names the family whose limit was hit, here IPv6
/// (AFI 2) on a session that negotiated IPv4 too.
#[test]
fn max_prefix_names_the_family_over_its_limit() {
    let mut rib = Rib::new(policy(None), 4);
    let mut p = peer("10.0.0.2", [10, 0, 0, 2], false);
    p.ipv6 = true;
    p.max_prefixes = Some(1);
    rib.peer_up(p);
    let mut a = attrs(100);
    a.mp_reach = Some(wire::MpReach {
        afi_safi: AfiSafi::IPV6_UNICAST,
        next_hops: vec![ip("fd00::2")],
        nlri: ["fd10::2:0/122", "fd10::3:0/122"]
            .iter()
            .map(|p| Nlri {
                path_id: None,
                prefix: net(p),
            })
            .collect(),
    });
    rib.update(ip("10.0.0.2"), announce(&[], "10.0.0.2", a));
    let fx = rib.flush();
    let (_, n) = fx.resets.first().expect("reset");
    assert_eq!((n.code, n.subcode), (6, 1));
    assert_eq!(&n.data[..], &[0, 2, 1, 0, 0, 0, 1]);
}

/// End-of-RIB goes out for each negotiated family and no other, after the
/// initial table and after a plain route refresh.
#[test]
fn end_of_rib_only_for_negotiated_families() {
    let mut pol = policy(None);
    pol.next_hop_v6 = Some("fd00::1".parse().expect("v6"));
    pol.own_blocks.push(net("fd10::1:0/122"));
    let mut rib = Rib::new(pol, 4);
    rib.flush();
    let ctx = Context {
        four_octet_as: true,
        ..Context::default()
    };
    let eors = |fx: &Effects, to: &str| -> Vec<AfiSafi> {
        fx.each_message()
            .iter()
            .filter(|(a, _)| *a == ip(to))
            .filter_map(|(_, b)| match wire::decode(b, &ctx) {
                Ok(Message::Update(u)) => u.end_of_rib_family(),
                _ => None,
            })
            .collect()
    };
    let (v4, v6) = (AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST);
    for (addr, id, ipv4, ipv6, want) in [
        ("10.0.0.2", 2, true, false, vec![v4]),
        ("10.0.0.3", 3, false, true, vec![v6]),
        ("10.0.0.4", 4, true, true, vec![v4, v6]),
    ] {
        let mut p = peer(addr, [10, 0, 0, id], false);
        (p.ipv4, p.ipv6) = (ipv4, ipv6);
        rib.peer_up(p);
        let fx = rib.flush();
        assert_eq!(eors(&fx, addr), want, "{addr} at session start");
        rib.refresh(ip(addr));
        let fx = rib.flush();
        assert_eq!(eors(&fx, addr), want, "{addr} after a route refresh");
    }
}

#[test]
fn max_prefix_stops_storing_a_flood() {
    let mut rib = Rib::new(policy(None), 4);
    let mut p = peer("10.0.0.2", [10, 0, 0, 2], false);
    p.max_prefixes = Some(10);
    rib.peer_up(p.clone());
    let flood: Vec<String> = (0..100).map(|i| format!("101.88.{i}.0/24")).collect();
    let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
    rib.update(ip("10.0.0.2"), announce(&flood, "10.0.0.2", attrs(100)));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.99.0.0/24"], "10.0.0.2", attrs(100)),
    );
    assert_eq!(
        rib.route_count(),
        1 + 11,
        "the own block and one past the limit"
    );
    assert_eq!(rib.flush().resets.len(), 1);
    rib.peer_down(ip("10.0.0.2"), false);
    rib.peer_up(p);
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.99.0.0/24"], "10.0.0.2", attrs(100)),
    );
    assert_eq!(rib.route_count(), 2);
}

#[test]
fn max_prefix_counts_refused_routes_too() {
    let mut rib = Rib::new(policy(None), 4);
    let mut p = peer("10.0.0.2", [10, 0, 0, 2], false);
    p.max_prefixes = Some(10);
    rib.peer_up(p);
    // Outside the pools: every one refused, yet each is held, so each counts.
    let flood: Vec<String> = (0..100).map(|i| format!("198.18.{i}.0/24")).collect();
    let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
    rib.update(ip("10.0.0.2"), announce(&flood, "10.0.0.2", attrs(100)));
    let c = rib.counts()[&ip("10.0.0.2")];
    assert_eq!((c.received, c.accepted, c.refused), (11, 0, 11));
    let fx = rib.flush();
    let (_, n) = fx.resets.first().expect("reset");
    assert_eq!((n.code, n.subcode), (6, 1));
}

#[test]
fn removing_an_own_block_withdraws_it() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.flush();
    rib.set_own_blocks(vec![net("101.76.10.0/26")]);
    let fx = rib.flush();
    let (ann, wd) = sent_to(&fx, "10.0.0.2");
    assert_eq!(wd, vec![net("101.76.9.128/26")]);
    assert_eq!(
        ann.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![net("101.76.10.0/26")]
    );
}

#[test]
fn enhanced_route_refresh_is_framed_by_borr_and_eorr() {
    let mut rib = Rib::new(policy(None), 4);
    let mut p = peer("10.0.0.2", [10, 0, 0, 2], false);
    p.enhanced_route_refresh = true;
    rib.peer_up(p);
    rib.flush();
    rib.refresh(ip("10.0.0.2"));
    let fx = rib.flush();
    let ctx = Context {
        four_octet_as: true,
        ..Context::default()
    };
    let kinds: Vec<String> = fx
        .each_message()
        .iter()
        .map(|(_, b)| match wire::decode(b, &ctx) {
            Ok(Message::RouteRefresh(r)) => format!("refresh {}", r.subtype),
            Ok(Message::Update(u)) if u.end_of_rib_family().is_some() => "eor".into(),
            Ok(Message::Update(_)) => "update".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec!["refresh 1", "update", "refresh 2"]);
}

#[test]
fn borr_eorr_from_a_peer_removes_what_it_did_not_resend() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26", "101.89.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    rib.begin_refresh(ip("10.0.0.2"), AfiSafi::IPV4_UNICAST);
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    assert_eq!(rib.fib_view().len(), 2, "kept until EoRR");
    rib.end_refresh(ip("10.0.0.2"), AfiSafi::IPV4_UNICAST);
    rib.flush();
    assert_eq!(
        rib.fib_view().keys().copied().collect::<Vec<_>>(),
        vec![net("101.88.0.0/26")]
    );
}

#[test]
fn local_ipv4_and_ipv6_blocks_get_their_own_next_hops() {
    let mut pol = policy(None);
    pol.next_hop_v6 = Some("fd00::1".parse().expect("v6"));
    pol.own_blocks.push(net("fd10::1:0/122"));
    let mut rib = Rib::new(pol, 4);
    rib.flush();
    let mut p = peer("10.0.0.2", [10, 0, 0, 2], false);
    p.ipv6 = true;
    rib.peer_up(p);
    let fx = rib.flush();
    let ctx = Context {
        four_octet_as: true,
        ..Context::default()
    };
    let mut v6_next_hops = Vec::new();
    for (_, b) in &fx.each_message() {
        if let Ok(Message::Update(u)) = wire::decode(b, &ctx) {
            if let Some(m) = &u.attributes.mp_reach {
                v6_next_hops.extend(m.next_hops.clone());
            }
        }
    }
    assert_eq!(v6_next_hops, vec![ip("fd00::1")]);
}

#[test]
fn routes_refused_for_a_block_are_judged_again_when_blocks_change() {
    let mut rib = Rib::new(policy(None), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.update(
        ip("10.0.0.2"),
        announce(
            &["101.76.9.128/26", "101.76.20.0/26"],
            "10.0.0.2",
            attrs(100),
        ),
    );
    rib.flush();
    let c = rib.counts()[&ip("10.0.0.2")];
    assert_eq!((c.received, c.accepted, c.refused_overlap), (2, 1, 1));
    assert!(!rib.fib_view().contains_key(&net("101.76.9.128/26")));

    // Our block moves away: the peer's route for it is now the one to use.
    rib.set_own_blocks(vec![net("101.76.10.0/26")]);
    rib.flush();
    assert_eq!(
        rib.fib_view().get(&net("101.76.9.128/26")),
        Some(&vec![ip("10.0.0.2")])
    );
    assert_eq!(rib.counts()[&ip("10.0.0.2")].accepted, 2);

    // And it comes back: refused again, the peer's route leaves the FIB.
    rib.set_own_blocks(vec![net("101.76.9.128/26")]);
    rib.flush();
    assert!(!rib.fib_view().contains_key(&net("101.76.9.128/26")));
    let c = rib.counts()[&ip("10.0.0.2")];
    assert_eq!((c.received, c.accepted), (2, 1));

    // A withdrawal of the refused route forgets it.
    let mut w = Update::default();
    w.withdrawn.push(Nlri {
        path_id: None,
        prefix: net("101.76.9.128/26"),
    });
    rib.update(ip("10.0.0.2"), w);
    rib.flush();
    let c = rib.counts()[&ip("10.0.0.2")];
    assert_eq!((c.received, c.accepted), (1, 1));
    assert_eq!(rib.routes().iter().filter(|r| !r.local).count(), 1);
}

/// Applies FIB changes to a copy of the view, as the installer does.
fn apply_changes(
    view: &mut BTreeMap<IpNet, Vec<IpAddr>>,
    changes: Vec<(IpNet, Option<Vec<IpAddr>>)>,
) {
    for (prefix, hops) in changes {
        match hops {
            Some(h) => view.insert(prefix, h),
            None => view.remove(&prefix),
        };
    }
}

#[test]
fn fib_changes_carry_exactly_what_changed() {
    let mut rib = Rib::new(policy(None), 4);
    assert!(
        rib.fib_changes().is_empty(),
        "nothing recorded until tracking"
    );
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], false));
    rib.peer_up(peer("10.0.0.3", [10, 0, 0, 3], false));
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26", "101.88.0.64/26"], "10.0.0.2", attrs(100)),
    );
    rib.flush();
    // Tracking from here: the first changes are the whole table.
    rib.track_fib();
    let mut view = BTreeMap::new();
    apply_changes(&mut view, rib.fib_changes());
    assert_eq!(view, rib.fib_view());
    assert_eq!(view.len(), 2);
    assert!(rib.fib_changes().is_empty(), "taken once");

    // A second equal path: the best stays, the multipath set grows.
    rib.update(
        ip("10.0.0.3"),
        announce(&["101.88.0.0/26"], "10.0.0.3", attrs(100)),
    );
    rib.flush();
    let changes = rib.fib_changes();
    assert_eq!(
        changes,
        vec![(
            net("101.88.0.0/26"),
            Some(vec![ip("10.0.0.2"), ip("10.0.0.3")])
        )]
    );
    apply_changes(&mut view, changes);
    assert_eq!(view, rib.fib_view());

    // A withdrawal, and a route that becomes one of our own blocks.
    let withdraw = Update {
        withdrawn: vec![Nlri {
            path_id: None,
            prefix: net("101.88.0.64/26"),
        }],
        ..Update::default()
    };
    rib.update(ip("10.0.0.2"), withdraw);
    rib.set_own_blocks(vec![net("101.76.9.128/26"), net("101.88.0.0/26")]);
    rib.flush();
    let changes = rib.fib_changes();
    assert_eq!(
        changes,
        vec![(net("101.88.0.0/26"), None), (net("101.88.0.64/26"), None)]
    );
    apply_changes(&mut view, changes);
    assert_eq!(view, rib.fib_view());
    assert!(view.is_empty());

    // A session going down takes its routes out of the FIB in one round.
    rib.set_own_blocks(vec![net("101.76.9.128/26")]);
    rib.flush();
    apply_changes(&mut view, rib.fib_changes());
    assert_eq!(view.len(), 1);
    rib.peer_down(ip("10.0.0.2"), false);
    rib.peer_down(ip("10.0.0.3"), false);
    rib.flush();
    apply_changes(&mut view, rib.fib_changes());
    assert_eq!(view, rib.fib_view());
    assert!(view.is_empty());
}
