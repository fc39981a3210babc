//! Four ipipd in a full mesh; three of them restarted at once. The mesh is
//! whole again (every session Established, every block installed
//! everywhere) within 30 s, with the default connect-retry timer.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use interop::harness::{require_root, Lan, Netns};
use interop::ipipd::{is, Ipipd, NodeConfig};

const NODES: [(&str, &str); 4] = [
    ("172.29.235.101", "101.76.9.128/26"),
    ("172.29.235.130", "101.88.228.192/26"),
    ("172.29.235.140", "101.99.1.0/26"),
    ("172.29.235.150", "101.100.2.0/26"),
];
const WHOLE_WITHIN: Duration = Duration::from_secs(30);

fn config(i: usize) -> String {
    let addrs: Vec<&str> = NODES.iter().map(|(a, _)| *a).collect();
    let (addr, block) = NODES[i];
    let mut c = NodeConfig::new(addr, block).mesh(&addrs);
    // The default connect-retry timer, as a real cluster runs it.
    c.bgp.connect_retry_time = None;
    c.toml()
}

/// What is still missing for the mesh to be whole, or None.
fn missing(nodes: &[Ipipd]) -> Option<String> {
    let mut gaps = Vec::new();
    for (i, d) in nodes.iter().enumerate() {
        let (own, _) = NODES[i];
        let peers = d.peers().unwrap_or_default();
        let routes = d.routes().unwrap_or_default();
        let kernel = d.ns.bgp_routes();
        for (addr, block) in NODES.iter().filter(|(a, _)| *a != own) {
            if !peers
                .iter()
                .any(|p| is(&p.address, addr) && p.state == "Established")
            {
                gaps.push(format!("{own}: session with {addr} not Established"));
            }
            if !routes.iter().any(|r| {
                r.prefix == *block && r.next_hop.as_deref() == Some(*addr) && r.best && r.installed
            }) {
                gaps.push(format!("{own}: {block} via {addr} not installed"));
            }
            let line = format!("{block} via {addr} dev tunl0 onlink");
            if !kernel.lines().any(|l| l.trim() == line) {
                gaps.push(format!("{own}: kernel lacks `{line}`"));
            }
        }
    }
    (!gaps.is_empty()).then(|| gaps.join("\n"))
}

fn wait_whole(nodes: &[Ipipd], limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        match missing(nodes) {
            None => return Ok(start.elapsed()),
            Some(gaps) if start.elapsed() > limit => {
                bail!("mesh not whole after {limit:?}:\n{gaps}")
            }
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn three_of_four_restarted_at_once() -> Result<()> {
    require_root();
    let mut lan = Lan::new()?;
    let hosts: Vec<Netns> = NODES
        .iter()
        .map(|(a, _)| lan.host(&format!("{a}/24")))
        .collect::<Result<_, _>>()?;
    for h in &hosts {
        h.add_standin_tunl0()?;
    }
    let mut nodes: Vec<Ipipd> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Ipipd::start(h, &config(i)))
        .collect::<Result<_>>()?;
    let first = wait_whole(&nodes, WHOLE_WITHIN)?;
    println!("mesh of four whole after {:.1} s", first.as_secs_f64());

    for round in ["TERM", "KILL"] {
        let t = Instant::now();
        for d in nodes.iter().skip(1) {
            d.signal(round)?;
        }
        for d in nodes.iter_mut().skip(1) {
            if let Some(mut p) = d.proc.take() {
                p.wait(Duration::from_secs(10))?;
            }
        }
        for d in nodes.iter_mut().skip(1) {
            d.restart()?;
        }
        wait_whole(&nodes, WHOLE_WITHIN).map_err(|e| {
            let logs: Vec<String> = nodes
                .iter()
                .map(|d| {
                    d.log()
                        .lines()
                        .rev()
                        .take(15)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect();
            e.context(format!(
                "after SIG{round} of three nodes; last log lines (reversed):\n{}",
                logs.join("\n----\n")
            ))
        })?;
        println!(
            "SIG{round} to three of four: mesh whole again {:.1} s after the signal",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
