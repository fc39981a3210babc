//! CNI ADD and DEL latency: `ipipd-cni` (with its daemon) side by side with the reference
//! plugins `ptp` + `host-local` from containernetworking-plugins, in the same run on the
//! same machine. Both are called as a runtime calls them: a new process per call, the
//! CNI_* variables, the configuration on stdin, from the node's network namespace (the
//! calling thread enters it; the plugin process inherits it, as under a kubelet).
//!
//! Sequential: N pods one after the other (ADD, then DEL each). Parallel: P pods at once.
//! Every call's wall time is a sample; p50 and p99 per target and shape.
//!
//! `ipipd-cni (etcd)` is the same plugin against a daemon with `datastore.kind = "etcd"`
//! (a 3-member etcd in namespaces): every ADD and DEL also writes the allocation there
//! by compare-and-swap. Against `ipipd-cni` (the node-local record) it is the cost of
//! durability in the cluster.
//!
//! Each plugin's peak RSS per ADD (under GNU time) and its start time (`VERSION` calls,
//! which do nothing but start, answer and exit): the plugin runs once per pod, so its own
//! footprint and start are part of every pod's cost.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::percentile;
use crate::config::NodeConfig;
use crate::etcd::{cluster_config, EtcdCluster};
use crate::harness::{netns_path, Lan, Netns, TempDir};
use crate::ipipd::Ipipd;

/// The etcd members of the `ipipd-cni (etcd)` target.
const ETCD: [&str; 3] = ["172.29.242.11", "172.29.242.12", "172.29.242.13"];

/// A plugin under test: what to run and its configuration.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// The network namespace the plugin runs in (the node's).
    pub node: String,
    pub plugin: PathBuf,
    pub conf: String,
    pub cni_path: String,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub target: String,
    pub shape: String,
    pub add_p50_ms: f64,
    pub add_p99_ms: f64,
    pub del_p50_ms: f64,
    pub del_p99_ms: f64,
    pub samples: usize,
    /// Median peak RSS of one ADD process (KiB), from extra calls run under GNU time;
    /// `None` without /usr/bin/time.
    pub add_peak_rss_kib: Option<f64>,
    /// The plugin's start time (ms): the median wall time of `START_CALLS` `VERSION`
    /// calls.
    pub start_ms: Option<f64>,
}

/// GNU time, which reports a finished process's peak RSS (its `wait4` `ru_maxrss`).
const GNU_TIME: &str = "/usr/bin/time";

fn call(t: &Target, command: &str, id: &str, pod: &Netns) -> Result<Duration> {
    call_measured(t, command, id, pod, None)
}

/// One plugin call; with `rss`, run under GNU time, which writes the call's peak RSS (KiB)
/// to that file.
fn call_measured(
    t: &Target,
    command: &str,
    id: &str,
    pod: &Netns,
    rss: Option<&Path>,
) -> Result<Duration> {
    // The plugin process starts inside the node, as it does under a kubelet.
    crate::rawpeer::netns::in_netns(&t.node, || {
        let started = Instant::now();
        let mut cmd = match rss {
            Some(file) => {
                let mut c = Command::new(GNU_TIME);
                c.arg("-f").arg("%M").arg("-o").arg(file).arg(&t.plugin);
                c
            }
            None => Command::new(&t.plugin),
        };
        let mut child = cmd
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns_path(&pod.name))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &t.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", t.plugin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(t.conf.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let took = started.elapsed();
        if !out.status.success() {
            bail!(
                "{} {command} {id}: {}{}",
                t.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(took)
    })
}

fn ms(d: &[Duration]) -> Vec<f64> {
    d.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
}

fn row(target: String, shape: String, adds: &[Duration], dels: &[Duration]) -> Row {
    let p = |v: &[Duration], q: f64| percentile(ms(v), q / 100.0).unwrap_or(f64::NAN);
    Row {
        target,
        shape,
        add_p50_ms: p(adds, 50.0),
        add_p99_ms: p(adds, 99.0),
        del_p50_ms: p(dels, 50.0),
        del_p99_ms: p(dels, 99.0),
        samples: adds.len(),
        add_peak_rss_kib: None,
        start_ms: None,
    }
}

/// Calls measured for peak RSS per target (outside the latency samples: GNU time's own
/// fork and exec would add to their wall time).
const RSS_CALLS: usize = 5;

/// The median peak RSS (KiB) of `RSS_CALLS` ADDs, each undone by a DEL.
fn add_peak_rss(t: &Target, pods: &[Netns], dir: &Path) -> Result<Option<f64>> {
    if !Path::new(GNU_TIME).exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir)?;
    let mut kib = Vec::new();
    for (i, pod) in pods.iter().take(RSS_CALLS).enumerate() {
        let file = dir.join(format!("rss-{i}"));
        let id = format!("rss-{i}");
        call_measured(t, "ADD", &id, pod, Some(&file))?;
        call(t, "DEL", &id, pod)?;
        let text = std::fs::read_to_string(&file)?;
        let v: f64 = text
            .trim()
            .parse()
            .with_context(|| format!("GNU time wrote {text:?}"))?;
        kib.push(v);
    }
    Ok(crate::bench::median(kib))
}

/// `VERSION` calls per plugin binary for its start time.
const START_CALLS: usize = 50;

/// What a runtime sends with `VERSION`.
const VERSION_CONF: &[u8] = br#"{"cniVersion":"1.0.0"}"#;

/// One `VERSION` call: the plugin starts, reads its configuration, prints the versions
/// it supports and exits; nothing else happens, so its wall time is the process's start
/// and end.
fn version_call(plugin: &Path) -> Result<Duration> {
    let started = Instant::now();
    let mut child = Command::new(plugin)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", plugin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(VERSION_CONF)?;
    }
    let out = child.wait_with_output()?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("supportedVersions") {
        bail!(
            "{} VERSION: {stdout}{}",
            plugin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// The start time (ms) of each plugin: the median wall time of `calls` `VERSION` calls,
/// the plugins' calls interleaved so that the machine's load falls on each alike.
pub fn start_times(plugins: &[&Path], calls: usize) -> Result<Vec<Option<f64>>> {
    let mut samples = vec![Vec::with_capacity(calls); plugins.len()];
    for _ in 0..calls {
        for (plugin, s) in plugins.iter().zip(samples.iter_mut()) {
            s.push(version_call(plugin)?);
        }
    }
    Ok(samples
        .iter()
        .map(|s| crate::bench::median(ms(s)))
        .collect())
}

/// One round: `pods` ADDs then DELs, `parallel` at a time.
fn round(
    t: &Target,
    pods: &[Netns],
    parallel: usize,
    tag: &str,
    adds: &mut Vec<Duration>,
    dels: &mut Vec<Duration>,
) -> Result<()> {
    for command in ["ADD", "DEL"] {
        for chunk in pods.chunks(parallel.max(1)).enumerate() {
            let (c, chunk) = chunk;
            let times: Vec<Result<Duration>> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, pod)| {
                        let id = format!("{tag}-{c}-{i}");
                        s.spawn(move || call(t, command, &id, pod))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
                    })
                    .collect()
            });
            for t in times {
                let t = t?;
                if command == "ADD" {
                    adds.push(t);
                } else {
                    dels.push(t);
                }
            }
        }
    }
    Ok(())
}

/// Sequential (`sequential` pods, one at a time) and parallel (`parallel` at once) ADD/DEL
/// latency for ipipd-cni and ptp + host-local, `runs` rounds each, targets interleaved.
/// With `baseline` (another build's `ipipd`), its `ipipd-cni` beside it is one more target,
/// asking the same daemon, and a second etcd-backed node runs that daemon on the same etcd
/// under its own prefix: before and after in one run.
pub fn run(
    ipipd_bin: &Path,
    baseline: Option<(&Path, &str)>,
    sequential: usize,
    parallel: usize,
    runs: usize,
) -> Result<Vec<Row>> {
    let reference = Path::new("/usr/lib/cni/ptp");
    if !reference.exists() {
        bail!("the reference plugins are missing (Debian package containernetworking-plugins)");
    }
    let plugin = ipipd_bin.with_file_name("ipipd-cni");
    let tmp = TempDir::new("cni-bench")?;
    let node = Netns::new("cnib")?;
    node.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ])?;
    node.ip(&["addr", "add", "172.29.250.1/24", "dev", "eth0"])?;
    node.ip(&["link", "set", "eth0", "up"])?;
    node.ip(&["link", "set", "eth0p", "up"])?;
    node.ip(&["route", "add", "default", "dev", "eth0"])?;
    node.add_standin_tunl0()?;
    let config = NodeConfig::bare("172.29.250.1", &["101.70.0.0/26", "101.70.0.64/26"])
        .name("bench")
        .pools(&["101.64.0.0/10"])
        .toml();
    let daemon = std::env::var_os("IPIPD_BIN");
    std::env::set_var("IPIPD_BIN", ipipd_bin);
    let d = Ipipd::start(&node, &config);
    // The etcd-backed node: a 3-member etcd and the node on one bridge.
    let mut lan = Lan::new()?;
    let with_etcd = EtcdCluster::start(&mut lan, &ETCD).and_then(|etcd| {
        let path = tmp.join("etcd-node.toml");
        std::fs::write(
            &path,
            cluster_config(&etcd.endpoints(), "101.72.0.0/16", None),
        )?;
        let n = crate::etcd::Node::start(&mut lan, &path, "bench-etcd", "172.29.242.101")?;
        let before = match baseline {
            Some((bin, _)) => {
                // Its own prefix and pool: the two daemons never see each other's keys.
                let path = tmp.join("etcd-baseline.toml");
                let conf = cluster_config(&etcd.endpoints(), "101.73.0.0/16", None)
                    .replace("\"/ipipd\"", "\"/ipipd-baseline\"");
                std::fs::write(&path, conf)?;
                std::env::set_var("IPIPD_BIN", bin);
                let n = crate::etcd::Node::start(&mut lan, &path, "bench-base", "172.29.242.102");
                std::env::set_var("IPIPD_BIN", ipipd_bin);
                Some(n?)
            }
            None => None,
        };
        Ok((etcd, n, before))
    });
    match daemon {
        Some(v) => std::env::set_var("IPIPD_BIN", v),
        None => std::env::remove_var("IPIPD_BIN"),
    }
    let d = d?;
    let (_etcd, etcd_node, before) = with_etcd?;
    let mut targets = vec![
        Target {
            name: "ipipd-cni".into(),
            node: node.name.clone(),
            plugin: plugin.clone(),
            conf: crate::cni::conf(&d.socket, "1.0.0"),
            cni_path: "/usr/lib/cni".into(),
        },
        Target {
            name: "ipipd-cni (etcd)".into(),
            node: etcd_node.ns.name.clone(),
            plugin: plugin.clone(),
            conf: etcd_node.cni_conf(),
            cni_path: "/usr/lib/cni".into(),
        },
        Target {
            name: "ptp + host-local".into(),
            node: node.name.clone(),
            plugin: reference.to_path_buf(),
            conf: serde_json::json!({
                "cniVersion": "1.0.0",
                "name": "ref",
                "type": "ptp",
                "ipMasq": false,
                "mtu": 1480,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.201.0.0/24"}]],
                    "dataDir": tmp.join("host-local"),
                },
            })
            .to_string(),
            cni_path: "/usr/lib/cni".into(),
        },
    ];
    if let Some((bin, label)) = baseline {
        targets.insert(
            1,
            Target {
                name: format!("ipipd-cni {label}"),
                node: node.name.clone(),
                plugin: bin.with_file_name("ipipd-cni"),
                conf: crate::cni::conf(&d.socket, "1.0.0"),
                cni_path: "/usr/lib/cni".into(),
            },
        );
    }
    if let (Some(n), Some((_, label))) = (&before, baseline) {
        targets.push(Target {
            name: format!("ipipd-cni (etcd, {label})"),
            node: n.ns.name.clone(),
            plugin: plugin.clone(),
            conf: n.cni_conf(),
            cni_path: "/usr/lib/cni".into(),
        });
    }
    let pods: Vec<Netns> = (0..sequential.max(parallel))
        .map(|_| Netns::new("cbp"))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (shape, n, at_once) in [
        (format!("{sequential} sequential"), sequential, 1),
        (format!("{parallel} parallel"), parallel, parallel),
    ] {
        let mut samples: Vec<(Vec<Duration>, Vec<Duration>)> =
            vec![Default::default(); targets.len()];
        for r in 0..runs {
            for (t, (adds, dels)) in targets.iter().zip(samples.iter_mut()) {
                round(t, &pods[..n], at_once, &format!("r{r}"), adds, dels)?;
            }
        }
        for (t, (adds, dels)) in targets.iter().zip(samples) {
            rows.push(row(t.name.clone(), shape.clone(), &adds, &dels));
        }
    }
    for t in &targets {
        let rss = add_peak_rss(t, &pods, &tmp.join("rss"))?;
        for r in rows.iter_mut().filter(|r| r.target == t.name) {
            r.add_peak_rss_kib = rss;
        }
    }
    // One start time per binary (the etcd targets run the same plugin).
    let mut binaries: Vec<&Path> = targets.iter().map(|t| t.plugin.as_path()).collect();
    binaries.sort();
    binaries.dedup();
    let starts = start_times(&binaries, START_CALLS)?;
    for t in &targets {
        let start = binaries
            .iter()
            .position(|b| *b == t.plugin.as_path())
            .and_then(|i| starts.get(i).copied().flatten());
        for r in rows.iter_mut().filter(|r| r.target == t.name) {
            r.start_ms = start;
        }
    }
    Ok(rows)
}

/// The reference plugins' target, what the ratios are over.
const REFERENCE: &str = "ptp + host-local";

/// The CNI table of the report.
pub fn markdown(rows: &[Row], out: &mut String) {
    use std::fmt::Write as _;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## CNI ADD and DEL latency\n\nipipd-cni (asking its daemon; `(etcd)`: a daemon that records every allocation in a 3-member etcd) and the reference `ptp` + `host-local` plugins, each call a new process started in the node's namespace with the configuration on stdin, as a runtime does; medians of every call over all runs. The ratios are ipipd-cni's p99 over the reference's, and over the node-local record's (`ipipd-cni`) for ADD; a row `(etcd, REV)` is the daemon built from REV on the same etcd under its own prefix. Peak RSS: the median over {RSS_CALLS} more ADDs of each plugin run under GNU time (its process's `ru_maxrss`), outside the latency samples. Start: the median wall time of {START_CALLS} `VERSION` calls of each plugin binary (start, read the configuration, print the versions, exit), the binaries' calls interleaved, and its ratio over `ptp`'s.\n\n| pods | plugin | ADD p50 (ms) | ADD p99 (ms) | DEL p50 (ms) | DEL p99 (ms) | calls | ADD p99 ratio | DEL p99 ratio | ADD p99 vs local record | ADD peak RSS (KiB) | start (ms) | start vs ptp |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let base = rows
            .iter()
            .find(|b| b.shape == r.shape && b.target == REFERENCE);
        let local = rows
            .iter()
            .find(|b| b.shape == r.shape && b.target == "ipipd-cni");
        let ratio = |a: f64, b: Option<f64>| super::report::ratio_cell(Some(a), b);
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            r.shape,
            r.target,
            r.add_p50_ms,
            r.add_p99_ms,
            r.del_p50_ms,
            r.del_p99_ms,
            r.samples,
            ratio(r.add_p99_ms, base.map(|b| b.add_p99_ms)),
            ratio(r.del_p99_ms, base.map(|b| b.del_p99_ms)),
            ratio(r.add_p99_ms, local.map(|b| b.add_p99_ms)),
            r.add_peak_rss_kib
                .map_or_else(|| "—".to_string(), |k| format!("{k:.0}")),
            r.start_ms
                .map_or_else(|| "—".to_string(), |ms| format!("{ms:.2}")),
            super::report::ratio_cell(r.start_ms, base.and_then(|b| b.start_ms)),
        );
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(target: &str, add_p99: f64, start_ms: Option<f64>) -> Row {
        Row {
            target: target.into(),
            shape: "100 sequential".into(),
            add_p50_ms: 1.0,
            add_p99_ms: add_p99,
            del_p50_ms: 2.0,
            del_p99_ms: 4.0,
            samples: 100,
            add_peak_rss_kib: Some(2048.0),
            start_ms,
        }
    }

    #[test]
    fn the_table_gives_each_plugins_start_and_its_ratio_over_ptp() {
        let rows = [
            sample("ipipd-cni", 5.0, Some(0.61)),
            sample("ipipd-cni (etcd)", 10.0, Some(0.61)),
            sample(REFERENCE, 20.0, Some(2.44)),
        ];
        let mut md = String::new();
        markdown(&rows, &mut md);
        assert!(md.contains("| start (ms) | start vs ptp |"), "{md}");
        assert!(
            md.contains(
                "| 100 sequential | ipipd-cni | 1.0 | 5.0 | 2.0 | 4.0 | 100 | 0.25× | 1.00× | 1.00× | 2048 | 0.61 | 0.25× |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| ipipd-cni (etcd) | 1.0 | 10.0 | 2.0 | 4.0 | 100 | 0.50× | 1.00× | 2.00× | 2048 | 0.61 | 0.25× |"),
            "{md}"
        );
        assert!(md.contains("| ptp + host-local | 1.0 | 20.0 | 2.0 | 4.0 | 100 | 1.00× | 1.00× | 4.00× | 2048 | 2.44 | 1.00× |"), "{md}");
    }

    #[test]
    fn a_start_not_measured_is_a_dash() {
        let rows = [
            sample("ipipd-cni", 5.0, None),
            sample(REFERENCE, 20.0, Some(2.0)),
        ];
        let mut md = String::new();
        markdown(&rows, &mut md);
        assert!(md.contains("| 2048 | — | — |"), "{md}");
        let mut none = String::new();
        markdown(&[], &mut none);
        assert_eq!(none, "", "no CNI part, no table");
    }
}
