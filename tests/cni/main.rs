//! Pods made by `ipipd-cni`, driven exactly as the CNI protocol says (CNI_* variables and
//! the network configuration on stdin), for pods that are network namespaces on nodes that
//! are network namespaces, each node with its ipipd.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use interop::cni::{self, cali_links, Call};
use interop::harness::{netns_path, require_root, wait_until, Lan, Netns};
use interop::ipipd::{Ipipd, NodeConfig, WorkloadJson};

mod conformance;

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_B: &str = "101.88.228.192/26";
const T: Duration = Duration::from_secs(20);

/// A node's configuration (typed builder): name, address, blocks, mesh.
fn config(address: &str, name: &str, blocks: &[&str], nodes: &[&str]) -> String {
    let mut c = NodeConfig::new(address, blocks[0]).name(name).mesh(nodes);
    for b in &blocks[1..] {
        c = c.block(b);
    }
    c.toml()
}

fn node(lan: &mut Lan, address: &str) -> Netns {
    let ns = lan.host(&format!("{address}/24")).expect("host");
    lan.add_bridged_tunl0(&ns).expect("tunl0");
    ns
}

fn pod() -> Netns {
    Netns::new("pod").expect("pod namespace")
}

/// Whether `to` answers a ping within three tries, as a user checking a new pod
/// would try (the first echo of a fresh veth can go to neighbour resolution).
fn ping(from: &Netns, to: &str) -> bool {
    (0..3).any(|_| {
        from.run(&["ping", "-c", "1", "-W", "2", to])
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

fn allocated(d: &Ipipd, block: &str) -> Option<u64> {
    d.blocks()
        .expect("show blocks")
        .into_iter()
        .find(|b| b.block == block)
        .and_then(|b| b.allocated)
}

fn read_sysctl(ns: &Netns, path: &str) -> String {
    ns.run(&["cat", path])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[test]
fn pods_on_one_node_are_wired_as_calico_wires_them_and_del_removes_everything() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let (p1, p2) = (pod(), pod());
    let mut call = Call::new("ADD", "c1", Some(&p1), conf.clone());
    call.args = Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0".into());
    let out = call.run(&na).expect("ADD");
    assert!(out.ok(), "{out:?}");
    let r = out.json();
    assert_eq!(r["cniVersion"], "1.0.0");
    // tunl0 holds the block's first address; the next one is the first pod's.
    assert_eq!(r["ips"][0]["address"], "101.76.9.129/32", "{r}");
    assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0");
    let host1 = r["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Calico's name for default/web-0: cali + sha1("default.web-0")[..11].
    assert_eq!(host1, "cali0d7763386da", "{r}");
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    let ip2 = cni::add(&na, &p2, "c2", &conf).expect("ADD c2");
    assert_eq!(ip2, "101.76.9.130");

    // Inside the pod: the address as /32 and the two routes of the seed.
    let addr = p1.ip(&["-4", "-o", "addr", "show", "eth0"]).expect("addr");
    assert!(addr.contains("inet 101.76.9.129/32"), "{addr}");
    let routes = p1.ip(&["route"]).expect("routes");
    assert_eq!(
        routes.trim(),
        "default via 169.254.1.1 dev eth0 \n169.254.1.1 dev eth0 scope link",
        "{routes}"
    );
    // On the host: the veth end, its MAC, proxy ARP, and the /32 route.
    let link = na.ip(&["link", "show", &host1]).expect("host veth");
    assert!(
        link.contains("ee:ee:ee:ee:ee:ee") && link.contains("state UP"),
        "{link}"
    );
    assert!(
        link.contains("mtu 1480"),
        "pods get the MTU of tunl0 (eth0 1500 - 20): {link}"
    );
    assert_eq!(
        read_sysctl(&na, &format!("/proc/sys/net/ipv4/conf/{host1}/proxy_arp")),
        "1"
    );
    assert_eq!(
        read_sysctl(
            &na,
            &format!("/proc/sys/net/ipv4/neigh/{host1}/proxy_delay")
        ),
        "0"
    );
    assert_eq!(read_sysctl(&na, "/proc/sys/net/ipv4/ip_forward"), "1");
    let kernel = na.bgp_routes();
    assert!(
        kernel.contains(&format!("101.76.9.129 dev {host1} scope link")),
        "{kernel}"
    );

    assert!(ping(&p1, "101.76.9.130"), "pod to pod on one node");
    assert_eq!(allocated(&a, BLOCK_A), Some(2));
    let list = a.cli(&["workload", "list"]).expect("list");
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.lines()
            .any(|l| l.starts_with("101.76.9.129") && l.contains("c1.eth0")),
        "{list}"
    );

    // CHECK with the previous result passes; a pod route removed by hand fails it.
    let with_prev = |prev: &serde_json::Value| {
        let mut c: serde_json::Value = serde_json::from_str(&conf).unwrap_or_default();
        c["prevResult"] = prev.clone();
        c.to_string()
    };
    let mut check = Call::new("CHECK", "c1", Some(&p1), with_prev(&r));
    check.args = call.args.clone();
    let out = check.run(&na).expect("CHECK");
    assert!(out.ok(), "{out:?}");
    p1.ip(&["route", "del", "default"]).expect("route del");
    let out = check.run(&na).expect("CHECK");
    assert_eq!(out.code(), Some(103), "{out:?}");
    assert!(
        out.json()["msg"]
            .as_str()
            .unwrap_or("")
            .contains("0.0.0.0/0 via 169.254.1.1"),
        "{out:?}"
    );

    let mut del = Call::new("DEL", "c1", Some(&p1), conf.clone());
    del.args = call.args.clone();
    assert!(del.run(&na).expect("DEL").ok());
    cni::del(&na, Some(&p2), "c2", &conf).expect("DEL c2");
    assert!(cali_links(&na).is_empty(), "{:?}", cali_links(&na));
    assert!(!na.bgp_routes().contains("dev cali"), "{}", na.bgp_routes());
    assert_eq!(allocated(&a, BLOCK_A), Some(0));
    // DEL is idempotent, and a DEL of something never added succeeds, with or without netns.
    assert!(del.run(&na).expect("DEL again").ok());
    cni::del(&na, None, "never-added", &conf).expect("DEL of a stranger");
    assert!(
        p1.ip(&["link", "show", "eth0"]).is_err(),
        "pod side gone with the veth"
    );
}

#[test]
fn pods_on_two_nodes_reach_each_other_and_only_blocks_are_announced() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb) = (node(&mut lan, A), node(&mut lan, B));
    let a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A, B])).expect("start a");
    let b = Ipipd::start(&nb, &config(B, "node-b", &[BLOCK_B], &[A, B])).expect("start b");
    a.wait_route(BLOCK_B, B, T).expect("a learns b's block");
    b.wait_route(BLOCK_A, A, T).expect("b learns a's block");
    let (pa, pb) = (pod(), pod());
    let ipa = cni::add(&na, &pa, "pa", &cni::conf(&a.socket, "0.4.0")).expect("ADD on a");
    let ipb = cni::add(&nb, &pb, "pb", &cni::conf(&b.socket, "0.3.1")).expect("ADD on b");
    assert!(ping(&pa, &ipb), "pod on a -> pod on b");
    assert!(ping(&pb, &ipa), "pod on b -> pod on a");
    let kernel = na.bgp_routes();
    assert!(
        kernel.contains(&format!("{BLOCK_B} via {B} dev tunl0 onlink")),
        "{kernel}"
    );
    // The pods' /32s stay local: b knows a's block and nothing more of a.
    std::thread::sleep(Duration::from_millis(500));
    let learned: Vec<String> = b
        .routes()
        .expect("routes")
        .into_iter()
        .filter(|r| r.origin == "bgp")
        .map(|r| r.prefix)
        .collect();
    assert_eq!(learned, vec![BLOCK_A.to_string()]);
    let shown = b.blocks().expect("show blocks");
    let remote = shown
        .iter()
        .find(|x| x.block == BLOCK_A)
        .expect("a's block shown");
    assert!(!remote.local);
    assert_eq!(remote.node.as_deref(), Some("node-a"), "{remote:?}");
    assert_eq!(remote.allocated, None);
    // The documented key names of `show blocks --json`, as a user's script reads them.
    let raw = b
        .raw_json(&["show", "blocks", "--json"])
        .expect("raw blocks");
    let remote = raw
        .as_array()
        .and_then(|bs| bs.iter().find(|x| x["block"] == BLOCK_A))
        .expect("a's block in raw JSON");
    assert_eq!(remote["local"], false);
    assert_eq!(remote["node"], "node-a", "{remote}");
    assert!(remote["allocated"].is_null());
    assert_eq!(remote["state"], "static", "{remote}");
}

#[test]
fn forty_parallel_adds_get_forty_addresses_and_survive_a_restart() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let mut a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let pods: Vec<Netns> = (0..40).map(|_| pod()).collect();
    let ids: Vec<String> = (0..40).map(|i| format!("par{i}")).collect();
    let addresses: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .zip(&ids)
            .map(|(p, id)| {
                let (na, conf) = (&na, &conf);
                s.spawn(move || cni::add(na, p, id, conf))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("ADD"))
            .collect()
    });
    let distinct: BTreeSet<&String> = addresses.iter().collect();
    assert_eq!(distinct.len(), 40, "{addresses:?}");
    assert!(
        !addresses.contains(&"101.76.9.128".to_string()),
        "tunl0's address handed out"
    );
    assert_eq!(cali_links(&na).len(), 40);
    assert_eq!(allocated(&a, BLOCK_A), Some(40));

    // A crash keeps every allocation; the next pod gets a fresh address.
    a.stop("KILL").expect("kill");
    a.restart().expect("restart");
    assert_eq!(allocated(&a, BLOCK_A), Some(40));
    let extra = pod();
    let ip = cni::add(&na, &extra, "extra", &conf).expect("ADD after restart");
    assert!(!addresses.contains(&ip), "{ip} handed out twice");
    assert!(
        ping(&pods[0], &addresses[39]),
        "pods keep working over the restart"
    );

    std::thread::scope(|s| {
        for (p, id) in pods.iter().zip(&ids) {
            let (na, conf) = (&na, &conf);
            s.spawn(move || cni::del(na, Some(p), id, conf).expect("DEL"));
        }
    });
    cni::del(&na, Some(&extra), "extra", &conf).expect("DEL extra");
    assert_eq!(allocated(&a, BLOCK_A), Some(0));
    assert!(cali_links(&na).is_empty());
}

/// What ADD must refuse, each leaving nothing behind: no veth, no route, no allocation.
#[test]
fn bad_input_gets_the_spec_error_and_leaves_nothing_behind() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    // A /30 block: tunl0 takes one address, three are left for pods.
    let mut a = Ipipd::start(&na, &config(A, "node-a", &["101.76.9.128/30"], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let p = pod();
    let nothing_left = |what: &str, a: &Ipipd| {
        assert!(
            cali_links(&na).is_empty(),
            "{what}: veth left: {:?}",
            cali_links(&na)
        );
        assert!(!na.bgp_routes().contains("dev cali"), "{what}: route left");
        assert_eq!(
            allocated(a, "101.76.9.128/30"),
            Some(0),
            "{what}: allocation left"
        );
        assert!(
            p.ip(&["link", "show", "eth0"]).is_err(),
            "{what}: pod interface left"
        );
    };
    let code = |c: Call| c.run(&na).expect("run").code();

    assert_eq!(
        code(Call::new("ADD", "x", Some(&p), "{not json".into())),
        Some(6)
    );
    assert_eq!(
        code(Call::new("ADD", "x", Some(&p), "[1,2]".into())),
        Some(6)
    );
    let old = r#"{"cniVersion":"0.2.0","name":"n","type":"ipipd-cni"}"#;
    assert_eq!(code(Call::new("ADD", "x", Some(&p), old.into())), Some(1));
    for var in ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"] {
        let mut c = Call::new("ADD", "x", Some(&p), conf.clone());
        c.unset = vec![var];
        assert_eq!(code(c), Some(4), "without {var}");
    }
    assert_eq!(
        code(Call::new("FROB", "x", Some(&p), conf.clone())),
        Some(4)
    );
    assert_eq!(
        code(Call::new("ADD", "x y", Some(&p), conf.clone())),
        Some(4)
    );
    let mut c = Call::new("ADD", "x", None, conf.clone());
    c.netns = Some(netns_path("no-such-namespace"));
    assert_eq!(code(c), Some(4), "missing netns");
    nothing_left("refused input", &a);

    // Unknown keys are ignored, as the spec asks.
    let mut extra: serde_json::Value = serde_json::from_str(&conf).unwrap_or_default();
    extra["frobnicate"] = serde_json::json!({"deep": [1, 2]});
    extra["runtimeConfig"] = serde_json::json!({"portMappings": []});
    let ip = cni::add(&na, &p, "keys", &extra.to_string()).expect("ADD with unknown keys");
    // The same handle twice: the same address.
    assert_eq!(cni::add(&na, &p, "keys", &conf).expect("ADD again"), ip);
    assert_eq!(allocated(&a, "101.76.9.128/30"), Some(1));
    cni::del(&na, Some(&p), "keys", &conf).expect("DEL");
    nothing_left("after DEL", &a);

    // The interface name is taken in the pod.
    p.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "other",
    ])
    .expect("squatter");
    let out = Call::new("ADD", "taken", Some(&p), conf.clone())
        .run(&na)
        .expect("run");
    assert_eq!(out.code(), Some(101), "{out:?}");
    assert!(cali_links(&na).is_empty() && allocated(&a, "101.76.9.128/30") == Some(0));
    p.ip(&["link", "del", "eth0"]).expect("remove squatter");

    // Blocks exhausted: code 11 naming the node and its block; the pods before it stay.
    let pods: Vec<Netns> = (0..3).map(|_| pod()).collect();
    for (i, q) in pods.iter().enumerate() {
        cni::add(&na, q, &format!("full{i}"), &conf).expect("ADD");
    }
    let out = Call::new("ADD", "one-too-many", Some(&p), conf.clone())
        .run(&na)
        .expect("run");
    assert_eq!(out.code(), Some(11), "{out:?}");
    let msg = out.json()["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains("node-a") && msg.contains("101.76.9.128/30"),
        "{msg}"
    );
    assert_eq!(cali_links(&na).len(), 3);
    assert!(p.ip(&["link", "show", "eth0"]).is_err());
    for (i, q) in pods.iter().enumerate() {
        cni::del(&na, Some(q), &format!("full{i}"), &conf).expect("DEL");
    }

    // The daemon not running: code 11, nothing made.
    a.stop("TERM").expect("stop");
    let out = Call::new("ADD", "nodaemon", Some(&p), conf.clone())
        .run(&na)
        .expect("run");
    assert_eq!(out.code(), Some(11), "{out:?}");
    assert!(
        out.json()["msg"]
            .as_str()
            .unwrap_or("")
            .contains("not answering"),
        "{out:?}"
    );
    assert!(cali_links(&na).is_empty());
    a.restart().expect("restart");
    nothing_left("daemon down", &a);
}

/// The daemon dies after recording an allocation and before the pod is wired (the plugin
/// got no answer): after the restart, the next ADD of that pod gets the recorded address and
/// wires it, CHECK sees the pod, and DEL releases it.
#[test]
fn daemon_killed_between_allocation_and_route() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let mut a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    // The plugin's first request, as it sends it, then the daemon is killed.
    // The name the plugin gives this pod's host end: cali + sha1("crash")[..11].
    let host_veth = "cali2fc7f145237";
    let mut s = UnixStream::connect(&a.socket).expect("connect");
    let request = api::Request::IpamAssign {
        container_id: "crash".into(),
        ifname: "eth0".into(),
        interface: host_veth.into(),
        pod_namespace: None,
        pod_name: None,
        network: Some("ipipd".into()),
        ips: Vec::new(),
    };
    let line = serde_json::to_string(&request).expect("encode") + "\n";
    s.write_all(line.as_bytes()).expect("send");
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).expect("answer");
    let recorded: api::Response = serde_json::from_str(&answer).expect("decode");
    let api::Response::Assigned(recorded) = recorded else {
        panic!("{answer}")
    };
    a.stop("KILL").expect("kill");
    a.restart().expect("restart");
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(1),
        "the allocation survived the crash"
    );

    let p = pod();
    let ip = cni::add(&na, &p, "crash", &conf).expect("ADD after the crash");
    assert_eq!(ip, recorded.addresses[0].to_string());
    assert_eq!(allocated(&a, BLOCK_A), Some(1));
    let other = pod();
    let ip2 = cni::add(&na, &other, "other", &conf).expect("ADD of another pod");
    assert_ne!(ip2, ip);
    assert!(ping(&p, &ip2));
    cni::del(&na, Some(&p), "crash", &conf).expect("DEL");
    cni::del(&na, Some(&other), "other", &conf).expect("DEL");
    assert_eq!(allocated(&a, BLOCK_A), Some(0));
    wait_until(T, "workload routes gone", || {
        (!na.bgp_routes().contains("dev cali")).then_some(())
    })
    .expect("routes gone");
}

#[test]
fn install_cni_writes_the_plugin_and_a_conflist() {
    require_root();
    let dir = interop::harness::TempDir::new("install-cni").expect("tmp");
    let out = std::process::Command::new(interop::ipipd::binary())
        .args(["install-cni", "--bin-dir"])
        .arg(dir.join("bin"))
        .arg("--conf-dir")
        .arg(dir.join("net.d"))
        .args(["--socket", "/run/ipipd/test.sock"])
        .output()
        .expect("install-cni");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = std::fs::read(dir.join("bin/ipipd-cni")).expect("plugin installed");
    assert_eq!(installed, std::fs::read(cni::plugin()).expect("plugin"));
    let conf: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("net.d/10-ipipd.conflist")).expect("conflist"),
    )
    .expect("conflist is JSON");
    assert_eq!(
        conf["cniVersion"], "1.1.0",
        "GC and STATUS reach the plugin"
    );
    assert_eq!(conf["name"], "ipipd");
    assert_eq!(conf["plugins"][0]["type"], "ipipd-cni");
    assert_eq!(
        conf["plugins"][0]["capabilities"],
        serde_json::json!({"ips": true})
    );
    assert_eq!(conf["plugins"][0]["socket"], "/run/ipipd/test.sock");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("bin/ipipd-cni")).map(|m| m.permissions().mode());
    assert_eq!(mode.ok().map(|m| m & 0o777), Some(0o755));
}

/// Pools of both families: each pod gets an IPv4 and an IPv6 address, a default route of
/// each family (IPv6 via the host end's link-local address), and pods reach each other
/// over both at once (no duplicate address detection holds the first packets back).
#[test]
fn dual_stack_pods_get_one_address_per_pool_family() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    na.ip(&[
        "-6",
        "addr",
        "add",
        "fd00:29::101/64",
        "dev",
        "eth0",
        "nodad",
    ])
    .expect("v6 underlay");
    let config = NodeConfig::new(A, BLOCK_A)
        .name("node-a")
        .address_v6("fd00:29::101")
        .block("fd00:101::/122")
        .pool("fd00:101::/48")
        .mesh(&[A])
        .toml();
    let a = Ipipd::start(&na, &config).expect("start");
    let conf = cni::conf(&a.socket, "1.0.0");
    let (p1, p2) = (pod(), pod());
    let r1 = Call::new("ADD", "d1", Some(&p1), conf.clone())
        .run(&na)
        .expect("ADD");
    assert!(r1.ok(), "{r1:?}");
    let r = r1.json();
    assert_eq!(r["ips"][0]["address"], "101.76.9.129/32", "{r}");
    assert_eq!(
        r["ips"][1]["address"], "fd00:101::/128",
        "the first address of an IPv6 block is a pod's: {r}"
    );
    assert_eq!(
        r["routes"],
        serde_json::json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
    );
    cni::add(&na, &p2, "d2", &conf).expect("ADD d2");
    let routes = p1
        .ip(&["-6", "route", "show", "default"])
        .expect("v6 routes");
    assert!(
        routes.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{routes}"
    );
    assert_eq!(
        read_sysctl(&na, "/proc/sys/net/ipv6/conf/all/forwarding"),
        "1"
    );
    let kernel = na
        .ip(&["-6", "route", "show", "proto", "bgp"])
        .expect("v6 kernel");
    assert!(kernel.contains("fd00:101::1 dev cali"), "{kernel}");
    let ping6 = p1
        .run(&["ping", "-6", "-c", "1", "-W", "2", "fd00:101::1"])
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ping6, "pod to pod over IPv6");
    assert!(ping(&p1, "101.76.9.130"), "and over IPv4");
    assert_eq!(allocated(&a, "fd00:101::/122"), Some(2));
    cni::del(&na, Some(&p1), "d1", &conf).expect("DEL");
    cni::del(&na, Some(&p2), "d2", &conf).expect("DEL");
    assert_eq!(allocated(&a, "fd00:101::/122"), Some(0));
}

/// CNI 1.1: STATUS answers whether ADD can be served; GC releases what no valid
/// attachment holds (a pod whose runtime died without DEL), host veth included.
#[test]
fn gc_releases_stale_attachments_and_status_follows_the_daemon() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    let mut a = Ipipd::start(&na, &config(A, "node-a", &[BLOCK_A], &[A])).expect("start");
    let conf = cni::conf(&a.socket, "1.1.0");
    let (p1, p2) = (pod(), pod());
    cni::add(&na, &p1, "live", &conf).expect("ADD live");
    cni::add(&na, &p2, "stale", &conf).expect("ADD stale");
    assert_eq!(cali_links(&na).len(), 2);

    let version = Call::new("VERSION", "", None, conf.clone())
        .run(&na)
        .expect("VERSION");
    assert!(
        version.json()["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == "1.1.0")),
        "{version:?}"
    );
    let status = Call::new("STATUS", "", None, conf.clone())
        .run(&na)
        .expect("STATUS");
    assert!(status.ok() && status.stdout.is_empty(), "{status:?}");

    let mut gc: serde_json::Value = serde_json::from_str(&conf).unwrap_or_default();
    gc["cni.dev/valid-attachments"] =
        serde_json::json!([{"containerID": "live", "ifname": "eth0"}]);
    let out = Call::new("GC", "", None, gc.to_string())
        .run(&na)
        .expect("GC");
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(1),
        "the stale pod's address is free"
    );
    assert_eq!(cali_links(&na).len(), 1, "and its host veth gone");
    a.same_shape::<Vec<WorkloadJson>>(&["workload", "list", "--json"])
        .expect("workload list shape");
    let list = a.workloads().expect("list");
    assert_eq!(
        list.first().and_then(|w| w.handle.as_deref()),
        Some("live.eth0"),
        "{list:?}"
    );

    // GC and STATUS are CNI 1.1; an older configuration gets code 1.
    let old = Call::new("GC", "", None, cni::conf(&a.socket, "1.0.0"))
        .run(&na)
        .expect("GC");
    assert_eq!(old.code(), Some(1), "{old:?}");
    a.stop("TERM").expect("stop");
    let down = Call::new("STATUS", "", None, conf.clone())
        .run(&na)
        .expect("STATUS");
    assert_eq!(down.code(), Some(50), "{down:?}");
    a.restart().expect("restart");
    cni::del(&na, Some(&p1), "live", &conf).expect("DEL");
}
