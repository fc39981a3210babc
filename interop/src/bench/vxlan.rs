//! Pod-to-pod TCP throughput and CPU per GB across two nodes, through ipipd's VXLAN mode
//! and with no encapsulation at all (`ipip.mode = vxlan.mode = "never"`: plain routes on
//! the LAN), side by side in the same run.
//!
//! Two worlds are built at once, each a LAN with two node namespaces running ipipd and a
//! pod on each node wired as the CNI plugin wires one (its MTU the one the plugin would
//! give: the VXLAN device's, or the LAN's). `iperf3` sends from one pod to the other for
//! a few seconds; the worlds alternate run by run, so both see the same machine load.
//! CPU is what the two iperf3 processes used (user and system, as iperf3 reports it),
//! which on veth pairs includes the kernel's forwarding and encapsulation done on their
//! behalf; the figure is CPU seconds per GB received.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bench::median;
use crate::config::{Ipip, NodeConfig};
use crate::harness::{wait_until, Lan, Netns, Proc, TempDir};
use crate::ipipd::Ipipd;

pub const VXLAN: &str = "VXLAN (`vxlan.mode = \"always\"`)";
pub const PLAIN: &str = "no encapsulation (`ipip.mode = vxlan.mode = \"never\"`)";

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_B: &str = "101.88.228.192/26";
const POD_A: &str = "101.76.9.130";
const POD_B: &str = "101.88.228.194";

#[derive(Debug, Clone)]
pub struct Row {
    pub target: &'static str,
    pub pod_mtu: u32,
    /// Gbit/s received, one figure per run.
    pub gbps: Vec<f64>,
    /// CPU seconds of sender and receiver per GB received, one figure per run.
    pub cpu_s_per_gb: Vec<f64>,
    pub seconds: u64,
    /// The load average when the part started and ended.
    pub load: (String, String),
}

impl Row {
    pub fn median_gbps(&self) -> Option<f64> {
        median(self.gbps.clone())
    }

    pub fn median_cpu(&self) -> Option<f64> {
        median(self.cpu_s_per_gb.clone())
    }
}

/// One run's figures, read from `iperf3 -J`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub gbps: f64,
    pub cpu_s_per_gb: f64,
}

/// Reads iperf3's JSON report: bytes and seconds received, and the CPU percentages of
/// the sender (`host_total`) and receiver (`remote_total`).
pub fn parse_iperf(json: &str) -> Result<Sample> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 -J output")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    let end = &v["end"];
    let num = |x: &serde_json::Value, what: &str| {
        x.as_f64()
            .with_context(|| format!("iperf3 report without {what}"))
    };
    let bytes = num(&end["sum_received"]["bytes"], "end.sum_received.bytes")?;
    let seconds = num(&end["sum_received"]["seconds"], "end.sum_received.seconds")?;
    let cpu = &end["cpu_utilization_percent"];
    let host = num(&cpu["host_total"], "host_total")?;
    let remote = num(&cpu["remote_total"], "remote_total")?;
    if bytes <= 0.0 || seconds <= 0.0 {
        bail!("iperf3 moved nothing ({bytes} bytes in {seconds} s)");
    }
    let gb = bytes / 1e9;
    Ok(Sample {
        gbps: bytes * 8.0 / seconds / 1e9,
        cpu_s_per_gb: (host + remote) / 100.0 * seconds / gb,
    })
}

/// Two nodes, two pods, an iperf3 server in the second pod.
struct World {
    _lan: Lan,
    nodes: Vec<Netns>,
    pods: Vec<Netns>,
    mtu: u32,
}

fn config(address: &str, block: &str, vxlan: bool) -> String {
    let mut c = NodeConfig::bare(address, &[block])
        .pools(&["101.64.0.0/10"])
        .timers(9, 30, Some(1));
    c.cluster.nodes = Some(vec![A.into(), B.into()]);
    if vxlan {
        format!("{}\n[vxlan]\nmode = \"always\"\n", c.toml())
    } else {
        c.ipip = Some(Ipip {
            mode: Some("never".into()),
            ..Ipip::default()
        });
        c.toml()
    }
}

impl World {
    fn new(vxlan: bool) -> Result<World> {
        let mut lan = Lan::new()?;
        let nodes = vec![lan.host(&format!("{A}/24"))?, lan.host(&format!("{B}/24"))?];
        // What the CNI plugin gives a pod: the tunnel device's MTU, or the LAN's.
        let mtu = if vxlan { 1450 } else { 1500 };
        let mut pods = Vec::new();
        for (node, ip) in nodes.iter().zip([POD_A, POD_B]) {
            let pod = Netns::new("tp")?;
            let host_end = "calitput0";
            node.ip(&[
                "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
            ])?;
            let m = mtu.to_string();
            node.ip(&["link", "set", host_end, "mtu", &m, "up"])?;
            node.sysctl(&format!("net.ipv4.conf.{host_end}.proxy_arp"), "1")?;
            pod.ip(&["link", "set", "eth0", "mtu", &m, "up"])?;
            pod.wire_pod(ip)?;
            pods.push(pod);
        }
        Ok(World {
            _lan: lan,
            nodes,
            pods,
            mtu,
        })
    }
}

fn start_daemons<'a>(w: &'a World, vxlan: bool) -> Result<Vec<Ipipd<'a>>> {
    let mut ds = Vec::new();
    for ((node, (address, block)), pod) in w
        .nodes
        .iter()
        .zip([(A, BLOCK_A), (B, BLOCK_B)])
        .zip([POD_A, POD_B])
    {
        let d = Ipipd::start(node, &config(address, block, vxlan))?;
        let out = d.cli(&["workload", "add", pod, "calitput0"])?;
        if !out.status.success() {
            bail!("workload add: {}", String::from_utf8_lossy(&out.stderr));
        }
        ds.push(d);
    }
    let [da, db] = ds.as_slice() else {
        bail!("two daemons");
    };
    let limit = Duration::from_secs(30);
    da.wait_route(BLOCK_B, B, limit)
        .context("node b's block at node a")?;
    db.wait_route(BLOCK_A, A, limit)
        .context("node a's block at node b")?;
    // The figures are only worth something if the pods' packets take the device meant.
    let dev = if vxlan {
        "dev vxlan.calico"
    } else {
        "dev eth0"
    };
    let node = w.nodes.first().context("node a")?;
    let route = node.ip(&["route", "get", POD_B])?;
    if !route.contains(dev) {
        bail!("node a reaches {POD_B} by `{}`, not {dev}", route.trim());
    }
    Ok(ds)
}

fn iperf_server(pod: &Netns, dir: &TempDir) -> Result<Proc> {
    let mut cmd = pod.command("iperf3");
    cmd.args(["-s", "-B", POD_B]);
    let p = Proc::spawn(cmd, "iperf3 server", &dir.join("iperf3.log"))
        .context("starting iperf3 (Debian package iperf3)")?;
    wait_until(Duration::from_secs(10), "iperf3 to listen", || {
        let out = pod.run(&["ss", "-ltnH"]).ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains(":5201")
            .then_some(())
    })?;
    Ok(p)
}

fn send(pod: &Netns, seconds: u64) -> Result<Sample> {
    let out = pod
        .command("iperf3")
        .args(["-c", POD_B, "-J", "-t", &seconds.to_string()])
        .output()
        .context("running iperf3")?;
    parse_iperf(&String::from_utf8_lossy(&out.stdout))
}

pub fn run(ipipd_bin: &Path, seconds: u64, runs: usize) -> Result<Vec<Row>> {
    let load_start = crate::bench::loadavg();
    let vx = World::new(true)?;
    let plain = World::new(false)?;
    let saved = std::env::var_os("IPIPD_BIN");
    std::env::set_var("IPIPD_BIN", ipipd_bin);
    let daemons = start_daemons(&vx, true).and_then(|a| Ok((a, start_daemons(&plain, false)?)));
    match saved {
        Some(v) => std::env::set_var("IPIPD_BIN", v),
        None => std::env::remove_var("IPIPD_BIN"),
    }
    let _daemons = daemons?;
    let dir = TempDir::new("tput")?;
    let worlds = [(VXLAN, &vx), (PLAIN, &plain)];
    let mut servers = Vec::new();
    for (_, w) in worlds {
        let pod = w.pods.get(1).context("pod b")?;
        servers.push(iperf_server(pod, &dir)?);
        let client = w.pods.first().context("pod a")?;
        // Warm up: neighbour entries, the FDB, TCP's first slow start.
        send(client, 1).context("warm-up")?;
    }
    let mut rows = worlds.map(|(target, w)| Row {
        target,
        pod_mtu: w.mtu,
        gbps: Vec::new(),
        cpu_s_per_gb: Vec::new(),
        seconds,
        load: (load_start.clone(), String::new()),
    });
    for _ in 0..runs {
        for (row, (_, w)) in rows.iter_mut().zip(worlds) {
            let client = w.pods.first().context("pod a")?;
            let s = send(client, seconds)?;
            row.gbps.push(s.gbps);
            row.cpu_s_per_gb.push(s.cpu_s_per_gb);
        }
    }
    let load_end = crate::bench::loadavg();
    for row in rows.iter_mut() {
        row.load.1 = load_end.clone();
    }
    drop(servers);
    Ok(rows.to_vec())
}

/// The report section.
pub fn markdown(rows: &[Row], out: &mut String) {
    use std::fmt::Write as _;
    let Some(first) = rows.first() else {
        return;
    };
    let _ = writeln!(
        out,
        "## Pod-to-pod TCP throughput: VXLAN and no encapsulation\n\n\
         Two nodes on one LAN (veth pairs and a bridge, in network namespaces), ipipd on each, \
         one pod on each with the MTU the CNI plugin gives it; `iperf3 -c` from one pod to the \
         other for {} s a run, the two set-ups side by side and alternating run by run. \
         CPU is sender plus receiver (iperf3's own user and system time, which on veth \
         includes the kernel's forwarding and encapsulation done on their behalf), per GB \
         received. Medians over the runs; ratios are VXLAN over no encapsulation. \
         Load average at the start of this part {}, at its end {} (2 cores shared with other \
         work: read the ratios).\n\n\
         | set-up | pod MTU | runs | median Gbit/s | min | max | median CPU s/GB | ratio Gbit/s | ratio CPU/GB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|",
        first.seconds, first.load.0, first.load.1
    );
    let plain = rows.iter().find(|r| r.target == PLAIN);
    for r in rows {
        let min = r.gbps.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.gbps.iter().copied().fold(0.0, f64::max);
        let (rg, rc) = match plain {
            Some(p) if r.target == VXLAN => (
                super::report::ratio_cell(r.median_gbps(), p.median_gbps()),
                super::report::ratio_cell(r.median_cpu(), p.median_cpu()),
            ),
            _ => ("—".into(), "—".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} |",
            r.target,
            r.pod_mtu,
            r.gbps.len(),
            r.median_gbps()
                .map_or_else(|| "—".into(), |g| format!("{g:.2}")),
            min,
            max,
            r.median_cpu()
                .map_or_else(|| "—".into(), |c| format!("{c:.2}")),
            rg,
            rc
        );
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iperf3_json() {
        let json = r#"{"start":{},"end":{"sum_received":{"bytes":2500000000,"seconds":2.0},
            "cpu_utilization_percent":{"host_total":50.0,"remote_total":30.0}}}"#;
        let s = parse_iperf(json).expect("parses");
        assert!((s.gbps - 10.0).abs() < 1e-9, "{s:?}");
        // 0.8 CPU for 2 s = 1.6 CPU seconds for 2.5 GB.
        assert!((s.cpu_s_per_gb - 0.64).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn an_iperf3_error_is_an_error() {
        let err = parse_iperf(r#"{"start":{},"end":{},"error":"unable to connect to server"}"#)
            .expect_err("error");
        assert!(err.to_string().contains("unable to connect"), "{err}");
        assert!(parse_iperf("not json").is_err());
    }
}
