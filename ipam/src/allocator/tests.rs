use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}
fn req(id: &str) -> Request {
    Request {
        requested: Vec::new(),
        container_id: id.into(),
        ifname: "eth0".into(),
        interface: format!("cali{id}"),
        pod: None,
        network: None,
    }
}
fn v4(blocks: &[&str], reserved: &[&str]) -> Ipam {
    Ipam::new(
        blocks.iter().map(|b| net(b)).collect(),
        reserved.iter().map(|r| ip(r)).collect(),
        vec![Family::V4],
    )
}
fn addr(ipam: &mut Ipam, id: &str) -> IpAddr {
    match ipam.assign(&req(id)) {
        Ok(a) => a.allocation.addresses[0],
        Err(e) => panic!("{id}: {e}"),
    }
}

#[test]
fn first_and_last_addresses_are_usable_but_not_the_reserved_one() {
    let mut ipam = v4(&["10.0.0.0/30"], &["10.0.0.0"]);
    assert_eq!(addr(&mut ipam, "a"), ip("10.0.0.1"));
    assert_eq!(addr(&mut ipam, "b"), ip("10.0.0.2"));
    assert_eq!(addr(&mut ipam, "c"), ip("10.0.0.3"));
    let e = ipam.assign(&req("d")).err();
    assert_eq!(
        e.map(|e| e.to_string()),
        Some("no free IPv4 address: every address of 10.0.0.0/30 is in use".into())
    );
    assert_eq!(ipam.capacity(&net("10.0.0.0/30")), 3);
    assert_eq!(ipam.allocated_in(&net("10.0.0.0/30")), 3);
}

#[test]
fn a_repeated_handle_gets_the_same_addresses() {
    let mut ipam = v4(&["10.0.0.0/26"], &[]);
    let first = ipam.assign(&req("a")).ok();
    let again = ipam.assign(&req("a")).ok();
    assert_eq!(first.as_ref().map(|a| a.existing), Some(false));
    assert_eq!(again.as_ref().map(|a| a.existing), Some(true));
    assert_eq!(
        first.map(|a| a.allocation.addresses),
        again.map(|a| a.allocation.addresses)
    );
    assert_eq!(ipam.allocated(), 1);
}

#[test]
fn release_is_idempotent_and_frees_the_address() {
    let mut ipam = v4(&["10.0.0.0/26"], &[]);
    let a = addr(&mut ipam, "a");
    assert!(ipam.release("a.eth0").is_some());
    assert!(ipam.release("a.eth0").is_none());
    assert!(ipam.release("never.eth0").is_none());
    assert_eq!(addr(&mut ipam, "b"), a);
}

#[test]
fn one_address_per_family_with_blocks() {
    let mut ipam = Ipam::new(
        vec![net("10.0.0.0/26"), net("fd00::/122")],
        vec![ip("10.0.0.0")],
        vec![Family::V4, Family::V6],
    );
    let a = ipam.assign(&req("a")).map(|a| a.allocation.addresses).ok();
    assert_eq!(a, Some(vec![ip("10.0.0.1"), ip("fd00::")]));
    // A pool family without a block on this node is not asked for.
    let mut only_v4 = Ipam::new(
        vec![net("10.0.0.0/26")],
        vec![],
        vec![Family::V4, Family::V6],
    );
    assert_eq!(
        only_v4
            .assign(&req("a"))
            .map(|a| a.allocation.addresses)
            .ok(),
        Some(vec![ip("10.0.0.0")])
    );
    let mut none = Ipam::new(vec![], vec![], vec![Family::V4]);
    assert_eq!(
        none.assign(&req("a")).err(),
        Some(IpamError::NoBlock { family: Family::V4 })
    );
}

#[test]
fn exhausting_one_family_takes_nothing() {
    let mut ipam = Ipam::new(
        vec![net("10.0.0.0/26"), net("fd00::/127")],
        vec![],
        vec![Family::V4, Family::V6],
    );
    assert!(ipam.assign(&req("a")).is_ok());
    assert!(ipam.assign(&req("b")).is_ok());
    assert!(matches!(
        ipam.assign(&req("c")),
        Err(IpamError::Exhausted {
            family: Family::V6,
            ..
        })
    ));
    assert_eq!(ipam.allocated(), 4, "c took no IPv4 address");
}

#[test]
fn second_block_used_when_first_is_full() {
    let mut ipam = v4(&["10.0.0.0/31", "10.0.1.0/31"], &[]);
    addr(&mut ipam, "x0");
    addr(&mut ipam, "x1");
    assert_eq!(addr(&mut ipam, "y"), ip("10.0.1.0"));
}

#[test]
fn bad_tokens_are_refused() {
    let mut ipam = v4(&["10.0.0.0/26"], &[]);
    for (id, ifname) in [
        ("", "eth0"),
        ("a b", "eth0"),
        ("a/b", "eth0"),
        ("a", ""),
        ("a", "sixteen-chars-xx"),
    ] {
        let r = Request {
            requested: Vec::new(),
            container_id: id.into(),
            ifname: ifname.into(),
            interface: "cali1".into(),
            pod: None,
            network: None,
        };
        assert!(
            matches!(ipam.assign(&r), Err(IpamError::Invalid { .. })),
            "{id:?} {ifname:?}"
        );
    }
    assert_eq!(ipam.allocated(), 0);
}

#[test]
fn restore_refuses_clashes_and_keeps_addresses_outside_blocks() {
    let mut ipam = v4(&["10.0.0.0/26"], &[]);
    addr(&mut ipam, "a");
    let mut record = ipam.record();
    let mut clash = record.allocations[0].clone();
    clash.handle = "b.eth0".into();
    record.allocations.push(clash.clone());
    let mut outside = clash.clone();
    outside.handle = "c.eth0".into();
    outside.addresses = vec![ip("10.9.9.9")];
    record.allocations.push(outside);
    let (restored, refused) = v4(&["10.0.0.64/26"], &[]).restore(record);
    assert_eq!(refused, vec![clash]);
    assert!(restored.get("a.eth0").is_some());
    assert!(restored.get("c.eth0").is_some());
    assert_eq!(restored.allocated(), 2);
}

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Assign(u8),
        Release(u8),
        /// The daemon restarts: the record is all that is left.
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24).prop_map(Op::Assign),
            2 => (0u8..24).prop_map(Op::Release),
            1 => Just(Op::Restart),
        ]
    }

    fn fresh() -> Ipam {
        Ipam::new(
            vec![net("10.0.0.0/29"), net("10.0.0.64/30"), net("fd00::/125")],
            vec![ip("10.0.0.0")],
            vec![Family::V4, Family::V6],
        )
    }

    proptest! {
        /// Under any interleaving of assignments, releases and restarts, no address is
        /// ever held by two handles, none is reserved or outside the blocks, and a handle
        /// keeps its addresses until it is released.
        #[test]
        fn never_twice(ops in proptest::collection::vec(op(), 1..200)) {
            let mut ipam = fresh();
            let mut held: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Assign(n) => {
                        let r = req(&format!("c{n}"));
                        match ipam.assign(&r) {
                            Ok(a) => {
                                let before = held.get(&r.handle());
                                prop_assert_eq!(a.existing, before.is_some());
                                if let Some(before) = before {
                                    prop_assert_eq!(before, &a.allocation.addresses);
                                }
                                held.insert(r.handle(), a.allocation.addresses);
                            }
                            Err(IpamError::Exhausted { .. }) => {
                                prop_assert!(!held.contains_key(&r.handle()));
                            }
                            Err(e) => prop_assert!(false, "unexpected {}", e),
                        }
                    }
                    Op::Release(n) => {
                        let h = handle(&format!("c{n}"), "eth0");
                        prop_assert_eq!(ipam.release(&h).is_some(), held.remove(&h).is_some());
                    }
                    Op::Restart => {
                        let text = serde_json::to_string(&ipam.record())
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let record: Record = serde_json::from_str(&text)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let (restored, refused) = fresh().restore(record);
                        prop_assert!(refused.is_empty());
                        ipam = restored;
                    }
                }
                let mut seen = BTreeSet::new();
                for a in ipam.allocations() {
                    prop_assert_eq!(a.addresses.len(), 2);
                    for ip in &a.addresses {
                        prop_assert!(seen.insert(*ip), "{} held twice", ip);
                        prop_assert!(*ip != super::ip("10.0.0.0"), "reserved address handed out");
                        prop_assert!(ipam.blocks().iter().any(|b| b.contains(ip)));
                    }
                }
                prop_assert_eq!(ipam.allocations().count(), held.len());
            }
        }
    }
}

#[test]
fn a_repeated_add_with_another_host_name_keeps_the_address_and_takes_the_name() {
    let mut ipam = v4(&["10.0.0.0/26"], &[]);
    let first = addr(&mut ipam, "a");
    let mut again = req("a");
    again.interface = "calinew".into();
    let got = ipam.assign(&again).ok();
    assert_eq!(got.as_ref().map(|a| a.allocation.addresses[0]), Some(first));
    assert_eq!(
        ipam.get("a.eth0").map(|a| a.interface.as_str()),
        Some("calinew")
    );
}

fn tunnel(address: &str) -> TunnelAllocation {
    TunnelAllocation {
        handle: "ipip-tunnel-addr-n1".into(),
        address: ip(address),
    }
}

#[test]
fn the_tunnel_address_is_no_pods_and_counts_against_capacity_only() {
    let mut ipam = v4(&["10.0.0.0/30", "10.0.0.4/30"], &[]);
    assert_eq!(ipam.pick_tunnel(None), Some(ip("10.0.0.0")));
    assert_eq!(ipam.set_tunnel(Some(tunnel("10.0.0.0"))), Ok(()));
    assert_eq!(addr(&mut ipam, "a"), ip("10.0.0.1"));
    assert_eq!(ipam.capacity(&net("10.0.0.0/30")), 3);
    assert_eq!(ipam.allocated_in(&net("10.0.0.0/30")), 1, "pods only");
    // Moving out of the first block: the lowest free address of another one.
    assert_eq!(
        ipam.pick_tunnel(Some(&net("10.0.0.0/30"))),
        Some(ip("10.0.0.4"))
    );
    // A pod's address is never the tunnel's.
    assert_eq!(
        ipam.set_tunnel(Some(tunnel("10.0.0.1"))),
        Err(ip("10.0.0.1"))
    );
    let record = ipam.record();
    assert_eq!(record.tunnel, Some(tunnel("10.0.0.0")));
    let (back, refused) = v4(&["10.0.0.0/30", "10.0.0.4/30"], &[]).restore(record);
    assert!(refused.is_empty());
    assert_eq!(
        back.tunnel(),
        Some(&tunnel("10.0.0.0")),
        "kept across a restart"
    );
}

#[test]
fn a_recorded_tunnel_address_a_pod_holds_is_dropped_and_the_pod_kept() {
    let mut ipam = v4(&["10.0.0.0/30"], &[]);
    let _ = addr(&mut ipam, "a");
    let mut record = ipam.record();
    record.tunnel = Some(tunnel("10.0.0.0"));
    let (back, refused) = v4(&["10.0.0.0/30"], &[]).restore(record);
    assert!(refused.is_empty());
    assert_eq!(back.tunnel(), None);
    assert_eq!(back.allocated(), 1);
}

#[test]
fn stale_handles_are_those_of_the_network_not_kept() {
    let mut ipam = v4(&["10.0.0.0/26"], &[]);
    for (id, network) in [
        ("a", Some("n1")),
        ("b", Some("n1")),
        ("c", Some("n2")),
        ("d", None),
    ] {
        let r = Request {
            requested: Vec::new(),
            network: network.map(str::to_owned),
            ..req(id)
        };
        assert!(ipam.assign(&r).is_ok(), "{id}");
    }
    let keep = vec!["a.eth0".to_string()];
    assert_eq!(ipam.stale(&keep, Some("n1")), vec!["b.eth0".to_string()]);
    assert_eq!(ipam.stale(&keep, Some("n2")), vec!["c.eth0".to_string()]);
    assert_eq!(ipam.stale(&keep, None), vec!["d.eth0".to_string()]);
    assert!(ipam.stale(&[], Some("n3")).is_empty());
}

/// A block of a disabled pool: what it holds stays, nothing new comes from it.
#[test]
fn a_closed_block_keeps_its_addresses_and_gives_no_new_one() {
    let mut ipam = v4(&["10.0.0.0/30", "10.0.0.4/30"], &[]);
    assert_eq!(ipam.set_tunnel(Some(tunnel("10.0.0.0"))), Ok(()));
    assert_eq!(addr(&mut ipam, "a"), ip("10.0.0.1"));
    ipam.set_closed(vec![net("10.0.0.0/30")]);
    assert_eq!(addr(&mut ipam, "b"), ip("10.0.0.4"), "from the open block");
    assert_eq!(addr(&mut ipam, "a"), ip("10.0.0.1"), "kept");
    assert_eq!(ipam.tunnel(), Some(&tunnel("10.0.0.0")), "kept");
    assert_eq!(ipam.pick_tunnel(None), Some(ip("10.0.0.5")));
    for id in ["c", "d", "e"] {
        let _ = ipam.assign(&req(id));
    }
    let e = ipam.assign(&req("f")).err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("no free IPv4 address: every address of 10.0.0.4/30 is in use"),
        "the closed block's free address is not handed out"
    );
    // Closing every block of the family: no address of it for new pods.
    ipam.set_closed(vec![net("10.0.0.0/30"), net("10.0.0.4/30")]);
    assert!(ipam.assign(&req("g")).is_err());
    ipam.set_closed(Vec::new());
    assert_eq!(addr(&mut ipam, "g"), ip("10.0.0.2"));
}
