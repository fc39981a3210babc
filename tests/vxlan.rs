//! VXLAN mode on the host kernel: real ipipd daemons in network namespaces, pods made by
//! the CNI plugin, real VXLAN encapsulation on the underlay. What a user would check:
//! pods ping, the underlay carries UDP 4789 and no IP protocol 4, the pod MTU fits,
//! cross-subnet only encapsulates across subnets, restarts lose no packet, and the
//! neighbour and FDB entries come back when deleted; with IPv6 node addresses, dual-stack
//! pods reach each other over IPv6 through `vxlan-v6.calico` on the IPv6 underlay.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use interop::capture::capture;
use interop::config::NodeConfig;
use interop::harness::{require_root, wait_until, Lan, Netns};
use interop::ipipd::Ipipd;

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
/// On the same bridge, in another subnet.
const C: &str = "172.29.236.140";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_B: &str = "101.88.228.192/26";
const BLOCK_C: &str = "101.99.1.0/26";
const DEV: &str = "vxlan.calico";
const T: Duration = Duration::from_secs(20);

fn config(address: &str, block: &str, mode: &str) -> String {
    let mut c = NodeConfig::bare(address, &[block])
        .pools(&["101.64.0.0/10"])
        .timers(9, 30, Some(1));
    c.cluster.nodes = Some(vec![A.into(), B.into(), C.into()]);
    format!("{}\n[vxlan]\nmode = \"{mode}\"\n", c.toml())
}

struct Node<'a> {
    ns: &'a Netns,
    d: Ipipd<'a>,
    pod: Netns,
    pod_ip: String,
}

fn start<'a>(ns: &'a Netns, address: &str, block: &str, mode: &str) -> Node<'a> {
    let d = Ipipd::start(ns, &config(address, block, mode)).expect("start ipipd");
    let pod = Netns::new("pod").expect("pod namespace");
    let conf = interop::cni::conf(&d.socket, "1.0.0");
    let pod_ip = interop::cni::add(ns, &pod, &format!("pod-{address}"), &conf).expect("CNI ADD");
    Node { ns, d, pod, pod_ip }
}

/// `ping` from a pod; (sent, received) and the output.
fn ping(pod: &Netns, to: &str, args: &[&str]) -> (u32, u32, String) {
    let mut v = vec!["ping", "-n"];
    v.extend_from_slice(args);
    v.push(to);
    let out = pod.run(&v).expect("running ping");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = text
        .lines()
        .find(|l| l.contains("transmitted"))
        .unwrap_or_default();
    let count = |word: &str| -> u32 {
        summary
            .split(',')
            .find(|p| p.contains(word))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (count("transmitted"), count("received"), text)
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

/// The device as `ip -d -j link` shows it.
fn device(ns: &Netns) -> serde_json::Value {
    let out = ns
        .ip(&["-d", "-j", "link", "show", "dev", DEV])
        .expect("device");
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0].clone()
}

fn neigh_permanent(ns: &Netns, ip: &str) -> bool {
    ns.ip(&["neigh", "show", "dev", DEV])
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(&format!("{ip} ")) && l.contains("PERMANENT"))
}

fn fdb_has(ns: &Netns, ip: &str) -> bool {
    let out = ns
        .command("bridge")
        .args(["fdb", "show", "dev", DEV])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .any(|l| l.contains(&format!("dst {ip} ")) && l.contains("permanent"))
}

/// The namespaces of nodes A, B and C on the LAN, each with its /24.
fn three_hosts(lan: &mut Lan) -> (Netns, Netns, Netns) {
    (
        lan.host(&format!("{A}/24")).expect("a"),
        lan.host(&format!("{B}/24")).expect("b"),
        lan.host(&format!("{C}/24")).expect("c"),
    )
}

#[test]
fn three_nodes_over_vxlan_ping_fit_the_mtu_survive_restarts_and_repair_entries() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb, nc) = three_hosts(&mut lan);
    let mut a = start(&na, A, BLOCK_A, "always");
    let mut b = start(&nb, B, BLOCK_B, "always");
    let c = start(&nc, C, BLOCK_C, "always");
    for (n, peer, block) in [(&a, B, BLOCK_B), (&a, C, BLOCK_C), (&b, A, BLOCK_A)] {
        n.ns.wait_bgp_route_line(&format!("{block} via {peer} dev {DEV} onlink"), T)
            .expect("route through the VXLAN device");
    }
    c.ns.wait_bgp_route_line(&format!("{BLOCK_A} via {A} dev {DEV} onlink"), T)
        .expect("c's route");

    // The device: VXLAN with the configured identity, the derived MAC, MTU 1500 - 50,
    // a /32 tunnel address from the node's block.
    let dev = device(a.ns);
    let data = &dev["linkinfo"]["info_data"];
    assert_eq!(dev["linkinfo"]["info_kind"], "vxlan", "{dev}");
    assert_eq!(
        (data["id"].as_u64(), data["port"].as_u64()),
        (Some(4096), Some(4789))
    );
    assert_eq!(data["local"], A);
    assert_eq!(data["learning"], false);
    assert_eq!(dev["address"], "66:78:ac:1d:eb:65");
    assert_eq!(dev["mtu"], 1450);
    let tunnel = interop::harness::ipv4_addresses(a.ns, DEV).expect("addresses");
    assert!(
        tunnel.len() == 1
            && tunnel
                .iter()
                .all(|t| t.to_string().starts_with("101.76.9.")),
        "one tunnel address from a's block: {tunnel:?}"
    );
    let status: serde_json::Value = a.d.raw_json(&["status", "--json"]).expect("status");
    let e = &status["encapsulation"];
    assert_eq!(
        (&e["kind"], &e["mode"], &e["device"], &e["state"], &e["mtu"]),
        (
            &"vxlan".into(),
            &"always".into(),
            &DEV.into(),
            &"up".into(),
            &1450.into()
        ),
        "{status}"
    );
    assert!(neigh_permanent(a.ns, B) && neigh_permanent(a.ns, C));
    assert!(fdb_has(a.ns, B) && fdb_has(a.ns, C));

    // Pods ping across nodes; the underlay carries their packets in UDP 4789, none bare,
    // and no IPIP.
    let (seen, pings) = capture(&lan.underlay, || {
        [&b.pod_ip, &c.pod_ip].map(|to| ping(&a.pod, to, &["-c", "3", "-W", "2"]))
    })
    .expect("capture on the underlay");
    for (sent, received, text) in &pings {
        assert!(*sent == 3 && *received == 3, "{text}");
    }
    for to in [&b.pod_ip, &c.pod_ip] {
        let pair = (ip4(&a.pod_ip), ip4(to));
        assert!(
            seen.vxlan.contains(&pair),
            "{pair:?} not in VXLAN: {seen:?}"
        );
        assert!(!seen.icmp.contains(&pair), "{pair:?} seen bare: {seen:?}");
    }
    assert_eq!(seen.ipip, 0, "IP protocol 4 on the underlay");

    // The pod's MTU is the device's: a full-size packet with DF passes, one byte more
    // does not leave the pod.
    let (_, received, text) = ping(
        &a.pod,
        &b.pod_ip,
        &["-c", "2", "-W", "2", "-M", "do", "-s", "1422"],
    );
    assert_eq!(received, 2, "{text}");
    let (_, received, text) = ping(
        &a.pod,
        &b.pod_ip,
        &["-c", "1", "-W", "2", "-M", "do", "-s", "1423"],
    );
    assert_eq!(received, 0, "{text}");
    assert!(
        text.contains("message too long") && text.contains("mtu=1450"),
        "{text}"
    );

    // Entries deleted by hand come back at once (not at the minute's resync).
    let mac_b = "66:78:ac:1d:eb:82";
    na.ip(&["neigh", "del", B, "dev", DEV]).expect("neigh del");
    let out = na
        .command("bridge")
        .args(["fdb", "del", mac_b, "dev", DEV, "dst", B, "self"])
        .output()
        .expect("bridge fdb del");
    assert!(out.status.success(), "{out:?}");
    wait_until(Duration::from_secs(5), "the entries put back", || {
        (neigh_permanent(a.ns, B) && fdb_has(a.ns, B)).then_some(())
    })
    .expect("repaired");

    // Restarts under ping lose nothing: SIGTERM on a, SIGKILL on b, while a pings b.
    let mac_before = device(a.ns)["address"].clone();
    let (sent, received, text) = std::thread::scope(|s| {
        let pinger = s.spawn(|| ping(&a.pod, &b.pod_ip, &["-c", "300", "-i", "0.02", "-W", "1"]));
        std::thread::sleep(Duration::from_millis(500));
        a.d.stop("TERM").expect("stop a");
        a.d.restart().expect("restart a");
        b.d.stop("KILL").expect("kill b");
        b.d.restart().expect("restart b");
        pinger.join().expect("ping thread")
    });
    assert_eq!(sent, 300, "{text}");
    assert_eq!(received, sent, "packets lost over the restarts: {text}");
    assert_eq!(device(a.ns)["address"], mac_before, "the MAC is stable");
    assert!(a.d.log().contains("ipipd started"));
}

#[test]
fn cross_subnet_encapsulates_only_to_the_other_subnet() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb, nc) = three_hosts(&mut lan);
    let a = start(&na, A, BLOCK_A, "cross-subnet");
    let b = start(&nb, B, BLOCK_B, "cross-subnet");
    let c = start(&nc, C, BLOCK_C, "cross-subnet");
    na.wait_bgp_route_line(&format!("{BLOCK_B} via {B} dev eth0"), T)
        .expect("same subnet: direct");
    na.wait_bgp_route_line(&format!("{BLOCK_C} via {C} dev {DEV} onlink"), T)
        .expect("other subnet: VXLAN");
    nb.wait_bgp_route_line(&format!("{BLOCK_A} via {A} dev eth0"), T)
        .expect("b to a direct");
    nc.wait_bgp_route_line(&format!("{BLOCK_A} via {A} dev {DEV} onlink"), T)
        .expect("c to a through VXLAN");
    let (seen, pings) = capture(&lan.underlay, || {
        [&b.pod_ip, &c.pod_ip].map(|to| ping(&a.pod, to, &["-c", "3", "-W", "2"]))
    })
    .expect("capture on the underlay");
    for (sent, received, text) in &pings {
        assert!(*sent == 3 && *received == 3, "{text}");
    }
    let to_b = (ip4(&a.pod_ip), ip4(&b.pod_ip));
    let to_c = (ip4(&a.pod_ip), ip4(&c.pod_ip));
    assert!(
        seen.icmp.contains(&to_b) && !seen.vxlan.contains(&to_b),
        "{seen:?}"
    );
    assert!(
        seen.vxlan.contains(&to_c) && !seen.icmp.contains(&to_c),
        "{seen:?}"
    );
    assert_eq!(seen.ipip, 0);
}

const DEV6: &str = "vxlan-v6.calico";
const A6: &str = "fd00:29::101";
const B6: &str = "fd00:29::130";
const BLOCK_A6: &str = "fd10::1:0/122";
const BLOCK_B6: &str = "fd10::2:0/122";
/// The next hops of the IPv6 routes: the link-local addresses of the nodes' IPv6 VTEP
/// MACs (66:76:00:00:01:01 and 66:76:00:00:01:30).
const A6_NEXT_HOP: &str = "fe80::6476:ff:fe00:101";
const B6_NEXT_HOP: &str = "fe80::6476:ff:fe00:130";

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

/// A dual-stack node: IPv4 and IPv6 underlay addresses, a block of each family, the
/// other node's IPv6 address in `cluster.nodes` (how the file says where it is).
fn config_v6(address: &str, v6: &str, blocks: &[&str]) -> String {
    let mut c = NodeConfig::bare(address, blocks)
        .address_v6(v6)
        .pools(&["101.64.0.0/10", "fd10::/48"])
        .timers(9, 30, Some(1));
    c.cluster.nodes = Some(vec![A.into(), B.into(), A6.into(), B6.into()]);
    format!("{}\n[vxlan]\nmode = \"always\"\n", c.toml())
}

/// A pod made by the CNI plugin: its (IPv4, IPv6) addresses.
fn dual_stack_pod(ns: &Netns, pod: &Netns, d: &Ipipd, id: &str) -> (String, String) {
    let conf = interop::cni::conf(&d.socket, "1.0.0");
    let out = interop::cni::Call::new("ADD", id, Some(pod), conf)
        .run(ns)
        .expect("CNI ADD");
    assert!(out.ok(), "{out:?}");
    let ips = out.json()["ips"].clone();
    let of = |v6: bool| -> String {
        ips.as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["address"].as_str()?.split('/').next())
            .find(|a| a.contains(':') == v6)
            .unwrap_or_else(|| panic!("no IPv6={v6} address: {ips}"))
            .to_owned()
    };
    (of(false), of(true))
}

fn v6_routes(ns: &Netns) -> String {
    ns.ip(&["-6", "route", "show", "proto", "bgp"])
        .unwrap_or_default()
}

fn neigh6_permanent(ns: &Netns, ip: &str) -> bool {
    ns.ip(&["-6", "neigh", "show", "dev", DEV6])
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(&format!("{ip} ")) && l.contains("PERMANENT"))
}

fn fdb6_has(ns: &Netns, ip: &str) -> bool {
    let out = ns
        .command("bridge")
        .args(["fdb", "show", "dev", DEV6])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .any(|l| l.contains(&format!("dst {ip} ")) && l.contains("permanent"))
}

#[test]
fn ipv6_pods_cross_nodes_through_vxlan_over_the_ipv6_underlay() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = lan.host(&format!("{A}/24")).expect("a");
    let nb = lan.host(&format!("{B}/24")).expect("b");
    for (ns, v6) in [(&na, A6), (&nb, B6)] {
        ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"])
            .expect("IPv6 underlay address");
    }
    let a = Ipipd::start(&na, &config_v6(A, A6, &[BLOCK_A, BLOCK_A6])).expect("a");
    let b = Ipipd::start(&nb, &config_v6(B, B6, &[BLOCK_B, BLOCK_B6])).expect("b");
    let (pa, pb) = (
        Netns::new("pod").expect("pod"),
        Netns::new("pod").expect("pod"),
    );
    let (_, a6) = dual_stack_pod(&na, &pa, &a, "pod-a6");
    let (b4, b6) = dual_stack_pod(&nb, &pb, &b, "pod-b6");
    for (ns, d, block, peer) in [
        (&na, &a, BLOCK_B6, B6_NEXT_HOP),
        (&nb, &b, BLOCK_A6, A6_NEXT_HOP),
    ] {
        let want = format!("{block} via {peer} dev {DEV6}");
        wait_until(T, "the IPv6 block through vxlan-v6.calico", || {
            v6_routes(ns).contains(&want).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", v6_routes(ns), d.log()));
    }

    // The device: the IPv4 device's VNI and port, over the IPv6 address, its own MAC
    // (66:76 and the address's last four octets), MTU 1500 - 70.
    let dev: serde_json::Value = serde_json::from_str(
        &na.ip(&["-d", "-j", "link", "show", "dev", DEV6])
            .expect("the IPv6 device"),
    )
    .expect("ip -j");
    let dev = &dev[0];
    let data = &dev["linkinfo"]["info_data"];
    assert_eq!(
        (data["id"].as_u64(), data["port"].as_u64()),
        (Some(4096), Some(4789)),
        "{dev}"
    );
    assert!(data["local"] == A6 || data["local6"] == A6, "{dev}");
    assert_eq!(dev["address"], "66:76:00:00:01:01");
    assert_eq!(dev["mtu"], 1430);
    assert!(neigh6_permanent(&na, B6_NEXT_HOP) && fdb6_has(&na, B6));
    let status: serde_json::Value = a.raw_json(&["status", "--json"]).expect("status");
    let v6 = &status["encapsulation"]["v6"];
    assert_eq!(
        (&v6["device"], &v6["state"], &v6["mtu"]),
        (&DEV6.into(), &"up".into(), &1430.into()),
        "{status}"
    );
    // The pod's one MTU is the smaller device's.
    let link = pa
        .ip(&["-j", "link", "show", "dev", "eth0"])
        .expect("pod link");
    assert!(link.contains("\"mtu\":1430"), "{link}");

    // IPv6 pods ping each other; the underlay carries them in UDP 4789 over IPv6, none
    // bare. IPv4 still works beside.
    let (seen, pings) = capture(&lan.underlay, || {
        (
            ping(&pa, &b6, &["-6", "-c", "3", "-W", "2"]),
            ping(&pa, &b4, &["-c", "2", "-W", "2"]),
        )
    })
    .expect("capture on the underlay");
    let ((sent, received, text), (_, received4, text4)) = pings;
    assert!(sent == 3 && received == 3, "{text}");
    assert_eq!(received4, 2, "{text4}");
    let pair = (ip6(&a6), ip6(&b6));
    assert!(
        seen.vxlan6.contains(&pair),
        "{pair:?} not in VXLAN over IPv6: {seen:?}"
    );
    assert!(!seen.icmp6.contains(&pair), "{pair:?} seen bare: {seen:?}");
    assert_eq!(seen.ipip, 0);

    // The IPv6 neighbour and FDB entries deleted by hand come back.
    na.ip(&["-6", "neigh", "del", B6_NEXT_HOP, "dev", DEV6])
        .expect("neigh del");
    let out = na
        .command("bridge")
        .args([
            "fdb",
            "del",
            "66:76:00:00:01:30",
            "dev",
            DEV6,
            "dst",
            B6,
            "self",
        ])
        .output()
        .expect("bridge fdb del");
    assert!(out.status.success(), "{out:?}");
    wait_until(Duration::from_secs(5), "the IPv6 entries put back", || {
        (neigh6_permanent(&na, B6_NEXT_HOP) && fdb6_has(&na, B6)).then_some(())
    })
    .expect("repaired");
    let (_, received, text) = ping(&pa, &b6, &["-6", "-c", "1", "-W", "2"]);
    assert_eq!(received, 1, "{text}");
}
