//! Unit tests of the reconciler: inputs and kernel state in, planned operations out.

use super::*;
use crate::{Inputs, NextHop};

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}
fn link(name: &str, up: bool) -> Link {
    Link {
        name: name.into(),
        index: 1,
        up,
        mtu: 1500,
    }
}
fn tun(gw: &str) -> RouteKind {
    RouteKind::Via(vec![NextHop {
        gateway: gw.parse().expect("test address"),
        device: Some("tunl0".into()),
        onlink: true,
    }])
}
fn inputs() -> Inputs {
    let mut i = Inputs::default();
    i.remote.insert(
        net("10.1.0.0/26"),
        vec!["192.168.0.2".parse().expect("addr")],
    );
    i.own_blocks.push(net("10.0.0.0/26"));
    i.workloads
        .push(("10.0.0.5".parse().expect("addr"), "cali1".into()));
    i
}
fn set_inputs(r: &mut Reconciler, i: Inputs) {
    r.set_remote(&i.remote);
    r.set_local(i.own_blocks, &i.workloads);
}
fn set_kernel(r: &mut Reconciler, routes: Vec<(IpNet, Option<RouteKind>)>) {
    for (p, k) in routes {
        r.kernel_route(p, k);
    }
    r.end_kernel(true);
}
fn plan(r: &mut Reconciler) -> Vec<Op> {
    let mut ops = r.plan(usize::MAX);
    // Writes before deletes, each in prefix order: the order the assertions expect.
    ops.sort_by_key(|o| (matches!(o, Op::Delete(_)), o.prefix()));
    ops
}
fn rec() -> Reconciler {
    let mut r = Reconciler::new(Mode::Always, "tunl0");
    r.set_links(vec![link("tunl0", true), link("cali1", true)]);
    set_inputs(&mut r, inputs());
    r
}
fn ok(n: usize) -> Vec<Result<(), FibError>> {
    (0..n).map(|_| Ok(())).collect()
}

#[test]
fn writes_everything_missing() {
    let mut r = rec();
    let ops = plan(&mut r);
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert!(ops.iter().all(|o| matches!(o, Op::Write(_))));
}

#[test]
fn adopts_identical_routes_without_rewriting_them() {
    let mut r = rec();
    set_kernel(
        &mut r,
        vec![
            (net("10.1.0.0/26"), Some(tun("192.168.0.2"))),
            (net("10.0.0.0/26"), Some(RouteKind::Blackhole)),
        ],
    );
    let ops = plan(&mut r);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].prefix(), net("10.0.0.5/32"));
}

#[test]
fn different_route_is_replaced_and_stale_one_kept_until_converged() {
    let mut r = rec();
    set_kernel(
        &mut r,
        vec![
            (net("10.1.0.0/26"), Some(tun("192.168.0.3"))),
            (net("10.9.0.0/26"), Some(tun("192.168.0.9"))),
            (net("10.8.0.0/26"), None),
        ],
    );
    let ops = plan(&mut r);
    assert!(ops.iter().all(|o| matches!(o, Op::Write(_))), "{ops:?}");
    assert!(ops.contains(&Op::Write(Route {
        prefix: net("10.1.0.0/26"),
        kind: tun("192.168.0.2")
    })));
    r.converge();
    let ops = plan(&mut r);
    assert!(ops.contains(&Op::Delete(net("10.9.0.0/26"))), "{ops:?}");
    assert!(ops.contains(&Op::Delete(net("10.8.0.0/26"))), "{ops:?}");
}

#[test]
fn route_withdrawn_before_convergence_goes_at_once() {
    let mut r = Reconciler::new(Mode::Always, "tunl0");
    r.set_links(vec![link("tunl0", true), link("cali1", true)]);
    set_kernel(&mut r, vec![(net("10.9.0.0/26"), Some(tun("192.168.0.9")))]);
    set_inputs(&mut r, inputs());
    let ops = plan(&mut r);
    r.record(&ops, ok(ops.len()));
    // The peer withdraws its block before initial convergence.
    let mut less = inputs();
    less.remote.clear();
    set_inputs(&mut r, less);
    let ops = plan(&mut r);
    assert_eq!(
        ops,
        vec![Op::Delete(net("10.1.0.0/26"))],
        "the previous run's route stays"
    );
    r.record(&ops, ok(1));
    r.converge();
    assert_eq!(plan(&mut r), vec![Op::Delete(net("10.9.0.0/26"))]);
}

#[test]
fn records_outcomes_and_counts() {
    let mut r = rec();
    set_kernel(&mut r, vec![(net("10.1.0.0/26"), Some(tun("192.168.0.3")))]);
    let ops = plan(&mut r);
    let n = ops.len();
    assert!(!r.record(&ops, ok(n)));
    assert_eq!((r.stats.added, r.stats.replaced), (2, 1));
    assert!(plan(&mut r).is_empty());
    assert_eq!(r.installed().len(), 3);
    assert_eq!(
        r.counts(),
        Counts {
            remote: 1,
            blackhole: 1,
            workload: 1
        }
    );
}

#[test]
fn workload_waits_for_its_link() {
    let mut r = Reconciler::new(Mode::Always, "tunl0");
    r.set_links(vec![link("tunl0", true)]);
    set_inputs(&mut r, inputs());
    let ops = plan(&mut r);
    assert!(
        !ops.iter().any(|o| o.prefix() == net("10.0.0.5/32")),
        "{ops:?}"
    );
    let reaction = r.event(FibEvent::LinkSet(link("cali1", true)));
    assert!(reaction.reconcile);
    assert!(plan(&mut r)
        .iter()
        .any(|o| o.prefix() == net("10.0.0.5/32")));
}

#[test]
fn link_going_away_forgets_its_routes() {
    let mut r = rec();
    let ops = plan(&mut r);
    r.record(&ops, ok(ops.len()));
    let reaction = r.event(FibEvent::LinkGone {
        name: "cali1".into(),
    });
    assert!(reaction.reconcile && !reaction.tunnel);
    assert!(!r.installed().contains_key(&net("10.0.0.5/32")));
    assert!(
        plan(&mut r).is_empty(),
        "nothing to write until the link is back"
    );
    r.event(FibEvent::LinkSet(link("cali1", true)));
    let ops = plan(&mut r);
    assert_eq!(ops.len(), 1);
    r.record(&ops, ok(1));
    assert_eq!(r.stats.drift_repairs, 1);
}

#[test]
fn foreign_delete_is_drift_and_foreign_identical_set_is_not() {
    let mut r = rec();
    let ops = plan(&mut r);
    r.record(&ops, ok(ops.len()));
    let same = r.event(FibEvent::RouteSet {
        prefix: net("10.1.0.0/26"),
        kind: Some(tun("192.168.0.2")),
    });
    assert!(!same.reconcile);
    let gone = r.event(FibEvent::RouteGone {
        prefix: net("10.1.0.0/26"),
    });
    assert!(gone.reconcile);
    let ops = plan(&mut r);
    assert_eq!(
        ops,
        vec![Op::Write(Route {
            prefix: net("10.1.0.0/26"),
            kind: tun("192.168.0.2")
        })]
    );
    r.record(&ops, ok(1));
    assert_eq!(r.stats.drift_repairs, 1);
}

#[test]
fn tunnel_down_asks_for_the_tunnel() {
    let mut r = rec();
    let reaction = r.event(FibEvent::LinkSet(link("tunl0", false)));
    assert!(reaction.tunnel && reaction.reconcile);
    assert!(r.event(FibEvent::Lost).resync);
}

#[test]
fn lost_answers_ask_for_resync_and_errors_count() {
    let mut r = rec();
    let ops = plan(&mut r);
    let mut results = ok(ops.len());
    results[0] = Err(FibError::Lost);
    results[1] = Err(FibError::Kernel {
        what: "x".into(),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    });
    assert!(r.record(&ops, results));
    assert_eq!(r.stats.errors, 1);
}
