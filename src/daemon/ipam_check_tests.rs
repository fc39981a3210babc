//! What `ipam check` finds in a datastore read, and when a release is refused.

use std::time::{Duration, SystemTime};

use datastore::{
    AllocationBlock, Attribute, Block, BlockRecord, BlockState, LiveRecord, NodeRecord,
};
use ipnet::IpNet;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn attr(handle: &str, node: &str, time: u64) -> Attribute {
    Attribute {
        handle: handle.into(),
        node: node.into(),
        namespace: None,
        pod: None,
        interface: None,
        network: None,
        time,
    }
}

fn node(name: &str, i: u8) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        address: std::net::Ipv4Addr::new(10, 0, 0, i),
        address_v6: None,
        asn: 64512,
        port: 179,
        rr_cluster_id: None,
        vxlan_mac: None,
        vxlan_mac_v6: None,
    }
}

/// Node a (registered, reports p1 live), node gone (removed): a's block holds p1,
/// p2 (gone since a's report), p3 (newer than the report) and a's tunnel; the removed
/// node's block record holds q1 and has no block key any more.
fn cluster() -> Snapshot {
    let mut s = Snapshot::default();
    s.nodes.insert("a".into(), node("a", 1));
    let mine = net("10.9.0.0/28");
    s.blocks.insert(
        mine,
        Block {
            net: mine,
            record: BlockRecord {
                node: "a".into(),
                state: BlockState::Confirmed,
            },
            mod_revision: 1,
        },
    );
    let mut b = AllocationBlock::new(mine).unwrap_or_else(|| panic!("block"));
    for (h, t) in [
        ("ipip-tunnel-addr-a", 5),
        ("p1", 10),
        ("p2", 10),
        ("p3", 30),
    ] {
        b.assign(attr(h, "a", t), |_| false);
    }
    s.allocations.insert(mine, (b, 2));
    let mut handles = BTreeMap::new();
    handles.insert("p1".to_owned(), vec![ip("10.9.0.1")]);
    handles.insert("p9".to_owned(), vec![ip("10.9.0.9")]);
    s.live.insert("a".into(), LiveRecord { at: 20, handles });
    let gone = net("10.9.0.16/28");
    let mut g = AllocationBlock::new(gone).unwrap_or_else(|| panic!("block"));
    g.assign(attr("q1", "gone", 1), |_| false);
    s.allocations.insert(gone, (g, 3));
    s
}

#[test]
fn a_check_finds_leaks_missing_pods_and_orphans() {
    let r = check(
        &cluster(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(100),
    );
    let leaked: Vec<(String, &str, &str)> = r
        .leaked
        .iter()
        .map(|l| (l.address.to_string(), l.handle.as_str(), l.reason.as_str()))
        .collect();
    assert_eq!(
        leaked,
        [
            ("10.9.0.2".to_owned(), "p2", "pod gone"),
            ("10.9.0.16".to_owned(), "q1", "node removed"),
        ]
    );
    assert_eq!(r.missing.len(), 1);
    assert_eq!(r.missing[0].handle, "p9");
    assert!(r.duplicates.is_empty(), "{:?}", r.duplicates);
    assert_eq!(r.orphan_blocks.len(), 1);
    assert_eq!(r.orphan_blocks[0].block, "10.9.0.16/28");
    assert_eq!(r.checked_at, "1970-01-01T00:01:40.000Z");
    assert!(!r.clean());
}

#[test]
fn an_address_on_two_live_pods_is_a_duplicate() {
    let mut s = cluster();
    s.nodes.insert("b".into(), node("b", 2));
    let mut handles = BTreeMap::new();
    handles.insert("other".to_owned(), vec![ip("10.9.0.1")]);
    s.live.insert("b".into(), LiveRecord { at: 20, handles });
    let r = check(&s, SystemTime::UNIX_EPOCH);
    assert_eq!(r.duplicates.len(), 1, "{:?}", r.duplicates);
    assert_eq!(r.duplicates[0].handles, ["other", "p1"]);
}

#[test]
fn a_release_needs_a_later_check_that_agrees() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    let report = check(&cluster(), t);
    let recorded = |at_ms: u64, leaked: Vec<Leak>| CheckRecord { at: at_ms, leaked };
    let all: Vec<Leak> = report.leaked.iter().map(leak).collect();
    assert!(matches!(plan(&report, None), Plan::Refuse(_)));
    // The check that made the report is the last one: not confirmed yet.
    match plan(&report, Some(&recorded(100_000, all.clone()))) {
        Plan::Refuse(why) => assert!(why.contains("not older than the last check"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A later check that finds only one of them: that one is freed.
    match plan(&report, Some(&recorded(100_001, all[..1].to_vec()))) {
        Plan::Free {
            confirmed,
            unconfirmed,
        } => {
            assert_eq!(confirmed, all[..1].to_vec());
            assert_eq!(unconfirmed, all[1..].to_vec());
        }
        other => panic!("{other:?}"),
    }
    // A later check where the address was taken again (another sequence): nothing.
    let mut moved = all.clone();
    for l in &mut moved {
        l.sequence += 1;
    }
    assert!(matches!(
        plan(&report, Some(&recorded(200_000, moved))),
        Plan::Refuse(_)
    ));
}
