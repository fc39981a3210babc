//! ipipd's nftables table against the real kernel, each test in network namespaces of
//! its own: what `nft` lists, what a connection from a pod to the outside looks like
//! from the outside, and what happens when something else deletes the table. Needs root,
//! iproute2 and `nft` (Debian's nftables) to read the ruleset as a user would.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use ipnet::IpNet;
use nat::{desired, Desired, Family, Keeper, Nft};
use netns::Netns;

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn nft(ns: &Netns, args: &[&str]) -> String {
    let mut all = vec!["nft"];
    all.extend_from_slice(args);
    let out = ns.run(&all).expect("run nft (apt-get install nftables)");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pools() -> Desired {
    desired([
        (net("10.244.0.0/16"), true),
        (net("10.96.0.0/12"), false),
        (net("fd10::/48"), true),
    ])
}

#[test]
fn the_table_is_what_nft_lists_and_reads_back_equal() {
    let ns = Netns::new("nat").expect("netns");
    let want = pools();
    let found = ns
        .in_netns(|| {
            let mut nft = Nft::open().expect("socket");
            nft.apply(&want, &[]).expect("apply");
            Family::ALL.map(|f| nft.read(f).expect("read"))
        })
        .expect("in netns");
    for (f, found) in Family::ALL.into_iter().zip(&found) {
        assert!(found.is(want.table(f)), "{f}: read back {found:?}");
    }
    let ip = nft(&ns, &["list", "table", "ip", "ipipd"]);
    for line in [
        "set nat-pools {",
        "type ipv4_addr",
        "flags interval",
        "elements = { 10.244.0.0/16 }",
        "elements = { 10.96.0.0/12, 10.244.0.0/16 }",
        "type nat hook postrouting priority srcnat; policy accept;",
        "ip saddr @nat-pools ip daddr != @all-pools masquerade comment \"ipipd: masquerade pod traffic leaving the pools\"",
    ] {
        assert!(ip.contains(line), "missing {line:?} in:\n{ip}");
    }
    let ip6 = nft(&ns, &["list", "table", "ip6", "ipipd"]);
    assert!(
        ip6.contains("ip6 saddr @nat-pools ip6 daddr != @all-pools masquerade"),
        "{ip6}"
    );
    assert!(ip6.contains("elements = { fd10::/48 }"), "{ip6}");
}

#[test]
fn removal_and_replacement_leave_other_tables_alone() {
    let ns = Netns::new("nat").expect("netns");
    nft(&ns, &["add", "table", "inet", "other"]);
    nft(
        &ns,
        &[
            "add",
            "chain",
            "inet",
            "other",
            "c",
            "{ type filter hook forward priority 0; }",
        ],
    );
    nft(
        &ns,
        &["add", "rule", "inet", "other", "c", "counter", "accept"],
    );
    nft(&ns, &["add", "table", "ip", "ipipd-not"]);
    let before = nft(&ns, &["list", "table", "inet", "other"]);

    let want = pools();
    let v4_only = desired([(net("10.244.0.0/16"), true), (net("fd10::/48"), false)]);
    ns.in_netns(|| {
        let mut nft = Nft::open().expect("socket");
        nft.apply(&want, &[]).expect("apply");
        nft.apply(&want, &[]).expect("apply again");
        nft.apply(&v4_only, &Family::ALL).expect("ip6 gone");
        assert!(!nft.read(Family::V6).expect("read").table);
        assert!(nft
            .read(Family::V4)
            .expect("read")
            .is(v4_only.table(Family::V4)));
        nft.apply(&Desired::default(), &Family::ALL)
            .expect("remove");
        nft.apply(&Desired::default(), &Family::ALL)
            .expect("remove again");
        assert!(!nft.read(Family::V4).expect("read").table);
    })
    .expect("in netns");
    let ruleset = nft(&ns, &["list", "tables"]);
    assert_eq!(
        ruleset.trim(),
        "table inet other\ntable ip ipipd-not",
        "{ruleset}"
    );
    assert_eq!(nft(&ns, &["list", "table", "inet", "other"]), before);
}

#[test]
fn the_keeper_puts_back_what_is_deleted() {
    let ns = Netns::new("nat").expect("netns");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Polls `nft list ruleset` while the keeper runs on the same thread.
    async fn check(ns: &Netns, what: &str, f: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let out = ns.run(&["nft", "list", "ruleset"]).expect("nft");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if f(&text) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}:\n{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    ns.in_netns(|| {
        rt.block_on(async {
            // The periodic look is far off: repairs below come from the ruleset's change
            // notifications.
            let keeper = Keeper::start(pools(), Duration::from_secs(3600)).await;
            let status = keeper.status();
            assert_eq!(status.last_error, None);
            assert_eq!(status.tables, vec![Family::V4, Family::V6]);
            check(&ns, "both tables at start", |t| {
                t.contains("table ip ipipd") && t.contains("table ip6 ipipd")
            })
            .await;

            let _ = ns.run(&["nft", "delete", "table", "ip", "ipipd"]);
            let deleted = keeper.status().repairs;
            check(&ns, "ip table back", |t| t.contains("table ip ipipd")).await;
            let _ = ns.run(&[
                "nft",
                "delete",
                "rule",
                "ip6",
                "ipipd",
                "postrouting",
                "handle",
                "7",
            ]);
            let _ = ns.run(&["nft", "flush", "set", "ip6", "ipipd", "all-pools"]);
            check(&ns, "ip6 set refilled", |t| t.contains("fd10::/48")).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(keeper.status().repairs > deleted, "{:?}", keeper.status());

            // A new pool is a set update: the table, its rule and their handles stay.
            let handles = |ns: &Netns| {
                nft(ns, &["-a", "list", "table", "ip", "ipipd"])
                    .lines()
                    .filter_map(|l| l.split("# handle ").nth(1).map(str::to_owned))
                    .collect::<Vec<_>>()
            };
            let before = handles(&ns);
            let mut more = pools();
            more = desired(
                more.tables
                    .iter()
                    .flat_map(|t| t.all.iter().map(|n| (*n, t.nat.contains(n))))
                    .chain([(net("10.250.0.0/16"), true)]),
            );
            keeper.set(more);
            check(&ns, "new pool in the sets", |t| {
                t.contains("elements = { 10.244.0.0/16, 10.250.0.0/16 }")
            })
            .await;
            assert_eq!(
                handles(&ns),
                before,
                "the table was rebuilt for a set change"
            );

            keeper.set(desired([(net("10.244.0.0/16"), false)]));
            check(&ns, "both tables gone", |t| !t.contains("ipipd")).await;
        })
    })
    .expect("in netns");
}

/// Connects from `pod` to a listener on `ip` in `outside`: the source address the
/// listener saw.
fn seen_from(pod: &Netns, outside: &Netns, ip: IpAddr) -> Result<String, String> {
    let listener = outside
        .in_netns(move || TcpListener::bind((ip, 0)))
        .expect("in netns")
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || -> Option<SocketAddr> {
        let (mut s, peer) = listener.accept().ok()?;
        let _ = s.write_all(b"ok");
        Some(peer)
    });
    let client = pod
        .in_netns(move || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
            Ok::<String, String>(buf)
        })
        .expect("in netns");
    match client {
        Ok(_) => server
            .join()
            .ok()
            .flatten()
            .map(|p| p.ip().to_string())
            .ok_or_else(|| "no peer".into()),
        Err(e) => {
            // Unblock the accept so the thread ends.
            let _ = outside.in_netns(move || TcpStream::connect(addr));
            let _ = server.join();
            Err(e)
        }
    }
}

/// pod ── node ── outside, `[(pod, node side), (outside, node side)]` addresses;
/// forwarding on in the node.
fn three(addrs: [(&str, &str); 2], pod_gateway: &str, v6: bool) -> (Netns, Netns, Netns) {
    let node = Netns::new("natn").expect("netns");
    let pod = Netns::new("natp").expect("netns");
    let outside = Netns::new("nato").expect("netns");
    if v6 {
        node.sysctl("net.ipv6.conf.all.forwarding", "1")
            .expect("forwarding");
    } else {
        node.sysctl("net.ipv4.ip_forward", "1").expect("forwarding");
    }
    for ((peer, here), (there, ours)) in [(&pod, "podveth"), (&outside, "outveth")]
        .into_iter()
        .zip(addrs)
    {
        node.ip(&[
            "link", "add", here, "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
        ])
        .expect("veth");
        // No duplicate address detection: IPv6 addresses are usable at once.
        node.ip(&["addr", "add", ours, "dev", here, "nodad"])
            .expect("addr");
        node.ip(&["link", "set", here, "up"]).expect("up");
        peer.ip(&["addr", "add", there, "dev", "eth0", "nodad"])
            .expect("addr");
        peer.ip(&["link", "set", "eth0", "up"]).expect("up");
    }
    pod.ip(&["route", "add", "default", "via", pod_gateway])
        .expect("route");
    (node, pod, outside)
}

/// IPv6: the `ip6` table masquerades too (its own address offsets).
#[test]
fn an_ipv6_pod_reaches_the_outside_with_the_node_address() {
    let (node, pod, outside) = three(
        [
            ("fd10::5/64", "fd10::1/64"),
            ("2001:db8:1::2/64", "2001:db8:1::1/64"),
        ],
        "fd10::1",
        true,
    );
    let outside_ip: IpAddr = "2001:db8:1::2".parse().expect("ip");
    assert!(
        seen_from(&pod, &outside, outside_ip).is_err(),
        "answered without NAT: the setup does not test NAT"
    );
    node.in_netns(|| {
        let mut nft = Nft::open().expect("socket");
        let d = desired([(net("10.244.0.0/16"), false), (net("fd10::/48"), true)]);
        nft.apply(&d, &[]).expect("apply");
    })
    .expect("in netns");
    assert_eq!(
        seen_from(&pod, &outside, outside_ip).as_deref(),
        Ok("2001:db8:1::1"),
        "the outside sees the node"
    );
}

/// pod (10.244.0.5) ── node (forwarding, ipipd's table) ── outside (192.0.2.2, no route
/// back to the pods): a TCP connection works only if the node masquerades it.
#[test]
fn a_pod_reaches_the_outside_with_the_node_address() {
    let (node, pod, outside) = three(
        [
            ("10.244.0.5/24", "10.244.0.1/24"),
            ("192.0.2.2/24", "192.0.2.1/24"),
        ],
        "10.244.0.1",
        false,
    );

    let outside_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let connect = || seen_from(&pod, &outside, outside_ip);

    // Without ipipd's table the outside cannot answer: the check below can fail.
    assert!(
        connect().is_err(),
        "connected without NAT: the setup does not test NAT"
    );
    node.in_netns(|| {
        let mut nft = Nft::open().expect("socket");
        nft.apply(&desired([(net("10.244.0.0/16"), true)]), &[])
            .expect("apply");
    })
    .expect("in netns");
    assert_eq!(
        connect().as_deref(),
        Ok("192.0.2.1"),
        "the outside sees the node"
    );

    // A pool without NAT among the pools: the pod's own address is kept towards it, so
    // the outside (reached as if it were in a pool) sees the pod, and cannot answer.
    node.in_netns(|| {
        let mut nft = Nft::open().expect("socket");
        let d = desired([(net("10.244.0.0/16"), true), (net("192.0.2.0/24"), false)]);
        nft.apply(&d, &[]).expect("apply");
    })
    .expect("in netns");
    assert!(connect().is_err(), "traffic to a pool was masqueraded");
}
