//! The route reflector as users run it: every node installs what it learns
//! (`kernel.install = true`, the default configuration otherwise, IPIP mode `always`
//! through a stand-in `tunl0`), against BIRD 2 with a kernel protocol exporting every
//! route. The topology and load are [`throughput`]'s: S senders announce P unique /26s,
//! a monitor client must receive them all.
//!
//! Measured per run: time from the senders' first UPDATE until the target's kernel holds
//! every route (read from `/proc/PID/net/fib_triestat`, which counts the prefixes of the
//! target's namespace without listing them), the same until the monitor holds every route,
//! the target's peak RSS (VmHWM) and its CPU time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use super::daemons::{self, Kind, Plan};
use super::throughput::{
    loadgen_args, run_loadgen, Pair, Size, MONITOR, POOL, SENDER_BASE, TARGET,
};
use super::{cpu_time, median, status_kb, Binaries};
use crate::harness::TempDir;

/// One run against one target.
#[derive(Debug, Clone)]
pub struct Sample {
    /// First UPDATE → every route in the target's kernel.
    pub kernel_s: f64,
    /// First UPDATE → every route at the monitor.
    pub monitor_s: f64,
    pub peak_rss_kb: u64,
    pub cpu_s: f64,
}

/// Medians over the runs of one target at one size.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: Kind,
    /// Kernel writes on; off only for ipipd's reference row (what the FIB costs on top).
    pub kernel: bool,
    pub size: Size,
    pub runs: usize,
    pub kernel_s: Option<f64>,
    pub monitor_s: Option<f64>,
    pub peak_rss_kb: Option<u64>,
    pub cpu_s: Option<f64>,
    pub failures: Vec<String>,
}

impl Row {
    /// The target as the report names it.
    pub fn label(&self) -> String {
        if self.kernel {
            self.target.name().to_string()
        } else {
            format!("{}, FIB off (reference)", self.target.name())
        }
    }
}

/// Prefixes in the FIB of the namespace `pid` lives in (the first `Prefixes:` line of
/// `fib_triestat`: the main table's trie).
pub fn kernel_prefixes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/fib_triestat")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Prefixes:"))?
        .trim()
        .parse()
        .ok()
}

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// One run: a fresh target with the FIB on (`kernel`; off for a reference run, whose
/// kernel time is its monitor time), the load, then its peak RSS and CPU time.
pub fn one(
    kind: Kind,
    kernel: bool,
    size: Size,
    bins: &Binaries,
    timeout: Duration,
) -> Result<Sample> {
    let pair = Pair::new(size.senders)?;
    pair.target.add_standin_tunl0()?;
    let plan = Plan {
        address: TARGET,
        asn: 64512,
        senders: (0..size.senders)
            .map(|i| std::net::Ipv4Addr::from(u32::from(SENDER_BASE) + i))
            .collect(),
        monitor: MONITOR,
        pool: POOL.parse()?,
        kernel,
    };
    let mut d = daemons::start_reflector(kind, &pair.target, &plan, bins)?;
    let pid = d.pid;
    let base = kernel_prefixes(pid).context("reading the target's fib_triestat")?;
    let want = if kernel { base + size.total() } else { 0 };
    // Counting walks the kernel's trie: at a million routes, a few times a second is
    // precise enough and leaves the CPU to the daemon.
    let every = Duration::from_millis((size.total() / 10_000).clamp(10, 100));
    // The senders stay up (and their routes wanted) until the kernel has them all: the
    // poller says so by creating this file.
    let dir = TempDir::new("rrfib")?;
    let done_file = dir.join("kernel-done");
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        let done_file = done_file.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            let mut done = None;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                if kernel_prefixes(pid).is_some_and(|n| n >= want) {
                    done = Some(SystemTime::now());
                    break;
                }
                std::thread::sleep(every);
            }
            let _ = std::fs::write(&done_file, "");
            done
        })
    };
    let cpu0 = cpu_time(pid).unwrap_or_default();
    let mut args = loadgen_args(size, true, timeout);
    args.push("--hold-until".into());
    args.push(done_file.to_string_lossy().into_owned());
    let run = run_loadgen(&pair, bins, &args);
    if run.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    let kernel_done = poller.join().ok().flatten();
    let peak = status_kb(pid, "VmHWM").unwrap_or(0);
    let cpu = cpu_time(pid).unwrap_or_default().saturating_sub(cpu0);
    let alive = d.proc.alive();
    let run = run.with_context(|| format!("{} output:\n{}", kind.name(), d.log_tail()))?;
    let kernel_done = if kernel {
        kernel_done
    } else {
        run.complete_s.map(|s| {
            UNIX_EPOCH + Duration::from_nanos(run.start_unix_ns as u64) + Duration::from_secs_f64(s)
        })
    };
    let (Some(monitor_s), Some(done)) = (run.complete_s, kernel_done) else {
        bail!(
            "{}: the monitor held {} of {} prefixes, the kernel {} of {}{}; errors: {:?}",
            kind.name(),
            run.monitor_count,
            size.total(),
            kernel_prefixes(pid).unwrap_or(0).saturating_sub(base),
            size.total(),
            if alive { "" } else { " (the daemon died)" },
            run.errors
        );
    };
    Ok(Sample {
        kernel_s: unix_ns(done).saturating_sub(run.start_unix_ns) as f64 / 1e9,
        monitor_s,
        peak_rss_kb: peak,
        cpu_s: cpu.as_secs_f64(),
    })
}

/// Logs one run's outcome and keeps it for [`summarize`].
pub fn record(
    kind: Kind,
    kernel: bool,
    size: Size,
    run: usize,
    r: Result<Sample>,
    samples: &mut Vec<Sample>,
    failures: &mut Vec<String>,
) {
    match r {
        Ok(s) => {
            eprintln!(
                "  rr-fib {}{} {size} run {run}: kernel {:.3} s, monitor {:.3} s, peak RSS {:.1} MiB, CPU {:.2} s",
                kind.name(),
                if kernel { "" } else { " (FIB off)" },
                s.kernel_s,
                s.monitor_s,
                s.peak_rss_kb as f64 / 1024.0,
                s.cpu_s
            );
            samples.push(s);
        }
        Err(e) => {
            eprintln!(
                "  rr-fib {}{} {size} run {run} failed: {e:#}",
                kind.name(),
                if kernel { "" } else { " (FIB off)" }
            );
            failures.push(format!("{e:#}"));
        }
    }
}

/// Medians of one target's runs at one size.
pub fn summarize(
    kind: Kind,
    kernel: bool,
    size: Size,
    samples: &[Sample],
    failures: Vec<String>,
) -> Row {
    Row {
        target: kind,
        kernel,
        size,
        runs: samples.len(),
        kernel_s: median(samples.iter().map(|s| s.kernel_s).collect()),
        monitor_s: median(samples.iter().map(|s| s.monitor_s).collect()),
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
    fn counts_the_prefixes_of_our_own_namespace() {
        assert!(kernel_prefixes(std::process::id()).is_some_and(|n| n > 0));
    }
}
