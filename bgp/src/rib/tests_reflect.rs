//! Route reflection (RFC 4456): client and non-client routes, originator and cluster
//! list, loops, and one encoding of a flush shared by the clients.

use std::net::Ipv4Addr;

use super::tests::{announce, attrs, ip, net, peer, policy, sent_to};
use super::*;
use crate::wire::{Nlri, Update};

#[test]
fn reflector_reflects_client_routes_with_originator_and_cluster_list() {
    let cid = Ipv4Addr::new(1, 1, 1, 1);
    let mut rib = Rib::new(policy(Some(cid)), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], true));
    rib.peer_up(peer("10.0.0.3", [10, 0, 0, 3], true));
    rib.peer_up(peer("10.0.0.4", [10, 0, 0, 4], false));
    rib.flush();
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    let fx = rib.flush();
    for to in ["10.0.0.3", "10.0.0.4"] {
        let (ann, _) = sent_to(&fx, to);
        assert_eq!(ann.len(), 1, "to {to}");
        assert_eq!(ann[0].1.originator_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(ann[0].1.cluster_list, vec![cid]);
        assert_eq!(
            ann[0].1.next_hop,
            Some(Ipv4Addr::new(10, 0, 0, 2)),
            "next hop unchanged"
        );
    }
    assert!(
        sent_to(&fx, "10.0.0.2").0.is_empty(),
        "not back to the originator"
    );
}

#[test]
fn reflector_sends_non_client_routes_only_to_clients() {
    let mut rib = Rib::new(policy(Some(Ipv4Addr::new(1, 1, 1, 1))), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], true));
    rib.peer_up(peer("10.0.0.4", [10, 0, 0, 4], false));
    rib.peer_up(peer("10.0.0.5", [10, 0, 0, 5], false));
    rib.flush();
    rib.update(
        ip("10.0.0.4"),
        announce(&["101.88.0.0/26"], "10.0.0.4", attrs(100)),
    );
    let fx = rib.flush();
    assert_eq!(sent_to(&fx, "10.0.0.2").0.len(), 1);
    assert!(sent_to(&fx, "10.0.0.5").0.is_empty());
}

#[test]
fn reflection_loops_are_refused() {
    let cid = Ipv4Addr::new(1, 1, 1, 1);
    let mut rib = Rib::new(policy(Some(cid)), 4);
    rib.peer_up(peer("10.0.0.2", [10, 0, 0, 2], true));
    let mut a = attrs(100);
    a.cluster_list = vec![cid];
    rib.update(ip("10.0.0.2"), announce(&["101.88.0.0/26"], "10.0.0.2", a));
    let mut b = attrs(100);
    b.originator_id = Some(Ipv4Addr::new(10, 0, 0, 1));
    rib.update(ip("10.0.0.2"), announce(&["101.89.0.0/26"], "10.0.0.2", b));
    rib.flush();
    assert!(rib.fib_view().is_empty());
}

/// Reflector clients share one encoding of a flush's changes: each hears every other
/// client's route but not its own, and one whose own route displaced a route it had
/// heard is told that route is withdrawn.
#[test]
fn reflected_changes_are_encoded_once_and_each_client_skips_its_own() {
    let mut rib = Rib::new(policy(Some(Ipv4Addr::new(244, 0, 0, 1))), 4);
    for (i, a) in ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
        .iter()
        .enumerate()
    {
        rib.peer_up(peer(a, [10, 0, 0, 2 + i as u8], true));
    }
    rib.flush();
    rib.update(
        ip("10.0.0.2"),
        announce(&["101.88.0.0/26"], "10.0.0.2", attrs(100)),
    );
    rib.update(
        ip("10.0.0.3"),
        announce(&["101.88.0.64/26"], "10.0.0.3", attrs(100)),
    );
    let fx = rib.flush();
    let heard = |fx: &Effects, to: &str| {
        let (ann, wd) = sent_to(fx, to);
        let mut ann: Vec<IpNet> = ann.into_iter().map(|(p, _)| p).collect();
        ann.sort();
        (ann, wd)
    };
    let both = vec![net("101.88.0.0/26"), net("101.88.0.64/26")];
    assert_eq!(heard(&fx, "10.0.0.4"), (both.clone(), vec![]));
    assert_eq!(heard(&fx, "10.0.0.5"), (both, vec![]));
    assert_eq!(
        heard(&fx, "10.0.0.2"),
        (vec![net("101.88.0.64/26")], vec![])
    );
    assert_eq!(heard(&fx, "10.0.0.3"), (vec![net("101.88.0.0/26")], vec![]));
    // The clients that sent nothing got the same octets, not copies.
    let ptrs = |to: &str| -> Vec<*const u8> {
        fx.messages
            .iter()
            .filter(|(a, _)| *a == ip(to))
            .map(|(_, b)| b.as_ptr())
            .collect()
    };
    assert!(!ptrs("10.0.0.4").is_empty());
    assert_eq!(ptrs("10.0.0.4"), ptrs("10.0.0.5"));
    assert!(
        fx.encoded < 2 * 100,
        "two announcements encoded once, not per client: {} octets",
        fx.encoded
    );
    // 10.0.0.4 takes over 10.0.0.2's prefix with a better route: it had heard
    // 10.0.0.2's and is told it is gone; everyone else hears the new route.
    rib.update(
        ip("10.0.0.4"),
        announce(&["101.88.0.0/26"], "10.0.0.4", attrs(200)),
    );
    let fx = rib.flush();
    assert_eq!(heard(&fx, "10.0.0.4"), (vec![], vec![net("101.88.0.0/26")]));
    for to in ["10.0.0.2", "10.0.0.3", "10.0.0.5"] {
        let (ann, wd) = sent_to(&fx, to);
        assert_eq!(ann.len(), 1, "{to}");
        assert_eq!(ann[0].0, net("101.88.0.0/26"));
        assert_eq!(ann[0].1.local_pref, Some(200));
        assert_eq!(ann[0].1.originator_id, Some(Ipv4Addr::new(10, 0, 0, 4)));
        assert_eq!(ann[0].1.cluster_list, vec![Ipv4Addr::new(244, 0, 0, 1)]);
        assert!(wd.is_empty(), "{to}");
    }
    // Its route withdrawn, 10.0.0.2's is best again: 10.0.0.2, which had heard
    // 10.0.0.4's, is told it is gone; the others hear 10.0.0.2's again.
    let mut w = Update::default();
    w.withdrawn.push(Nlri {
        path_id: None,
        prefix: net("101.88.0.0/26"),
    });
    rib.update(ip("10.0.0.4"), w);
    let fx = rib.flush();
    assert_eq!(heard(&fx, "10.0.0.2"), (vec![], vec![net("101.88.0.0/26")]));
    for to in ["10.0.0.3", "10.0.0.4", "10.0.0.5"] {
        assert_eq!(heard(&fx, to), (vec![net("101.88.0.0/26")], vec![]), "{to}");
    }
}
