//! The installer driven over the in-memory FIB.

use std::time::Duration;

use super::*;
use crate::{MemFib, MemHandle, NextHop, Op, Route, RouteKind, Underlay};

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn settings(mode: Mode) -> Settings {
    Settings::new(mode, "172.29.235.101".parse().expect("addr"))
}

fn tun(gw: &str) -> RouteKind {
    RouteKind::Via(vec![NextHop {
        gateway: gw.parse().expect("addr"),
        device: Some("tunl0".into()),
        onlink: true,
    }])
}

fn inputs() -> Inputs {
    let mut i = Inputs::default();
    i.remote.insert(
        net("101.88.228.192/26"),
        vec!["172.29.235.130".parse().expect("addr")],
    );
    i.remote.insert(
        net("101.88.1.0/26"),
        vec!["172.29.235.131".parse().expect("addr")],
    );
    i.own_blocks.push(net("101.76.9.128/26"));
    i.tunnel_address = Some("101.76.9.128".parse().expect("addr"));
    i.workloads
        .push(("101.76.9.136".parse().expect("addr"), "cali1".into()));
    i
}

fn fib() -> (MemFib, MemHandle) {
    let (fib, handle) = MemFib::new();
    handle.set_underlay(Some(Underlay {
        subnet: net("172.29.235.0/24"),
        device: "eth0".into(),
        mtu: 9000,
    }));
    handle.set_link("eth0", true);
    handle.set_link("cali1", true);
    (fib, handle)
}

/// Poll the installer's installed routes until `check` holds, 2 s at most.
async fn eventually_installed(
    installer: &Installer,
    what: &str,
    check: impl Fn(&std::collections::BTreeMap<IpNet, crate::Route>) -> bool,
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

pub(super) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn installs_the_desired_set_and_creates_the_tunnel() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    installer.set_inputs(inputs());
    eventually_installed(&installer, "4 routes installed", |installed| {
        installed.len() == 4
    })
    .await;
    let routes = handle.routes();
    assert_eq!(
        routes.get(&net("101.88.228.192/26")),
        Some(&tun("172.29.235.130"))
    );
    assert_eq!(
        routes.get(&net("101.76.9.128/26")),
        Some(&RouteKind::Blackhole)
    );
    assert_eq!(
        routes.get(&net("101.76.9.136/32")),
        Some(&RouteKind::Link {
            device: "cali1".into()
        })
    );
    let tunnel = handle.tunnel().expect("tunnel ensured");
    assert_eq!(tunnel.mtu, Some(8980), "underlay MTU minus 20");
    assert_eq!(tunnel.address, Some("101.76.9.128".parse().expect("addr")));
    assert_eq!(installer.stats().added, 4);
    installer.stop(false).await.expect("stop");
    assert_eq!(handle.routes().len(), 4, "stop keeps routes");
}

#[tokio::test]
async fn adopts_without_rewriting_and_deletes_only_after_convergence() {
    let (fib, handle) = fib();
    handle.set_link("tunl0", true);
    handle.preload(Route {
        prefix: net("101.88.228.192/26"),
        kind: tun("172.29.235.130"),
    });
    handle.preload(Route {
        prefix: net("101.76.9.128/26"),
        kind: RouteKind::Blackhole,
    });
    handle.preload(Route {
        prefix: net("101.99.0.0/26"),
        kind: tun("172.29.235.199"),
    });
    handle.clear_log();
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    installer.set_inputs(inputs());
    eventually_installed(&installer, "4 routes installed", |installed| {
        installed.len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let log = handle.log();
    assert_eq!(
        log,
        vec![
            Op::Write(Route {
                prefix: net("101.76.9.136/32"),
                kind: RouteKind::Link {
                    device: "cali1".into()
                }
            }),
            Op::Write(Route {
                prefix: net("101.88.1.0/26"),
                kind: tun("172.29.235.131")
            }),
        ],
        "only the missing routes are written, nothing deleted before convergence"
    );
    assert!(handle.routes().contains_key(&net("101.99.0.0/26")));
    installer.converged();
    eventually("stale route deleted", || {
        !handle.routes().contains_key(&net("101.99.0.0/26"))
    })
    .await;
    assert_eq!(handle.log().len(), 3);
    assert_eq!(installer.stats().deleted, 1);
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn puts_back_what_someone_else_deletes_or_changes() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    installer.set_inputs(inputs());
    eventually_installed(&installer, "installed", |installed| installed.len() == 4).await;
    handle.delete_route(net("101.88.228.192/26"));
    eventually("deleted route back", || {
        handle.routes().get(&net("101.88.228.192/26")) == Some(&tun("172.29.235.130"))
    })
    .await;
    handle.set_route(Route {
        prefix: net("101.88.1.0/26"),
        kind: tun("10.9.9.9"),
    });
    eventually("changed route restored", || {
        handle.routes().get(&net("101.88.1.0/26")) == Some(&tun("172.29.235.131"))
    })
    .await;
    eventually("stats published", || installer.stats().drift_repairs == 2).await;
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn workload_routes_follow_their_links() {
    let (fib, handle) = fib();
    handle.remove_link("cali1");
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    installer.set_inputs(inputs());
    eventually_installed(&installer, "others installed", |installed| {
        installed.len() == 3
    })
    .await;
    assert!(!installer
        .installed()
        .await
        .contains_key(&net("101.76.9.136/32")));
    assert_eq!(
        installer.stats().errors,
        0,
        "a missing workload link is not an error"
    );
    handle.set_link("cali1", true);
    eventually_installed(&installer, "workload installed", |installed| {
        installed.contains_key(&net("101.76.9.136/32"))
    })
    .await;
    handle.remove_link("cali1");
    eventually_installed(&installer, "workload gone with its link", |installed| {
        !installed.contains_key(&net("101.76.9.136/32"))
    })
    .await;
    handle.set_link("cali1", true);
    eventually("workload back", || {
        handle.routes().contains_key(&net("101.76.9.136/32"))
    })
    .await;
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn lost_notifications_trigger_a_full_comparison() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    installer.set_inputs(inputs());
    eventually_installed(&installer, "installed", |installed| installed.len() == 4).await;
    // Silently gone (no event), then the notification stream reports an overrun.
    handle.preload(Route {
        prefix: net("101.88.1.0/26"),
        kind: RouteKind::Blackhole,
    });
    handle.lose_events();
    eventually("repaired", || {
        handle.routes().get(&net("101.88.1.0/26")) == Some(&tun("172.29.235.131"))
    })
    .await;
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn stop_with_flush_removes_everything_of_ours() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings(Mode::CrossSubnet))
        .await
        .expect("start");
    installer.set_inputs(inputs());
    eventually_installed(&installer, "installed", |installed| installed.len() == 4).await;
    assert_eq!(
        handle.routes().get(&net("101.88.228.192/26")),
        Some(&RouteKind::Via(vec![NextHop {
            gateway: "172.29.235.130".parse().expect("addr"),
            device: Some("eth0".into()),
            onlink: false,
        }])),
        "same subnet: direct in cross-subnet mode"
    );
    installer.stop(true).await.expect("stop");
    assert!(handle.routes().is_empty(), "{:?}", handle.routes());
}

#[tokio::test]
async fn never_mode_leaves_the_tunnel_alone() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings(Mode::Never))
        .await
        .expect("start");
    installer.set_inputs(inputs());
    eventually_installed(&installer, "installed", |installed| installed.len() == 4).await;
    assert_eq!(handle.tunnel(), None);
    assert!(handle.link("tunl0").is_none());
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn missing_ipip_support_is_one_clear_error() {
    let (fib, handle) = fib();
    handle.without_tunnel_support();
    let err = Installer::start_with(fib, settings(Mode::Always))
        .await
        .err()
        .expect("must fail");
    assert_eq!(
        err.to_string(),
        "cannot create tunl0: this kernel has no IPIP support (modprobe ipip)"
    );
}

#[tokio::test]
async fn converged_right_after_inputs_deletes_nothing_desired() {
    let (fib, handle) = fib();
    handle.set_link("tunl0", true);
    handle.preload(Route {
        prefix: net("101.88.228.192/26"),
        kind: tun("172.29.235.130"),
    });
    handle.clear_log();
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    installer.set_inputs(inputs());
    installer.converged();
    eventually_installed(&installer, "installed", |installed| installed.len() == 4).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        handle
            .log()
            .iter()
            .all(|op| matches!(op, Op::Write(r) if r.prefix != net("101.88.228.192/26"))),
        "{:?}",
        handle.log()
    );
    installer.stop(false).await.expect("stop");
}

fn gw(s: &str) -> Option<Vec<std::net::IpAddr>> {
    Some(vec![s.parse().expect("addr")])
}

#[tokio::test]
async fn remote_changes_write_only_what_changed() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    installer.converged();
    installer
        .update_remote(vec![
            (net("101.88.0.0/26"), gw("172.29.235.130")),
            (net("101.88.0.64/26"), gw("172.29.235.131")),
            (net("101.88.0.128/26"), gw("172.29.235.132")),
        ])
        .await;
    eventually("three routes", || handle.routes().len() == 3).await;
    handle.clear_log();
    installer
        .update_remote(vec![
            // Next hop changed.
            (net("101.88.0.0/26"), gw("172.29.235.140")),
            // Gone.
            (net("101.88.0.64/26"), None),
            // Unchanged: no write.
            (net("101.88.0.128/26"), gw("172.29.235.132")),
            // Never installed, nothing to delete.
            (net("101.88.9.0/26"), None),
        ])
        .await;
    eventually("two ops", || handle.log().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut log = handle.log();
    log.sort_by_key(Op::prefix);
    assert_eq!(
        log,
        vec![
            Op::Write(Route {
                prefix: net("101.88.0.0/26"),
                kind: tun("172.29.235.140")
            }),
            Op::Delete(net("101.88.0.64/26")),
        ]
    );
    let stats = installer.stats();
    assert_eq!((stats.added, stats.replaced, stats.deleted), (3, 1, 1));
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn remote_changes_make_ecmp_and_ipv6_routes() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    installer
        .update_remote(vec![
            (
                net("101.88.0.0/26"),
                Some(vec![
                    "172.29.235.131".parse().expect("addr"),
                    "172.29.235.130".parse().expect("addr"),
                ]),
            ),
            (net("fd00:2::/122"), gw("fd00::2")),
        ])
        .await;
    eventually("both installed", || handle.routes().len() == 2).await;
    let hop = |g: &str| NextHop {
        gateway: g.parse().expect("addr"),
        device: Some("tunl0".into()),
        onlink: true,
    };
    assert_eq!(
        handle.routes().get(&net("101.88.0.0/26")),
        Some(&RouteKind::Via(vec![
            hop("172.29.235.130"),
            hop("172.29.235.131")
        ]))
    );
    assert_eq!(
        handle.routes().get(&net("fd00:2::/122")),
        Some(&RouteKind::Via(vec![NextHop {
            gateway: "fd00::2".parse().expect("addr"),
            device: None,
            onlink: false,
        }]))
    );
    // Down to one next hop, then drift: the route is put back as now wanted.
    installer
        .update_remote(vec![(net("101.88.0.0/26"), gw("172.29.235.131"))])
        .await;
    eventually("one next hop", || {
        handle.routes().get(&net("101.88.0.0/26")) == Some(&tun("172.29.235.131"))
    })
    .await;
    handle.delete_route(net("101.88.0.0/26"));
    eventually("put back", || {
        handle.routes().get(&net("101.88.0.0/26")) == Some(&tun("172.29.235.131"))
    })
    .await;
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn restart_adopts_routes_and_converged_after_changes_deletes_only_the_rest() {
    let (fib, handle) = fib();
    handle.set_link("tunl0", true);
    for (p, g) in [
        ("101.88.0.0/26", "172.29.235.130"),
        ("101.88.0.64/26", "172.29.235.131"),
    ] {
        handle.preload(Route {
            prefix: net(p),
            kind: tun(g),
        });
    }
    handle.clear_log();
    let installer = Installer::start_with(fib, settings(Mode::Always))
        .await
        .expect("start");
    // The RIB re-learns one of the two routes, then says converged.
    installer
        .update_remote(vec![(net("101.88.0.0/26"), gw("172.29.235.130"))])
        .await;
    installer.converged();
    eventually("the other one deleted", || handle.routes().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        handle.log(),
        vec![Op::Delete(net("101.88.0.64/26"))],
        "the re-learned route is adopted, not rewritten"
    );
    installer.stop(false).await.expect("stop");
}

#[test]
fn handle_and_start_future_can_cross_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let start = Installer::start(settings(Mode::Always));
    send(&start);
    drop(start);
    let _ = send_sync::<Installer>;
}

#[test]
fn mode_spellings_round_trip() {
    for mode in [Mode::Always, Mode::CrossSubnet, Mode::Never] {
        assert_eq!(mode.to_string().parse::<Mode>(), Ok(mode));
    }
    assert!("sometimes".parse::<Mode>().is_err());
}
