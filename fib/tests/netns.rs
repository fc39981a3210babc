//! The installer against the real kernel, each test in a network namespace of its own.
//! Needs root and iproute2. The kernel here has no ipip driver, so `tunl0` is one end of a
//! veth pair: route programming through it is real, encapsulation is not tested here.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Netns, Process};
use fib::{FibError, Inputs, Installer, Mode, Settings, TunnelSpec};
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}
fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn settings(mode: Mode) -> Settings {
    Settings::new(mode, "172.29.235.101".parse().expect("addr"))
}

fn remote(entries: &[(&str, &[&str])]) -> BTreeMap<IpNet, Vec<IpAddr>> {
    entries
        .iter()
        .map(|(p, gws)| (net(p), gws.iter().map(|g| ip(g)).collect()))
        .collect()
}

/// Poll until `check` holds, 2 s at most.
/// Poll the installer's installed routes until `check` holds, 2 s at most.
async fn eventually_installed(
    installer: &Installer,
    what: &str,
    check: impl Fn(&std::collections::BTreeMap<IpNet, fib::Route>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !check(&installer.installed().await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ip route show proto bgp` (which leaves out the proto it filters on).
fn shown(ns: &Netns, family: &str) -> String {
    ns.ip(&[family, "route", "show", "proto", "bgp"])
}

fn assert_routes(ns: &Netns, family: &str, want: &str) {
    let got = shown(ns, family);
    assert_eq!(
        got, want,
        "`ip {family} route show proto bgp` differs:\n--- got\n{got}--- want\n{want}"
    );
}

/// The seed scenario's node .101 with one more remote block (two next hops), a local pod,
/// a pod whose veth does not exist yet, and an IPv6 block.
fn node_inputs() -> Inputs {
    Inputs {
        remote: remote(&[
            ("101.88.228.192/26", &["172.29.235.130"]),
            ("101.88.1.0/26", &["172.29.235.131", "172.29.236.9"]),
            ("fd00:2::/122", &["fd00::2"]),
        ]),
        own_blocks: vec![net("101.76.9.128/26")],
        workloads: vec![
            (ip("101.76.9.136"), "cali1".into()),
            (ip("101.76.9.137"), "cali-later".into()),
        ],
        tunnel_address: Some("101.76.9.128".parse().expect("addr")),
        vteps: None,
        vxlan_v6: None,
    }
}

const ALWAYS_V4: &str = "\
blackhole 101.76.9.128/26 
101.76.9.136 dev cali1 scope link 
101.88.1.0/26 
\tnexthop via 172.29.235.131 dev tunl0 weight 1 onlink 
\tnexthop via 172.29.236.9 dev tunl0 weight 1 onlink 
101.88.228.192/26 via 172.29.235.130 dev tunl0 onlink 
";

const V6: &str = "fd00:2::/122 via fd00::2 dev eth0 metric 1024 pref medium\n";

fn node(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.underlay(1500);
    ns.stand_in_tunnel();
    ns.veth("cali1", "cali1-pod");
    ns
}

#[test]
fn always_mode_installs_every_route_kind() {
    let ns = node("always");
    let stats = ns.run(|| async {
        let installer = Installer::start(settings(Mode::Always))
            .await
            .expect("start");
        installer.set_inputs(node_inputs());
        eventually_installed(&installer, "5 routes installed", |installed| {
            installed.len() == 5
        })
        .await;
        let stats = installer.stats();
        installer.stop(false).await.expect("stop");
        stats
    });
    assert_routes(&ns, "-4", ALWAYS_V4);
    assert_routes(&ns, "-6", V6);
    assert_eq!((stats.added, stats.errors), (5, 0), "{stats:?}");
    // The proto really is 186 ("bgp"), in the main table.
    let detail = ns.ip(&["-d", "route", "show", "101.88.228.192/26"]);
    assert_eq!(
        detail,
        "unicast 101.88.228.192/26 via 172.29.235.130 dev tunl0 proto bgp scope global onlink \n"
    );
}

#[test]
fn cross_subnet_goes_direct_inside_the_subnet() {
    let ns = node("cross");
    ns.run(|| async {
        let installer = Installer::start(settings(Mode::CrossSubnet))
            .await
            .expect("start");
        let mut inputs = node_inputs();
        inputs.workloads.clear();
        installer.set_inputs(inputs);
        eventually_installed(&installer, "4 routes installed", |installed| {
            installed.len() == 4
        })
        .await;
        installer.stop(false).await.expect("stop");
    });
    assert_routes(
        &ns,
        "-4",
        "\
blackhole 101.76.9.128/26 
101.88.1.0/26 
\tnexthop via 172.29.235.131 dev eth0 weight 1 
\tnexthop via 172.29.236.9 dev tunl0 weight 1 onlink 
101.88.228.192/26 via 172.29.235.130 dev eth0 
",
    );
    assert_routes(&ns, "-6", V6);
}

#[test]
fn never_mode_lets_the_kernel_pick_the_device() {
    let ns = Netns::new("never");
    ns.underlay(1500);
    let inner = ns.handle();
    ns.run(move || async move {
        let ns = inner;
        let installer = Installer::start(settings(Mode::Never))
            .await
            .expect("start");
        installer.set_inputs(Inputs {
            remote: remote(&[("101.88.228.192/26", &["172.29.235.130"])]),
            own_blocks: vec![net("101.76.9.128/26")],
            workloads: vec![],
            tunnel_address: None,
            vteps: None,
            vxlan_v6: None,
        });
        eventually_installed(&installer, "2 routes installed", |installed| {
            installed.len() == 2
        })
        .await;
        // The kernel reports the device it chose; that must not look like drift.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(installer.stats().replaced, 0, "{:?}", installer.stats());
        // The underlay going down takes the route silently; it comes back with the link.
        ns.ip(&["link", "set", "eth0", "down"]);
        eventually_installed(&installer, "route gone with the link", |installed| {
            installed.len() == 1
        })
        .await;
        ns.ip(&["link", "set", "eth0", "up"]);
        eventually_installed(&installer, "route back with the link", |installed| {
            installed.len() == 2
        })
        .await;
        installer.stop(false).await.expect("stop");
    });
    assert_routes(
        &ns,
        "-4",
        "blackhole 101.76.9.128/26 \n101.88.228.192/26 via 172.29.235.130 dev eth0 \n",
    );
    let (_, tunnel) = ns.try_ip(&["link", "show", "tunl0"]);
    assert!(
        tunnel.contains("does not exist"),
        "never mode must not touch tunl0: {tunnel}"
    );
}

#[test]
fn drift_is_repaired_and_workloads_follow_their_links() {
    let ns = node("drift");
    let inner = ns.handle();
    ns.run(move || async move {
        let ns = inner;
        let installer = Installer::start(settings(Mode::Always))
            .await
            .expect("start");
        installer.set_inputs(node_inputs());
        installer.converged();
        eventually_installed(&installer, "5 routes installed", |installed| {
            installed.len() == 5
        })
        .await;

        ns.ip(&["route", "del", "101.88.228.192/26"]);
        eventually("deleted route back", || shown(&ns, "-4") == ALWAYS_V4).await;
        ns.ip(&[
            "route",
            "replace",
            "101.88.1.0/26",
            "via",
            "172.29.235.99",
            "dev",
            "tunl0",
            "onlink",
            "proto",
            "bgp",
        ]);
        eventually("changed route restored", || shown(&ns, "-4") == ALWAYS_V4).await;
        ns.ip(&["-6", "route", "del", "fd00:2::/122"]);
        eventually("IPv6 route back", || shown(&ns, "-6") == V6).await;
        // Replaced by a route of another protocol: ours goes back in its place.
        ns.ip(&[
            "route",
            "replace",
            "101.88.228.192/26",
            "via",
            "172.29.235.99",
            "dev",
            "eth0",
            "proto",
            "static",
        ]);
        eventually("replaced route restored", || shown(&ns, "-4") == ALWAYS_V4).await;
        eventually("drift counted", || installer.stats().drift_repairs == 4).await;

        // The pod's veth goes away and its /32 with it; a new veth brings it back.
        ns.ip(&["link", "del", "cali1"]);
        eventually_installed(&installer, "workload route gone", |installed| {
            !installed.contains_key(&net("101.76.9.136/32"))
        })
        .await;
        ns.veth("cali1", "cali1-pod");
        eventually("workload route back", || shown(&ns, "-4") == ALWAYS_V4).await;
        // The pod that had no veth yet gets its route once the veth appears.
        ns.veth("cali-later", "cali-later-pod");
        eventually_installed(&installer, "late workload installed", |installed| {
            installed.len() == 6
        })
        .await;
        assert!(shown(&ns, "-4").contains("101.76.9.137 dev cali-later scope link"));
        assert_eq!(installer.stats().errors, 0, "{:?}", installer.stats());
        installer.stop(false).await.expect("stop");
    });
}

#[test]
fn restart_adopts_routes_without_deleting_any() {
    let ns = node("restart");
    ns.run(|| async {
        let installer = Installer::start(settings(Mode::Always))
            .await
            .expect("start");
        installer.set_inputs(node_inputs());
        installer.converged();
        eventually_installed(&installer, "5 routes installed", |installed| {
            installed.len() == 5
        })
        .await;
        installer.stop(false).await.expect("stop keeps routes");
    });
    assert_routes(&ns, "-4", ALWAYS_V4);

    let log = std::env::temp_dir().join(format!("{}.monitor", ns.name()));
    let file = std::fs::File::create(&log).expect("monitor log");
    let monitor = Process::spawn(
        Command::new("ip")
            .args(["-n", ns.name(), "monitor", "route"])
            .stdout(file)
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(200));
    let stats = ns.run(|| async {
        let installer = Installer::start(settings(Mode::Always))
            .await
            .expect("restart");
        installer.set_inputs(node_inputs());
        installer.converged();
        eventually_installed(&installer, "5 routes installed", |installed| {
            installed.len() == 5
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = installer.stats();
        installer.stop(false).await.expect("stop");
        stats
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(monitor);
    let recorded = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    // The kernel's own routes (IPv6 link-local addresses finishing DAD) may show up; none of
    // ours may, and nothing may be deleted.
    let touched: Vec<&str> = recorded
        .lines()
        .filter(|l| l.starts_with("Deleted") || l.contains("proto bgp"))
        .collect();
    assert!(
        touched.is_empty(),
        "a restart must not touch routes that stay desired:\n{recorded}"
    );
    assert_eq!(
        (stats.added, stats.replaced, stats.deleted),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_routes(&ns, "-4", ALWAYS_V4);
}

#[test]
fn stale_routes_go_only_after_convergence_and_flush_removes_all() {
    let ns = node("stale");
    ns.ip(&[
        "route",
        "add",
        "101.99.0.0/26",
        "via",
        "172.29.235.140",
        "dev",
        "tunl0",
        "onlink",
        "proto",
        "bgp",
    ]);
    // Not ours (another protocol): never touched.
    ns.ip(&[
        "route",
        "add",
        "101.98.0.0/26",
        "via",
        "172.29.235.140",
        "dev",
        "tunl0",
        "onlink",
        "proto",
        "static",
    ]);
    let inner = ns.handle();
    ns.run(move || async move {
        let ns = inner;
        let installer = Installer::start(settings(Mode::Always))
            .await
            .expect("start");
        let mut inputs = node_inputs();
        inputs.own_blocks.push(net("fd00:1::/122"));
        inputs.workloads.push((ip("fd00:1::8"), "cali1".into()));
        installer.set_inputs(inputs);
        eventually_installed(&installer, "7 routes installed", |installed| {
            installed.len() == 7
        })
        .await;
        assert!(
            shown(&ns, "-4").contains("101.99.0.0/26"),
            "kept until converged"
        );
        assert_routes(
            &ns,
            "-6",
            "fd00:1::8 dev cali1 metric 1024 pref medium\n\
             blackhole fd00:1::/122 dev lo metric 1024 pref medium\n\
             fd00:2::/122 via fd00::2 dev eth0 metric 1024 pref medium\n",
        );
        installer.converged();
        eventually("stale route deleted", || shown(&ns, "-4") == ALWAYS_V4).await;
        // Nothing of ours is rewritten once it is there, IPv6 included.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats = installer.stats();
        assert_eq!(
            (stats.added, stats.replaced, stats.deleted),
            (7, 0, 1),
            "{stats:?}"
        );
        installer.stop(true).await.expect("stop with flush");
        assert_eq!(shown(&ns, "-4"), "");
        assert_eq!(shown(&ns, "-6"), "");
        let foreign = ns.ip(&["route", "show", "101.98.0.0/26"]);
        assert_eq!(
            foreign,
            "101.98.0.0/26 via 172.29.235.140 dev tunl0 proto static onlink \n"
        );
    });
}

#[test]
fn tunnel_gets_mtu_and_exactly_one_address() {
    let ns = Netns::new("tunnel");
    ns.underlay(9000);
    ns.stand_in_tunnel();
    // A stale /32 from an earlier block, and an address that is not ours to remove.
    ns.ip(&["addr", "add", "101.76.0.0/32", "dev", "tunl0"]);
    ns.ip(&["addr", "add", "192.168.50.1/24", "dev", "tunl0"]);
    ns.ip(&["link", "set", "tunl0", "down"]);
    ns.run(|| async {
        fib::ensure_tunnel(&TunnelSpec {
            name: "tunl0".into(),
            mtu: Some(1440),
            address: Some("101.76.9.128".parse().expect("addr")),
            vxlan: None,
        })
        .await
        .expect("ensure_tunnel accepts an existing tunl0");
    });
    let link = ns.ip(&["link", "show", "tunl0"]);
    assert!(
        link.contains(",UP,") && link.contains(" mtu 1440 "),
        "{link}"
    );
    let addrs = ns.ip(&["-4", "-o", "addr", "show", "dev", "tunl0"]);
    let addrs: Vec<&str> = addrs
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(addrs, ["192.168.50.1/24", "101.76.9.128/32"]);

    // The installer: MTU from the underlay (9000 - 20), and the address the daemon
    // allocated for the tunnel, following a change of it.
    ns.run(|| async {
        let installer = Installer::start(settings(Mode::Always))
            .await
            .expect("start");
        installer.set_inputs(Inputs {
            own_blocks: vec![net("fd00:1::/122"), net("101.76.10.0/26")],
            tunnel_address: Some("101.76.10.0".parse().expect("addr")),
            ..Inputs::default()
        });
        eventually_installed(&installer, "blackholes installed", |installed| {
            installed.len() == 2
        })
        .await;
        installer.stop(false).await.expect("stop");
    });
    let link = ns.ip(&["link", "show", "tunl0"]);
    assert!(link.contains(" mtu 8980 "), "{link}");
    let addrs = ns.ip(&["-4", "-o", "addr", "show", "dev", "tunl0"]);
    let addrs: Vec<&str> = addrs
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(addrs, ["192.168.50.1/24", "101.76.10.0/32"]);
}

#[test]
fn without_ipip_support_start_fails_clearly() {
    let ns = Netns::new("noipip");
    ns.underlay(1500);
    let (exists, _) = ns.try_ip(&["link", "show", "tunl0"]);
    let result = ns.run(|| async { Installer::start(settings(Mode::Always)).await.map(|_| ()) });
    if exists {
        // A kernel with the ipip driver gives every namespace its own tunl0.
        assert!(result.is_ok(), "{result:?}");
        return;
    }
    match result {
        Err(e @ FibError::TunnelUnsupported { .. }) => assert_eq!(
            e.to_string(),
            "cannot create tunl0: this kernel has no IPIP support (modprobe ipip)"
        ),
        Err(e) => panic!("expected TunnelUnsupported, got {e:?}"),
        Ok(()) => {
            let kind = ns.ip(&["-d", "link", "show", "tunl0"]);
            assert!(
                kind.contains("ipip"),
                "start succeeded, so tunl0 must be ipip: {kind}"
            );
        }
    }
}

#[test]
fn another_table_and_protocol_are_kept_apart() {
    let ns = node("table");
    // A route in the main table with our protocol: not in our table, so not ours.
    ns.ip(&[
        "route",
        "add",
        "101.97.0.0/26",
        "via",
        "172.29.235.140",
        "dev",
        "tunl0",
        "onlink",
        "proto",
        "bgp",
    ]);
    ns.run(|| async {
        let mut settings = settings(Mode::Always);
        settings.table = 1000;
        settings.protocol = 200;
        let installer = Installer::start(settings).await.expect("start");
        installer.set_inputs(Inputs {
            remote: remote(&[("101.88.228.192/26", &["172.29.235.130"])]),
            own_blocks: vec![net("101.76.9.128/26")],
            workloads: vec![],
            tunnel_address: None,
            vteps: None,
            vxlan_v6: None,
        });
        installer.converged();
        eventually_installed(&installer, "2 routes installed", |installed| {
            installed.len() == 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        installer.stop(false).await.expect("stop");
    });
    let got = ns.ip(&["route", "show", "table", "1000", "proto", "200"]);
    assert_eq!(
        got,
        "blackhole 101.76.9.128/26 \n101.88.228.192/26 via 172.29.235.130 dev tunl0 onlink \n"
    );
    assert_eq!(
        shown(&ns, "-4"),
        "101.97.0.0/26 via 172.29.235.140 dev tunl0 onlink \n"
    );
}

/// The kernel flushes every route through a device whose last IPv4 address goes, and
/// says nothing about it. Moving the tunnel address (a block given back) must never
/// leave the tunnel without one, or every remote block's route silently leaves.
#[test]
fn moving_the_tunnel_address_keeps_the_routes_through_it() {
    let ns = node("tunmove");
    ns.run(|| async {
        let installer = Installer::start(settings(Mode::Always))
            .await
            .expect("start");
        let mut inputs = node_inputs();
        inputs.workloads.clear();
        installer.set_inputs(inputs.clone());
        eventually_installed(&installer, "4 routes installed", |installed| {
            installed.len() == 4
        })
        .await;
        inputs.tunnel_address = Some("101.76.9.130".parse().expect("addr"));
        installer.set_inputs(inputs);
        tokio::time::sleep(Duration::from_millis(500)).await;
        installer.stop(false).await.expect("stop");
    });
    let addrs = ns.ip(&["-4", "-o", "addr", "show", "dev", "tunl0"]);
    let addrs: Vec<&str> = addrs
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(addrs, ["101.76.9.130/32"]);
    assert_routes(
        &ns,
        "-4",
        "\
blackhole 101.76.9.128/26 
101.88.1.0/26 
\tnexthop via 172.29.235.131 dev tunl0 weight 1 onlink 
\tnexthop via 172.29.236.9 dev tunl0 weight 1 onlink 
101.88.228.192/26 via 172.29.235.130 dev tunl0 onlink 
",
    );
}

fn vxlan_spec(vni: u32) -> TunnelSpec {
    TunnelSpec {
        name: "vxlan.calico".into(),
        mtu: Some(1450),
        address: Some("101.76.9.128".parse().expect("addr")),
        vxlan: Some(fib::VxlanDevice {
            vni,
            port: 4789,
            local: "172.29.235.101".parse().expect("addr"),
            mac: fib::vtep::vtep_mac("172.29.235.101".parse().expect("addr")),
        }),
    }
}

#[test]
fn vxlan_device_is_made_kept_and_replaced_when_its_identity_changes() {
    let ns = Netns::new("vxlan");
    ns.underlay(1500);
    ns.run(|| async {
        fib::ensure_tunnel(&vxlan_spec(4096))
            .await
            .expect("makes the VXLAN device");
    });
    let detail = |ns: &Netns| ns.ip(&["-d", "link", "show", "vxlan.calico"]);
    let made = detail(&ns);
    for part in [
        "vxlan id 4096 local 172.29.235.101",
        "dstport 4789 nolearning",
        " mtu 1450 ",
        "link/ether 66:78:ac:1d:eb:65",
        ",UP,",
    ] {
        assert!(made.contains(part), "{part:?} not in {made}");
    }
    let index = made.split(':').next().map(str::to_owned);
    assert!(ns
        .ip(&["-4", "-o", "addr", "show", "dev", "vxlan.calico"])
        .contains("101.76.9.128/32"));

    // A MAC changed by hand is put back in place; the device is kept (same index).
    ns.ip(&[
        "link",
        "set",
        "vxlan.calico",
        "address",
        "02:00:00:00:00:01",
    ]);
    ns.run(|| async {
        fib::ensure_tunnel(&vxlan_spec(4096)).await.expect("again");
    });
    let kept = detail(&ns);
    assert!(kept.contains("link/ether 66:78:ac:1d:eb:65"), "{kept}");
    assert_eq!(kept.split(':').next().map(str::to_owned), index, "kept");

    // Another VNI cannot be set in place: the device is made again.
    ns.run(|| async {
        fib::ensure_tunnel(&vxlan_spec(4097)).await.expect("remade");
    });
    let remade = detail(&ns);
    assert!(remade.contains("vxlan id 4097 "), "{remade}");
    assert_ne!(
        remade.split(':').next().map(str::to_owned),
        index,
        "a new device"
    );
}

/// A large write is not read back: the kernel drops the notifications of our own writes
/// before they reach the notification socket, so it neither fills (a lost notification
/// costs a full resync) nor has to be read route by route, while a change made by
/// someone else right after still arrives, as the first event.
#[test]
fn own_writes_do_not_come_back_as_notifications() {
    use fib::{Fib, FibEvent, NetlinkFib, NextHop, Op, Route, RouteKind};
    let ns = node("ownnote");
    let inner = ns.handle();
    ns.run(move || async move {
        let ns = inner;
        let mut fib = NetlinkFib::open(Settings::DEFAULT_PROTOCOL, Settings::DEFAULT_TABLE)
            .expect("open netlink");
        fib.links().await.expect("links");
        // Enough notifications to fill the 16 MiB notification buffer several times.
        let ops: Vec<Op> = (0..150_000u32)
            .map(|i| {
                let a = std::net::Ipv4Addr::from(0x4000_0000 + i * 64);
                Op::Write(Route {
                    prefix: IpNet::new(a.into(), 26).expect("prefix"),
                    kind: RouteKind::Via(vec![NextHop {
                        gateway: ip("172.29.235.130"),
                        device: Some("tunl0".into()),
                        onlink: true,
                    }]),
                })
            })
            .collect();
        let refused = fib.apply(&ops).await.iter().filter(|r| r.is_err()).count();
        assert_eq!(refused, 0, "routes refused");
        ns.ip(&["route", "del", "64.0.0.0/26"]);
        let event = tokio::time::timeout(Duration::from_secs(2), fib.next_event())
            .await
            .expect("a notification of the delete");
        assert_eq!(
            event,
            FibEvent::RouteGone {
                prefix: net("64.0.0.0/26")
            }
        );
    });
}
