//! Full-mesh scale: N daemons on one machine, each in its own namespace on one bridge,
//! each announcing one /26 to all the others and installing theirs (ipipd with a
//! stand-in tunl0 and the default configuration as deployed, kernel writes on; a labelled
//! second row with `connect_retry_time = 1`). Measured: time from the first daemon's start
//! until every node's kernel holds every other node's block, each checked by prefix and
//! mask with a gateway (read from `/proc/PID/net/route` of a process in that namespace,
//! which needs no process per poll), the resident memory of each daemon, and the CPU each
//! uses while idle over a fixed period afterwards. A mesh that does not converge within
//! its limit says how far it got: nodes complete and blocks in kernels out of N × (N − 1).
//!
//! What a large N needs of the machine is checked before anything starts
//! ([`check_limits`]): bridge ports, open files, and the neighbour table, which is one
//! table for every namespace (N × (N − 1) entries; each mesh raises it for its run).
//!
//! The same for BIRD 2 as a baseline, configured as Calico's node-to-node mesh: a kernel
//! protocol exporting the learned blocks, the blocks as static blackholes, the mesh one-way
//! (`passive on` towards every higher address: only the higher address connects), with
//! `connect delay time 1` and `connect retry time 3` (shorter than Calico's own 2 s and
//! 5 s, so the baseline is, if anything, flattered), and ipipd's hold and keepalive
//! times (9 s, 3 s) so that idle CPU is compared at an equal keepalive rate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{cpu_time, median, status_kb, Binaries, Sysctl};
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
    /// Other nodes' blocks found in the kernels when the wait ended, of `blocks_wanted`
    /// (N × (N − 1)): how far a mesh that did not converge got.
    pub blocks_found: usize,
    pub blocks_wanted: usize,
    /// When half of the nodes had every block (seconds from the first start).
    pub half_nodes_s: Option<f64>,
    /// The wait's limit, seconds.
    pub limit_s: f64,
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

/// The largest mesh the harness can address: one bridge holds at most 1,024 ports
/// (`BR_MAX_PORTS`), and [`block`] runs out of third octets at 1,024 nodes.
pub const MAX_NODES: usize = 1023;

/// Node `i`'s block as `/proc/net/route` writes it: destination and mask, each the
/// address's bytes in memory order read as a hex u32, side by side in one u64.
fn route_key(i: usize) -> u64 {
    let word = |a: std::net::Ipv4Addr| u64::from(u32::from_ne_bytes(a.octets()));
    let net = std::net::Ipv4Addr::new(101, 64, (i / 4) as u8, ((i % 4) * 64) as u8);
    word(net) << 32 | word(std::net::Ipv4Addr::new(255, 255, 255, 192))
}

/// How many of the mesh's blocks (`index`: key → node) other than node `own`'s the
/// kernel of `pid`'s namespace holds through a gateway (both daemons install them `via`
/// the peer; the node's own block is a blackhole and does not count). Called for N nodes
/// every poll, so it parses without allocating per line.
fn blocks_held(pid: u32, index: &HashMap<u64, usize>, own: usize) -> Option<usize> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/route")).ok()?;
    let mut seen = vec![false; index.len()];
    for l in text.lines().skip(1) {
        let mut f = l.split_whitespace();
        let (Some(dest), Some(gw), Some(mask)) = (f.nth(1), f.next(), f.nth(4)) else {
            continue;
        };
        if gw == "00000000" {
            continue;
        }
        let (Ok(d), Ok(m)) = (u32::from_str_radix(dest, 16), u32::from_str_radix(mask, 16)) else {
            continue;
        };
        if let Some(i) = index.get(&(u64::from(d) << 32 | u64::from(m))) {
            if *i != own {
                if let Some(s) = seen.get_mut(*i) {
                    *s = true;
                }
            }
        }
    }
    Some(seen.iter().filter(|s| **s).count())
}

/// `/proc/self/limits`' soft "Max open files" (the daemons inherit it).
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Neighbour table thresholds (`gc_thresh1..3`) for a mesh of `n`: every namespace
/// resolves every other node's address, and the kernel counts all namespaces' entries
/// against one limit (65,536 is less than the 89,700 a 300-node mesh needs).
pub fn neighbour_thresholds(n: usize) -> [u64; 3] {
    let entries = (n * n.saturating_sub(1)) as u64;
    [
        entries.max(8192),
        (2 * entries).max(32768),
        (4 * entries).max(65536),
    ]
}

/// Raises the neighbour table thresholds that are below what a mesh of `n` needs, for
/// as long as the guards live. Set per mesh, right before it starts: the table is one
/// for the whole machine, and another run on a shared machine may have set it since.
pub fn raise_neighbour_limits(n: usize) -> Result<Vec<Sysctl>> {
    let mut guards = Vec::new();
    for (i, want) in neighbour_thresholds(n).iter().enumerate() {
        let key = format!("net.ipv4.neigh.default.gc_thresh{}", i + 1);
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let have: u64 = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {key}"))?
            .trim()
            .parse()
            .with_context(|| format!("reading {key}"))?;
        if have < *want {
            guards.push(Sysctl::set(&key, &want.to_string())?);
        }
    }
    Ok(guards)
}

/// Fails, saying which, when this machine cannot hold a mesh of `n` as the harness
/// builds it.
pub fn check_limits(n: usize) -> Result<()> {
    if n > MAX_NODES {
        bail!(
            "a mesh of {n}: one bridge holds at most {} hosts",
            MAX_NODES
        );
    }
    // A daemon holds a socket per peer, plus listeners, netlink, logs and the control socket.
    let want = 2 * n as u64 + 64;
    match open_files_limit() {
        Some(have) if have < want => bail!(
            "a mesh of {n} needs {want} open files per daemon; the limit is {have} (ulimit -n)"
        ),
        _ => {}
    }
    let gc3: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let need = (n * n.saturating_sub(1)) as u64;
    if gc3 < need {
        bail!("a mesh of {n} needs {need} neighbour entries; gc_thresh3 is {gc3}");
    }
    Ok(())
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
/// `limit` bounds the wait for convergence (default: 120 s + 1 s per node).
pub fn run(
    daemon: MeshDaemon,
    bins: &Binaries,
    n: usize,
    idle: Duration,
    limit: Option<Duration>,
) -> Result<MeshRow> {
    let _neighbours = raise_neighbour_limits(n)?;
    check_limits(n)?;
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
    let index: HashMap<u64, usize> = (0..n).map(|i| (route_key(i), i)).collect();
    let mut held = vec![0usize; n];
    let limit = limit.unwrap_or(Duration::from_secs(120 + n as u64));
    // Reading N route tables is work for the two cores the daemons share: at large N,
    // read less often (every 50 ms up to 100 nodes, 250 ms at 500).
    let every = Duration::from_millis((n as u64 / 2).max(50));
    let mut half_nodes_s = None;
    let converge_s = loop {
        for (own, (h, node)) in held.iter_mut().zip(&nodes).enumerate() {
            if *h < n - 1 {
                *h = blocks_held(node.pid, &index, own).unwrap_or(*h);
            }
        }
        let complete = held.iter().filter(|h| **h >= n - 1).count();
        if half_nodes_s.is_none() && 2 * complete >= n {
            half_nodes_s = Some(start.elapsed().as_secs_f64());
        }
        if complete == n {
            break Some(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(every);
    };
    let missing = held.iter().filter(|h| **h < n - 1).count();
    let blocks_found: usize = held.iter().sum();
    if converge_s.is_none() {
        eprintln!(
            "  mesh {name} N={n}: not converged after {limit:?}: {} of {n} nodes complete, {blocks_found} of {} blocks in kernels",
            n - missing,
            n * (n - 1)
        );
    }
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
        blocks_found,
        blocks_wanted: n * (n - 1),
        half_nodes_s,
        limit_s: limit.as_secs_f64(),
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
    fn reads_the_route_table_of_a_live_process() {
        // This process's namespace: whatever it holds, the table is readable.
        let index: HashMap<u64, usize> = (0..3).map(|i| (route_key(i), i)).collect();
        assert!(blocks_held(std::process::id(), &index, 0).is_some());
    }

    #[test]
    fn block_keys_are_written_as_proc_net_route_writes_them() {
        // 101.64.1.64/26 in memory order on a little-endian machine.
        if cfg!(target_endian = "little") {
            assert_eq!(route_key(5), 0x4001_4065_C0FF_FFFF);
        }
    }

    #[test]
    fn thresholds_grow_with_the_mesh() {
        assert_eq!(neighbour_thresholds(100), [9900, 32768, 65536]);
        assert_eq!(neighbour_thresholds(500), [249_500, 499_000, 998_000]);
        assert!(check_limits(MAX_NODES + 1).is_err());
    }
}
