//! Full-mesh scale: N daemons on one machine, each in its own namespace on one bridge,
//! each announcing one /26 to all the others and installing theirs (ipipd with a
//! stand-in tunl0 and the default configuration as deployed; a labelled second row with
//! `connect_retry_time = 1`). Measured: time from
//! the first daemon's start until every node's kernel has every other block (read from
//! `/proc/PID/net/route`, which needs no process per poll), the resident memory of each
//! daemon, and the CPU each uses while idle over a fixed period afterwards.
//!
//! The same for BIRD 2 as a baseline, configured as Calico's node-to-node mesh: a kernel
//! protocol exporting the learned blocks, the blocks as static blackholes, the mesh one-way
//! (`passive on` towards every higher address: only the higher address connects), with
//! `connect delay time 1` and `connect retry time 3` (shorter than Calico's own 2 s and
//! 5 s, so the baseline is, if anything, flattered), and ipipd's hold and keepalive
//! times (9 s, 3 s) so that idle CPU is compared at an equal keepalive rate.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{cpu_time, median, status_kb, Binaries};
use crate::config::NodeConfig;
use crate::harness::{Lan, Netns, Proc, TempDir};

/// What one mesh size measured.
#[derive(Debug, Clone)]
pub struct MeshRow {
    pub daemon: String,
    pub nodes: usize,
    /// From the first start until every node has every block.
    pub converge_s: Option<f64>,
    /// Every run's `converge_s` when there were several (this row is the median run).
    pub converge_runs: Vec<Option<f64>>,
    /// Seconds all the starts took (process spawns, one after the other).
    pub start_spread_s: f64,
    pub rss_kb_median: u64,
    pub rss_kb_max: u64,
    /// CPU per daemon while idle, percent of one core.
    pub idle_cpu_pct_median: f64,
    pub idle_cpu_pct_max: f64,
    /// All daemons together (per-daemon figures are a few clock ticks each).
    pub idle_cpu_pct_total: f64,
    pub idle_s: f64,
    /// Nodes that never converged.
    pub missing: usize,
}

/// Which daemon the mesh runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshDaemon {
    /// ipipd with the default configuration.
    Ipipd,
    /// ipipd with `connect_retry_time = 1`.
    IpipdTuned,
    /// The `--ipipd-baseline` build, default configuration.
    IpipdBaseline,
    Bird,
}

fn address(i: usize) -> String {
    format!("172.30.{}.{}", i / 200, i % 200 + 1)
}

fn block(i: usize) -> String {
    format!("101.64.{}.{}/26", i / 4, (i % 4) * 64)
}

/// Routes with a gateway in the main table, the learned blocks (both daemons install
/// them `via` the peer; the default route and connected routes have none).
fn gateway_routes(pid: u32) -> Option<usize> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/route")).ok()?;
    Some(
        text.lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(1).is_some_and(|d| d.len() == 8) && f.get(2).is_some_and(|g| *g != "00000000")
            })
            .count(),
    )
}

fn ipipd_conf(i: usize, n: usize, dir: &TempDir, tuned: bool) -> String {
    let nodes: Vec<String> = (0..n).map(address).collect();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut c = NodeConfig::bare(&address(i), &[&block(i)])
        .name(&format!("mesh-{i}"))
        .asn(64512)
        .pools(&["101.64.0.0/10"])
        .mesh(&nodes)
        .control(&dir.join("ipipd.sock"), &dir.join("state"));
    if tuned {
        c.bgp.connect_retry_time = Some(1);
    }
    c.toml()
}

fn bird_conf(i: usize, n: usize, dir: &TempDir) -> String {
    let a = address(i);
    let mut t = format!(
        "log \"{}\" {{ warning, error, fatal, bug }};\nrouter id {a};\nprotocol device {{ }}\n\
         protocol kernel {{ ipv4 {{ import none; export filter {{ if proto = \"blocks\" then reject; accept; }}; }}; }}\n\
         protocol static blocks {{ ipv4; route {} blackhole; }}\n",
        dir.join("bird.log").display(),
        block(i)
    );
    for j in (0..n).filter(|j| *j != i) {
        // Addresses grow with the index: the peer at j > i connects to us.
        let passive = if j > i { "passive on; " } else { "" };
        t.push_str(&format!(
            "protocol bgp n{j} {{ local {a} as 64512; neighbor {} as 64512; direct; {passive}connect delay time 1; connect retry time 3; hold time 9; keepalive time 3; ipv4 {{ import all; export where proto = \"blocks\"; }}; }}\n",
            address(j)
        ));
    }
    t
}

struct Node {
    proc: Proc,
    pid: u32,
    _dir: TempDir,
}

/// Runs one mesh of `n` nodes, then measures memory and idle CPU over `idle`.
pub fn run(daemon: MeshDaemon, bins: &Binaries, n: usize, idle: Duration) -> Result<MeshRow> {
    let name = match daemon {
        MeshDaemon::Ipipd => "ipipd".to_string(),
        MeshDaemon::IpipdTuned => "ipipd, connect_retry_time = 1".to_string(),
        MeshDaemon::IpipdBaseline => match &bins.ipipd_baseline {
            Some((_, label)) => format!("ipipd ({label})"),
            None => bail!("no baseline ipipd"),
        },
        MeshDaemon::Bird => "BIRD 2 (Calico one-way mesh)".to_string(),
    };
    let ipipd = match (&bins.ipipd_baseline, daemon) {
        (Some((path, _)), MeshDaemon::IpipdBaseline) => path.clone(),
        _ => bins.ipipd.clone(),
    };
    let mut lan = Lan::new()?;
    let mut hosts: Vec<Netns> = Vec::new();
    for i in 0..n {
        let ns = lan.host(&format!("{}/16", address(i)))?;
        if daemon != MeshDaemon::Bird {
            ns.add_standin_tunl0()?;
        }
        hosts.push(ns);
    }
    let mut nodes: Vec<Node> = Vec::new();
    let start = Instant::now();
    for (i, ns) in hosts.iter().enumerate() {
        let dir = TempDir::new("mesh")?;
        let log = dir.join("daemon.out");
        let cmd = match daemon {
            MeshDaemon::Ipipd | MeshDaemon::IpipdTuned | MeshDaemon::IpipdBaseline => {
                let conf = dir.join("ipipd.toml");
                let tuned = daemon == MeshDaemon::IpipdTuned;
                std::fs::write(&conf, ipipd_conf(i, n, &dir, tuned))?;
                super::daemons::ipipd_command(ns, &ipipd, &conf)
            }
            MeshDaemon::Bird => {
                let conf = dir.join("bird.conf");
                std::fs::write(&conf, bird_conf(i, n, &dir))?;
                super::daemons::bird_command(ns, &conf, &dir.path)
            }
        };
        let proc = Proc::spawn(cmd, &name, &log)?;
        let pid = proc.pid().context("no pid")?;
        nodes.push(Node {
            proc,
            pid,
            _dir: dir,
        });
    }
    let start_spread_s = start.elapsed().as_secs_f64();
    let mut done = vec![false; n];
    let limit = Duration::from_secs(120 + n as u64);
    let converge_s = loop {
        for (d, node) in done.iter_mut().zip(&nodes) {
            if !*d {
                *d = gateway_routes(node.pid).is_some_and(|c| c >= n - 1);
            }
        }
        if done.iter().all(|d| *d) {
            break Some(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let missing = done.iter().filter(|d| !**d).count();
    for x in nodes.iter_mut() {
        if !x.proc.alive() {
            bail!("{name} mesh of {n}: a daemon died: {}", x.proc.log_tail(10));
        }
    }
    eprintln!("  mesh {name} N={n}: converged in {converge_s:?} s (starts took {start_spread_s:.2} s); idle for {idle:?}");
    // Let the start-up work (End-of-RIB, stale cleanup) finish before the idle window.
    std::thread::sleep(Duration::from_secs(5));
    let cpu0: Vec<Duration> = nodes
        .iter()
        .map(|x| cpu_time(x.pid).unwrap_or_default())
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(idle);
    let span = t0.elapsed().as_secs_f64();
    let cpu: Vec<f64> = nodes
        .iter()
        .zip(&cpu0)
        .map(|(x, c0)| {
            cpu_time(x.pid)
                .unwrap_or_default()
                .saturating_sub(*c0)
                .as_secs_f64()
                / span
                * 100.0
        })
        .collect();
    let rss: Vec<f64> = nodes
        .iter()
        .map(|x| status_kb(x.pid, "VmRSS").unwrap_or(0) as f64)
        .collect();
    let row = MeshRow {
        daemon: name,
        nodes: n,
        converge_s,
        converge_runs: Vec::new(),
        start_spread_s,
        rss_kb_median: median(rss.clone()).unwrap_or(0.0) as u64,
        rss_kb_max: rss.iter().copied().fold(0.0, f64::max) as u64,
        idle_cpu_pct_median: median(cpu.clone()).unwrap_or(0.0),
        idle_cpu_pct_max: cpu.iter().copied().fold(0.0, f64::max),
        idle_cpu_pct_total: cpu.iter().sum(),
        idle_s: span,
        missing,
    };
    // Stop every daemon at once, then wait: one by one would take seconds per node.
    for x in &nodes {
        let _ = x.proc.signal("TERM");
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(nodes);
    drop(hosts);
    drop(lan);
    Ok(row)
}

/// The run with the median convergence time (a run that never converged counts as the
/// slowest), carrying every run's time.
pub fn median_run(mut rows: Vec<MeshRow>) -> Option<MeshRow> {
    let all: Vec<Option<f64>> = rows.iter().map(|r| r.converge_s).collect();
    rows.sort_by(|a, b| {
        let key = |r: &MeshRow| r.converge_s.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    let mid = rows.len() / 2;
    let mut row = rows.into_iter().nth(mid)?;
    if all.len() > 1 {
        row.converge_runs = all;
    }
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_blocks_are_unique() {
        let a: std::collections::BTreeSet<String> = (0..300).map(address).collect();
        let b: std::collections::BTreeSet<String> = (0..300).map(block).collect();
        assert_eq!((a.len(), b.len()), (300, 300));
        assert_eq!(block(5), "101.64.1.64/26");
    }

    #[test]
    fn counts_gateway_routes_of_a_live_process() {
        // This process's namespace: whatever it holds, the count is readable.
        assert!(gateway_routes(std::process::id()).is_some());
    }
}
