//! The daemon as an operator meets it: `show` output, workloads, reload,
//! restarts — two ipipd in network namespaces on the host kernel (with a
//! stand-in tunl0), driven through the real command line.

use std::process::Command;
use std::time::Duration;

use interop::config::{NodeConfig, Peer, Pool};
use interop::harness::{require_root, wait_until, Lan, Netns, Proc};
use interop::ipipd::{
    binary, is, BfdJson, BlockJson, Ipipd, NodeJson, PeerJson, PoolJson, RouteJson, WorkloadJson,
};

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const C: &str = "172.29.235.140";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_B: &str = "101.88.228.192/26";
const BLOCK_C: &str = "101.99.1.0/26";
const T: Duration = Duration::from_secs(20);

/// A mesh node with the daemon's default name, small timers and these blocks.
fn node_config(address: &str, blocks: &[&str], nodes: &[&str]) -> NodeConfig {
    let mut c = NodeConfig::bare(address, blocks)
        .pools(&["101.64.0.0/10"])
        .timers(9, 30, Some(1));
    c.cluster.nodes = Some(nodes.iter().map(|n| (*n).to_owned()).collect());
    c
}

fn config(address: &str, blocks: &[&str], nodes: &[&str]) -> String {
    node_config(address, blocks, nodes).toml()
}

fn node(lan: &mut Lan, address: &str) -> Netns {
    let ns = lan.host(&format!("{address}/24")).expect("host");
    ns.add_standin_tunl0().expect("tunl0");
    ns
}

/// Two nodes in a mesh, converged.
fn pair(lan: &mut Lan) -> (Netns, Netns) {
    (node(lan, A), node(lan, B))
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn show_peers_and_routes_text_and_json() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    let a = Ipipd::start(&na, &config(A, &[BLOCK_A], &[A, B])).expect("start a");
    let _b = Ipipd::start(&nb, &config(B, &[BLOCK_B], &[A, B])).expect("start b");
    a.wait_route(BLOCK_B, B, T).expect("route to b");

    let peers = a.peers().expect("peers");
    assert_eq!(peers.len(), 1, "{peers:?}");
    let p = &peers[0];
    assert!(is(&p.address, B), "{p:?}");
    assert_eq!(p.asn, 64512);
    assert_eq!(p.state, "Established");
    assert_eq!(p.kind, "mesh");
    assert_eq!(p.received, 1);
    assert_eq!(p.accepted, 1);
    assert_eq!(p.name, None, "a mesh node has no name: {p:?}");
    for (counter, value) in [
        ("refused_overlap", p.refused_overlap),
        ("refused", p.refused),
        ("treat_as_withdraw", p.treat_as_withdraw),
        ("attributes_discarded", p.attributes_discarded),
    ] {
        assert_eq!(value, 0, "{counter} in {p:?}");
    }
    assert!(
        p.since.len() == 20 && p.since.ends_with('Z'),
        "since: {}",
        p.since
    );

    let routes = a.routes().expect("routes");
    let own = routes
        .iter()
        .find(|r| r.prefix == BLOCK_A)
        .expect("own block");
    assert_eq!(own.origin, "local");
    assert!(own.installed, "blackhole installed: {own:?}");
    let learned = routes
        .iter()
        .find(|r| r.prefix == BLOCK_B)
        .expect("learned block");
    assert_eq!(learned.origin, "bgp");
    assert_eq!(learned.next_hop.as_deref(), Some(B));
    assert_eq!(learned.interface.as_deref(), Some("tunl0"));
    assert_eq!(learned.peer.as_deref(), Some(B));
    assert!(learned.best);
    assert!(learned.installed);

    // What the CLI prints is exactly what the api types serialize to.
    a.same_shape::<Vec<PeerJson>>(&["show", "peers", "--json"])
        .expect("show peers shape");
    a.same_shape::<Vec<RouteJson>>(&["show", "routes", "--json"])
        .expect("show routes shape");
    a.same_shape::<Vec<BlockJson>>(&["show", "blocks", "--json"])
        .expect("show blocks shape");
    a.same_shape::<Vec<NodeJson>>(&["show", "nodes", "--json"])
        .expect("show nodes shape");
    a.same_shape::<Vec<BfdJson>>(&["show", "bfd", "--json"])
        .expect("show bfd shape");
    a.same_shape::<Vec<WorkloadJson>>(&["workload", "list", "--json"])
        .expect("workload list shape");

    // The documented key names, as a user's script reads them (CONTRACT.md).
    let raw = a.raw_json(&["show", "peers", "--json"]).expect("raw peers");
    let p = &raw[0];
    assert_eq!(p["address"], B);
    assert_eq!(p["asn"], 64512);
    assert_eq!(p["state"], "Established");
    assert_eq!(p["kind"], "mesh");
    assert_eq!(p["received"], 1);
    assert_eq!(p["accepted"], 1);
    assert!(p["since"].is_string(), "{p}");
    let raw = a
        .raw_json(&["show", "routes", "--json"])
        .expect("raw routes");
    let learned = raw
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["prefix"] == BLOCK_B))
        .expect("learned block in raw JSON");
    assert_eq!(learned["origin"], "bgp");
    assert_eq!(learned["next_hop"], B);
    assert_eq!(learned["interface"], "tunl0");
    assert_eq!(learned["peer"], B);
    assert_eq!(learned["best"], true);
    assert_eq!(learned["installed"], true);

    let out = a.cli(&["show", "peers"]).expect("show peers");
    let t = text(&out);
    assert!(t.starts_with("PEER ADDRESS"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with(B) && l.contains("Established") && l.contains("mesh")),
        "{t}"
    );
    let out = a.cli(&["show", "routes"]).expect("show routes");
    let t = text(&out);
    assert!(
        t.lines().any(|l| l.starts_with(BLOCK_B)
            && l.contains("tunl0")
            && l.trim_end().ends_with("yes")),
        "{t}"
    );

    let kernel = na.bgp_routes();
    assert!(
        kernel.contains(&format!("{BLOCK_B} via {B} dev tunl0 onlink")),
        "{kernel}"
    );
    assert!(kernel.contains(&format!("blackhole {BLOCK_A}")), "{kernel}");
}

#[test]
fn workload_add_del_changes_kernel_and_survives_restart() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    na.ip(&[
        "link",
        "add",
        "cali0123456789a",
        "type",
        "veth",
        "peer",
        "name",
        "pod0",
    ])
    .expect("veth");
    na.ip(&["link", "set", "cali0123456789a", "up"])
        .expect("up");
    na.ip(&["link", "set", "pod0", "up"]).expect("up");
    let mut a = Ipipd::start(&na, &config(A, &[BLOCK_A], &[A])).expect("start");
    let out = a
        .cli(&["workload", "add", "101.76.9.136", "cali0123456789a"])
        .expect("add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = "101.76.9.136 dev cali0123456789a scope link";
    wait_until(T, "workload /32 in the kernel", || {
        na.bgp_routes().contains(want).then_some(())
    })
    .expect("installed");

    a.stop("TERM").expect("stop");
    assert!(
        na.bgp_routes().contains(want),
        "routes stay in the kernel over a stop"
    );
    a.restart().expect("restart");
    let routes = a.routes().expect("routes");
    let w = routes
        .iter()
        .find(|r| r.prefix == "101.76.9.136/32")
        .expect("workload kept over restart");
    assert_eq!(w.origin, "workload");
    assert_eq!(w.interface.as_deref(), Some("cali0123456789a"));
    wait_until(T, "workload installed after restart", || {
        a.routes()
            .ok()?
            .iter()
            .any(|r| r.prefix == "101.76.9.136/32" && r.installed)
            .then_some(())
    })
    .expect("installed");

    let out = a.cli(&["workload", "del", "101.76.9.136"]).expect("del");
    assert!(out.status.success());
    wait_until(T, "workload /32 removed", || {
        (!na.bgp_routes().contains(want)).then_some(())
    })
    .expect("removed");
    let out = a
        .cli(&["workload", "del", "101.76.9.136"])
        .expect("del again");
    assert!(
        !out.status.success(),
        "deleting a missing workload is an error"
    );
    let out = a
        .cli(&["workload", "add", "101.76.9.137", "bad/name"])
        .expect("bad name");
    assert!(!out.status.success());

    // Outside every pool: nothing there is installed, so it is refused outright.
    let out = a
        .cli(&["workload", "add", "10.9.9.9", "cali0123456789a"])
        .expect("outside the pools");
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("10.9.9.9") && err.contains("cluster.pools: 101.64.0.0/10"),
        "{err}"
    );
    assert!(!na.bgp_routes().contains("10.9.9.9"));
    let listed = a.workloads().expect("list");
    assert!(
        !listed.iter().any(|w| w.ip.to_string() == "10.9.9.9"),
        "{listed:?}"
    );
}

#[test]
fn peer_name_is_shown_in_text_and_json() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    let mut named = node_config(A, &[BLOCK_A], &[A]);
    named.peers.push(Peer::new(B).name("node-b"));
    let a = Ipipd::start(&na, &named.toml()).expect("a");
    let _b = Ipipd::start(&nb, &config(B, &[BLOCK_B], &[A, B])).expect("b");
    let p = a.wait_established(B, T).expect("up");
    assert_eq!(p.name.as_deref(), Some("node-b"), "{p:?}");
    let out = a.cli(&["show", "peers"]).expect("show peers");
    let t = text(&out);
    assert!(t.lines().next().is_some_and(|h| h.contains("NAME")), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with(B) && l.contains("node-b") && l.contains("Established")),
        "{t}"
    );
}

/// Port, AS and own address shape every session: a reload that changes one
/// is refused naming it, and the sessions stay exactly as they were.
#[test]
fn reload_refuses_restart_only_settings_and_keeps_sessions() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    let a = Ipipd::start(&na, &config(A, &[BLOCK_A], &[A, B])).expect("a");
    let _b = Ipipd::start(&nb, &config(B, &[BLOCK_B], &[A, B])).expect("b");
    let before = a.wait_established(B, T).expect("a-b up");
    let base = node_config(A, &[BLOCK_A], &[A, B]);
    let mut port = base.clone();
    port.bgp.port = Some(1179);
    for (key, changed) in [
        ("bgp.port", port),
        ("node.asn", base.clone().asn(65000)),
        ("node.address", node_config(C, &[BLOCK_A], &[A, B])),
    ] {
        a.write_config(&changed.toml()).expect("write");
        let out = a.cli(&["reload"]).expect("reload");
        assert!(!out.status.success(), "{key}: reload accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key) && err.contains("restart"), "{key}: {err}");
        let peers = a.peers().expect("peers");
        assert_eq!(peers.len(), 1, "{key}: {peers:?}");
        let p = &peers[0];
        assert!(is(&p.address, B), "{key}: the old own address is no peer");
        assert_eq!(p.state, "Established", "{key}");
        assert_eq!(p.since, before.since, "{key}: session reset");
        assert_eq!(p.established_count, 1, "{key}");
    }
    // The file watcher sees the same refusal: still one untouched session.
    std::thread::sleep(Duration::from_millis(2500));
    let peers = a.peers().expect("peers");
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].since, before.since);
    assert!(a.log().contains("node.address"), "{}", a.log());
}

#[test]
fn reload_adds_a_peer_without_touching_other_sessions_and_refuses_bad_config() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    let nc = node(&mut lan, C);
    let a = Ipipd::start(&na, &config(A, &[BLOCK_A], &[A, B])).expect("a");
    let _b = Ipipd::start(&nb, &config(B, &[BLOCK_B], &[A, B, C])).expect("b");
    let _c = Ipipd::start(&nc, &config(C, &[BLOCK_C], &[A, B, C])).expect("c");
    let before = a.wait_established(B, T).expect("a-b up");

    // Add C to A's mesh and a new block, by SIGHUP.
    a.write_config(&config(A, &[BLOCK_A, "101.76.10.0/26"], &[A, B, C]))
        .expect("write");
    a.proc.as_ref().expect("proc").signal("HUP").expect("hup");
    a.wait_route(BLOCK_C, C, T)
        .expect("route to c after reload");
    let after = a.peer(B).expect("b");
    assert_eq!(after.since, before.since, "the A-B session was not reset");
    assert_eq!(after.established_count, 1);
    wait_until(T, "new block announced", || {
        _b.routes()
            .ok()?
            .iter()
            .any(|r| r.prefix == "101.76.10.0/26" && r.installed)
            .then_some(())
    })
    .expect("b learns the new block");
    assert!(
        na.bgp_routes().contains("blackhole 101.76.10.0/26"),
        "{}",
        na.bgp_routes()
    );

    // An invalid file is refused; the running config stays.
    std::fs::write(&a.config, "[node]\naddress = \"not an ip\"\n").expect("write");
    let out = a.cli(&["reload"]).expect("reload");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ipipd.toml:2:11: invalid IP address \"not an ip\""),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        a.peers()
            .expect("peers")
            .iter()
            .filter(|p| p.state == "Established")
            .count(),
        2
    );
    assert!(a.best(BLOCK_B).is_some() && a.best(BLOCK_C).is_some());
}

/// `pool list`: each pool's options as configured and this node's use; a reload
/// applies `disabled` and the labels a selector reads, and refuses a new block size.
#[test]
fn pool_list_shows_options_and_use_and_follows_reloads() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let cfg = |disabled: bool, rack: &str, size: u8| {
        node_config(A, &[BLOCK_A], &[A])
            .pool_tables(vec![
                Pool::new("101.64.0.0/10").nat_outgoing(),
                Pool::new("10.244.0.0/16")
                    .block_size(size)
                    .disabled(disabled)
                    .node_selector("rack == 'r2'"),
            ])
            .labels(&[("rack", rack)])
            .toml()
    };
    let a = Ipipd::start(&na, &cfg(true, "r1", 24)).expect("start");
    let assigned = api::call(
        &a.socket,
        &api::Request::IpamAssign {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            interface: "cali1".into(),
            pod_namespace: None,
            pod_name: None,
            network: None,
            ips: Vec::new(),
        },
    )
    .expect("assign");
    assert!(
        matches!(assigned, api::Response::Assigned(_)),
        "{assigned:?}"
    );

    let pools = a.pools().expect("pools");
    let [p, q] = &pools[..] else {
        panic!("{pools:?}")
    };
    assert_eq!(p.cidr, "101.64.0.0/10");
    assert_eq!(
        (p.block_size, p.nat_outgoing, p.disabled),
        (26, true, false)
    );
    assert_eq!((p.node_selector.as_str(), p.selected), ("all()", true));
    assert_eq!((p.blocks, p.allocated, p.cluster_blocks), (1, 1, None));
    assert_eq!(p.total_blocks, 1 << 16);
    assert_eq!(q.cidr, "10.244.0.0/16");
    assert_eq!(
        (q.block_size, q.nat_outgoing, q.disabled),
        (24, false, true)
    );
    assert_eq!(
        (q.node_selector.as_str(), q.selected),
        ("rack == 'r2'", false)
    );
    assert_eq!((q.blocks, q.allocated, q.total_blocks), (0, 0, 256));
    a.same_shape::<Vec<PoolJson>>(&["pool", "list", "--json"])
        .expect("pool list shape");
    let raw = a.raw_json(&["pool", "list", "--json"]).expect("raw pools");
    for key in [
        "cidr",
        "block_size",
        "nat_outgoing",
        "disabled",
        "node_selector",
    ] {
        assert!(raw[0].get(key).is_some(), "{key} in {raw}");
    }
    let t = text(&a.cli(&["pool", "list"]).expect("pool list"));
    assert!(t.starts_with("CIDR"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("10.244.0.0/16") && l.trim_end().ends_with("rack == 'r2'")),
        "{t}"
    );

    a.write_config(&cfg(false, "r2", 24)).expect("write");
    let out = a.cli(&["reload"]).expect("reload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pools = a.pools().expect("pools");
    let q = pools.get(1).expect("second pool");
    assert!(!q.disabled && q.selected, "{q:?}");

    a.write_config(&cfg(false, "r2", 25)).expect("write");
    let out = a.cli(&["reload"]).expect("reload");
    assert!(!out.status.success(), "a new block size was applied");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pool.block_size") && err.contains("restart"),
        "{err}"
    );
    let pools = a.pools().expect("pools");
    assert_eq!(pools.get(1).map(|q| q.block_size), Some(24));
}

#[test]
fn sigterm_keeps_routes_and_restart_deletes_nothing() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    let mut a = Ipipd::start(&na, &config(A, &[BLOCK_A], &[A, B])).expect("a");
    let b = Ipipd::start(&nb, &config(B, &[BLOCK_B], &[A, B])).expect("b");
    a.wait_route(BLOCK_B, B, T).expect("a has b");
    b.wait_route(BLOCK_A, A, T).expect("b has a");
    let before = na.bgp_routes();

    let monitor_log = a.dir.join("monitor.log");
    let mut cmd = Command::new("ip");
    cmd.args(["-n", &na.name, "monitor", "route"]);
    let monitor = Proc::spawn(cmd, "ip monitor", &monitor_log).expect("monitor");
    std::thread::sleep(Duration::from_millis(200));

    a.stop("TERM").expect("stop");
    assert_eq!(
        na.bgp_routes(),
        before,
        "kernel routes unchanged after SIGTERM"
    );
    // The peer keeps our block (graceful restart, no Cease on SIGTERM).
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        b.best(BLOCK_A).is_some(),
        "b keeps a's block while a restarts"
    );
    a.restart().expect("restart");
    a.wait_established(B, T).expect("back up");
    std::thread::sleep(Duration::from_secs(2));
    drop(monitor);
    let log = std::fs::read_to_string(&monitor_log).unwrap_or_default();
    assert!(
        !log.lines().any(|l| l.starts_with("Deleted")),
        "no route deleted over the restart:\n{log}"
    );
    assert_eq!(na.bgp_routes(), before);
    let b_view = b.best(BLOCK_A).expect("b still has a's block");
    assert!(!b_view.stale, "refreshed after End-of-RIB");
}

#[test]
fn cli_without_daemon_prints_one_line_and_fails() {
    let out = Command::new(binary())
        .args(["show", "peers", "--socket", "/nonexistent/ipipd.sock"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no ipipd daemon answering on /nonexistent/ipipd.sock"),
        "{err}"
    );
}

#[test]
fn peer_shutdown_by_reload_sends_the_shutdown_communication() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    let a = Ipipd::start(&na, &config(A, &[BLOCK_A], &[A, B])).expect("a");
    let b = Ipipd::start(&nb, &config(B, &[BLOCK_B], &[A, B])).expect("b");
    a.wait_established(B, T).expect("up");
    let mut with_shutdown = node_config(A, &[BLOCK_A], &[A]);
    with_shutdown.peers.push(Peer::new(B).shutdown());
    a.write_config(&with_shutdown.toml()).expect("write");
    let out = a.cli(&["reload"]).expect("reload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer = wait_until(T, "b sees the shutdown", || {
        b.peer(A).filter(|p| p.state != "Established")
    })
    .expect("b down");
    let info = &peer.info;
    assert!(
        info.contains("6/2") && info.contains("administratively shut down"),
        "info: {info}"
    );
    let mine = a.peer(B).expect("b listed");
    assert_eq!(mine.state, "Idle");
    assert_eq!(mine.info, "administratively down");
    b.wait_no_route(BLOCK_A, T)
        .expect("a's block withdrawn at b");
}

#[test]
fn ipv6_blocks_are_announced_and_routed_natively() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    for (ns, v6) in [(&na, "fd00:29::101/64"), (&nb, "fd00:29::130/64")] {
        ns.ip(&["addr", "add", v6, "dev", "eth0", "nodad"])
            .expect("v6 address");
    }
    let v6_config = |addr: &str, v6: &str, block: &str, block6: &str| {
        let mut c = node_config(addr, &[block, block6], &[A, B])
            .address_v6(v6)
            .pools(&["101.64.0.0/10", "fd10::/48"]);
        // The default graceful restart time.
        c.bgp.graceful_restart_time = None;
        c.toml()
    };
    let a = Ipipd::start(&na, &v6_config(A, "fd00:29::101", BLOCK_A, "fd10::1:0/122")).expect("a");
    let _b = Ipipd::start(&nb, &v6_config(B, "fd00:29::130", BLOCK_B, "fd10::2:0/122")).expect("b");
    a.wait_route("fd10::2:0/122", "fd00:29::130", T)
        .expect("v6 block learned");
    a.wait_route(BLOCK_B, B, T).expect("v4 block learned");
    let v6 = na
        .ip(&["-6", "route", "show", "proto", "bgp"])
        .expect("v6 routes");
    assert!(
        v6.contains("fd10::2:0/122 via fd00:29::130 dev eth0"),
        "IPv6 routed natively, not via tunl0:\n{v6}"
    );
    assert!(v6.contains("blackhole fd10::1:0/122"), "{v6}");
}

#[test]
fn equal_cost_paths_become_one_multipath_route_through_tunl0() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    let nc = node(&mut lan, C);
    let a = Ipipd::start(&na, &config(A, &[BLOCK_A], &[A, B, C])).expect("a");
    // B and C both announce the same block (e.g. a block being moved).
    let _b = Ipipd::start(&nb, &config(B, &[BLOCK_C], &[A, B, C])).expect("b");
    let _c = Ipipd::start(&nc, &config(C, &[BLOCK_C], &[A, B, C])).expect("c");
    let want = [
        format!("{BLOCK_C} \n"),
        format!("nexthop via {B} dev tunl0 weight 1 onlink"),
        format!("nexthop via {C} dev tunl0 weight 1 onlink"),
    ];
    wait_until(T, "a multipath route via B and C", || {
        let r = na.bgp_routes();
        want.iter().all(|w| r.contains(w.as_str())).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", na.bgp_routes()));
    let routes = a.routes().expect("routes");
    let paths: Vec<_> = routes.iter().filter(|r| r.prefix == BLOCK_C).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths.iter().all(|p| p.installed), "{paths:?}");
}

/// A Kubernetes ConfigMap update: the mounted file is a symlink through
/// `..data`, and the kubelet swaps `..data` to a new directory atomically.
#[test]
fn configmap_style_symlink_swap_reloads() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = pair(&mut lan);
    let a = Ipipd::start(&na, &config(A, &[BLOCK_A], &[A, B])).expect("a");
    let b = Ipipd::start(&nb, &config(B, &[BLOCK_B], &[A, B])).expect("b");
    b.wait_route(BLOCK_A, A, T).expect("b has a");
    let root = a.dir.path.clone();
    let write_version = |name: &str, blocks: &[&str]| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("ipipd.toml"),
            a.with_control(&config(A, blocks, &[A, B])),
        )
        .expect("write");
    };
    let swap = |link: &std::path::Path, target: &str| {
        let tmp = root.join("..tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).expect("symlink");
        std::fs::rename(&tmp, link).expect("rename");
    };
    write_version("v1", &[BLOCK_A]);
    swap(&root.join("..data"), "v1");
    swap(&a.config, "..data/ipipd.toml");
    write_version("v2", &[BLOCK_A, "101.76.10.0/26"]);
    std::thread::sleep(Duration::from_millis(1500));
    swap(&root.join("..data"), "v2");
    b.wait_route("101.76.10.0/26", A, T)
        .expect("the new block reaches b after the swap");
    assert_eq!(
        a.peers().expect("peers")[0].established_count,
        1,
        "no session reset"
    );
}
