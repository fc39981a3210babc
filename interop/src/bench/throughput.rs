//! Route throughput and memory, bgperf's shape: the target is a route reflector, S
//! senders each announce P unique prefixes, a monitor client must receive all S×P.
//! Measured: time from the senders' first UPDATE until the monitor holds every prefix,
//! the target's peak RSS (VmHWM) and the CPU time it used. Before the targets, the load
//! generator runs into a sink (another load generator) to show its own ceiling.
//!
//! Topology: the target alone in one namespace (10.0.0.1/16 on a veth); the load
//! generator in another, with the monitor at 10.0.0.2 and the senders at 10.0.1.1, ….

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::daemons::{self, Kind, Plan};
use super::{cpu_time, median, status_kb, Binaries};
use crate::harness::{wait_until, Netns, Proc, TempDir};

pub const TARGET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const MONITOR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const SENDER_BASE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
pub const POOL: &str = "64.0.0.0/4";
pub const PREFIX_LEN: u8 = 26;

/// S senders × P prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub senders: u32,
    pub prefixes: u64,
}

impl Size {
    pub fn total(&self) -> u64 {
        u64::from(self.senders) * self.prefixes
    }

    /// "10x100000".
    pub fn parse(s: &str) -> Option<Size> {
        let (a, b) = s.split_once('x')?;
        Some(Size {
            senders: a.parse().ok()?,
            prefixes: b.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefixes / 1000 * 1000 == self.prefixes {
            write!(f, "{}×{}k", self.senders, self.prefixes / 1000)
        } else {
            write!(f, "{}×{}", self.senders, self.prefixes)
        }
    }
}

/// The subset of the load generator's JSON this module reads.
#[derive(Debug, Deserialize)]
pub(crate) struct RunJson {
    pub start_unix_ns: u128,
    pub sent_s: f64,
    pub complete_s: Option<f64>,
    pub monitor_count: usize,
    #[serde(default)]
    pub errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct SinkJson {
    complete_unix_ns: u128,
    count: usize,
}

/// One run against one target.
#[derive(Debug, Clone)]
pub struct Sample {
    pub seconds: f64,
    pub peak_rss_kb: u64,
    pub cpu_s: f64,
}

/// Medians over the runs of one target at one size.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: Kind,
    pub size: Size,
    pub runs: usize,
    /// None when no run completed.
    pub seconds: Option<f64>,
    pub peak_rss_kb: Option<u64>,
    pub cpu_s: Option<f64>,
    pub failures: Vec<String>,
}

impl Row {
    pub fn rate(&self) -> Option<f64> {
        self.seconds.map(|s| self.size.total() as f64 / s)
    }
}

/// The load generator into a sink: its own rate, with no daemon in between.
#[derive(Debug, Clone)]
pub struct SelfTest {
    pub size: Size,
    pub seconds: f64,
    /// Time for the senders to hand everything to the kernel.
    pub sent_s: f64,
}

/// Two namespaces joined by a veth: the target's and the load generator's.
pub struct Pair {
    pub target: Netns,
    pub load: Netns,
}

impl Pair {
    pub fn new(senders: u32) -> Result<Pair> {
        let target = Netns::new("bt")?;
        let load = Netns::new("bl")?;
        crate::harness::ip(&[
            "link",
            "add",
            "vt",
            "netns",
            &target.name,
            "type",
            "veth",
            "peer",
            "name",
            "vl",
            "netns",
            &load.name,
        ])?;
        target.ip(&["addr", "add", &format!("{TARGET}/16"), "dev", "vt"])?;
        target.ip(&["link", "set", "vt", "up"])?;
        let mut batch = format!("addr add {MONITOR}/16 dev vl\n");
        for i in 0..senders {
            batch.push_str(&format!(
                "addr add {}/16 dev vl\n",
                Ipv4Addr::from(u32::from(SENDER_BASE) + i)
            ));
        }
        batch.push_str("link set vl up\n");
        let dir = TempDir::new("pair")?;
        let file = dir.join("addrs.batch");
        std::fs::write(&file, batch)?;
        load.ip(&["-batch", &file.to_string_lossy()])?;
        Ok(Pair { target, load })
    }
}

pub(crate) fn loadgen_args(size: Size, monitor: bool, timeout: Duration) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "run".into(),
        "--target".into(),
        TARGET.to_string(),
        "--senders".into(),
        size.senders.to_string(),
        "--sender-base".into(),
        SENDER_BASE.to_string(),
        "--prefixes".into(),
        size.prefixes.to_string(),
        "--pool".into(),
        POOL.into(),
        "--len".into(),
        PREFIX_LEN.to_string(),
        "--timeout".into(),
        timeout.as_secs().to_string(),
    ];
    if monitor {
        v.push("--monitor".into());
        v.push(MONITOR.to_string());
    }
    v
}

pub(crate) fn run_loadgen(pair: &Pair, bins: &Binaries, args: &[String]) -> Result<RunJson> {
    let out = pair
        .load
        .command(&bins.loadgen)
        .args(args)
        .output()
        .context("running loadgen")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| {
        format!(
            "loadgen exited with {}: {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// The load generator into a sink.
pub fn self_test(bins: &Binaries, size: Size, timeout: Duration) -> Result<SelfTest> {
    let pair = Pair::new(size.senders)?;
    let dir = TempDir::new("sink")?;
    let log = dir.join("sink.out");
    let mut cmd = pair.target.command(&bins.loadgen);
    cmd.args([
        "sink",
        "--listen",
        &TARGET.to_string(),
        "--expect",
        &size.total().to_string(),
        "--pool",
        POOL,
    ])
    .args([
        "--len",
        &PREFIX_LEN.to_string(),
        "--timeout",
        &timeout.as_secs().to_string(),
    ]);
    let mut sink = Proc::spawn(cmd, "loadgen sink", &log)?;
    wait_until(Duration::from_secs(10), "the sink to listen", || {
        daemons::listening(&pair.target, 179).then_some(())
    })?;
    let run = run_loadgen(&pair, bins, &loadgen_args(size, false, timeout))?;
    sink.wait(timeout)?;
    let text = std::fs::read_to_string(&log)?;
    let s: SinkJson = serde_json::from_str(text.lines().last().unwrap_or_default())
        .with_context(|| format!("sink output: {text}"))?;
    if s.count as u64 != size.total() {
        bail!("sink counted {} of {}", s.count, size.total());
    }
    let seconds = s.complete_unix_ns.saturating_sub(run.start_unix_ns) as f64 / 1e9;
    Ok(SelfTest {
        size,
        seconds,
        sent_s: run.sent_s,
    })
}

/// One run: a fresh target, the load, then its peak RSS and CPU time.
pub fn one(kind: Kind, size: Size, bins: &Binaries, timeout: Duration) -> Result<Sample> {
    let pair = Pair::new(size.senders)?;
    let plan = Plan {
        address: TARGET,
        asn: 64512,
        senders: (0..size.senders)
            .map(|i| Ipv4Addr::from(u32::from(SENDER_BASE) + i))
            .collect(),
        monitor: MONITOR,
        pool: POOL.parse()?,
        kernel: false,
    };
    let mut d = daemons::start_reflector(kind, &pair.target, &plan, bins)?;
    let cpu0 = cpu_time(d.pid).unwrap_or_default();
    let run = run_loadgen(&pair, bins, &loadgen_args(size, true, timeout));
    let peak = status_kb(d.pid, "VmHWM").unwrap_or(0);
    let cpu = cpu_time(d.pid).unwrap_or_default().saturating_sub(cpu0);
    let alive = d.proc.alive();
    let run = run.with_context(|| format!("{} output:\n{}", kind.name(), d.log_tail()))?;
    match run.complete_s {
        Some(seconds) => Ok(Sample {
            seconds,
            peak_rss_kb: peak,
            cpu_s: cpu.as_secs_f64(),
        }),
        None => bail!(
            "{}: the monitor held {} of {} prefixes at the timeout{}; errors: {:?}",
            kind.name(),
            run.monitor_count,
            size.total(),
            if alive { "" } else { " (the daemon died)" },
            run.errors
        ),
    }
}

/// Logs one run's outcome and keeps it for [`summarize`].
pub fn record(
    kind: Kind,
    size: Size,
    run: usize,
    r: Result<Sample>,
    samples: &mut Vec<Sample>,
    failures: &mut Vec<String>,
) {
    match r {
        Ok(s) => {
            eprintln!(
                "  throughput {} {size} run {run}: {:.3} s, peak RSS {} MiB, CPU {:.2} s",
                kind.name(),
                s.seconds,
                s.peak_rss_kb / 1024,
                s.cpu_s
            );
            samples.push(s);
        }
        Err(e) => {
            eprintln!(
                "  throughput {} {size} run {run} failed: {e:#}",
                kind.name()
            );
            failures.push(format!("{e:#}"));
        }
    }
}

/// Medians of one target's runs at one size.
pub fn summarize(kind: Kind, size: Size, samples: &[Sample], failures: Vec<String>) -> Row {
    Row {
        target: kind,
        size,
        runs: samples.len(),
        seconds: median(samples.iter().map(|s| s.seconds).collect()),
        peak_rss_kb: median(samples.iter().map(|s| s.peak_rss_kb as f64).collect())
            .map(|v| v as u64),
        cpu_s: median(samples.iter().map(|s| s.cpu_s).collect()),
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        let s = Size::parse("10x100000");
        assert_eq!(
            s,
            Some(Size {
                senders: 10,
                prefixes: 100_000
            })
        );
        assert_eq!(s.map(|s| s.to_string()).as_deref(), Some("10×100k"));
        assert_eq!(s.map(|s| s.total()), Some(1_000_000));
        assert_eq!(Size::parse("10"), None);
    }
}
