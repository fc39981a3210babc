//! The soak: the DaemonSet's own configuration (the shipped ConfigMap's ipipd.toml:
//! etcd datastore over TLS, BFD with an external keeper) on six nodes in network
//! namespaces on one bridge, with a real 3-member etcd, for IPIPD_SOAK_S seconds of
//! chaos driven by a seeded PRNG (IPIPD_SOAK_SEED replays its choices):
//!
//! - pods added and deleted through `ipipd-cni` on every node, a few ADDs at once, each
//!   node filling and draining its blocks, so blocks are claimed and released all along;
//! - a sixth node joins; a node is frozen (SIGSTOP of ipipd and its keeper) and BFD must
//!   take it out of every kernel; a node is powered off and removed (`ipipd node remove`);
//! - ipipd restarted with SIGTERM and SIGKILL (its keeper keeps running), reloads every
//!   few seconds (SIGHUP, `ipipd reload`, a rewrite of the shared file), an etcd member
//!   killed and restarted.
//!
//! A checker reads every node (control socket, kernel) and etcd every 1.5 s and fails at
//! the first violation with its evidence (see `interop::soak` for the invariants); quiet
//! checkpoints require the steady state; at the end every pod is deleted and nothing of
//! them may be left. IPIPD_SOAK_KEEP_GOING=1 records the first violation of each kind
//! and runs on (the test still fails), to see every kind in one run. On failure every
//! node's log is copied to `target/soak-logs/seed-N/`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use interop::cni::cali_links;
use interop::config::shipped_configmap_toml;
use interop::etcd::{require_etcd, EtcdCluster, Node, NodeCtl};
use interop::harness::{bgp_routes_json, require_root, strip_ansi, Lan, TempDir};
use interop::soak::{
    checker, clean, converged, describe, lock, mesh_gaps, names, node_address, node_name,
    pod_worker, summary, EtcdView, NodeObs, Shared, Status, StopOnDrop, BLOCK_LEN, FIRST_NODES,
    NODES, PREFIX,
};

const ETCD: [&str; 3] = ["172.29.244.11", "172.29.244.12", "172.29.244.13"];
/// After a restart, join, thaw or removal, sessions (and the removal's effects) get this
/// long before they are required.
const SETTLE: Duration = Duration::from_secs(15);
const SETTLE_LONG: Duration = Duration::from_secs(20);
/// BFD detection is 0.9 s with the shipped 300 ms × 3; the hold time is 90 s. Anything
/// well under 10 s proves that BFD, not the hold timer, took the node out.
const BFD_BOUND: Duration = Duration::from_secs(10);
/// How long the nodes may take to peer with every node at the start and with a newcomer
/// (connect retries are 5 s).
const MESH_LIMIT: Duration = Duration::from_secs(30);
/// How long after the last settle window a quiet cluster may take to reach its steady
/// state: a second or two of work, generous for a loaded two-core machine.
const QUIET_LIMIT: Duration = Duration::from_secs(15);

fn env_u64(name: &str) -> Result<Option<u64>> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().with_context(|| format!("{name}={v}")))
        .transpose()
}

/// The shipped ConfigMap's ipipd.toml with only what a test must change.
fn soak_config(etcd: &EtcdCluster) -> Result<(String, bool)> {
    use toml::Value;
    let mut t: toml::Table = toml::from_str(&shipped_configmap_toml()?)?;
    let tls = etcd.tls.as_ref().context("etcd without TLS")?;
    let ds = t
        .get_mut("datastore")
        .and_then(Value::as_table_mut)
        .context("the ConfigMap has no [datastore]")?;
    ensure!(
        ds.get("kind").and_then(Value::as_str) == Some("etcd"),
        "the ConfigMap's datastore is not etcd: {ds:?}"
    );
    // This test's etcd members and CA, in place of the cluster's.
    let endpoints = etcd.endpoints().into_iter().map(Value::String).collect();
    ds.insert("endpoints".into(), Value::Array(endpoints));
    for (key, path) in [
        ("ca_file", &tls.ca),
        ("cert_file", &tls.client_cert),
        ("key_file", &tls.client_key),
    ] {
        ds.insert(key.into(), Value::String(path.display().to_string()));
    }
    // Releases within the run: an empty block goes back after 10 s instead of 300 s, so
    // nodes that drain and refill give blocks back and claim them again all along.
    ds.insert("block_release_grace".into(), Value::Integer(10));
    // Small blocks (8 addresses, the first one's tunnel address included): a node
    // crosses block boundaries every few pods, so claims, releases and the tunnel
    // address moving between blocks happen often, and concurrent ADDs race for them.
    t.get_mut("cluster")
        .and_then(Value::as_table_mut)
        .context("the ConfigMap has no [cluster]")?
        .insert("block_size".into(), Value::Integer(i64::from(BLOCK_LEN)));
    let bfd = t.get("bfd").and_then(Value::as_table);
    ensure!(
        bfd.and_then(|b| b.get("enabled")).and_then(Value::as_bool) == Some(true),
        "the soak checks BFD detection: the shipped ConfigMap must enable BFD"
    );
    let external = bfd.and_then(|b| b.get("keeper")).and_then(Value::as_str) == Some("external");
    let text = format!(
        "# deploy/kubernetes/ipipd.yaml's ipipd.toml; etcd endpoints and TLS files, block size\n# and release grace changed by the soak test.\n{}",
        toml::to_string(&t)?
    );
    Ok((text, external))
}

// ---------------------------------------------------------------- chaos

struct Chaos<'a> {
    sh: &'a Shared,
    nodes: Vec<Option<Node>>,
    lan: &'a mut Lan,
    config: PathBuf,
    base: String,
    external_keeper: bool,
    rng: fastrand::Rng,
    /// Time spent in quiet checkpoints: chaos time excludes it.
    quiet_total: Duration,
    chaos_start: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Join,
    Quiet,
    Freeze,
    EtcdRestart,
    Remove,
}

impl Chaos<'_> {
    fn elapsed(&self) -> Duration {
        self.chaos_start.elapsed().saturating_sub(self.quiet_total)
    }

    fn node(&mut self, i: usize) -> Result<&mut Node> {
        self.nodes[i]
            .as_mut()
            .with_context(|| format!("no {}", node_name(i)))
    }

    fn pick(&mut self, from: &[usize]) -> Option<usize> {
        (!from.is_empty()).then(|| from[self.rng.usize(..from.len())])
    }

    /// Starts node `i`: its keeper first (the DaemonSet's native sidecar), then ipipd.
    fn start(&mut self, i: usize, settle: Duration) -> Result<()> {
        let mut n = Node::new(self.lan, &self.config, &node_name(i), &node_address(i))?;
        if self.external_keeper {
            n.start_keeper()?;
        }
        n.restart()?;
        {
            let mut s = lock(&self.sh.state);
            s.slots[i].ctl = Some(n.handle());
        }
        self.nodes[i] = Some(n);
        self.sh.set(i, Status::Running, settle);
        Ok(())
    }

    /// A daemon or keeper of a running node that exited by itself is a violation; with
    /// IPIPD_SOAK_KEEP_GOING=1 it is started again, as the DaemonSet would.
    fn check_alive(&mut self) -> Result<()> {
        for i in self.sh.running() {
            let Some(n) = self.nodes[i].as_mut() else {
                continue;
            };
            let daemon = n.daemon_alive();
            let keeper = !self.external_keeper || n.keeper_alive();
            if daemon && keeper {
                continue;
            }
            let keeper_log =
                strip_ansi(&std::fs::read_to_string(&n.keeper_log).unwrap_or_default());
            self.sh.fail(
                "crash",
                format!(
                    "{}'s {} exited by itself; ipipd log:\n{}\nkeeper log:\n{keeper_log}",
                    n.name,
                    if daemon { "BFD keeper" } else { "ipipd" },
                    n.log_tail(40)
                ),
            );
            if self.sh.stopped() {
                return Ok(());
            }
            self.sh.set(i, Status::Down, Duration::ZERO);
            // `stop` only clears the slot of a process that exited already.
            if !keeper {
                n.stop_keeper("KILL").ok();
                n.start_keeper()?;
            }
            if !daemon {
                n.stop("KILL").ok();
                n.restart()?;
            }
            self.sh.set(i, Status::Running, SETTLE);
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<()> {
        let Some(i) = self.pick(&self.sh.running()) else {
            return Ok(());
        };
        let sh = self.sh;
        let c = &sh.counts;
        let sig = if c.restarts_term.load(Relaxed) == 0 {
            "TERM"
        } else if c.restarts_kill.load(Relaxed) == 0 || self.rng.bool() {
            "KILL"
        } else {
            "TERM"
        };
        let down = Duration::from_millis(self.rng.u64(0..2000));
        self.sh.set(i, Status::Down, Duration::ZERO);
        let t = Instant::now();
        let n = self.node(i)?;
        n.stop(sig)
            .with_context(|| format!("{} after SIG{sig}; log:\n{}", n.name, n.log_tail(30)))?;
        std::thread::sleep(down);
        n.restart()?;
        let name = n.name.clone();
        self.sh.set(i, Status::Running, SETTLE);
        let counter = if sig == "TERM" {
            &c.restarts_term
        } else {
            &c.restarts_kill
        };
        counter.fetch_add(1, Relaxed);
        self.sh.event(&format!(
            "SIG{sig} {name}'s ipipd (keeper untouched): answering again after {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    fn reload(&mut self, n: usize) -> Result<()> {
        let Some(i) = self.pick(&self.sh.running()) else {
            return Ok(());
        };
        let how = match self.rng.u8(0..10) {
            0..=5 => {
                self.node(i)?.signal("HUP")?;
                format!("SIGHUP to {}", node_name(i))
            }
            6..=7 => {
                let sh = self.sh;
                let node = self.node(i)?;
                let out = node.cli(&["reload"])?;
                if !out.status.success() {
                    sh.fail(
                        "reload",
                        format!(
                            "`ipipd reload` on {} of an unchanged file failed: {}{}",
                            node.name,
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        ),
                    );
                }
                format!("`ipipd reload` on {}", node_name(i))
            }
            _ => {
                // A ConfigMap update that changes nothing: every node sees the file change.
                let tmp = self.config.with_extension("new");
                std::fs::write(&tmp, format!("{}\n# soak rewrite {n}\n", self.base))?;
                std::fs::rename(&tmp, &self.config)?;
                "config file rewritten (a comment)".to_owned()
            }
        };
        self.sh.counts.reloads.fetch_add(1, Relaxed);
        self.sh.event(&format!("reload {n}: {how}"));
        Ok(())
    }

    fn freeze(&mut self) -> Result<()> {
        let running = self.sh.running();
        if running.len() < 3 {
            return Ok(());
        }
        // Without etcd's answer any running node will do (its blocks are then not checked).
        let etcd = EtcdView::read(&lock(&self.sh.etcd), PREFIX).unwrap_or_default();
        let with_blocks: Vec<usize> = running
            .iter()
            .copied()
            .filter(|i| !etcd.confirmed_of(&node_name(*i)).is_empty())
            .collect();
        let Some(v) = self.pick(if with_blocks.is_empty() {
            &running
        } else {
            &with_blocks
        }) else {
            return Ok(());
        };
        let (name, address) = (node_name(v), node_address(v));
        let blocks: Vec<String> = etcd
            .confirmed_of(&name)
            .iter()
            .map(ToString::to_string)
            .collect();
        let observers: Vec<NodeCtl> = running
            .iter()
            .filter(|i| **i != v)
            .filter_map(|i| self.nodes[*i].as_ref().map(|n| n.handle()))
            .collect();
        self.sh.set(v, Status::Frozen, Duration::ZERO);
        let keeper = self.external_keeper;
        let n = self.node(v)?;
        n.signal("STOP")?;
        if keeper {
            n.signal_keeper("STOP")?;
        }
        let t0 = Instant::now();
        self.sh.event(&format!(
            "SIGSTOP {name} (ipipd and keeper), blocks {blocks:?}"
        ));
        let peer: IpAddr = address.parse()?;
        // Per observer: when its BFD session to the frozen node left Up, and when the
        // node's blocks left its kernel; observers without such a session at all.
        let mut bfd_down: BTreeMap<String, Duration> = BTreeMap::new();
        let mut routes_gone: BTreeMap<String, Duration> = BTreeMap::new();
        let mut no_session: BTreeSet<String> = BTreeSet::new();
        let all = observers.len();
        while t0.elapsed() < BFD_BOUND && (bfd_down.len() < all || routes_gone.len() < all) {
            for o in &observers {
                if !bfd_down.contains_key(&o.name) {
                    if let Ok(sessions) = o.bfd() {
                        match sessions.iter().find(|s| s.peer == peer) {
                            Some(s) if s.state != "Up" => {
                                bfd_down.insert(o.name.clone(), t0.elapsed());
                            }
                            Some(_) => {}
                            None => {
                                no_session.insert(o.name.clone());
                            }
                        }
                    }
                }
                if !routes_gone.contains_key(&o.name) {
                    if let Ok(routes) = bgp_routes_json(&o.ns) {
                        if !routes.iter().any(|r| blocks.contains(&r.dst)) {
                            routes_gone.insert(o.name.clone(), t0.elapsed());
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let detected = bfd_down.len() == all && routes_gone.len() == all;
        let worst =
            |m: &BTreeMap<String, Duration>| m.values().max().map_or(0.0, Duration::as_secs_f64);
        if detected {
            let line = format!(
                "{name} frozen: BFD Down at all {} peers within {:.2} s, its {} blocks gone from their kernels within {:.2} s",
                observers.len(),
                worst(&bfd_down),
                blocks.len(),
                worst(&routes_gone)
            );
            self.sh.event(&line);
            lock(&self.sh.freezes).push(line);
        } else {
            let mut e = format!(
                "{name} frozen (SIGSTOP) {:.1} s ago and not taken out by BFD within {BFD_BOUND:?}: BFD session left Up at {bfd_down:?}, no BFD session to it at {no_session:?}, its blocks {blocks:?} gone from the kernels of {routes_gone:?}\n",
                t0.elapsed().as_secs_f64()
            );
            for o in &observers {
                if let Ok(obs) = NodeObs::read(o) {
                    e.push_str(&describe(&obs, Some(o)));
                }
            }
            self.sh.fail("freeze", e);
        }
        // Frozen a little longer, then thawed: it comes back as it was.
        std::thread::sleep(Duration::from_secs(3));
        let n = self.node(v)?;
        if keeper {
            n.signal_keeper("CONT")?;
        }
        n.signal("CONT")?;
        self.sh.set(v, Status::Running, SETTLE_LONG);
        self.sh.event(&format!("SIGCONT {name}"));
        Ok(())
    }

    fn etcd_restart(&mut self) -> Result<()> {
        let m = self.rng.usize(..ETCD.len());
        lock(&self.sh.etcd).kill(m)?;
        self.sh.event(&format!("etcd member m{m} killed"));
        std::thread::sleep(Duration::from_secs(3));
        lock(&self.sh.etcd).restart(m)?;
        self.sh.counts.etcd_restarts.fetch_add(1, Relaxed);
        self.sh.event(&format!("etcd member m{m} restarted"));
        Ok(())
    }

    /// A node powered off (its pods go with it), then decommissioned from another node.
    fn remove(&mut self) -> Result<()> {
        let running = self.sh.running();
        if running.len() < 4 {
            return Ok(());
        }
        let Some(v) = self.pick(&running) else {
            return Ok(());
        };
        let others: Vec<usize> = running.into_iter().filter(|i| *i != v).collect();
        let Some(by) = self.pick(&others) else {
            return Ok(());
        };
        let name = node_name(v);
        let gone: Vec<interop::soak::Pod> = {
            let mut s = lock(&self.sh.state);
            s.slots[v].status = Status::Removed;
            s.slots[v].epoch += 1;
            let ids: Vec<String> = s
                .pods
                .values()
                .filter(|p| p.r.node == name)
                .map(|p| p.r.id.clone())
                .collect();
            ids.iter().filter_map(|id| s.pods.remove(id)).collect()
        };
        let n = self.node(v)?;
        n.stop("TERM")?;
        n.stop_keeper("TERM")?;
        let remover = self.nodes[by]
            .as_ref()
            .map(|n| n.handle())
            .context("no remover")?;
        let t = Instant::now();
        loop {
            let out = remover.cli(&["node", "remove", &name])?;
            if out.status.success() {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!(
                    "`ipipd node remove {name}` on {} kept failing: {}{}",
                    remover.name,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        self.nodes[v] = None;
        self.sh.counts.gone_with_node.fetch_add(gone.len(), Relaxed);
        drop(gone);
        {
            let mut s = lock(&self.sh.state);
            s.slots[v].ctl = None;
            s.removed.push((
                name.clone(),
                node_address(v).parse()?,
                Instant::now() + SETTLE_LONG,
            ));
        }
        self.sh.counts.removals.fetch_add(1, Relaxed);
        self.sh.event(&format!(
            "{name} powered off and removed with `ipipd node remove` on {}",
            remover.name
        ));
        Ok(())
    }

    /// Waits until every pod worker is idle (nothing in flight, no DEL left to retry).
    fn wait_idle(&self, what: &str, limit: Duration) -> Result<()> {
        let t = Instant::now();
        while !self.sh.idle.iter().all(|i| i.load(Relaxed)) {
            if self.sh.stopped() {
                return Ok(());
            }
            if t.elapsed() > limit {
                let busy: Vec<String> = (0..NODES)
                    .filter(|i| !self.sh.idle[*i].load(Relaxed))
                    .map(node_name)
                    .collect();
                bail!("{what}: the pod workers of {busy:?} still busy after {limit:?} (DELs failing?)");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// After the start and a join, before any other fault (a reload would make a node
    /// that missed a newcomer catch up): every running pair Established with BFD Up.
    fn wait_mesh(&mut self, label: &str) -> Result<()> {
        let t = Instant::now();
        while !self.sh.stopped() {
            let ctls: Vec<NodeCtl> = self
                .sh
                .running()
                .iter()
                .filter_map(|i| self.nodes[*i].as_ref().map(|n| n.handle()))
                .collect();
            let read: Result<Vec<NodeObs>> = ctls.iter().map(NodeObs::read).collect();
            let gaps = match &read {
                Ok(nodes) => mesh_gaps(nodes),
                Err(e) => vec![format!("reading: {e:#}")],
            };
            if gaps.is_empty() {
                self.sh.event(&format!(
                    "{label}: BGP Established and BFD Up between all {} nodes after {:.1} s",
                    ctls.len(),
                    t.elapsed().as_secs_f64()
                ));
                break;
            }
            if t.elapsed() > MESH_LIMIT {
                let mut e = format!(
                    "{label}: not a full mesh with BFD Up after {MESH_LIMIT:?}:\n{}\n",
                    gaps.join("\n")
                );
                let first = |name: &str| gaps.iter().any(|g| g.starts_with(&format!("{name} ")));
                for (o, c) in read.iter().flatten().zip(&ctls) {
                    if first(&o.name) {
                        e.push_str(&describe(o, Some(c)));
                    }
                }
                self.sh.fail("mesh", e);
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    /// Pods and faults paused; the cluster must reach the steady state.
    fn quiet(&mut self, label: &str) -> Result<()> {
        let t = Instant::now();
        self.sh.reset_idle();
        self.sh.paused.store(true, Relaxed);
        self.wait_idle(label, Duration::from_secs(90))?;
        let settle = {
            let s = lock(&self.sh.state);
            s.slots
                .iter()
                .filter(|x| x.status == Status::Running)
                .map(|x| x.settle_until)
                .max()
        };
        if let Some(until) = settle {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        let t_settled = Instant::now();
        // What differed at first: printed when the steady state took its time.
        let mut first_diff: Option<String> = None;
        while !self.sh.stopped() {
            let ctls: Vec<NodeCtl> = self
                .sh
                .running()
                .iter()
                .filter_map(|i| self.nodes[*i].as_ref().map(|n| n.handle()))
                .collect();
            let read: Result<Vec<NodeObs>> = ctls.iter().map(NodeObs::read).collect();
            let etcd = EtcdView::read(&lock(&self.sh.etcd), PREFIX);
            let pods = self.sh.live_pods();
            let diff = match (&read, &etcd) {
                (Ok(nodes), Ok(etcd)) => match converged(nodes, etcd, &pods, BLOCK_LEN) {
                    Ok(()) => {
                        self.sh.event(&format!(
                            "quiet checkpoint {label}: steady state {:.1} s after the last settle window ({} nodes, {} pods, {} blocks)",
                            t_settled.elapsed().as_secs_f64(),
                            nodes.len(),
                            pods.len(),
                            etcd.blocks.len()
                        ));
                        self.sh.counts.quiets.fetch_add(1, Relaxed);
                        if let Some(d) =
                            first_diff.filter(|_| t_settled.elapsed() > Duration::from_secs(3))
                        {
                            let head: Vec<&str> = d.lines().take(10).collect();
                            println!("    before that:\n    {}", head.join("\n    "));
                        }
                        break;
                    }
                    Err(diff) => diff,
                },
                (r, e) => format!("reading: {:?} {:?}", r.as_ref().err(), e.as_ref().err()),
            };
            first_diff.get_or_insert_with(|| diff.clone());
            if t_settled.elapsed() > QUIET_LIMIT {
                let mut e = format!(
                    "quiet checkpoint {label}: no steady state {QUIET_LIMIT:?} after the last settle window:\n{diff}"
                );
                // The nodes the differences are about: each line starts with one.
                let about = |name: &str| {
                    diff.lines()
                        .any(|l| names(l.split(':').next().unwrap_or_default(), name))
                };
                for (o, c) in read.iter().flatten().zip(&ctls) {
                    if about(&o.name) {
                        e.push_str(&describe(o, Some(c)));
                    }
                }
                self.sh.fail("quiet", e);
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.quiet_total += t.elapsed();
        self.sh.paused.store(false, Relaxed);
        Ok(())
    }

    /// Every pod deleted; nothing of them may be left.
    fn finish(&mut self) -> Result<()> {
        self.sh.reset_idle();
        self.sh.draining.store(true, Relaxed);
        self.sh.paused.store(false, Relaxed);
        self.wait_idle("deleting every pod", Duration::from_secs(120))?;
        ensure!(
            self.sh.live_pods().is_empty() || self.sh.stopped(),
            "pods left after the drain"
        );
        let t = Instant::now();
        loop {
            let ctls: Vec<NodeCtl> = self
                .sh
                .running()
                .iter()
                .filter_map(|i| self.nodes[*i].as_ref().map(|n| n.handle()))
                .collect();
            let mut seen = Vec::new();
            for c in &ctls {
                seen.push((NodeObs::read(c)?, cali_links(&c.ns)));
            }
            match clean(&seen) {
                Ok(()) => {
                    self.sh.event(&format!(
                        "every pod deleted: no allocation, veth or workload route left on {} nodes",
                        seen.len()
                    ));
                    return Ok(());
                }
                Err(d) if t.elapsed() > Duration::from_secs(20) => {
                    self.sh
                        .fail("leftovers", format!("after deleting every pod:\n{d}"));
                    return Ok(());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    fn run(&mut self, duration: Duration) -> Result<()> {
        let at = |f: f64| duration.mul_f64(f);
        let mut plan: VecDeque<(Duration, Event)> = VecDeque::from([
            (at(0.15), Event::Join),
            (at(0.30), Event::Quiet),
            (at(0.40), Event::Freeze),
            (at(0.52), Event::EtcdRestart),
            (at(0.62), Event::Quiet),
            (at(0.70), Event::Remove),
            (at(0.82), Event::Freeze),
        ]);
        self.wait_mesh(&format!("{FIRST_NODES} nodes started"))?;
        self.chaos_start = Instant::now();
        let mut next_restart = Duration::from_secs(self.rng.u64(10..20));
        let mut next_reload = Duration::from_millis(self.rng.u64(1000..3000));
        let mut reloads = 0;
        while self.elapsed() < duration && !self.sh.stopped() {
            self.check_alive()?;
            let now = self.elapsed();
            if plan.front().is_some_and(|(t, _)| *t <= now) {
                if let Some((_, ev)) = plan.pop_front() {
                    match ev {
                        Event::Join => {
                            let i = FIRST_NODES;
                            self.start(i, SETTLE_LONG)?;
                            self.sh.counts.joins.fetch_add(1, Relaxed);
                            self.sh.event(&format!("{} joined", node_name(i)));
                            self.wait_mesh(&format!("{} joined", node_name(i)))?;
                        }
                        Event::Quiet => {
                            let label = format!("at {:.0} s", now.as_secs_f64());
                            self.quiet(&label)?;
                        }
                        Event::Freeze => self.freeze()?,
                        Event::EtcdRestart => self.etcd_restart()?,
                        Event::Remove => self.remove()?,
                    }
                }
            } else if now >= next_restart {
                self.restart()?;
                next_restart = self.elapsed() + Duration::from_secs(self.rng.u64(10..20));
            } else if now >= next_reload {
                reloads += 1;
                self.reload(reloads)?;
                next_reload = self.elapsed() + Duration::from_millis(self.rng.u64(1000..3000));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.sh.stopped() {
            return Ok(());
        }
        self.quiet("at the end")?;
        if self.sh.stopped() {
            return Ok(());
        }
        self.finish()
    }
}

/// Keeps every node's logs when the soak failed: the test's directories go with it.
fn keep_logs(nodes: &[Option<Node>], seed: u64) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join(format!("soak-logs/seed-{seed}"));
    std::fs::create_dir_all(&dir).ok()?;
    for n in nodes.iter().flatten() {
        let _ = std::fs::copy(&n.log, dir.join(format!("{}.log", n.name)));
        let _ = std::fs::copy(&n.keeper_log, dir.join(format!("{}-keeper.log", n.name)));
    }
    Some(dir)
}

#[test]
fn soak() -> Result<()> {
    require_root();
    require_etcd();
    let seed = env_u64("IPIPD_SOAK_SEED")?.unwrap_or_else(|| fastrand::u64(..));
    let secs = env_u64("IPIPD_SOAK_S")?.unwrap_or(240);
    println!("soak: seed {seed} (IPIPD_SOAK_SEED={seed} replays the same choices), {secs} s of chaos (IPIPD_SOAK_S)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut lan = Lan::new()?;
    let etcd = EtcdCluster::start_tls(&mut lan, &ETCD)?;
    let dir = TempDir::new("soak")?;
    let config = dir.join("ipipd.toml");
    let (base, external_keeper) = soak_config(&etcd)?;
    std::fs::write(&config, &base)?;
    let keep_going = std::env::var_os("IPIPD_SOAK_KEEP_GOING").is_some_and(|v| v == "1");
    let sh = Shared::new(etcd, keep_going);
    let worker_seeds: Vec<u64> = (0..NODES).map(|_| rng.u64(..)).collect();
    let mut chaos = Chaos {
        sh: &sh,
        nodes: (0..NODES).map(|_| None).collect(),
        lan: &mut lan,
        config,
        base,
        external_keeper,
        rng,
        quiet_total: Duration::ZERO,
        chaos_start: Instant::now(),
    };
    for i in 0..FIRST_NODES {
        chaos.start(i, SETTLE_LONG)?;
    }
    sh.event(&format!(
        "{FIRST_NODES} nodes started (keeper external: {external_keeper})"
    ));
    let outcome = std::thread::scope(|s| {
        let sh = &sh;
        s.spawn(move || checker(sh));
        for (i, seed) in worker_seeds.into_iter().enumerate() {
            s.spawn(move || pod_worker(sh, i, seed));
        }
        let _stop = StopOnDrop(sh, true);
        let r = chaos.run(Duration::from_secs(secs));
        if let Err(e) = &r {
            sh.fail("chaos", format!("a fault action failed: {e:#}"));
            sh.stop.store(true, Relaxed);
        }
        r
    });
    let report = summary(&sh, seed);
    println!("{report}");
    let violations: Vec<String> = lock(&sh.violations)
        .iter()
        .map(|v| format!("[{}] {}", v.kind, v.first))
        .collect();
    if !violations.is_empty() {
        let logs = keep_logs(&chaos.nodes, seed)
            .map(|d| format!("every node's log: {}", d.display()))
            .unwrap_or_default();
        bail!(
            "soak violation (seed {seed}):\n{}\n{report}{logs}",
            violations.join("\n")
        );
    }
    outcome
}
