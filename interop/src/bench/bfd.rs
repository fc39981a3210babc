//! CPU of 100 BFD sessions at 100 ms: ipipd (daemon plus its BFD keeper) against BIRD 2
//! (one process, BFD in its own thread), the node under test in one namespace, the
//! same responders for both.
//!
//! One BIRD 2 cannot be the other end of 100 sessions with one node: it keys its BFD
//! neighbours by remote address. Nor can FRR's bfdd with 100 addresses on one
//! interface: its session lookup falls back to ignoring the local address, so
//! `peer NODE local-address R2` finds R1's session. It keys by interface too, though:
//! the responder is one bfdd (no bgpd sessions) in a second namespace with 100
//! interfaces on the bridge, ri holding Ri, and one `peer NODE local-address Ri
//! interface ri` session on each, 100 ms transmit and receive, multiplier 3. The node under test has 100 passive BGP
//! peers (the responder addresses, which run no BGP: no BGP traffic, no connect
//! attempts) with BFD on each, 100 ms × 3; ipipd and BIRD get the same peers.
//!
//! Measured: once all 100 sessions are Up at 100 ms at the node under test (ipipd's
//! `show bfd --json`, BIRD's `show bfd sessions`) and a settle period has passed, the
//! user+system CPU time of the node under test over a fixed idle window. A run that does
//! not reach 100 Up fails; it gives no figure.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{cpu_time, median};
use crate::bird::{self, Bird};
use crate::config::Bfd;
use crate::frr::Frr;
use crate::harness::{wait_until, Lan, Netns};
use crate::ipipd::{Ipipd, NodeConfig};

const NODE: &str = "172.29.243.1";
const BLOCK: &str = "101.80.0.0/26";
/// Sessions have to come Up from 1 s slow-start intervals; 100 of them take a while.
const UP_LIMIT: Duration = Duration::from_secs(60);
/// After the last session is Up: the poll sequences to 100 ms are done everywhere.
const SETTLE: Duration = Duration::from_secs(3);

/// Responder address `i` (0-based), on the same /24 as the node.
fn responder(i: usize) -> String {
    format!("172.29.243.{}", 11 + i)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ipipd,
    Bird,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Ipipd => "ipipd (daemon + BFD keeper)",
            Target::Bird => "BIRD 2",
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Sample {
    /// CPU of the node under test over the window, seconds.
    pub cpu_s: f64,
    /// Of which ipipd's BFD keeper (None for BIRD).
    pub keeper_s: Option<f64>,
    /// The responder's (bfdd's) CPU over the same window.
    pub responder_s: f64,
    pub window_s: f64,
    /// From the node's start until all sessions were Up at 100 ms.
    pub up_s: f64,
    /// Sessions that changed state during the window (their "since" moved) or were
    /// not Up at its end: each went down and, mostly, came back.
    pub flapped: usize,
}

impl Sample {
    /// Percent of one core.
    pub fn cpu_pct(&self) -> f64 {
        self.cpu_s / self.window_s * 100.0
    }
}

/// One target's runs.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: Target,
    pub sessions: usize,
    pub interval_ms: u32,
    pub samples: Vec<Sample>,
    pub failures: Vec<String>,
}

impl Row {
    pub fn cpu_pct(&self) -> Option<f64> {
        median(self.samples.iter().map(Sample::cpu_pct).collect())
    }
    pub fn keeper_pct(&self) -> Option<f64> {
        median(
            self.samples
                .iter()
                .filter_map(|s| s.keeper_s.map(|k| k / s.window_s * 100.0))
                .collect(),
        )
    }
    pub fn responder_pct(&self) -> Option<f64> {
        median(
            self.samples
                .iter()
                .map(|s| s.responder_s / s.window_s * 100.0)
                .collect(),
        )
    }
    pub fn up_s(&self) -> Option<f64> {
        median(self.samples.iter().map(|s| s.up_s).collect())
    }
}

/// FRR's bfdd (with zebra, which it takes interface and VRF state from; bgpd idle) in
/// `ns`, with a 100 ms × 3 session to the node from each responder address.
fn responder_config(sessions: usize, interval_ms: u32) -> Vec<String> {
    let mut lines = vec!["bfd".to_owned()];
    for i in 0..sessions {
        lines.push(format!(
            "peer {NODE} local-address {} interface r{i}",
            responder(i)
        ));
        lines.push(format!("receive-interval {interval_ms}"));
        lines.push(format!("transmit-interval {interval_ms}"));
        lines.push("detect-multiplier 3".to_owned());
        lines.push("exit".to_owned());
    }
    lines
}

fn ipipd_config(sessions: usize, interval_ms: u32) -> String {
    let mut c = NodeConfig::new(NODE, BLOCK).no_mesh();
    for i in 0..sessions {
        c = c.peer(&responder(i), |mut p| {
            p.bfd = Some(true);
            p.passive(true)
        });
    }
    // Sessions per peer only: the [bfd] defaults are off, the timers set here.
    c.bfd = Some(Bfd {
        enabled: Some(false),
        interval_ms: Some(interval_ms),
        multiplier: Some(3),
        keeper: None,
    });
    c.toml()
}

fn bird_config(sessions: usize, interval_ms: u32) -> String {
    let mut t = format!(
        "{}protocol bfd {{\n  interface \"eth0\" {{ min rx interval {interval_ms} ms; min tx interval {interval_ms} ms; multiplier 3; }};\n}}\n",
        bird::conf_base(NODE, &[BLOCK])
    );
    for i in 0..sessions {
        t.push_str(&bird::conf_peer(
            &format!("r{i}"),
            NODE,
            &responder(i),
            "passive on;\n  bfd on;",
        ));
    }
    t
}

/// Sessions Up at `interval_ms` in ipipd's `show bfd --json`.
fn ipipd_up(d: &Ipipd<'_>, interval_ms: u32) -> Result<usize> {
    let out = d.cli(&["show", "bfd", "--json"])?;
    ensure!(
        out.status.success(),
        "show bfd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<api::protocol::BfdJson> =
        serde_json::from_slice(&out.stdout).context("show bfd --json")?;
    Ok(list
        .iter()
        .filter(|s| {
            s.state == "Up" && s.remote_state == "Up" && s.interval_ms == f64::from(interval_ms)
        })
        .count())
}

/// Sessions Up at `interval_ms` in `birdc show bfd sessions`: lines of address,
/// interface, state, since, interval, timeout.
fn bird_up(b: &Bird<'_>, interval_ms: u32) -> Result<usize> {
    let text = b.birdc(&["show", "bfd", "sessions"])?;
    let want = format!("{:.3}", f64::from(interval_ms) / 1000.0);
    Ok(text
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(2) == Some(&"Up") && f.iter().rev().nth(1) == Some(&want.as_str())
        })
        .count())
}

/// The BFD keeper an ipipd started: the `ipipd bfd-keeper` process whose socket is in
/// that daemon's state directory.
fn keeper_pid(d: &Ipipd<'_>) -> Option<u32> {
    let socket = d.dir.join("state").join("bfd.sock");
    let socket = socket.to_string_lossy();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (args.iter().any(|a| a == "bfd-keeper") && args.iter().any(|a| *a == socket)).then_some(pid)
    })
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One run for `target`: everything set up from nothing and removed afterwards.
pub fn one(target: Target, sessions: usize, interval_ms: u32, window: Duration) -> Result<Sample> {
    let mut lan = Lan::new()?;
    let node = lan.host(&format!("{NODE}/24"))?;
    node.ip(&["link", "set", "lo", "up"])?;
    let resp = Netns::new("bfdr")?;
    resp.ip(&["link", "set", "lo", "up"])?;
    // Each address answers ARP only on its own interface, so that a packet to Ri
    // arrives on ri, where bfdd looks for Ri's session.
    for scope in ["all", "default"] {
        resp.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), "1")?;
        resp.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "2")?;
        resp.sysctl(&format!("net.ipv4.conf.{scope}.rp_filter"), "0")?;
    }
    for i in 0..sessions {
        lan.plug(
            &resp,
            &format!("r{i}"),
            Some(&format!("{}/24", responder(i))),
        )?;
    }
    let frr = Frr::start_with_bfd(&resp, "hostname bgpd\n")?;
    let lines = responder_config(sessions, interval_ms);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    frr.configure(&refs)?;
    let bfdd = frr
        .bfdd
        .as_ref()
        .and_then(|p| p.pid())
        .context("bfdd not running")?;

    let started = Instant::now();
    let nut = match target {
        Target::Ipipd => {
            node.add_standin_tunl0()?;
            let d = Ipipd::start(&node, &ipipd_config(sessions, interval_ms))?;
            // Found before the wait, so that a failed run ends it too.
            let keeper = wait_until(Duration::from_secs(10), "ipipd's BFD keeper", || {
                keeper_pid(&d)
            })?;
            Nut::Ipipd(d, KeeperGuard(keeper))
        }
        Target::Bird => Nut::Bird(Bird::start(&node, &bird_config(sessions, interval_ms))?),
    };
    wait_until(
        UP_LIMIT,
        &format!("{sessions} BFD sessions Up at {}", target.name()),
        || (nut.up(interval_ms).ok()? == sessions).then_some(()),
    )
    .with_context(|| {
        format!(
            "{} of {sessions} Up at {interval_ms} ms; the responder's view:\n{}",
            nut.up(interval_ms).unwrap_or(0),
            frr.vtysh("show bfd peers brief").unwrap_or_default()
        )
    })?;
    let up_s = secs(started.elapsed());
    std::thread::sleep(SETTLE);
    let pids = nut.pids()?;
    let keeper = nut.keeper();
    let cpu = |pids: &[u32]| -> Result<f64> {
        pids.iter()
            .map(|p| cpu_time(*p).map(secs).context("reading /proc/PID/stat"))
            .sum()
    };
    let since_before = nut.since()?;
    let (t0, c0, k0, r0) = (
        Instant::now(),
        cpu(&pids)?,
        keeper.map(|k| cpu(&[k])).transpose()?,
        cpu(&[bfdd])?,
    );
    std::thread::sleep(window);
    let (c1, k1, r1) = (
        cpu(&pids)?,
        keeper.map(|k| cpu(&[k])).transpose()?,
        cpu(&[bfdd])?,
    );
    let window_s = secs(t0.elapsed());
    // A session that went down during the window is counted, not hidden: the window
    // still measured the daemon with its sessions, most of them Up at 100 ms.
    let since_after = nut.since()?;
    let up = nut.up(interval_ms)?;
    let flapped = since_before
        .iter()
        .filter(|(peer, t)| since_after.get(*peer) != Some(*t))
        .count()
        .max(sessions - up.min(sessions));
    drop(nut);
    drop(frr);
    Ok(Sample {
        cpu_s: c1 - c0,
        keeper_s: k0.zip(k1).map(|(a, b)| b - a),
        responder_s: r1 - r0,
        window_s,
        up_s,
        flapped,
    })
}

/// The node under test.
enum Nut<'a> {
    /// Fields drop in order: the daemon stops before its keeper is ended, so that it
    /// does not start another.
    Ipipd(Ipipd<'a>, KeeperGuard),
    Bird(Bird<'a>),
}

impl Nut<'_> {
    fn up(&self, interval_ms: u32) -> Result<usize> {
        match self {
            Nut::Ipipd(d, _) => ipipd_up(d, interval_ms),
            Nut::Bird(b) => bird_up(b, interval_ms),
        }
    }

    /// Each session's last state change, as the daemon shows it.
    fn since(&self) -> Result<std::collections::BTreeMap<String, String>> {
        Ok(match self {
            Nut::Ipipd(d, _) => {
                let out = d.cli(&["show", "bfd", "--json"])?;
                serde_json::from_slice::<Vec<api::protocol::BfdJson>>(&out.stdout)
                    .context("show bfd --json")?
                    .into_iter()
                    .map(|s| (s.peer.to_string(), s.since))
                    .collect()
            }
            // Lines of address, interface, state, since, interval, timeout.
            Nut::Bird(b) => b
                .birdc(&["show", "bfd", "sessions"])?
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let peer: std::net::Ipv4Addr = f.first()?.parse().ok()?;
                    Some((peer.to_string(), f.get(3)?.to_string()))
                })
                .collect(),
        })
    }

    /// The processes whose CPU counts.
    fn pids(&self) -> Result<Vec<u32>> {
        match self {
            Nut::Ipipd(d, k) => Ok(vec![
                d.proc
                    .as_ref()
                    .and_then(|p| p.pid())
                    .context("ipipd not running")?,
                k.0,
            ]),
            Nut::Bird(b) => Ok(vec![b
                .proc
                .as_ref()
                .and_then(|p| p.pid())
                .context("bird not running")?]),
        }
    }

    fn keeper(&self) -> Option<u32> {
        match self {
            Nut::Ipipd(_, k) => Some(k.0),
            Nut::Bird(_) => None,
        }
    }
}

/// Ends ipipd's BFD keeper by pid (it is detached from the daemon's process group).
struct KeeperGuard(u32);

impl Drop for KeeperGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// `runs` runs of each target, interleaved (ipipd, BIRD, ipipd, ...).
pub fn run(sessions: usize, interval_ms: u32, window: Duration, runs: usize) -> Vec<Row> {
    let mut rows: Vec<Row> = [Target::Ipipd, Target::Bird]
        .into_iter()
        .map(|target| Row {
            target,
            sessions,
            interval_ms,
            samples: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    for run in 1..=runs.max(1) {
        for row in rows.iter_mut() {
            eprintln!(
                "BFD CPU: {} with {sessions} sessions at {interval_ms} ms, run {run}",
                row.target.name()
            );
            match one(row.target, sessions, interval_ms, window) {
                Ok(s) => {
                    eprintln!(
                        "  {:.3} % of a core over {:.0} s (all Up after {:.1} s; responder {:.3} %; sessions that went down meanwhile: {})",
                        s.cpu_pct(),
                        s.window_s,
                        s.up_s,
                        s.responder_s / s.window_s * 100.0,
                        s.flapped
                    );
                    row.samples.push(s);
                }
                Err(e) => {
                    eprintln!("  failed: {e:#}");
                    row.failures.push(format!("run {run}: {e:#}"));
                }
            }
        }
    }
    rows
}

/// ipipd's median CPU over BIRD's.
pub fn ratio(rows: &[Row]) -> Option<f64> {
    let get = |t: Target| rows.iter().find(|r| r.target == t)?.cpu_pct();
    let (i, b) = (get(Target::Ipipd)?, get(Target::Bird)?);
    (b > 0.0).then(|| i / b)
}

/// Fails unless every run of every target measured.
pub fn check(rows: &[Row]) -> Result<()> {
    let failed: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.failures
                .iter()
                .map(|f| format!("{}: {f}", r.target.name()))
        })
        .collect();
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}
