//! FIB install rate: 100,000 /26 routes `via GW dev tunl0 onlink` into a namespace's
//! kernel (tunl0 is the veth stand-in). ipipd's installer against `ip -batch` comes from
//! `fib`'s `install_bench` example (run as is, its medians parsed); BIRD 2's kernel
//! protocol exporting the same routes as static routes is measured here, each run paired
//! with an `ip -batch` of the same routes in a fresh namespace.
//!
//! BIRD is started with its kernel protocol disabled and the static routes loaded; the
//! clock starts at `birdc enable` and stops when the kernel's main table holds every
//! route, read from `/proc/PID/net/fib_triestat` of BIRD (a cheap count) every 5 ms.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::median;
use crate::harness::{wait_until, Netns, Proc, TempDir};

/// The same routes as `install_bench`: 10.0.0.0/26, 10.0.0.64/26, … via 172.29.235.2–201.
pub fn routes(n: u32) -> Vec<(String, Ipv4Addr)> {
    (0..n)
        .map(|i| {
            let net = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i * 64);
            let gw = Ipv4Addr::new(172, 29, 235, 2 + (i % 200) as u8);
            (format!("{net}/26"), gw)
        })
        .collect()
}

/// Medians as `install_bench` printed them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstallBench {
    pub routes: u64,
    pub runs: u64,
    pub installer: f64,
    pub installer_delete: f64,
    pub ip_batch: f64,
    pub ratio: f64,
}

/// Parses install_bench's last line: "median of 3, 100000 routes: installer N routes/s,
/// installer delete N routes/s, ip -batch N routes/s, installer/ip-batch rate ratio R".
pub fn parse_install_bench(text: &str) -> Option<InstallBench> {
    let line = text.lines().rev().find(|l| l.starts_with("median of"))?;
    let (head, rest) = line.split_once(": ")?;
    let mut r = InstallBench::default();
    let head = head.trim_start_matches("median of ");
    let (runs, routes) = head.split_once(", ")?;
    r.runs = runs.trim().parse().ok()?;
    r.routes = routes.trim_end_matches(" routes").trim().parse().ok()?;
    for part in rest.split(", ") {
        let value = |prefix: &str| -> Option<f64> {
            part.strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        if let Some(v) = value("installer delete ") {
            r.installer_delete = v;
        } else if let Some(v) = value("installer/ip-batch rate ratio ") {
            r.ratio = v;
        } else if let Some(v) = value("installer ") {
            r.installer = v;
        } else if let Some(v) = value("ip -batch ") {
            r.ip_batch = v;
        }
    }
    (r.installer > 0.0 && r.ip_batch > 0.0).then_some(r)
}

/// Runs the example binary; its per-run lines go to stderr as progress.
pub fn install_bench(binary: &Path, n: u32, runs: u32) -> Result<InstallBench> {
    let out = Command::new(binary)
        .args([n.to_string(), runs.to_string()])
        .output()
        .context("running install_bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text.lines() {
        eprintln!("  fib install_bench: {l}");
    }
    if !out.status.success() {
        bail!(
            "install_bench failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_install_bench(&text)
        .with_context(|| format!("no median line in install_bench output:\n{text}"))
}

/// "Main: … Prefixes: N" of a namespace, seen through a process inside it.
fn main_prefixes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/fib_triestat")).ok()?;
    let main = text.split("Main:").nth(1)?;
    let line = main
        .lines()
        .find(|l| l.trim_start().starts_with("Prefixes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A fresh namespace with a stand-in `tunl0`, up.
pub(crate) fn fresh_ns() -> Result<Netns> {
    let ns = Netns::new("fr")?;
    ns.add_standin_tunl0()?;
    ns.ip(&["link", "set", "tunl0", "up"])?;
    Ok(ns)
}

/// `ip -batch` of the routes into a fresh namespace; seconds.
pub fn ip_batch(routes: &[(String, Ipv4Addr)]) -> Result<f64> {
    let ns = fresh_ns()?;
    let dir = TempDir::new("ipbatch")?;
    let file = dir.join("routes.batch");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    for (p, gw) in routes {
        writeln!(out, "route add {p} via {gw} dev tunl0 onlink proto 186")?;
    }
    out.flush()?;
    drop(out);
    let start = Instant::now();
    ns.ip(&["-batch", &file.to_string_lossy()])?;
    Ok(start.elapsed().as_secs_f64())
}

/// BIRD's kernel protocol exporting the routes; seconds from `birdc enable` to all in the kernel.
pub fn bird_export(routes: &[(String, Ipv4Addr)]) -> Result<f64> {
    let ns = fresh_ns()?;
    let dir = TempDir::new("birdfib")?;
    let conf = dir.join("bird.conf");
    let sock = dir.join("bird.ctl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&conf)?);
        writeln!(
            out,
            "log \"{}\" {{ warning, error, fatal, bug }};",
            dir.join("bird.log").display()
        )?;
        writeln!(out, "router id 172.29.235.101;\nprotocol device {{ }}")?;
        writeln!(out, "protocol static st {{\n  ipv4;")?;
        for (p, gw) in routes {
            writeln!(out, "  route {p} via {gw}%tunl0 onlink;")?;
        }
        writeln!(out, "}}\nprotocol kernel k1 {{\n  disabled;\n  metric 0;\n  ipv4 {{ import none; export all; }};\n}}")?;
        out.flush()?;
    }
    let mut cmd = ns.command("bird");
    cmd.arg("-f")
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(&sock)
        .arg("-P")
        .arg(dir.join("bird.pid"));
    let bird = Proc::spawn(cmd, "bird", &dir.join("bird.out"))?;
    let pid = bird.pid().context("bird has no pid")?;
    let birdc = |args: &[&str]| -> Option<String> {
        let o = Command::new("birdc")
            .arg("-s")
            .arg(&sock)
            .args(args)
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let want = format!("{} of {} routes", routes.len(), routes.len());
    wait_until(
        Duration::from_secs(120),
        "BIRD to load the static routes",
        || birdc(&["show", "route", "count"]).filter(|t| t.contains(&want)),
    )
    .with_context(|| bird.log_tail(10))?;
    let base = main_prefixes(pid).context("reading fib_triestat")?;
    let target = base + routes.len() as u64;
    let start = Instant::now();
    birdc(&["enable", "k1"]).context("birdc enable k1")?;
    loop {
        if main_prefixes(pid).is_some_and(|n| n >= target) {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!(
                "BIRD exported {:?} of {} routes in 300 s",
                main_prefixes(pid).map(|n| n - base),
                routes.len()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Medians of BIRD's export and the paired `ip -batch` runs.
#[derive(Debug, Clone)]
pub struct BirdFib {
    pub routes: u32,
    pub runs: usize,
    pub bird_s: f64,
    pub ip_batch_s: f64,
    /// Median of the per-run ratios of BIRD's rate to ip -batch's.
    pub ratio: f64,
}

pub fn bird_vs_ip_batch(n: u32, runs: u32) -> Result<BirdFib> {
    let routes = routes(n);
    let (mut b, mut i, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let bird = bird_export(&routes)?;
        let ip = ip_batch(&routes)?;
        eprintln!(
            "  fib run {run}: BIRD kernel protocol {:.0} routes/s ({bird:.3} s); ip -batch {:.0} routes/s ({ip:.3} s); ratio {:.2}",
            f64::from(n) / bird,
            f64::from(n) / ip,
            ip / bird
        );
        b.push(bird);
        i.push(ip);
        r.push(ip / bird);
    }
    Ok(BirdFib {
        routes: n,
        runs: b.len(),
        bird_s: median(b).unwrap_or(f64::NAN),
        ip_batch_s: median(i).unwrap_or(f64::NAN),
        ratio: median(r).unwrap_or(f64::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_median_line() {
        let text = "run 1: whatever\nmedian of 3, 100000 routes: installer 250000 routes/s, installer delete 300000 routes/s, ip -batch 260000 routes/s, installer/ip-batch rate ratio 0.96\n";
        let r = parse_install_bench(text);
        assert_eq!(
            r,
            Some(InstallBench {
                routes: 100_000,
                runs: 3,
                installer: 250_000.0,
                installer_delete: 300_000.0,
                ip_batch: 260_000.0,
                ratio: 0.96
            })
        );
        assert_eq!(parse_install_bench("nothing"), None);
    }

    #[test]
    fn routes_match_install_bench() {
        let r = routes(201);
        assert_eq!(
            r.first().map(|(p, g)| (p.as_str(), g.to_string())),
            Some(("10.0.0.0/26", "172.29.235.2".to_string()))
        );
        assert_eq!(
            r.get(200).map(|(p, g)| (p.as_str(), g.to_string())),
            Some(("10.0.50.0/26", "172.29.235.2".to_string()))
        );
    }
}
