//! Route install rate of the installer against `ip -batch`, in a fresh network namespace
//! with a stand-in `tunl0` (root needed):
//!
//! ```text
//! cargo run --release -p fib --example install_bench -- [ROUTES] [RUNS]
//! ```
//!
//! Each run: the installer installs ROUTES /26 routes `via GW dev tunl0 onlink` (timed from
//! `set_inputs` until all are in the kernel), deletes them, then `ip -batch` adds the same
//! routes (timed). Prints each run and the medians.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::Netns;
use fib::{Inputs, Installer, Mode, Settings};
use ipnet::{IpNet, Ipv4Net};

fn prefixes(n: usize) -> Vec<(Ipv4Net, Ipv4Addr)> {
    (0..n as u32)
        .map(|i| {
            let net = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i * 64);
            let gw = Ipv4Addr::new(172, 29, 236, 1 + (i % 200) as u8);
            (Ipv4Net::new(net, 26).unwrap_or_default(), gw)
        })
        .collect()
}

struct Run {
    installer: Duration,
    installer_delete: Duration,
    ip_batch: Duration,
}

fn count_routes(ns: &Netns) -> usize {
    ns.ip(&["route", "show", "proto", "bgp"]).lines().count()
}

fn one_run(n: usize) -> Run {
    let ns = Netns::new("bench");
    ns.underlay(1500);
    ns.stand_in_tunnel();
    let routes = prefixes(n);

    let remote: BTreeMap<IpNet, Vec<IpAddr>> = routes
        .iter()
        .map(|(p, gw)| (IpNet::V4(*p), vec![IpAddr::V4(*gw)]))
        .collect();
    let (installer, installer_delete) = ns.run(move || async move {
        let settings = Settings::new(Mode::Always, Ipv4Addr::new(172, 29, 235, 101));
        let installer = Installer::start(settings).await.expect("start");
        installer.converged();
        let inputs = Inputs {
            remote,
            ..Inputs::default()
        };
        let start = Instant::now();
        installer.set_inputs(inputs);
        while installer.stats().added < n as u64 {
            let stats = installer.stats();
            assert_eq!(stats.errors, 0, "routes refused: {stats:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let add = start.elapsed();
        let deleted_before = installer.stats().deleted;
        let start = Instant::now();
        installer.set_inputs(Inputs::default());
        while installer.stats().deleted < deleted_before + n as u64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let del = start.elapsed();
        let stats = installer.stats();
        assert_eq!(stats.errors, 0, "{stats:?}");
        installer.stop(false).await.expect("stop");
        (add, del)
    });
    assert_eq!(count_routes(&ns), 0, "installer left routes behind");

    let file = std::env::temp_dir().join(format!("{}.batch", ns.name()));
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("batch file"));
        for (p, gw) in &routes {
            writeln!(out, "route add {p} via {gw} dev tunl0 onlink proto 186").expect("write");
        }
    }
    let path = file.to_string_lossy().into_owned();
    let start = Instant::now();
    ns.ip(&["-batch", &path]);
    let ip_batch = start.elapsed();
    let _ = std::fs::remove_file(&file);
    assert_eq!(count_routes(&ns), n, "ip -batch did not add every route");
    Run {
        installer,
        installer_delete,
        ip_batch,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let mut results = Vec::new();
    for i in 0..runs {
        let r = one_run(n);
        println!(
            "run {}: installer {:>8.0} routes/s ({:.3} s), delete {:>8.0} routes/s; ip -batch {:>8.0} routes/s ({:.3} s); ratio {:.2}",
            i + 1,
            rate(n, r.installer),
            r.installer.as_secs_f64(),
            rate(n, r.installer_delete),
            rate(n, r.ip_batch),
            r.ip_batch.as_secs_f64(),
            r.ip_batch.as_secs_f64() / r.installer.as_secs_f64(),
        );
        results.push(r);
    }
    let inst = median(results.iter().map(|r| r.installer).collect());
    let del = median(results.iter().map(|r| r.installer_delete).collect());
    let ip = median(results.iter().map(|r| r.ip_batch).collect());
    println!(
        "median of {runs}, {n} routes: installer {:.0} routes/s, installer delete {:.0} routes/s, ip -batch {:.0} routes/s, installer/ip-batch rate ratio {:.2}",
        rate(n, inst),
        rate(n, del),
        rate(n, ip),
        rate(n, inst) / rate(n, ip),
    );
}
