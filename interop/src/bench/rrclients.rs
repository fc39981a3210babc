//! A route-reflector cluster: two reflectors and N clients with one block each, every
//! client peering with both reflectors and receiving everything (the load generator's
//! `clients` mode). Run with ipipd as both reflectors, then with BIRD 2 as both, on the
//! same load.
//!
//! Each reflector installs what it learns, as a node of the cluster does: ipipd with the
//! default configuration (`kernel.install = true`, IPIP `always` through a stand-in
//! `tunl0`) and only the reflector's role and its peers set; BIRD 2 with a kernel
//! protocol exporting everything. The two reflectors share a cluster id (a redundant
//! pair) and peer with each other as non-clients; clients are `rr client`s and
//! passive towards them (the load generator does not listen).
//!
//! Measured per run: time from the first client UPDATE until every client holds every
//! other client's block from both reflectors (and from the first reflector to finish),
//! until both reflectors' kernels hold every block (the clients keep their sessions up
//! until then; a run where they never do fails), each reflector's peak RSS (VmHWM) and
//! CPU time.
//!
//! Topology: one bridge; reflectors at 10.0.0.1 and 10.0.0.2, the load generator at
//! 10.0.0.3 with the clients' addresses from 10.0.1.1 on the same interface.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::daemons::{bird_command, ipipd_command, listening, Kind};
use super::report::{failed_note, kb_ratio_cell, ratio_cell};
use super::rrfib::kernel_prefixes;
use super::{cpu_time, median, status_kb, Binaries, Sysctl};
use crate::config::{NodeConfig, Peer};
use crate::harness::{wait_until, Lan, Netns, Proc, TempDir};

pub const REFLECTORS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
pub const LOADGEN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
pub const CLIENT_BASE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
/// Calico's default pool; client i announces its i-th /26.
pub const POOL: &str = "101.64.0.0/10";
/// The pair's common cluster id (Calico's usual `routeReflectorClusterID`).
pub const CLUSTER_ID: &str = "244.0.0.1";
const ASN: u32 = 64512;

fn client(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(CLIENT_BASE) + i as u32)
}

/// One run of one reflector kind.
#[derive(Debug, Clone)]
pub struct Sample {
    /// First UPDATE → every client has every other block from both reflectors.
    pub converge_s: f64,
    /// First UPDATE → the same from one reflector (the faster).
    pub first_s: f64,
    /// First UPDATE → both reflectors' kernels hold every block.
    pub kernel_s: f64,
    /// All 2N sessions established, before the clock.
    pub sessions_up_s: f64,
    /// The larger of the two reflectors' VmHWM.
    pub peak_rss_kb: u64,
    /// The same just before the first UPDATE: what the sessions cost with no route.
    pub sessions_rss_kb: u64,
    /// Both reflectors' CPU time from the first connection to convergence.
    pub cpu_s: f64,
    /// The load generator's CPU time from the first UPDATE to convergence.
    pub loadgen_cpu_s: f64,
    /// UPDATEs the clients received from both reflectors, and the socket reads that
    /// took them.
    pub updates: u64,
    pub reads: u64,
}

/// Medians of one reflector kind's runs.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: Kind,
    pub clients: usize,
    pub runs: usize,
    pub converge_s: Option<f64>,
    pub first_s: Option<f64>,
    pub kernel_s: Option<f64>,
    pub sessions_up_s: Option<f64>,
    pub peak_rss_kb: Option<u64>,
    pub sessions_rss_kb: Option<u64>,
    pub cpu_s: Option<f64>,
    pub loadgen_cpu_s: Option<f64>,
    pub updates: Option<f64>,
    pub reads: Option<f64>,
    pub failures: Vec<String>,
}

/// The subset of `loadgen clients`' JSON read here.
#[derive(Debug, Deserialize)]
struct ClientsJson {
    start_unix_ns: u128,
    sessions_up_s: f64,
    reflector_complete_s: Vec<Option<f64>>,
    complete_s: Option<f64>,
    incomplete_sessions: Vec<usize>,
    missing: u64,
    #[serde(default)]
    loadgen_cpu_s: f64,
    #[serde(default)]
    updates: u64,
    #[serde(default)]
    reads: u64,
    #[serde(default)]
    errors: Vec<String>,
}

fn ipipd_conf(me: usize, clients: usize, dir: &TempDir) -> String {
    let a = REFLECTORS[me % 2].to_string();
    let mut c = NodeConfig::bare(&a, &[])
        .name(&format!("rr-{me}"))
        .asn(ASN)
        .pools(&[POOL])
        .no_mesh()
        .control(&dir.join("ipipd.sock"), &dir.join("state"));
    c.bgp.route_reflector_cluster_id = Some(CLUSTER_ID.into());
    c.peers = (0..clients)
        .map(|i| Peer::new(client(i)).passive(true).rr_client())
        .chain([Peer::new(REFLECTORS[(me + 1) % 2])])
        .collect();
    c.toml()
}

fn bird_conf(me: usize, clients: usize, dir: &TempDir) -> String {
    let a = REFLECTORS[me % 2];
    let mut t = format!(
        "log \"{}\" {{ warning, error, fatal, bug }};\nrouter id {a};\nprotocol device {{ }}\n\
         protocol kernel {{ ipv4 {{ import none; export all; }}; }}\n\
         template bgp rrc {{ local {a} as {ASN}; direct; passive on; rr client; rr cluster id {CLUSTER_ID}; ipv4 {{ import all; export all; }}; }}\n\
         protocol bgp mate {{ local {a} as {ASN}; neighbor {} as {ASN}; direct; rr cluster id {CLUSTER_ID}; ipv4 {{ import all; export all; }}; }}\n",
        dir.join("bird.log").display(),
        REFLECTORS[(me + 1) % 2]
    );
    for i in 0..clients {
        let _ = writeln!(
            t,
            "protocol bgp c{i} from rrc {{ neighbor {} as {ASN}; }}",
            client(i)
        );
    }
    t
}

/// A reflector's process and what it was started with.
struct Reflector {
    proc: Proc,
    pid: u32,
    /// Routes in its kernel before the run.
    base: u64,
    _dir: TempDir,
}

fn start(kind: Kind, me: usize, clients: usize, ns: &Netns, bins: &Binaries) -> Result<Reflector> {
    let dir = TempDir::new("rrc")?;
    let log = dir.join("daemon.out");
    let cmd = match kind {
        Kind::Ipipd | Kind::IpipdBaseline => {
            let conf = dir.join("ipipd.toml");
            std::fs::write(&conf, ipipd_conf(me, clients, &dir))?;
            let bin = match (&bins.ipipd_baseline, kind) {
                (Some((path, _)), Kind::IpipdBaseline) => path,
                _ => &bins.ipipd,
            };
            ipipd_command(ns, bin, &conf)
        }
        Kind::Bird => {
            let conf = dir.join("bird.conf");
            std::fs::write(&conf, bird_conf(me, clients, &dir))?;
            bird_command(ns, &conf, &dir.path)
        }
        other => bail!("{} is not a reflector of this benchmark", other.name()),
    };
    let mut proc = Proc::spawn(cmd, kind.name(), &log)?;
    let pid = proc.pid().context("reflector has no pid")?;
    let up = wait_until(Duration::from_secs(30), "the reflector to listen", || {
        listening(ns, 179).then_some(())
    });
    if up.is_err() || !proc.alive() {
        bail!(
            "{} did not start listening: {}",
            kind.name(),
            proc.log_tail(20)
        );
    }
    let base = kernel_prefixes(pid).context("reading the reflector's fib_triestat")?;
    Ok(Reflector {
        proc,
        pid,
        base,
        _dir: dir,
    })
}

/// One run: a fresh bridge, two reflectors of `kind`, the clients' load.
pub fn one(kind: Kind, clients: usize, bins: &Binaries, timeout: Duration) -> Result<Sample> {
    let mut lan = Lan::new()?;
    let mut spaces = Vec::new();
    for a in REFLECTORS {
        let ns = lan.host(&format!("{a}/16"))?;
        ns.add_standin_tunl0()?;
        spaces.push(ns);
    }
    let load = lan.host(&format!("{LOADGEN}/16"))?;
    let mut batch = String::new();
    for i in 0..clients {
        let _ = writeln!(batch, "addr add {}/16 dev eth0", client(i));
    }
    let dir = TempDir::new("rrc-load")?;
    let file = dir.join("addrs.batch");
    std::fs::write(&file, batch)?;
    load.ip(&["-batch", &file.to_string_lossy()])?;

    let mut rrs = Vec::new();
    for (me, ns) in spaces.iter().enumerate() {
        rrs.push(start(kind, me, clients, ns, bins)?);
    }
    // Listening comes before the peers are configured in some daemons.
    std::thread::sleep(Duration::from_millis(500));
    let cpu0: Vec<Duration> = rrs
        .iter()
        .map(|r| cpu_time(r.pid).unwrap_or_default())
        .collect();
    // The clients stay up (and their routes wanted) until both kernels have every
    // block: the poller says so by creating this file.
    let done_file = dir.join("kernels-done");
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (stop, done_file) = (stop.clone(), done_file.clone());
        let want: Vec<(u32, u64)> = rrs
            .iter()
            .map(|r| (r.pid, r.base + clients as u64))
            .collect();
        std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            let mut done = None;
            // The larger reflector's VmHWM over time: what the sessions alone cost is
            // its value just before the first UPDATE.
            let mut hwm: Vec<(SystemTime, u64)> = Vec::new();
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let m = want
                    .iter()
                    .filter_map(|(pid, _)| status_kb(*pid, "VmHWM"))
                    .max();
                hwm.push((SystemTime::now(), m.unwrap_or(0)));
                if want
                    .iter()
                    .all(|(pid, n)| kernel_prefixes(*pid).is_some_and(|k| k >= *n))
                {
                    done = Some(SystemTime::now());
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::fs::write(&done_file, "");
            (done, hwm)
        })
    };
    let mut cmd = load.command(&bins.loadgen);
    cmd.arg("clients");
    for a in REFLECTORS {
        cmd.arg("--reflector").arg(a.to_string());
    }
    cmd.args(["--clients", &clients.to_string()])
        .args(["--client-base", &CLIENT_BASE.to_string()])
        .args(["--pool", POOL, "--len", "26"])
        .args(["--timeout", &timeout.as_secs().to_string()])
        .arg("--hold-until")
        .arg(&done_file);
    let out = cmd.output();
    stop.store(true, Ordering::Relaxed);
    let (kernels_done, hwm) = poller.join().unwrap_or_default();
    let out = out.context("running loadgen clients")?;
    let peak = rrs
        .iter()
        .map(|r| status_kb(r.pid, "VmHWM").unwrap_or(0))
        .max()
        .unwrap_or(0);
    let cpu: Duration = rrs
        .iter()
        .zip(&cpu0)
        .map(|(r, c0)| cpu_time(r.pid).unwrap_or_default().saturating_sub(*c0))
        .sum();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tails = |rrs: &[Reflector]| {
        rrs.iter()
            .map(|r| r.proc.log_tail(10))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let run: ClientsJson = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| {
            format!(
                "loadgen exited with {}: {}{}\nreflectors:\n{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim(),
                tails(&rrs)
            )
        })?;
    let dead = rrs
        .iter_mut()
        .filter_map(|r| (!r.proc.alive()).then_some(()))
        .count();
    let (Some(converge_s), Some(first_s)) = (
        run.complete_s,
        run.reflector_complete_s
            .iter()
            .flatten()
            .copied()
            .reduce(f64::min),
    ) else {
        bail!(
            "{}: not converged: incomplete sessions per reflector {:?}, {} blocks missing{}; errors: {:?}",
            kind.name(),
            run.incomplete_sessions,
            run.missing,
            if dead > 0 { " (a reflector died)" } else { "" },
            run.errors
        );
    };
    let Some(kernels_done) = kernels_done else {
        let held: Vec<u64> = rrs
            .iter()
            .map(|r| kernel_prefixes(r.pid).unwrap_or(0).saturating_sub(r.base))
            .collect();
        bail!(
            "{}: the clients converged but the reflectors' kernels hold {held:?} of {clients} blocks; output:\n{}",
            kind.name(),
            tails(&rrs)
        );
    };
    let start = UNIX_EPOCH + Duration::from_nanos(u64::try_from(run.start_unix_ns).unwrap_or(0));
    let sessions_rss_kb = hwm
        .iter()
        .take_while(|(t, _)| *t <= start)
        .last()
        .map_or(0, |(_, kb)| *kb);
    let kernel_s = kernels_done
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .saturating_sub(run.start_unix_ns) as f64
        / 1e9;
    Ok(Sample {
        converge_s,
        first_s,
        kernel_s,
        sessions_up_s: run.sessions_up_s,
        sessions_rss_kb,
        peak_rss_kb: peak,
        cpu_s: cpu.as_secs_f64(),
        loadgen_cpu_s: run.loadgen_cpu_s,
        updates: run.updates,
        reads: run.reads,
    })
}

/// Every run of each kind (ipipd, its `--ipipd-baseline` build when given, BIRD 2),
/// interleaved, with the neighbour table raised for 3N addresses on one bridge (and
/// restored after).
pub fn run(clients: usize, runs: usize, bins: &Binaries, timeout: Duration) -> Result<Vec<Row>> {
    let _guards = [("1", "8192"), ("2", "32768"), ("3", "65536")]
        .iter()
        .map(|(i, v)| Sysctl::set(&format!("net.ipv4.neigh.default.gc_thresh{i}"), v))
        .collect::<Result<Vec<Sysctl>>>()?;
    let kinds: Vec<Kind> = [Kind::Ipipd, Kind::IpipdBaseline, Kind::Bird]
        .into_iter()
        .filter(|k| *k != Kind::IpipdBaseline || bins.ipipd_baseline.is_some())
        .collect();
    let mut samples: Vec<(Vec<Sample>, Vec<String>)> = vec![Default::default(); kinds.len()];
    for run in 1..=runs.max(1) {
        for (k, (s, f)) in kinds.iter().zip(samples.iter_mut()) {
            let started = Instant::now();
            match one(*k, clients, bins, timeout) {
                Ok(x) => {
                    eprintln!(
                        "  rr-clients {} N={clients} run {run}: converged {:.3} s (first reflector {:.3} s, kernels {:.3} s), sessions up in {:.1} s, peak RSS {:.1} MiB ({:.1} MiB before the first UPDATE), CPU {:.2} s (load generator {:.2} s), {} UPDATEs to the clients in {} reads ({:.0} s in all)",
                        k.name(),
                        x.converge_s,
                        x.first_s,
                        x.kernel_s,
                        x.sessions_up_s,
                        x.peak_rss_kb as f64 / 1024.0,
                        x.sessions_rss_kb as f64 / 1024.0,
                        x.cpu_s,
                        x.loadgen_cpu_s,
                        x.updates,
                        x.reads,
                        started.elapsed().as_secs_f64()
                    );
                    s.push(x);
                }
                Err(e) => {
                    eprintln!(
                        "  rr-clients {} N={clients} run {run} failed: {e:#}",
                        k.name()
                    );
                    f.push(format!("{e:#}"));
                }
            }
        }
    }
    Ok(kinds
        .iter()
        .zip(samples)
        .map(|(k, (s, failures))| Row {
            target: *k,
            clients,
            runs: s.len(),
            converge_s: median(s.iter().map(|x| x.converge_s).collect()),
            first_s: median(s.iter().map(|x| x.first_s).collect()),
            kernel_s: median(s.iter().map(|x| x.kernel_s).collect()),
            sessions_up_s: median(s.iter().map(|x| x.sessions_up_s).collect()),
            peak_rss_kb: median(s.iter().map(|x| x.peak_rss_kb as f64).collect()).map(|v| v as u64),
            sessions_rss_kb: median(s.iter().map(|x| x.sessions_rss_kb as f64).collect())
                .map(|v| v as u64),
            cpu_s: median(s.iter().map(|x| x.cpu_s).collect()),
            loadgen_cpu_s: median(s.iter().map(|x| x.loadgen_cpu_s).collect()),
            updates: median(s.iter().map(|x| x.updates as f64).collect()),
            reads: median(s.iter().map(|x| x.reads as f64).collect()),
            failures,
        })
        .collect())
}

/// ipipd's row over BIRD's: (convergence time, peak RSS) ratios.
pub fn ratios(rows: &[Row]) -> Option<(f64, f64)> {
    let ours = rows.iter().find(|r| r.target == Kind::Ipipd)?;
    let bird = rows.iter().find(|r| r.target == Kind::Bird)?;
    let t = ours.converge_s? / bird.converge_s.filter(|t| *t > 0.0)?;
    let m = ours.peak_rss_kb? as f64 / bird.peak_rss_kb.filter(|m| *m > 0)? as f64;
    Some((t, m))
}

/// The report's section.
pub fn markdown(rows: &[Row], out: &mut String) {
    let Some(first) = rows.first() else { return };
    let n = first.clients;
    let _ = writeln!(
        out,
        "## Route-reflector cluster ({n} clients, 2 reflectors)\n"
    );
    let _ = writeln!(
        out,
        "Two reflectors (a pair with one cluster id, peering with each other) and {n} clients \
         from the load generator, each client from its own address, announcing one /26 to both \
         reflectors and receiving everything. Both reflectors install what they learn: ipipd \
         with the default configuration (`kernel.install = true`, IPIP always through a stand-in \
         tunl0) and only the reflector role and its peers set; BIRD 2 with a kernel protocol \
         exporting everything. Sessions are all up before the clock. Converged: first UPDATE → \
         every client holds every other client's block from both reflectors (first reflector: \
         from one; both kernels: until both reflectors' kernels hold every block, counted from \
         their FIB tries). Peak RSS: the larger reflector VmHWM (and the same just before the first UPDATE, \
         with every session up and no route yet); CPU: both reflectors together, from the first connection; the load generator's \
         from the first UPDATE to convergence, on the same two cores; UPDATEs the clients \
         received from both reflectors, and the socket reads that took them. \
         Medians of the runs, the two daemons in turn.\n"
    );
    let _ = writeln!(out, "| reflectors | clients | converged (s) | vs BIRD 2 | first reflector (s) | both kernels (s) | sessions up (s) | peak RSS per reflector (MiB) | vs BIRD 2 | of which before the first UPDATE (MiB) | CPU, both (s) | load generator CPU (s) | UPDATEs to the clients | socket reads | runs |");
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let bird = rows.iter().find(|r| r.target == Kind::Bird);
    let f = |v: Option<f64>, d: usize| v.map_or_else(|| "—".to_string(), |x| format!("{x:.d$}"));
    for r in rows {
        let tr = ratio_cell(r.converge_s, bird.and_then(|b| b.converge_s));
        let mr = kb_ratio_cell(r.peak_rss_kb, bird.and_then(|b| b.peak_rss_kb));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {tr} | {} | {} | {} | {} | {mr} | {} | {} | {} | {} | {} | {}{} |",
            r.target.name(),
            r.clients,
            f(r.converge_s, 3),
            f(r.first_s, 3),
            f(r.kernel_s, 3),
            f(r.sessions_up_s, 1),
            f(r.peak_rss_kb.map(|k| k as f64 / 1024.0), 1),
            f(r.sessions_rss_kb.map(|k| k as f64 / 1024.0), 1),
            f(r.cpu_s, 2),
            f(r.loadgen_cpu_s, 2),
            f(r.updates, 0),
            f(r.reads, 0),
            r.runs,
            failed_note(&r.failures)
        );
    }
    let _ = writeln!(out);
}

/// The goal line: ≤ 0.5× BIRD 2's convergence time, ≤ 1.0× its RSS.
pub fn goal(rows: &[Row]) -> Option<String> {
    let (t, m) = ratios(rows)?;
    let n = rows.first()?.clients;
    Some(format!(
        "- {n}-client route-reflector cluster, 2 reflectors: ≤ 0.5× BIRD 2's convergence time and ≤ 1.0× its RSS: **{}** (time {t:.2}×, RSS {m:.2}×).",
        if t <= 0.5 && m <= 1.0 { "met" } else { "missed" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_every_client_and_the_other_reflector() {
        let dir = TempDir::new("rrc-conf").unwrap_or_else(|e| panic!("{e}"));
        let i = ipipd_conf(0, 3, &dir);
        let b = bird_conf(1, 3, &dir);
        for a in ["10.0.1.1", "10.0.1.2", "10.0.1.3"] {
            assert!(i.contains(a) && b.contains(a), "{a} missing:\n{i}\n{b}");
        }
        assert!(i.contains("10.0.0.2") && !i.contains("install"), "{i}");
        assert_eq!(i.matches("rr_client = true").count(), 3, "{i}");
        assert!(b.contains("neighbor 10.0.0.1 as 64512") && b.contains("protocol kernel"));
        assert_eq!(b.matches("from rrc").count(), 3, "{b}");
    }

    fn row(target: Kind, t: f64, kb: u64) -> Row {
        Row {
            target,
            clients: 1000,
            runs: 3,
            converge_s: Some(t),
            first_s: Some(t),
            kernel_s: Some(t),
            sessions_up_s: Some(1.0),
            peak_rss_kb: Some(kb),
            sessions_rss_kb: Some(kb / 2),
            cpu_s: Some(1.0),
            loadgen_cpu_s: Some(1.0),
            updates: Some(2e6),
            reads: Some(1e5),
            failures: Vec::new(),
        }
    }

    #[test]
    fn the_goal_line_compares_with_bird() {
        let rows = [row(Kind::Ipipd, 0.4, 9000), row(Kind::Bird, 1.0, 10_000)];
        assert_eq!(ratios(&rows), Some((0.4, 0.9)));
        assert!(goal(&rows).is_some_and(|g| g.contains("**met** (time 0.40×, RSS 0.90×)")));
        let mut md = String::new();
        markdown(&rows, &mut md);
        assert!(md.contains("| ipipd | 1000 | 0.400 | 0.40× |"), "{md}");
        let slow = [row(Kind::Ipipd, 0.6, 9000), row(Kind::Bird, 1.0, 10_000)];
        assert!(goal(&slow).is_some_and(|g| g.contains("**missed**")));
    }
}
