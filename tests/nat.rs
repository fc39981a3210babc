//! Outbound NAT as a user meets it: ipipd in a node namespace with a pool that has
//! `nat_outgoing`, a pod on the node, and an outside host behind a router on a network in
//! no pool, which has no route back to the pods. Real nf_tables NAT on the host kernel;
//! the ruleset is read with `nft` (Debian's nftables), traffic is TCP and ICMP echo.
//!
//! ```text
//!  pod 101.76.9.136 ─ cali ─ node A 172.29.235.101 ─ lan ─ router 172.29.235.1
//!  pod 101.76.9.137 ─ cali ─┘                                 │ 198.51.100.1
//!                                                   outside 198.51.100.2
//! ```

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::status::StatusJson;
use interop::capture::capture;
use interop::config::{Ipip, NodeConfig, Pool};
use interop::harness::{require_root, wait_until, Lan, Netns};
use interop::ipipd::Ipipd;

const A: &str = "172.29.235.101";
const ROUTER: &str = "172.29.235.1";
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const POD: &str = "101.76.9.136";
const POD2: &str = "101.76.9.137";
const T: Duration = Duration::from_secs(20);

fn config(nat: bool) -> String {
    let pool = Pool::new("101.64.0.0/10");
    let pool = if nat { pool.nat_outgoing() } else { pool };
    let mut c = NodeConfig::bare(A, &["101.76.9.128/26"])
        .pool_tables(vec![pool, Pool::new("10.96.0.0/12")])
        .timers(9, 30, Some(1));
    c.cluster.nodes = Some(vec![A.to_owned()]);
    c.toml()
}

/// The namespaces of the picture above; removed on drop.
struct World {
    lan: Lan,
    node: Netns,
    _router: Netns,
    outside: Netns,
    pods: Vec<Netns>,
}

fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) {
    a.ip(&[
        "link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", &b.name,
    ])
    .expect("veth");
    a.ip(&["link", "set", a_name, "up"]).expect("up");
    b.ip(&["link", "set", b_name, "up"]).expect("up");
}

fn world() -> World {
    let mut lan = Lan::new().expect("lan");
    let node = lan.host(&format!("{A}/24")).expect("node");
    node.add_standin_tunl0().expect("tunl0");
    node.ip(&["route", "replace", "default", "via", ROUTER])
        .expect("node default route");
    let router = lan.host(&format!("{ROUTER}/24")).expect("router");
    // The router knows the node's network and the outside one, not the pods'.
    router.ip(&["route", "del", "default"]).expect("no default");
    let outside = Netns::new("out").expect("outside");
    veth(&router, "out0", &outside, "eth0");
    router
        .ip(&["addr", "add", "198.51.100.1/24", "dev", "out0"])
        .expect("addr");
    outside
        .ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"])
        .expect("addr");
    outside
        .ip(&["route", "add", "default", "via", "198.51.100.1"])
        .expect("route");
    let pods = [POD, POD2]
        .into_iter()
        .enumerate()
        .map(|(i, addr)| pod_on(&node, i, addr))
        .collect();
    World {
        lan,
        node,
        _router: router,
        outside,
        pods,
    }
}

/// A pod as the CNI plugin wires one: a /32, the default route through 169.254.1.1,
/// proxy ARP on the host end `calinat<i>`.
fn pod_on(node: &Netns, i: usize, addr: &str) -> Netns {
    let pod = Netns::new("pod").expect("pod");
    let host_end = format!("calinat{i}");
    veth(node, &host_end, &pod, "eth0");
    node.sysctl(&format!("net.ipv4.conf.{host_end}.proxy_arp"), "1")
        .expect("proxy_arp");
    pod.wire_pod(addr).expect("pod addresses and routes");
    pod
}

fn add_pods(d: &Ipipd) {
    for (i, addr) in [POD, POD2].into_iter().enumerate() {
        let out = d
            .cli(&["workload", "add", addr, &format!("calinat{i}")])
            .expect("workload add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A TCP listener in a namespace that answers every connection with the peer address
/// it sees, until dropped.
struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start(ns: &Netns, ip: Ipv4Addr) -> Listener {
        let listener = ns
            .in_netns(move || TcpListener::bind((ip, 0)))
            .expect("in netns")
            .expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(peer.ip().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Listener {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from `ns` to `to`; the source address the listener saw.
fn seen_from(ns: &Netns, to: SocketAddr) -> Result<String, String> {
    ns.in_netns(move || {
        let mut s =
            TcpStream::connect_timeout(&to, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut seen = String::new();
        s.read_to_string(&mut seen).map_err(|e| e.to_string())?;
        Ok(seen)
    })
    .map_err(|e| e.to_string())?
}

fn ping(ns: &Netns, to: &str, count: &str, interval: &str) -> (bool, String) {
    let out = ns
        .run(&[
            "ping", "-n", "-q", "-c", count, "-i", interval, "-W", "1", to,
        ])
        .expect("run ping (iputils-ping)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), text)
}

fn nft_tables(ns: &Netns) -> String {
    let out = ns
        .run(&["nft", "list", "tables"])
        .expect("run nft (apt-get install nftables)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(d: &Ipipd) -> StatusJson {
    let out = d.cli(&["status", "--json"]).expect("status");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn pods_reach_the_outside_as_the_node_and_the_table_follows_the_config() {
    require_root();
    let w = world();
    let pod = &w.pods[0];
    // Someone else's table: ipipd must leave it exactly as it is.
    for cmd in [
        &["nft", "add", "table", "inet", "foreign"][..],
        &[
            "nft",
            "add",
            "chain",
            "inet",
            "foreign",
            "out",
            "{ type filter hook output priority 0; }",
        ],
        &["nft", "add", "rule", "inet", "foreign", "out", "counter"],
    ] {
        let out = w.node.run(cmd).expect("nft");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let foreign = |ns: &Netns| {
        let out = ns
            .run(&["nft", "list", "chain", "inet", "foreign", "out"])
            .expect("nft");
        String::from_utf8_lossy(&out.stdout).replace(|c: char| c.is_ascii_digit(), "")
    };
    let foreign_before = foreign(&w.node);

    let outside = Listener::start(&w.outside, OUTSIDE);
    // Without NAT the outside cannot answer a pod: what follows tests ipipd's table.
    assert!(
        seen_from(pod, outside.addr).is_err(),
        "the outside answers pods without NAT"
    );

    let d = Ipipd::start(&w.node, &config(true)).expect("start");
    add_pods(&d);
    assert_eq!(
        seen_from(pod, outside.addr).as_deref(),
        Ok(A),
        "outside sees the node"
    );
    let (ok, text) = ping(pod, "198.51.100.2", "3", "0.2");
    assert!(ok, "pod → outside ping:\n{text}");

    // Pod to pod keeps the pod's address.
    let pod2 = Listener::start(&w.pods[1], POD2.parse().expect("ip"));
    assert_eq!(seen_from(pod, pod2.addr).as_deref(), Ok(POD), "pod → pod");

    let text = d.cli(&["status"]).expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("\nnat: masquerading 101.64.0.0/10 leaving the pools; table ipipd in ip\n"),
        "{text}"
    );
    let s = status(&d);
    assert!(s.healthy, "{:?}", s.reasons);
    let nat = s.nat.expect("status has nat");
    assert_eq!(nat.tables, ["ip"]);
    assert_eq!(nat.pools, ["101.64.0.0/10"]);
    assert_eq!(nat.last_error, None);

    // A reload without NAT removes the table; with it, brings it back.
    d.reconfigure(&config(false)).expect("reload");
    wait_until(T, "table ip ipipd gone", || {
        (!nft_tables(&w.node).contains("table ip ipipd")).then_some(())
    })
    .expect("removed on reload");
    assert!(
        seen_from(pod, outside.addr).is_err(),
        "NAT after nat_outgoing = false"
    );
    d.reconfigure(&config(true)).expect("reload");
    wait_until(T, "table ip ipipd back", || {
        nft_tables(&w.node).contains("table ip ipipd").then_some(())
    })
    .expect("back on reload");
    assert_eq!(seen_from(pod, outside.addr).as_deref(), Ok(A));

    // Deleted by hand: put back by the periodic check.
    let out = w
        .node
        .run(&["nft", "delete", "table", "ip", "ipipd"])
        .expect("nft");
    assert!(out.status.success());
    wait_until(T, "table ip ipipd repaired", || {
        let s = status(&d);
        (s.nat.as_ref()?.repairs > 0 && nft_tables(&w.node).contains("table ip ipipd"))
            .then_some(())
    })
    .expect("repaired");
    assert_eq!(seen_from(pod, outside.addr).as_deref(), Ok(A));

    assert_eq!(
        foreign(&w.node),
        foreign_before,
        "the foreign table changed"
    );
    assert_eq!(
        nft_tables(&w.node).trim(),
        "table inet foreign\ntable ip ipipd",
        "no other table appeared"
    );
}

#[test]
fn nothing_to_the_outside_is_lost_while_ipipd_restarts() {
    require_root();
    let w = world();
    let pod = &w.pods[0];
    let outside = Listener::start(&w.outside, OUTSIDE);
    let mut d = Ipipd::start(&w.node, &config(true)).expect("start");
    add_pods(&d);
    assert_eq!(seen_from(pod, outside.addr).as_deref(), Ok(A));

    // New connections and echoes all through a stop and a start; bounded loops.
    let failures = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let mut ping_result = (false, String::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..400 {
                if done.load(Ordering::Relaxed) && i > 20 {
                    break;
                }
                match seen_from(pod, outside.addr) {
                    Ok(seen) if seen == A => {}
                    other => failures
                        .lock()
                        .expect("lock")
                        .push(format!("#{i}: {other:?}")),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let pinger = s.spawn(|| ping(pod, "198.51.100.2", "60", "0.05"));
        std::thread::sleep(Duration::from_millis(500));
        d.stop("TERM").expect("stop");
        assert!(
            nft_tables(&w.node).contains("table ip ipipd"),
            "the table stays while ipipd is stopped"
        );
        std::thread::sleep(Duration::from_millis(300));
        d.restart().expect("restart");
        ping_result = pinger.join().expect("ping thread");
        done.store(true, Ordering::Relaxed);
    });
    let failures = failures.into_inner().expect("lock");
    assert!(
        failures.is_empty(),
        "connections lost over the restart: {failures:?}"
    );
    let (ok, text) = ping_result;
    assert!(
        ok && text.contains(" 0% packet loss"),
        "ping over the restart:\n{text}"
    );
    assert!(status(&d)
        .nat
        .is_some_and(|n| n.tables == ["ip"] && n.last_error.is_none()));
}

/// Across nodes, pod to pod keeps the pod's address: node B's pod sees node A's pod,
/// not node A, and so does a capture on the LAN between them, while the same pod's
/// connection to the outside crosses the LAN from node A's address. With
/// `ipip.mode = "never"` the packets cross the LAN as they are (this kernel has no
/// ipip driver), so the addresses on the wire are the ones the pods' packets carry.
#[test]
fn pod_to_pod_across_nodes_keeps_the_pod_address() {
    require_root();
    const B: &str = "172.29.235.130";
    const POD_B: &str = "101.88.228.200";
    let mut w = world();
    let node_b = w.lan.host(&format!("{B}/24")).expect("node b");
    node_b.add_standin_tunl0().expect("tunl0");
    let pod_b = pod_on(&node_b, 0, POD_B);
    let config = |address: &str, block: &str| {
        let mut c = NodeConfig::bare(address, &[block])
            .pool_tables(vec![Pool::new("101.64.0.0/10").nat_outgoing()])
            .timers(9, 30, Some(1));
        c.cluster.nodes = Some(vec![A.to_owned(), B.to_owned()]);
        c.ipip = Some(Ipip {
            mode: Some("never".into()),
            ..Ipip::default()
        });
        c.toml()
    };
    let a = Ipipd::start(&w.node, &config(A, "101.76.9.128/26")).expect("start a");
    let b = Ipipd::start(&node_b, &config(B, "101.88.228.192/26")).expect("start b");
    add_pods(&a);
    let out = b
        .cli(&["workload", "add", POD_B, "calinat0"])
        .expect("workload add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.wait_route("101.88.228.192/26", B, T)
        .expect("b's block at a");
    b.wait_route("101.76.9.128/26", A, T)
        .expect("a's block at b");

    let listener = Listener::start(&pod_b, POD_B.parse().expect("ip"));
    let outside = Listener::start(&w.outside, OUTSIDE);
    // On the wire between the nodes (the LAN's bridge and its ports), as well as at
    // the listeners: a capture of both connections.
    let (seen, (to_pod, to_outside)) = capture(&w.lan.underlay, || {
        (
            seen_from(&w.pods[0], listener.addr),
            seen_from(&w.pods[0], outside.addr),
        )
    })
    .expect("capture on the LAN");
    let (pod, pod_b, node_a) = (ip4(POD), ip4(POD_B), ip4(A));
    assert_eq!(
        seen.tcp_sources_to(pod_b),
        BTreeSet::from([pod]),
        "TCP to b's pod on the wire comes from a's pod, never from node a: {seen:?}"
    );
    assert!(
        seen.tcp.contains(&(pod_b, pod)),
        "b's pod answers a's pod on the wire: {seen:?}"
    );
    // Towards the outside the LAN carries the node's address (the router has no
    // route back to the pods), never the pod's.
    assert_eq!(
        seen.tcp_sources_to(OUTSIDE),
        BTreeSet::from([node_a]),
        "TCP to the outside on the wire: {seen:?}"
    );
    assert_eq!(to_pod.as_deref(), Ok(POD), "the pod on b sees the pod on a");
    // And the same pod still leaves the pools as its node.
    assert_eq!(to_outside.as_deref(), Ok(A));
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

/// A table `ipipd` ipipd may not change (another program holds it with nftables'
/// `owner` flag): `ipipd status` is unhealthy and names NAT and the refusal; once the
/// holder exits, its table goes with it and ipipd's is written at once.
#[test]
fn a_table_ipipd_cannot_write_is_an_unhealthy_reason_until_it_can() {
    require_root();
    let w = world();
    let mut holder = w
        .node
        .command("nft")
        .arg("-i")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nft -i");
    holder
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"add table ip ipipd { flags owner; }\n")
        .expect("write to nft");
    wait_until(T, "the held table", || {
        nft_tables(&w.node).contains("table ip ipipd").then_some(())
    })
    .expect("held");

    let d = Ipipd::start(&w.node, &config(true)).expect("start");
    let out = d.cli(&["status"]).expect("status");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let s = status(&d);
    assert!(
        s.reasons.iter().any(|r| r.starts_with("nat: ")
            && r.contains("table ip ipipd")
            && r.contains("Operation not permitted")),
        "{:?}",
        s.reasons
    );
    assert!(s.nat.is_some_and(|n| n.last_error.is_some()));

    // The holder exits: its table goes, and ipipd writes its own.
    drop(holder.stdin.take());
    let _ = holder.wait();
    let s = wait_until(T, "healthy with the table", || {
        let s = status(&d);
        (s.healthy && s.nat.as_ref()?.tables == ["ip"]).then_some(s)
    })
    .expect("recovered");
    assert_eq!(s.nat.and_then(|n| n.last_error), None);
    add_pods(&d);
    let outside = Listener::start(&w.outside, OUTSIDE);
    assert_eq!(seen_from(&w.pods[0], outside.addr).as_deref(), Ok(A));
}
