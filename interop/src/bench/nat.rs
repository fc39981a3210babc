//! New pod → outside TCP connections per second through ipipd's outbound NAT, side by
//! side with one hand-written masquerade rule (the reference), in the same run.
//!
//! One node namespace running ipipd (a pool with `nat_outgoing`), a pod wired as the CNI
//! plugin wires one, and an outside host with no route back to the pods. A run makes
//! `connections` connections one after the other from the pod: connect, wait for the
//! server's close, close. The server closes first, so the pod keeps no TIME_WAIT and
//! its ports never run out. Targets alternate run by run: ipipd's table (ipipd reloaded
//! with `nat_outgoing = true`), then none of ipipd's and the reference rule
//! `ip saddr 101.64.0.0/10 ip daddr != 101.64.0.0/10 masquerade` written with `nft`.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::median;
use crate::config::{NodeConfig, Pool};
use crate::harness::{wait_until, Netns};
use crate::ipipd::Ipipd;

pub const IPIPD: &str = "ipipd's table";
pub const REFERENCE: &str = "one masquerade rule";

#[derive(Debug, Clone)]
pub struct Row {
    pub target: &'static str,
    /// Connections per second, one figure per run.
    pub rates: Vec<f64>,
    pub connections: usize,
}

impl Row {
    pub fn median(&self) -> Option<f64> {
        median(self.rates.clone())
    }
}

const NODE: &str = "192.0.2.1";
const OUTSIDE: &str = "192.0.2.2";
const POD: &str = "101.70.0.5";

fn config(nat: bool) -> String {
    let pool = Pool::new("101.64.0.0/10");
    let pool = if nat { pool.nat_outgoing() } else { pool };
    NodeConfig::bare(NODE, &["101.70.0.0/26"])
        .name("natbench")
        .pool_tables(vec![pool])
        .toml()
}

fn nft(ns: &Netns, args: &[&str]) -> Result<String> {
    let out = ns
        .command("nft")
        .args(args)
        .output()
        .context("running nft (Debian package nftables)")?;
    if !out.status.success() {
        bail!("nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_tables(ns: &Netns, want_ipipd: bool) -> Result<()> {
    wait_until(
        Duration::from_secs(10),
        "ipipd's table to follow the reload",
        || {
            let tables = nft(ns, &["list", "tables"]).ok()?;
            (tables.contains("table ip ipipd") == want_ipipd).then_some(())
        },
    )?;
    Ok(())
}

/// `connections` sequential connections from the pod; connections per second.
fn burst(pod: &Netns, to: SocketAddr, connections: usize) -> Result<f64> {
    pod.in_netns(move || -> Result<f64> {
        let started = Instant::now();
        for i in 0..connections {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                .with_context(|| format!("connection {i} of {connections}"))?;
            let mut rest = Vec::new();
            s.read_to_end(&mut rest)?;
        }
        Ok(connections as f64 / started.elapsed().as_secs_f64())
    })?
}

pub fn run(ipipd_bin: &Path, connections: usize, runs: usize) -> Result<Vec<Row>> {
    let node = Netns::new("natb")?;
    let pod = Netns::new("natbp")?;
    let outside = Netns::new("natbo")?;
    node.add_standin_tunl0()?;
    for (peer, here) in [(&pod, "calinatb0"), (&outside, "out0")] {
        node.ip(&[
            "link", "add", here, "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
        ])?;
        node.ip(&["link", "set", here, "up"])?;
        peer.ip(&["link", "set", "eth0", "up"])?;
    }
    node.ip(&["addr", "add", &format!("{NODE}/24"), "dev", "out0"])?;
    // The outside is the node's way to the world; proxy ARP for the pods' gateway
    // (169.254.1.1) needs a route to it that is not the pod's interface.
    node.ip(&["route", "add", "default", "dev", "out0"])?;
    node.sysctl("net.ipv4.conf.calinatb0.proxy_arp", "1")?;
    outside.ip(&["addr", "add", &format!("{OUTSIDE}/24"), "dev", "eth0"])?;
    pod.wire_pod(POD)?;

    let daemon = std::env::var_os("IPIPD_BIN");
    std::env::set_var("IPIPD_BIN", ipipd_bin);
    let d = Ipipd::start(&node, &config(true));
    match daemon {
        Some(v) => std::env::set_var("IPIPD_BIN", v),
        None => std::env::remove_var("IPIPD_BIN"),
    }
    let d = d?;
    let out = d.cli(&["workload", "add", POD, "calinatb0"])?;
    if !out.status.success() {
        bail!("workload add: {}", String::from_utf8_lossy(&out.stderr));
    }

    // The server: accept and close at once, until told to stop.
    let listener = outside.in_netns(|| TcpListener::bind((OUTSIDE, 0)))??;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let server = std::thread::spawn(move || {
        for s in listener.incoming() {
            if flag.load(Ordering::Relaxed) {
                break;
            }
            drop(s);
        }
    });
    let result = measure(&node, &pod, &d, addr, connections, runs);
    stop.store(true, Ordering::Relaxed);
    let _ = outside.in_netns(move || TcpStream::connect(addr));
    let _ = server.join();
    result
}

fn measure(
    node: &Netns,
    pod: &Netns,
    d: &Ipipd,
    to: SocketAddr,
    connections: usize,
    runs: usize,
) -> Result<Vec<Row>> {
    let reference = [
        "add table ip reference",
        "add chain ip reference post { type nat hook postrouting priority srcnat; }",
        "add rule ip reference post ip saddr 101.64.0.0/10 ip daddr != 101.64.0.0/10 masquerade",
    ];
    wait_tables(node, true)?;
    // Warm up: caches, the neighbour entries, the first conntrack allocations.
    burst(pod, to, connections.min(200))?;
    let mut rows = [IPIPD, REFERENCE].map(|target| Row {
        target,
        rates: Vec::new(),
        connections,
    });
    for _ in 0..runs {
        for row in rows.iter_mut() {
            let ipipd = row.target == IPIPD;
            d.reconfigure(&config(ipipd))?;
            wait_tables(node, ipipd)?;
            if !ipipd {
                for cmd in reference {
                    let args: Vec<&str> = cmd.splitn(5, ' ').collect();
                    nft(node, &args)?;
                }
            }
            let rate = burst(pod, to, connections);
            if !ipipd {
                nft(node, &["delete", "table", "ip", "reference"])?;
            }
            row.rates.push(rate?);
        }
    }
    Ok(rows.to_vec())
}
