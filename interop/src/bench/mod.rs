//! The benchmarks that compare ipipd with BIRD 2, GoBGP and FRR on this machine:
//! route throughput and memory as a route reflector ([`throughput`]), the same with every
//! learned route written to the kernel ([`rrfib`]), FIB install rate
//! ([`fibrate`]) and the kernel's own limit on it ([`rawfib`]), block propagation latency ([`converge`]) and full-mesh scale
//! ([`mesh`]), a two-reflector cluster of a thousand clients ([`rrclients`]), the etcd datastore at scale ([`datastore`]), the CPU of 100 BFD sessions
//! ([`bfd`]), pod-to-pod throughput through VXLAN and with no encapsulation ([`vxlan`]). Each returns rows for the markdown report ([`report`]); numbers come
//! from the run, and where the machine is noisy each is the median of several runs.

pub mod bfd;
pub mod cni;
pub mod converge;
pub mod daemons;
pub mod datastore;
pub mod dsscale;
pub mod fibrate;
pub mod mesh;
pub mod nat;
pub mod rawfib;
pub mod report;
pub mod rrclients;
pub mod rrfib;
pub mod throughput;
pub mod vxlan;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

/// Where the binaries under test are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub ipipd: PathBuf,
    /// An older ipipd build for before/after rows, with what it was built from.
    pub ipipd_baseline: Option<(PathBuf, String)>,
    pub loadgen: PathBuf,
    /// `fib`'s `install_bench` example.
    pub install_bench: Option<PathBuf>,
}

/// A value of `/proc/PID/status` in kB (e.g. "VmHWM", "VmRSS").
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))?;
    value.split_whitespace().next()?.parse().ok()
}

/// User plus system CPU time of a process so far (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / clock_ticks()))
}

/// USER_HZ: 100 on every Linux this runs on; `getconf` confirms when present.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// The middle value (the upper middle for an even count); None when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// The value below which `p` (0..=1) of the samples fall, by nearest rank.
pub fn percentile(mut v: Vec<f64>, p: f64) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (p * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied()
}

/// The machine, for the report header.
#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub model: String,
    pub kernel: String,
    pub memory_gib: f64,
    pub load: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            model,
            kernel,
            memory_gib: mem / 1024.0 / 1024.0,
            load: loadavg(),
        }
    }
}

/// `/proc/loadavg`'s first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Version line of a program, for the report.
pub fn version(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_default()
}

/// Sets a sysctl of the host namespace for the guard's life, restoring the old value.
pub struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    pub fn set(key: &str, value: &str) -> Result<Sysctl> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        let old = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {key}"))?
            .trim()
            .to_string();
        std::fs::write(&path, value).with_context(|| format!("setting {key}={value}"))?;
        Ok(Sysctl { path, old })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![]), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(v.clone(), 0.5), Some(50.0));
        assert_eq!(percentile(v.clone(), 0.99), Some(99.0));
        assert_eq!(percentile(v, 1.0), Some(100.0));
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(status_kb(pid, "VmHWM").is_some_and(|kb| kb > 0));
        assert!(cpu_time(pid).is_some());
    }
}
