//! The etcd datastore at 1,000 nodes, simulated in one process: a real 3-member etcd
//! (Debian's etcd-server) in namespaces, and N nodes that are ipipd's own datastore
//! code (the crate `datastore`, each node with its own etcd client and connections)
//! registering, watching and claiming, with no kernel, BGP or daemon around them.
//!
//! Each simulated node keeps its view as the daemon's sync does: a full read, then a
//! watch whose changes are applied to the view (`apply`), a full read again after a
//! broken watch, after a quiet [`RESYNC`] whose key counts differ from the view's, and
//! every [`FULL_READ_MAX`]. `reread` is the daemon's behaviour before the
//! watch carried its changes: a full read of the prefix after every burst of changes.
//!
//! - first pod on a new node: the claim (a read of the block keys, three transactions) and the
//!   allocation (one transaction) of the node's first address;
//! - join: a new node registers → its record and its first block are in every other
//!   node's view;
//! - load: etcd's CPU (utime + stime of the three members, from /proc) and its requests
//!   (gRPC calls started, the JSON gateway's included), proposals committed and bytes
//!   sent to clients (every member's /metrics), idle and during a storm of joins.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use datastore::{Attribute, Datastore, EtcdKv, EtcdSettings, NodeRecord, PoolsRecord, Snapshot};
use ipnet::IpNet;

use crate::etcd::EtcdCluster;
use crate::harness::Lan;

const ETCD: [&str; 3] = ["172.29.239.11", "172.29.239.12", "172.29.239.13"];
/// Where the simulated nodes run (one namespace, one process).
const SIM: &str = "172.29.239.100";
const POOL: &str = "10.128.0.0/12";
/// As the daemon: a full read now and then, whatever the watch says.
const RESYNC: Duration = Duration::from_secs(30);
/// The daemon's longest time between full reads, changes or not.
const FULL_READ_MAX: Duration = Duration::from_secs(300);
/// Longest a join may take to reach every view before it counts as not reached.
const VIEW_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Reread,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Apply => "apply",
            Mode::Reread => "reread",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "apply" => Some(Mode::Apply),
            "reread" => Some(Mode::Reread),
            _ => None,
        }
    }
}

/// etcd's work over a window.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub secs: f64,
    /// The three members' CPU, in % of one core (summed).
    pub etcd_cpu_pct: f64,
    /// This process's CPU (the simulated nodes), in % of one core.
    pub sim_cpu_pct: f64,
    /// gRPC calls started per second, every member.
    pub requests_per_s: f64,
    pub proposals_per_s: f64,
    /// Bytes etcd sent to its clients per second, every member (MB/s).
    pub sent_mb_per_s: f64,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub mode: Mode,
    /// Nodes asked for, and nodes that were registered and watching.
    pub target: usize,
    pub nodes: usize,
    pub setup_s: f64,
    /// One join at a time into the full cluster.
    pub first_pod_ms: Vec<f64>,
    pub view_ms: Vec<f64>,
    /// `storm` nodes joining at once.
    pub storm: usize,
    pub storm_first_pod_ms: Vec<f64>,
    pub storm_view_ms: Vec<f64>,
    /// Joins that did not reach every view within [`VIEW_LIMIT`].
    pub unreached: usize,
    pub idle: Load,
    pub storm_load: Load,
    /// Why it stopped short, when it did.
    pub stopped: Option<String>,
}

/// When each pending join reached each view.
#[derive(Default)]
struct Seen {
    /// name → (its first block once claimed, when each watcher's view had both).
    pending: BTreeMap<String, (Option<IpNet>, Vec<Option<Instant>>)>,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn note(seen: &Shared, idx: usize, view: &Snapshot) {
    let now = Instant::now();
    let mut s = lock(seen);
    for (name, (block, times)) in s.pending.iter_mut() {
        let Some(slot) = times.get_mut(idx) else {
            continue;
        };
        if slot.is_some() {
            continue;
        }
        let has_block =
            block.is_some_and(|b| view.blocks.get(&b).is_some_and(|r| r.record.node == *name));
        if has_block && view.nodes.contains_key(name) {
            *slot = Some(now);
        }
    }
}

fn settings(endpoints: &[String]) -> EtcdSettings {
    EtcdSettings {
        endpoints: endpoints.to_vec(),
        ca_file: None,
        cert_file: None,
        key_file: None,
        dial_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
    }
}

fn record(i: usize) -> NodeRecord {
    NodeRecord {
        name: format!("sim-{i}"),
        address: std::net::Ipv4Addr::new(10, 100 + (i >> 16) as u8, (i >> 8) as u8, i as u8),
        address_v6: None,
        asn: 64512,
        port: 179,
        rr_cluster_id: None,
        vxlan_mac: None,
        vxlan_mac_v6: None,
    }
}

/// One node's view, kept current until the process ends; `idx` is its slot in [`Seen`].
async fn watcher(ds: Arc<Datastore<EtcdKv>>, mode: Mode, idx: usize, seen: Shared) {
    loop {
        let mut view = match ds.snapshot().await {
            Ok(v) => v,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        note(&seen, idx, &view);
        let Ok(mut w) = ds.watch(view.revision + 1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let read = Instant::now();
        let mut heard = read;
        while let (Some(quiet), Some(left)) = (
            RESYNC.checked_sub(heard.elapsed()),
            FULL_READ_MAX.checked_sub(read.elapsed()),
        ) {
            let Ok(event) = tokio::time::timeout(quiet.min(left), w.recv()).await else {
                // Quiet: as the daemon, the key count and the latest write, and a full
                // read only if they differ from the view.
                if mode == Mode::Apply && ds.is_current(&view).await.unwrap_or(false) {
                    heard = Instant::now();
                    continue;
                }
                break;
            };
            heard = Instant::now();
            match event {
                Some(datastore::WatchEvent::Changed { revision, changes }) => match mode {
                    Mode::Apply => view.apply(ds.keys(), revision, &changes),
                    Mode::Reread => {
                        // One read per burst, as the daemon did.
                        while w.try_recv().is_ok() {}
                        match ds.snapshot().await {
                            Ok(v) => view = v,
                            Err(_) => break,
                        }
                    }
                },
                _ => break,
            }
            note(&seen, idx, &view);
        }
    }
}

/// A node's first pod: the claim of a block and the first address in it. The block is
/// noted as the join's before the allocation is written: that write reaches every
/// view after the claim's, so no view checks the join before it knows the block.
async fn first_pod(
    ds: &Datastore<EtcdKv>,
    name: &str,
    pools: &PoolsRecord,
    seen: &Shared,
) -> Result<(IpNet, Duration)> {
    let pool: IpNet = POOL.parse()?;
    let started = Instant::now();
    let block = ds.claim(name, &pools.layouts(), &pool).await?;
    claimed(seen, name, block);
    let attr = Attribute {
        handle: format!("{name}-pod0.eth0"),
        node: name.to_owned(),
        namespace: Some("default".into()),
        pod: Some("pod0".into()),
        interface: Some("cali0".into()),
        network: None,
        time: 0,
    };
    ds.allocate(&block, &attr, |_| false)
        .await?
        .context("a fresh block without a free address")?;
    Ok((block, started.elapsed()))
}

/// A node that joins: registers, starts watching, takes its first pod's address.
async fn join(
    endpoints: &[String],
    i: usize,
    mode: Mode,
    pools: &PoolsRecord,
    seen: &Shared,
    watchers: &Arc<Mutex<usize>>,
) -> Result<(IpNet, Duration)> {
    let ds = Arc::new(Datastore::new(EtcdKv::new(&settings(endpoints))?, "/ipipd"));
    let r = record(i);
    ds.register(&r).await?;
    let out = first_pod(&ds, &r.name, pools, seen).await?;
    let idx = {
        let mut n = watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *n += 1;
        *n - 1
    };
    tokio::spawn(watcher(ds, mode, idx, seen.clone()));
    Ok(out)
}

/// Register → in every view, for each of `names`, once each has its block.
async fn views_reached(seen: &Shared, started: &BTreeMap<String, Instant>) -> (Vec<f64>, usize) {
    let deadline = Instant::now() + VIEW_LIMIT;
    loop {
        let done = lock(seen)
            .pending
            .values()
            .all(|(_, t)| t.iter().all(Option::is_some));
        if done || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut s = lock(seen);
    let mut ms = Vec::new();
    let mut unreached = 0;
    for (name, (_, times)) in std::mem::take(&mut s.pending) {
        let last = times.iter().copied().collect::<Option<Vec<Instant>>>();
        match (last.and_then(|t| t.into_iter().max()), started.get(&name)) {
            (Some(last), Some(t0)) => {
                ms.push(last.saturating_duration_since(*t0).as_secs_f64() * 1000.0)
            }
            _ => unreached += 1,
        }
    }
    (ms, unreached)
}

/// [`join`] for each node index of `nodes`, each on a task of its own, all at once.
fn spawn_joins(
    nodes: impl Iterator<Item = usize>,
    endpoints: &[String],
    mode: Mode,
    pools: &PoolsRecord,
    seen: &Shared,
    watchers: &Arc<Mutex<usize>>,
) -> Vec<tokio::task::JoinHandle<Result<(IpNet, Duration)>>> {
    nodes
        .map(|i| {
            let (e, p, s, w) = (
                endpoints.to_vec(),
                pools.clone(),
                seen.clone(),
                watchers.clone(),
            );
            tokio::spawn(async move { join(&e, i, mode, &p, &s, &w).await })
        })
        .collect()
}

fn expect(seen: &Shared, name: &str, watchers: usize) {
    lock(seen)
        .pending
        .insert(name.to_owned(), (None, vec![None; watchers]));
}

fn claimed(seen: &Shared, name: &str, block: IpNet) {
    if let Some(p) = lock(seen).pending.get_mut(name) {
        p.0 = Some(block);
    }
}

/// CPU seconds (utime + stime) of a process, from /proc.
fn cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces), 1-based 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // USER_HZ is 100 on Linux.
    f.iter().sum::<f64>() / 100.0
}

struct Counters {
    at: Instant,
    etcd_cpu: f64,
    sim_cpu: f64,
    metrics: [f64; 3],
}

fn counters(etcd: &EtcdCluster) -> Result<Counters> {
    let pids: Vec<u32> = etcd.members.iter().filter_map(|m| m.pid()).collect();
    let metrics = crate::bench::datastore::scrape(
        etcd,
        &[
            "grpc_server_started_total",
            "etcd_server_proposals_committed_total",
            "etcd_network_client_grpc_sent_bytes_total",
        ],
    )?;
    Ok(Counters {
        at: Instant::now(),
        etcd_cpu: pids.iter().map(|p| cpu_s(*p)).sum(),
        sim_cpu: cpu_s(std::process::id()),
        metrics: [metrics[0], metrics[1], metrics[2]],
    })
}

fn load(a: &Counters, b: &Counters) -> Load {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    Load {
        secs,
        etcd_cpu_pct: (b.etcd_cpu - a.etcd_cpu) / secs * 100.0,
        sim_cpu_pct: (b.sim_cpu - a.sim_cpu) / secs * 100.0,
        requests_per_s: (b.metrics[0] - a.metrics[0]) / secs,
        // Every member counts each commit: one member's share.
        proposals_per_s: (b.metrics[1] - a.metrics[1]) / secs / ETCD.len() as f64,
        sent_mb_per_s: (b.metrics[2] - a.metrics[2]) / secs / 1e6,
    }
}

/// `nodes` simulated nodes, then `joins` joins one at a time, `idle` of quiet, a storm
/// of `storm` joins at once; setup stops early (and says so) past `budget`.
pub fn run(
    nodes: usize,
    joins: usize,
    storm: usize,
    idle: Duration,
    mode: Mode,
    budget: Duration,
) -> Result<Row> {
    crate::etcd::require_etcd();
    let mut lan = Lan::new()?;
    let etcd = EtcdCluster::start(&mut lan, &ETCD)?;
    let sim = lan.host(&format!("{SIM}/24"))?;
    let endpoints = etcd.endpoints();
    let name = sim.name.clone();
    crate::rawpeer::netns::in_netns(&name, || {
        // Threads the runtime starts inherit this thread's namespace.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(simulate(
            &etcd, &endpoints, nodes, joins, storm, idle, mode, budget,
        ))
    })
}

#[allow(clippy::too_many_arguments)]
async fn simulate(
    etcd: &EtcdCluster,
    endpoints: &[String],
    nodes: usize,
    joins: usize,
    storm: usize,
    idle: Duration,
    mode: Mode,
    budget: Duration,
) -> Result<Row> {
    let pools = PoolsRecord {
        pools: vec![POOL.parse()?],
        block_size_v4: 26,
        block_size_v6: 122,
        block_sizes: BTreeMap::new(),
    };
    let admin = Datastore::new(EtcdKv::new(&settings(endpoints))?, "/ipipd");
    admin.ensure_pools(&pools).await?;
    let seen: Shared = Arc::default();
    let watchers = Arc::new(Mutex::new(0usize));
    let mut row = Row {
        mode,
        target: nodes,
        nodes: 0,
        setup_s: 0.0,
        first_pod_ms: Vec::new(),
        view_ms: Vec::new(),
        storm,
        storm_first_pod_ms: Vec::new(),
        storm_view_ms: Vec::new(),
        unreached: 0,
        idle: Load::default(),
        storm_load: Load::default(),
        stopped: None,
    };
    // The cluster, 25 nodes at a time.
    let setup = Instant::now();
    let mut next = 0usize;
    while next < nodes {
        if setup.elapsed() > budget {
            row.stopped = Some(format!(
                "setup stopped at {next} of {nodes} nodes after {:.0} s (budget {} s)",
                setup.elapsed().as_secs_f64(),
                budget.as_secs()
            ));
            break;
        }
        let batch: Vec<usize> = (next..nodes.min(next + 25)).collect();
        let tasks = spawn_joins(
            batch.iter().copied(),
            endpoints,
            mode,
            &pools,
            &seen,
            &watchers,
        );
        for t in tasks {
            if let Err(e) = t.await.context("a node task")? {
                row.stopped = Some(format!("setup stopped at {next} of {nodes} nodes: {e:#}"));
            }
        }
        if row.stopped.is_some() {
            break;
        }
        next += batch.len();
        if next.is_multiple_of(100) {
            eprintln!(
                "  {next} simulated nodes ({:.0} s)",
                setup.elapsed().as_secs_f64()
            );
        }
    }
    row.nodes = next;
    row.setup_s = setup.elapsed().as_secs_f64();
    // Quiet, then the idle window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a = counters(etcd)?;
    tokio::time::sleep(idle).await;
    let b = counters(etcd)?;
    row.idle = load(&a, &b);
    // Joins one at a time.
    let mut i = next;
    for _ in 0..joins {
        let r = record(i);
        let n = *watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        expect(&seen, &r.name, n);
        let started = BTreeMap::from([(r.name.clone(), Instant::now())]);
        let (_, took) = join(endpoints, i, mode, &pools, &seen, &watchers).await?;
        row.first_pod_ms.push(took.as_secs_f64() * 1000.0);
        let (ms, unreached) = views_reached(&seen, &started).await;
        row.view_ms.extend(ms);
        row.unreached += unreached;
        i += 1;
    }
    // The storm: `storm` nodes at once.
    let n = *watchers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut started = BTreeMap::new();
    for k in i..i + storm {
        let r = record(k);
        expect(&seen, &r.name, n);
        started.insert(r.name, Instant::now());
    }
    let a = counters(etcd)?;
    let tasks = spawn_joins(i..i + storm, endpoints, mode, &pools, &seen, &watchers);
    for t in tasks {
        match t.await.context("a joining node's task")? {
            Ok((_, took)) => row.storm_first_pod_ms.push(took.as_secs_f64() * 1000.0),
            Err(e) => {
                row.stopped
                    .get_or_insert_with(|| format!("a storm join failed: {e:#}"));
            }
        }
    }
    let (ms, unreached) = views_reached(&seen, &started).await;
    let b = counters(etcd)?;
    row.storm_load = load(&a, &b);
    row.storm_view_ms = ms;
    row.unreached += unreached;
    Ok(row)
}

fn pct(v: &[f64], q: f64) -> String {
    crate::bench::percentile(v.to_vec(), q).map_or_else(|| "—".into(), |x| format!("{x:.0}"))
}

/// The report's section.
pub fn markdown(rows: &[Row], out: &mut String) {
    use std::fmt::Write;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## etcd datastore at scale (simulated nodes)\n\nA 3-member etcd 3.4 in namespaces and N simulated nodes in one process: ipipd's datastore code (register, watch, claim, allocate), each node with its own etcd client, no kernel or BGP. `apply`: a node applies the watch's changes to its view (this build's daemon); `reread`: a full read of the prefix after each burst of changes (the daemon before). First pod: a new node's claim (a read of the block keys and three transactions) and first allocation. View: the node's registration → its record and block in every other node's view. CPU in % of one core; requests are gRPC calls started on every member (the JSON gateway's included), MB/s what etcd sent its clients.\n\n| mode | nodes | setup | first pod p50 / p99 (ms) | view p50 / p99 (ms) | storm | storm first pod p50 / p99 (ms) | storm view p50 / p99 (ms) | not reached | idle: etcd CPU, sim CPU, req/s, MB/s | storm: etcd CPU, sim CPU, req/s, proposals/s, MB/s |\n|---|---:|---:|---|---|---:|---|---|---:|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} of {} | {:.0} s | {} / {} | {} / {} | {} | {} / {} | {} / {} | {} | {:.1} %, {:.1} %, {:.0}, {:.2} | {:.1} %, {:.1} %, {:.0}, {:.0}, {:.2} |",
            r.mode.name(),
            r.nodes,
            r.target,
            r.setup_s,
            pct(&r.first_pod_ms, 0.5),
            pct(&r.first_pod_ms, 0.99),
            pct(&r.view_ms, 0.5),
            pct(&r.view_ms, 0.99),
            r.storm,
            pct(&r.storm_first_pod_ms, 0.5),
            pct(&r.storm_first_pod_ms, 0.99),
            pct(&r.storm_view_ms, 0.5),
            pct(&r.storm_view_ms, 0.99),
            r.unreached,
            r.idle.etcd_cpu_pct,
            r.idle.sim_cpu_pct,
            r.idle.requests_per_s,
            r.idle.sent_mb_per_s,
            r.storm_load.etcd_cpu_pct,
            r.storm_load.sim_cpu_pct,
            r.storm_load.requests_per_s,
            r.storm_load.proposals_per_s,
            r.storm_load.sent_mb_per_s,
        );
    }
    for r in rows.iter().filter(|r| r.stopped.is_some()) {
        let _ = writeln!(
            out,
            "\n{} at {} nodes: {}",
            r.mode.name(),
            r.target,
            r.stopped.as_deref().unwrap_or_default()
        );
    }
    let _ = writeln!(out);
}
