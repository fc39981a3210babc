//! The state the soak's threads share: every node slot's status, the live pods, what
//! was counted, and the violations found.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::invariants::SESSION_HOLD;
use super::observe::PodRef;
use super::NODES;
use crate::etcd::{EtcdCluster, NodeCtl};
use crate::harness::Netns;

/// What the test has done to a node slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not joined yet.
    Absent,
    Running,
    /// Stopped for a restart.
    Down,
    Frozen,
    Removed,
}

/// One node slot, as the pod workers and the checker see it.
pub struct Slot {
    pub ctl: Option<NodeCtl>,
    pub status: Status,
    /// Bumped at every status change: a round that saw two epochs saw a change.
    pub epoch: u64,
    pub settle_until: Instant,
}

/// A live pod: made by ADD, not yet given to DEL. Its namespace goes with it.
pub struct Pod {
    pub r: PodRef,
    pub ns: Netns,
    /// The ADD result, as evidence.
    pub result: String,
}

/// The slots and the live pods, under one lock so that a pod is never added to a
/// node that is being removed.
pub struct State {
    pub slots: Vec<Slot>,
    pub pods: BTreeMap<String, Pod>,
    /// Removed nodes: name, address, since when their removal must show everywhere.
    pub removed: Vec<(String, Ipv4Addr, Instant)>,
}

/// What the run did, for the summary.
#[derive(Default)]
pub struct Counts {
    pub made: AtomicUsize,
    pub deleted: AtomicUsize,
    /// Pods that went with a powered-off node.
    pub gone_with_node: AtomicUsize,
    pub add_failed: AtomicUsize,
    pub del_failed: AtomicUsize,
    pub restarts_term: AtomicUsize,
    pub restarts_kill: AtomicUsize,
    pub joins: AtomicUsize,
    pub removals: AtomicUsize,
    pub reloads: AtomicUsize,
    pub etcd_restarts: AtomicUsize,
    pub quiets: AtomicUsize,
    pub rounds: AtomicUsize,
    pub session_dips: AtomicUsize,
}

/// One kind of violation: how often it was found and the first one's evidence.
pub struct Violation {
    pub kind: String,
    /// Rounds or events that found it.
    pub count: usize,
    /// The first one's evidence.
    pub first: String,
}

/// Everything the test thread, the pod workers and the checker share.
pub struct Shared {
    pub state: Mutex<State>,
    pub etcd: Mutex<EtcdCluster>,
    /// Every thread ends.
    pub stop: AtomicBool,
    /// Pod workers stop adding and deleting (a quiet checkpoint).
    pub paused: AtomicBool,
    /// Pod workers delete every pod (the end).
    pub draining: AtomicBool,
    /// Per slot: its pod worker has nothing in flight and no DEL to retry.
    pub idle: Vec<AtomicBool>,
    pub violations: Mutex<Vec<Violation>>,
    pub keep_going: bool,
    pub counts: Counts,
    /// Freeze detection times, as printed.
    pub freezes: Mutex<Vec<String>>,
    /// ADD failures: error code → (count, one sample).
    pub add_errors: Mutex<BTreeMap<String, (usize, String)>>,
    /// Session problems that cleared before they were violations, with one sample.
    pub dips: Mutex<Vec<String>>,
    pub start: Instant,
}

/// Locks, also after a thread panicked while holding the lock (the run is failing
/// then anyway, and the state is still worth reporting).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A copy of the slots and live pods at one moment.
pub struct Snapshot {
    pub at: Instant,
    pub slots: Vec<(Status, u64, Instant, Option<NodeCtl>)>,
    pub pods: BTreeMap<String, (PodRef, String)>,
    pub removed: Vec<(String, Ipv4Addr, Instant)>,
}

impl Shared {
    pub fn new(etcd: EtcdCluster, keep_going: bool) -> Shared {
        let now = Instant::now();
        Shared {
            state: Mutex::new(State {
                slots: (0..NODES)
                    .map(|_| Slot {
                        ctl: None,
                        status: Status::Absent,
                        epoch: 0,
                        settle_until: now,
                    })
                    .collect(),
                pods: BTreeMap::new(),
                removed: Vec::new(),
            }),
            etcd: Mutex::new(etcd),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            idle: (0..NODES).map(|_| AtomicBool::new(false)).collect(),
            violations: Mutex::new(Vec::new()),
            keep_going,
            counts: Counts::default(),
            freezes: Mutex::new(Vec::new()),
            add_errors: Mutex::new(BTreeMap::new()),
            dips: Mutex::new(Vec::new()),
            start: now,
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Records a violation and stops everything; with IPIPD_SOAK_KEEP_GOING=1 the run
    /// goes on, counting violations by kind and keeping the first of each.
    pub fn fail(&self, kind: &str, what: String) {
        self.fail_with(kind, || what);
    }

    /// As [`Shared::fail`], the evidence gathered only when it is kept (the first of its
    /// kind): gathering it reads every node it names again.
    pub fn fail_with(&self, kind: &str, what: impl FnOnce() -> String) {
        let known = lock(&self.violations).iter().any(|x| x.kind == kind);
        let what = (!known).then(what);
        let mut v = lock(&self.violations);
        match (v.iter_mut().find(|x| x.kind == kind), what) {
            (Some(x), _) => x.count += 1,
            (None, what) => {
                let what = what.unwrap_or_default();
                self.event(&format!("VIOLATION ({kind}): {what}"));
                v.push(Violation {
                    kind: kind.to_owned(),
                    count: 1,
                    first: what,
                });
            }
        }
        drop(v);
        if !self.keep_going {
            self.stop.store(true, Relaxed);
        }
    }

    pub fn event(&self, what: &str) {
        println!("[{:6.1} s] {what}", self.start.elapsed().as_secs_f64());
    }

    pub fn set(&self, i: usize, status: Status, settle: Duration) {
        let mut s = lock(&self.state);
        let slot = &mut s.slots[i];
        slot.status = status;
        slot.epoch += 1;
        slot.settle_until = Instant::now() + settle;
    }

    pub fn slot(&self, i: usize) -> (Status, Option<NodeCtl>) {
        let s = lock(&self.state);
        let slot = &s.slots[i];
        (slot.status, slot.ctl.as_ref().map(NodeCtl::handle))
    }

    pub fn running(&self) -> Vec<usize> {
        let s = lock(&self.state);
        (0..NODES)
            .filter(|i| s.slots[*i].status == Status::Running)
            .collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = lock(&self.state);
        Snapshot {
            at: Instant::now(),
            slots: s
                .slots
                .iter()
                .map(|x| {
                    (
                        x.status,
                        x.epoch,
                        x.settle_until,
                        x.ctl.as_ref().map(NodeCtl::handle),
                    )
                })
                .collect(),
            pods: s
                .pods
                .iter()
                .map(|(id, p)| (id.clone(), (p.r.clone(), p.ns.name.clone())))
                .collect(),
            removed: s.removed.clone(),
        }
    }

    /// Marks the pod workers busy until they report idle again (a removed node's worker
    /// has ended and stays idle).
    pub fn reset_idle(&self) {
        let s = lock(&self.state);
        for (slot, idle) in s.slots.iter().zip(&self.idle) {
            if slot.status != Status::Removed {
                idle.store(false, Relaxed);
            }
        }
    }

    pub fn live_pods(&self) -> Vec<PodRef> {
        lock(&self.state)
            .pods
            .values()
            .map(|p| p.r.clone())
            .collect()
    }
}

/// Sets the stop flag when dropped (`true`), or only when its thread panics (`false`):
/// a thread that fails stops the others, and the test thread stops them when it ends.
pub struct StopOnDrop<'a>(pub &'a Shared, pub bool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        if self.1 || std::thread::panicking() {
            self.0.stop.store(true, Relaxed);
        }
    }
}

/// The counts, freezes, refused ADDs, session dips and violations of the run.
pub fn summary(sh: &Shared, seed: u64) -> String {
    let c = &sh.counts;
    let g = |a: &AtomicUsize| a.load(Relaxed);
    let mut s = format!(
        "soak summary (seed {seed}, {:.0} s):\n  pods made {}, pods deleted {}, gone with a removed node {}, ADDs refused {}, DELs retried {}\n  restarts: SIGTERM {}, SIGKILL {}; joins {}; removals {}; reloads {}; etcd member restarts {}\n  quiet checkpoints passed {}; checker rounds {}; session dips that cleared within {:?}: {}\n",
        sh.start.elapsed().as_secs_f64(),
        g(&c.made),
        g(&c.deleted),
        g(&c.gone_with_node),
        g(&c.add_failed),
        g(&c.del_failed),
        g(&c.restarts_term),
        g(&c.restarts_kill),
        g(&c.joins),
        g(&c.removals),
        g(&c.reloads),
        g(&c.etcd_restarts),
        g(&c.quiets),
        g(&c.rounds),
        SESSION_HOLD,
        g(&c.session_dips),
    );
    let freezes = lock(&sh.freezes);
    let _ = writeln!(s, "  freezes detected: {}", freezes.len());
    for f in freezes.iter() {
        let _ = writeln!(s, "    {f}");
    }
    for (code, (n, sample)) in lock(&sh.add_errors).iter() {
        let _ = writeln!(s, "  ADD refused with {code}: {n}× (e.g. {sample})");
    }
    for d in lock(&sh.dips).iter() {
        let _ = writeln!(s, "  session dip: {d}");
    }
    let v = lock(&sh.violations);
    let _ = writeln!(s, "  violations: {}", v.len());
    for x in v.iter() {
        let _ = writeln!(
            s,
            "    {}: {}× ({})",
            x.kind,
            x.count,
            x.first.lines().next().unwrap_or_default()
        );
    }
    s
}
