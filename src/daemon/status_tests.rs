//! One test per rule of [`assess`].

use super::*;
use bgp::fsm::State;

const T0: Duration = Duration::from_secs(1_700_000_000);

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(secs)
}

fn peer(last: u8, state: State, established_count: u64) -> PeerFacts {
    PeerFacts {
        status: bgp::speaker::PeerStatus {
            address: IpAddr::from([172, 29, 235, last]),
            asn: 64512,
            kind: bgp::speaker::NeighborKind::Mesh,
            state,
            admin_down: false,
            since: at(0),
            configured: at(0),
            info: String::new(),
            router_id: None,
            hostname: None,
            counts: Default::default(),
            messages: Default::default(),
            established_count,
            graceful_restart: true,
        },
        name: None,
        bfd_wanted: false,
        bfd: None,
    }
}

fn facts(peers: Vec<PeerFacts>) -> Facts {
    Facts {
        node: "node1".into(),
        address: [172, 29, 235, 101].into(),
        window: Duration::from_secs(10),
        peers,
        blocks: vec![BlockUseJson {
            block: "101.76.9.128/26".into(),
            allocated: 1,
            capacity: 63,
        }],
        allocated: 1,
        datastore: DatastoreFacts::File,
        fib: Some(FibFacts {
            errors_before: 0,
            errors_after: 0,
            missing_before: BTreeSet::new(),
            missing_after: BTreeSet::new(),
        }),
        nat: None,
        encapsulation: EncapsulationJson {
            kind: "ipip".into(),
            mode: "always".into(),
            device: "tunl0".into(),
            address: None,
            state: None,
            mtu: None,
            v6: None,
        },
        task_failure: None,
        no_address: None,
    }
}

#[test]
fn every_session_established_is_healthy() {
    let s = assess(&facts(vec![peer(130, State::Established, 1)]), at(60));
    assert!(s.healthy, "{:?}", s.reasons);
    assert!(s.reasons.is_empty());
    assert_eq!(s.peers.len(), 1);
}

#[test]
fn a_peer_not_up_yet_counts_only_after_the_first_connect_window() {
    let f = facts(vec![peer(130, State::Active, 0)]);
    let early = assess(&f, at(9));
    assert!(early.healthy, "{:?}", early.reasons);
    assert!(early.peers.iter().all(|p| p.starting));
    let late = assess(&f, at(11));
    assert!(!late.healthy);
    assert_eq!(late.reasons.len(), 1, "{:?}", late.reasons);
    let r = &late.reasons[0];
    assert!(
        r.starts_with("peer 172.29.235.130 (mesh): session Active since"),
        "{r}"
    );
}

#[test]
fn a_session_that_went_down_counts_at_once() {
    let s = assess(&facts(vec![peer(130, State::Connect, 1)]), at(1));
    assert!(!s.healthy);
    assert!(s.reasons[0].contains("172.29.235.130"), "{:?}", s.reasons);
}

#[test]
fn an_administratively_down_peer_is_no_fault() {
    let mut p = peer(200, State::Idle, 0);
    p.status.admin_down = true;
    p.bfd_wanted = true;
    let s = assess(&facts(vec![p]), at(600));
    assert!(s.healthy, "{:?}", s.reasons);
}

#[test]
fn the_name_of_a_configured_peer_is_in_its_reason() {
    let mut p = peer(200, State::Idle, 1);
    p.name = Some("tor-1".into());
    p.status.kind = bgp::speaker::NeighborKind::Peer;
    p.status.info = "connection refused".into();
    let s = assess(&facts(vec![p]), at(600));
    assert!(
        s.reasons[0].starts_with("peer 172.29.235.200 (peer, tor-1): session Idle")
            && s.reasons[0].ends_with("(connection refused)"),
        "{:?}",
        s.reasons
    );
}

#[test]
fn a_bfd_session_that_should_be_up_and_is_not() {
    let mut p = peer(130, State::Established, 1);
    p.bfd_wanted = true;
    p.bfd = Some(::bfd::State::Up);
    assert!(assess(&facts(vec![p]), at(60)).healthy);

    let mut p = peer(130, State::Established, 1);
    p.bfd_wanted = true;
    p.bfd = Some(::bfd::State::Down);
    let s = assess(&facts(vec![p]), at(60));
    assert_eq!(s.reasons, ["bfd 172.29.235.130: Down, should be Up"]);

    let mut p = peer(130, State::Established, 1);
    p.bfd_wanted = true;
    let s = assess(&facts(vec![p]), at(60));
    assert_eq!(
        s.reasons,
        ["bfd 172.29.235.130: no session in the BFD keeper, should be Up"]
    );
}

#[test]
fn routes_missing_while_writes_fail_are_named() {
    let mut f = facts(Vec::new());
    let missing: BTreeSet<String> = ["101.88.228.192/26".to_owned(), "10.0.0.0/26".to_owned()]
        .into_iter()
        .collect();
    f.fib = Some(FibFacts {
        errors_before: 3,
        errors_after: 3,
        missing_before: missing.clone(),
        missing_after: missing,
    });
    let s = assess(&f, at(60));
    assert_eq!(
        s.reasons,
        ["fib: 2 routes not in the kernel after 3 failed writes: 10.0.0.0/26, 101.88.228.192/26"]
    );
    assert_eq!(s.fib.map(|f| f.missing.len()), Some(2));
}

#[test]
fn routes_in_flight_are_no_fault() {
    let mut f = facts(Vec::new());
    // Missing once only, or missing with no failed write: on their way to the kernel.
    f.fib = Some(FibFacts {
        errors_before: 1,
        errors_after: 1,
        missing_before: ["10.0.0.0/26".to_owned()].into_iter().collect(),
        missing_after: ["10.0.0.64/26".to_owned()].into_iter().collect(),
    });
    assert!(assess(&f, at(60)).healthy);
    f.fib = Some(FibFacts {
        errors_before: 0,
        errors_after: 0,
        missing_before: ["10.0.0.0/26".to_owned()].into_iter().collect(),
        missing_after: ["10.0.0.0/26".to_owned()].into_iter().collect(),
    });
    assert!(assess(&f, at(60)).healthy);
}

#[test]
fn failing_writes_are_a_fault() {
    let mut f = facts(Vec::new());
    f.fib = Some(FibFacts {
        errors_before: 4,
        errors_after: 6,
        missing_before: BTreeSet::new(),
        missing_after: BTreeSet::new(),
    });
    let s = assess(&f, at(60));
    assert_eq!(
        s.reasons,
        ["fib: 2 kernel writes failed in the last 300 ms (6 since the start)"]
    );
}

#[test]
fn an_unreachable_datastore_says_when_it_was_last_read() {
    let mut f = facts(Vec::new());
    f.datastore = DatastoreFacts::Etcd {
        reachable: false,
        last_sync: at(18),
    };
    let s = assess(&f, at(60));
    assert_eq!(
        s.reasons,
        ["datastore: etcd unreachable; last successful read 2023-11-14T22:13:38Z (42 s ago)"]
    );
    assert_eq!(s.datastore.reachable, Some(false));
    f.datastore = DatastoreFacts::Etcd {
        reachable: true,
        last_sync: at(18),
    };
    let s = assess(&f, at(60));
    assert!(s.healthy);
    assert_eq!(
        s.datastore.last_sync.as_deref(),
        Some("2023-11-14T22:13:38Z")
    );
}

#[test]
fn a_stopped_task_is_a_fault() {
    let mut f = facts(Vec::new());
    f.task_failure = Some("the RIB task has stopped".into());
    assert_eq!(
        assess(&f, at(0)).reasons,
        ["daemon: the RIB task has stopped"]
    );
}

#[test]
fn a_node_that_cannot_give_an_address_says_why() {
    let mut f = facts(vec![peer(130, State::Established, 1)]);
    f.no_address = Some("every address of the node's blocks (10.244.0.0/26) is in use".into());
    let s = assess(&f, at(60));
    assert!(!s.healthy);
    assert_eq!(
        s.reasons,
        ["ipam: a new pod gets no address: every address of the node's blocks (10.244.0.0/26) is in use"]
    );
}

#[test]
fn the_window_is_two_connect_retries_and_at_least_ten_seconds() {
    let parse = |text: &str| match config::Config::parse(text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let base = "[node]\naddress = \"10.0.0.1\"\n";
    assert_eq!(connect_window(&parse(base)), Duration::from_secs(10));
    let slow = parse(&format!("{base}[bgp]\nconnect_retry_time = 30\n"));
    assert_eq!(connect_window(&slow), Duration::from_secs(60));
    let fast = parse(&format!("{base}[bgp]\nconnect_retry_time = 1\n"));
    assert_eq!(connect_window(&fast), Duration::from_secs(10));
}

#[test]
fn failed_nat_programming_is_a_fault_naming_it() {
    let mut f = facts(vec![]);
    f.nat = Some(nat::Status {
        tables: vec![],
        nat_pools: vec!["101.64.0.0/10".parse().expect("pool")],
        in_sync: false,
        last_error: Some("kernel refused to add table ip ipipd: Operation not permitted".into()),
        repairs: 0,
    });
    let s = assess(&f, at(60));
    assert!(!s.healthy);
    assert_eq!(
        s.reasons,
        [
            "nat: nftables table ipipd not as wanted: kernel refused to add table ip ipipd: \
          Operation not permitted"
        ]
    );
    let nat = s.nat.expect("nat");
    assert_eq!(nat.pools, ["101.64.0.0/10"]);

    f.nat = Some(nat::Status {
        tables: vec![nat::Family::V4],
        nat_pools: vec!["101.64.0.0/10".parse().expect("pool")],
        in_sync: true,
        last_error: None,
        repairs: 2,
    });
    let s = assess(&f, at(60));
    assert!(s.healthy, "{:?}", s.reasons);
    assert_eq!(s.nat.expect("nat").tables, ["ip"]);
}
