//! The reconciler's state and decisions, without I/O: what the kernel should have, what we
//! believe it has, and the ops that close the gap.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ipnet::IpNet;

use crate::fib::{FibEvent, Link, Op, Underlay};
use crate::installer::Stats;
use crate::{desired, FibError, Inputs, Mode, Route, RouteKind};

/// What an event asks of the driver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reaction {
    /// Compare and write (after a short debounce).
    pub reconcile: bool,
    /// Read everything from the kernel again.
    pub resync: bool,
    /// Make the tunnel device right again.
    pub tunnel: bool,
}

pub(crate) struct Reconciler {
    mode: Mode,
    tunnel: String,
    inputs: Arc<Inputs>,
    underlay: Option<Underlay>,
    desired: BTreeMap<IpNet, Route>,
    /// Our routes in the kernel as far as we know; `None`: a shape we never write.
    kernel: BTreeMap<IpNet, Option<RouteKind>>,
    /// Device name → administratively up.
    links: HashMap<String, bool>,
    converged: bool,
    /// Our routes found in the kernel when we started and not wanted since: a previous
    /// run's, kept until convergence. Everything else that is not wanted goes at once, so
    /// a route withdrawn during startup does not linger until every peer sent End-of-RIB.
    previous_run: Option<HashSet<IpNet>>,
    /// Prefixes someone else changed; rewriting one counts as a drift repair.
    drifted: HashSet<IpNet>,
    pub stats: Stats,
}

/// Errors from writing a workload route whose device vanished or went down between our
/// last look and the write: the route simply waits for the link.
fn waits_for_link(err: &FibError) -> bool {
    matches!(err, FibError::NoSuchDevice(_))
        || matches!(err.errno(), Some(libc::ENODEV) | Some(libc::ENETDOWN))
}

impl Reconciler {
    pub fn new(mode: Mode, tunnel: &str) -> Reconciler {
        Reconciler {
            mode,
            tunnel: tunnel.to_string(),
            inputs: Arc::default(),
            underlay: None,
            desired: BTreeMap::new(),
            kernel: BTreeMap::new(),
            links: HashMap::new(),
            converged: false,
            previous_run: None,
            drifted: HashSet::new(),
            stats: Stats::default(),
        }
    }

    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    pub fn underlay(&self) -> Option<&Underlay> {
        self.underlay.as_ref()
    }

    pub fn set_inputs(&mut self, inputs: Arc<Inputs>) {
        self.inputs = inputs;
        self.recompute();
    }

    pub fn set_underlay(&mut self, underlay: Option<Underlay>) {
        if self.underlay != underlay {
            self.underlay = underlay;
            self.recompute();
        }
    }

    fn recompute(&mut self) {
        let underlay = self.underlay.as_ref().map(|u| (u.subnet, u.device.clone()));
        self.desired = desired(&self.inputs, self.mode, &self.tunnel, underlay.as_ref());
        if let Some(previous) = &mut self.previous_run {
            previous.retain(|p| !self.desired.contains_key(p));
        }
    }

    pub fn set_links(&mut self, links: Vec<Link>) {
        self.links = links.into_iter().map(|l| (l.name, l.up)).collect();
    }

    pub fn set_kernel(&mut self, routes: Vec<(IpNet, Option<RouteKind>)>) {
        let before = std::mem::take(&mut self.kernel);
        self.kernel = routes.into_iter().collect();
        if self.previous_run.is_none() {
            let found = self.kernel.keys().filter(|p| !self.desired.contains_key(p));
            self.previous_run = Some(found.copied().collect());
        }
        // What vanished or changed behind our back since we last looked is drift.
        for (prefix, kind) in before {
            if self.kernel.get(&prefix) != Some(&kind) && self.desired.contains_key(&prefix) {
                self.drifted.insert(prefix);
            }
        }
    }

    pub fn converge(&mut self) {
        self.converged = true;
    }

    fn installable(&self, route: &Route) -> bool {
        route
            .kind
            .devices()
            .all(|d| self.links.get(d).copied().unwrap_or(false))
    }

    fn is_current(&self, route: &Route) -> bool {
        matches!(self.kernel.get(&route.prefix), Some(Some(found)) if route.kind.matches(found))
    }

    /// The ops that make the kernel what we want: write every installable desired route the
    /// kernel lacks or has differently, and delete the rest of ours (a previous run's
    /// only once converged).
    pub fn plan(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .desired
            .values()
            .filter(|r| self.installable(r) && !self.is_current(r))
            .map(|r| Op::Write(r.clone()))
            .collect();
        let kept = |p: &IpNet| {
            !self.converged
                && self
                    .previous_run
                    .as_ref()
                    .is_none_or(|prev| prev.contains(p))
        };
        ops.extend(
            self.kernel
                .keys()
                .filter(|p| !self.desired.get(p).is_some_and(|r| self.installable(r)) && !kept(p))
                .map(|p| Op::Delete(*p)),
        );
        ops
    }

    /// Deletes for every route of ours we know of (stop with flush).
    pub fn flush_plan(&self) -> Vec<Op> {
        self.kernel.keys().map(|p| Op::Delete(*p)).collect()
    }

    /// Take the outcome of `ops` into our picture of the kernel. Returns whether the
    /// outcome of some op is unknown (the kernel must be read again).
    pub fn record(&mut self, ops: &[Op], results: Vec<Result<(), FibError>>) -> bool {
        let mut lost = false;
        let mut logged = 0;
        for (op, result) in ops.iter().zip(results) {
            match (op, result) {
                (Op::Write(route), Ok(())) => {
                    let previous = self.kernel.insert(route.prefix, Some(route.kind.clone()));
                    if previous.is_some() {
                        self.stats.replaced += 1;
                    } else {
                        self.stats.added += 1;
                    }
                    if self.drifted.remove(&route.prefix) {
                        self.stats.drift_repairs += 1;
                    }
                }
                (Op::Delete(prefix), Ok(())) => {
                    self.kernel.remove(prefix);
                    self.drifted.remove(prefix);
                    self.stats.deleted += 1;
                }
                (_, Err(FibError::Lost)) => lost = true,
                (Op::Write(route), Err(e)) if waits_for_link(&e) => {
                    tracing::debug!(prefix = %route.prefix, error = %e, "route waits for its device");
                }
                (op, Err(e)) => {
                    self.stats.errors += 1;
                    // One bad route must not flood the log on every pass.
                    if logged < 5 {
                        logged += 1;
                        tracing::warn!(prefix = %op.prefix(), error = %e, "route write failed");
                    }
                }
            }
        }
        lost
    }

    /// Take in a change made by someone else.
    pub fn event(&mut self, event: FibEvent) -> Reaction {
        let mut reaction = Reaction::default();
        match event {
            FibEvent::RouteSet { prefix, kind } => {
                let wanted = self.desired.get(&prefix);
                let fine = matches!((wanted, &kind), (Some(w), Some(k)) if w.kind.matches(k));
                self.kernel.insert(prefix, kind);
                if !fine {
                    if wanted.is_some() {
                        self.drifted.insert(prefix);
                    }
                    reaction.reconcile = true;
                }
            }
            FibEvent::RouteGone { prefix } | FibEvent::RouteTaken { prefix } => {
                if self.kernel.remove(&prefix).is_some() && self.desired.contains_key(&prefix) {
                    self.drifted.insert(prefix);
                    reaction.reconcile = true;
                }
            }
            FibEvent::LinkSet(link) => {
                let was = self.links.insert(link.name.clone(), link.up);
                if was != Some(link.up) {
                    if !link.up {
                        reaction.resync = self.forget_routes_through(&link.name);
                        reaction.tunnel = link.name == self.tunnel;
                    }
                    reaction.reconcile = true;
                }
            }
            FibEvent::LinkGone { name } => {
                self.links.remove(&name);
                reaction.resync = self.forget_routes_through(&name);
                reaction.tunnel = name == self.tunnel;
                reaction.reconcile = true;
            }
            FibEvent::Lost => reaction.resync = true,
        }
        reaction
    }

    /// The kernel drops routes through a device that goes down or away, without a word.
    /// Returns whether some of our routes went through a device the kernel chose (we do
    /// not know which): then only reading the kernel again tells what is left.
    fn forget_routes_through(&mut self, device: &str) -> bool {
        let mut unknown = false;
        let gone: Vec<IpNet> = self
            .kernel
            .iter()
            .filter(|(_, k)| match k {
                Some(RouteKind::Via(hops)) => {
                    unknown |= hops.iter().any(|h| h.device.is_none());
                    hops.iter().any(|h| h.device.as_deref() == Some(device))
                }
                Some(k) => k.devices().any(|d| d == device),
                None => false,
            })
            .map(|(p, _)| *p)
            .collect();
        for prefix in gone {
            self.kernel.remove(&prefix);
            if self.desired.contains_key(&prefix) {
                self.drifted.insert(prefix);
            }
        }
        unknown
    }

    /// Routes in the kernel exactly as we want them.
    pub fn installed(&self) -> BTreeMap<IpNet, Route> {
        self.desired
            .values()
            .filter(|r| self.is_current(r))
            .map(|r| (r.prefix, r.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NextHop;

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
    fn rec() -> Reconciler {
        let mut r = Reconciler::new(Mode::Always, "tunl0");
        r.set_links(vec![link("tunl0", true), link("cali1", true)]);
        r.set_inputs(Arc::new(inputs()));
        r
    }
    fn ok(n: usize) -> Vec<Result<(), FibError>> {
        (0..n).map(|_| Ok(())).collect()
    }

    #[test]
    fn writes_everything_missing() {
        let r = rec();
        let ops = r.plan();
        assert_eq!(ops.len(), 3, "{ops:?}");
        assert!(ops.iter().all(|o| matches!(o, Op::Write(_))));
    }

    #[test]
    fn adopts_identical_routes_without_rewriting_them() {
        let mut r = rec();
        r.set_kernel(vec![
            (net("10.1.0.0/26"), Some(tun("192.168.0.2"))),
            (net("10.0.0.0/26"), Some(RouteKind::Blackhole)),
        ]);
        let ops = r.plan();
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(ops[0].prefix(), net("10.0.0.5/32"));
    }

    #[test]
    fn different_route_is_replaced_and_stale_one_kept_until_converged() {
        let mut r = rec();
        r.set_kernel(vec![
            (net("10.1.0.0/26"), Some(tun("192.168.0.3"))),
            (net("10.9.0.0/26"), Some(tun("192.168.0.9"))),
            (net("10.8.0.0/26"), None),
        ]);
        let ops = r.plan();
        assert!(ops.iter().all(|o| matches!(o, Op::Write(_))), "{ops:?}");
        assert!(ops.contains(&Op::Write(Route {
            prefix: net("10.1.0.0/26"),
            kind: tun("192.168.0.2")
        })));
        r.converge();
        let ops = r.plan();
        assert!(ops.contains(&Op::Delete(net("10.9.0.0/26"))), "{ops:?}");
        assert!(ops.contains(&Op::Delete(net("10.8.0.0/26"))), "{ops:?}");
    }

    #[test]
    fn route_withdrawn_before_convergence_goes_at_once() {
        let mut r = Reconciler::new(Mode::Always, "tunl0");
        r.set_links(vec![link("tunl0", true), link("cali1", true)]);
        r.set_kernel(vec![(net("10.9.0.0/26"), Some(tun("192.168.0.9")))]);
        r.set_inputs(Arc::new(inputs()));
        let ops = r.plan();
        r.record(&ops, ok(ops.len()));
        // The peer withdraws its block before initial convergence.
        let mut less = inputs();
        less.remote.clear();
        r.set_inputs(Arc::new(less));
        let ops = r.plan();
        assert_eq!(
            ops,
            vec![Op::Delete(net("10.1.0.0/26"))],
            "the previous run's route stays"
        );
        r.record(&ops, ok(1));
        r.converge();
        assert_eq!(r.plan(), vec![Op::Delete(net("10.9.0.0/26"))]);
    }

    #[test]
    fn records_outcomes_and_counts() {
        let mut r = rec();
        r.set_kernel(vec![(net("10.1.0.0/26"), Some(tun("192.168.0.3")))]);
        let ops = r.plan();
        let n = ops.len();
        assert!(!r.record(&ops, ok(n)));
        assert_eq!((r.stats.added, r.stats.replaced), (2, 1));
        assert!(r.plan().is_empty());
        assert_eq!(r.installed().len(), 3);
    }

    #[test]
    fn workload_waits_for_its_link() {
        let mut r = Reconciler::new(Mode::Always, "tunl0");
        r.set_links(vec![link("tunl0", true)]);
        r.set_inputs(Arc::new(inputs()));
        let ops = r.plan();
        assert!(
            !ops.iter().any(|o| o.prefix() == net("10.0.0.5/32")),
            "{ops:?}"
        );
        let reaction = r.event(FibEvent::LinkSet(link("cali1", true)));
        assert!(reaction.reconcile);
        assert!(r.plan().iter().any(|o| o.prefix() == net("10.0.0.5/32")));
    }

    #[test]
    fn link_going_away_forgets_its_routes() {
        let mut r = rec();
        let ops = r.plan();
        r.record(&ops, ok(ops.len()));
        let reaction = r.event(FibEvent::LinkGone {
            name: "cali1".into(),
        });
        assert!(reaction.reconcile && !reaction.tunnel);
        assert!(!r.installed().contains_key(&net("10.0.0.5/32")));
        assert!(
            r.plan().is_empty(),
            "nothing to write until the link is back"
        );
        r.event(FibEvent::LinkSet(link("cali1", true)));
        let ops = r.plan();
        assert_eq!(ops.len(), 1);
        r.record(&ops, ok(1));
        assert_eq!(r.stats.drift_repairs, 1);
    }

    #[test]
    fn foreign_delete_is_drift_and_foreign_identical_set_is_not() {
        let mut r = rec();
        let ops = r.plan();
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
        let ops = r.plan();
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
        let ops = r.plan();
        let mut results = ok(ops.len());
        results[0] = Err(FibError::Lost);
        results[1] = Err(FibError::Kernel {
            what: "x".into(),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
        assert!(r.record(&ops, results));
        assert_eq!(r.stats.errors, 1);
    }
}
