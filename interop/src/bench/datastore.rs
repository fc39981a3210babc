//! The etcd datastore at scale: a real 3-member etcd (Debian's etcd-server) and N ipipd
//! nodes, all in network namespaces on one bridge, every node from one config file.
//!
//! - block claim: a node's first pod, a CNI ADD that must claim a block in etcd (three
//!   transactions), from the plugin's start to its answer; one sample per node;
//! - join: a new node's process starts, registers, and its first pod claims a block →
//!   the block's route is in every other node's kernel (seen by `ip monitor route` in
//!   each namespace, so the poll interval does not count);
//! - idle load: etcd requests (gRPC calls started, the JSON gateway's included) per
//!   second per node over a quiet window, from every member's `/metrics`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::bench::median;
use crate::cni::Call;
use crate::etcd::{cluster_config, EtcdCluster, Node};
use crate::harness::{wait_until, Lan, Netns, TempDir};

const ETCD: [&str; 3] = ["172.29.241.11", "172.29.241.12", "172.29.241.13"];

fn node_address(i: usize) -> String {
    format!("172.29.241.{}", 101 + i)
}

#[derive(Debug, Clone, Default)]
pub struct Row {
    pub nodes: usize,
    pub claim_ms: Vec<f64>,
    pub join_ms: Vec<f64>,
    /// From the joining node's ADD answer to the last kernel (negative: before it).
    pub spread_ms: Vec<f64>,
    pub idle_s: u64,
    /// gRPC calls started per second per node, by method (summed over members).
    pub idle_rps_per_node: BTreeMap<String, f64>,
}

impl Row {
    pub fn claim_p50(&self) -> Option<f64> {
        median(self.claim_ms.clone())
    }
    pub fn join_p50(&self) -> Option<f64> {
        median(self.join_ms.clone())
    }
    pub fn spread_p50(&self) -> Option<f64> {
        median(self.spread_ms.clone())
    }
    pub fn idle_total(&self) -> f64 {
        // A fold from +0.0: an empty float sum is -0.0, printed "-0.000".
        self.idle_rps_per_node.values().fold(0.0, |a, b| a + b)
    }
}

/// Route lines each node's kernel reported, with when.
type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

struct Monitor {
    child: Child,
    seen: Seen,
}

/// A route no daemon here owns, added and deleted once to learn that a monitor listens.
const PROBE: &str = "198.51.100.1";

impl Monitor {
    /// A monitor that is known to listen: it has seen a probe route come and go. (A
    /// route added before `ip monitor` has subscribed is never reported: a join
    /// measured that way times out.)
    fn start_ready(ns: &Netns) -> Result<Monitor> {
        let m = Monitor::start(ns)?;
        let probe = format!("{PROBE}/32");
        wait_until(
            Duration::from_secs(60),
            &format!("ip monitor in {} reporting", ns.name),
            || {
                // Added and deleted until seen: an add before the subscription is lost.
                ns.ip(&["route", "replace", &probe, "dev", "eth0"]).ok()?;
                std::thread::sleep(Duration::from_millis(50));
                let seen = m.added(PROBE);
                ns.ip(&["route", "del", &probe, "dev", "eth0"]).ok()?;
                seen.map(|_| ())
            },
        )?;
        Ok(m)
    }

    fn start(ns: &Netns) -> Result<Monitor> {
        let mut child = Command::new("ip")
            .args(["-n", &ns.name, "monitor", "route"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ip monitor route")?;
        let out = child.stdout.take().context("no stdout")?;
        let seen: Seen = Arc::default();
        let s = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((Instant::now(), line));
            }
        });
        Ok(Monitor { child, seen })
    }

    /// When a route for `prefix` was added (not deleted), if it was.
    fn added(&self, prefix: &str) -> Option<Instant> {
        let want = format!("{prefix} ");
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(_, l)| l.starts_with(&want))
            .map(|(t, _)| *t)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member's `/metrics` text.
fn metrics(m: &crate::etcd::Member) -> Result<String> {
    let addr = format!("{}:2379", m.address);
    crate::rawpeer::netns::in_netns(&m.ns.name, || {
        let mut s = TcpStream::connect(&addr).context("connecting for /metrics")?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
}

/// Each metric of `names` (every label set) summed over every member.
pub(crate) fn scrape(etcd: &EtcdCluster, names: &[&str]) -> Result<Vec<f64>> {
    let mut out = vec![0.0; names.len()];
    for m in &etcd.members {
        let text = metrics(m)?;
        for line in text.lines() {
            for (i, name) in names.iter().enumerate() {
                let Some(rest) = line.strip_prefix(name) else {
                    continue;
                };
                if !(rest.starts_with('{') || rest.starts_with(' ')) {
                    continue;
                }
                if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                    if let Some(o) = out.get_mut(i) {
                        *o += v;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `grpc_server_started_total` by method, summed over every member.
fn grpc_started(etcd: &EtcdCluster) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for m in &etcd.members {
        let text = metrics(m)?;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("grpc_server_started_total{") else {
                continue;
            };
            let method = rest
                .split("grpc_method=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?")
                .to_owned();
            let value: f64 = rest
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            *out.entry(method).or_insert(0.0) += value;
        }
    }
    Ok(out)
}

fn wait_mesh(nodes: &[Node], limit: Duration) -> Result<()> {
    let n = nodes.len();
    for node in nodes {
        wait_until(
            limit,
            &format!("{} sees {n} nodes Established", node.name),
            || {
                let states = node.node_states().ok()?;
                (states.len() == n
                    && states
                        .iter()
                        .all(|(name, s)| s == "Established" || (s == "self" && *name == node.name)))
                .then_some(())
            },
        )?;
    }
    Ok(())
}

/// A pod's ADD on `node`; its wall time and the /26 it got.
fn timed_add(node: &Node, pod: &Netns, id: &str) -> Result<(Duration, String)> {
    let started = Instant::now();
    let out = Call::new("ADD", id, Some(pod), node.cni_conf()).run(&node.ns)?;
    let took = started.elapsed();
    ensure!(
        out.ok(),
        "{}: ADD {id}: {} {}",
        node.name,
        out.stdout,
        out.stderr
    );
    let addr: std::net::Ipv4Addr = out
        .address()
        .context("no address in the result")?
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()?;
    let block = ipnet::Ipv4Net::new(addr, 26)?.trunc();
    Ok((took, block.to_string()))
}

/// `nodes` nodes, then `joins` more one at a time; `idle` seconds of quiet measured.
pub fn run(nodes: usize, joins: usize, idle: Duration) -> Result<Row> {
    crate::etcd::require_etcd();
    let mut lan = Lan::new()?;
    let etcd = EtcdCluster::start(&mut lan, &ETCD)?;
    let dir = TempDir::new("dsbench")?;
    let path = dir.join("ipipd.toml");
    std::fs::write(
        &path,
        cluster_config(&etcd.endpoints(), "10.250.0.0/16", None),
    )?;
    let mut all: Vec<Node> = Vec::new();
    for i in 0..nodes {
        all.push(Node::start(
            &mut lan,
            &path,
            &format!("node-{i}"),
            &node_address(i),
        )?);
    }
    wait_mesh(&all, Duration::from_secs(120))?;
    let mut row = Row {
        nodes,
        idle_s: idle.as_secs(),
        ..Row::default()
    };
    let mut pods = Vec::new();
    for (i, node) in all.iter().enumerate() {
        let pod = Netns::new("dspod")?;
        let (took, _) = timed_add(node, &pod, &format!("claim{i}"))?;
        row.claim_ms.push(took.as_secs_f64() * 1000.0);
        pods.push(pod);
    }
    // Quiet: every block everywhere, then the window.
    std::thread::sleep(Duration::from_secs(5));
    let before = grpc_started(&etcd)?;
    std::thread::sleep(idle);
    let after = grpc_started(&etcd)?;
    for (m, v) in &after {
        let d = v - before.get(m).copied().unwrap_or(0.0);
        if d > 0.0 {
            row.idle_rps_per_node
                .insert(m.clone(), d / idle.as_secs_f64() / nodes as f64);
        }
    }
    // Every kernel's route changes from now on, stamped on arrival; joined nodes' too.
    let mut monitors: Vec<Monitor> = all
        .iter()
        .map(|n| Monitor::start_ready(&n.ns))
        .collect::<Result<_>>()?;
    for j in 0..joins {
        let i = nodes + j;
        let started = Instant::now();
        let node = Node::start(&mut lan, &path, &format!("node-{i}"), &node_address(i))?;
        let pod = Netns::new("dspod")?;
        let (_, block) = timed_add(&node, &pod, &format!("join{i}"))?;
        let answered = Instant::now();
        let last = wait_until(
            Duration::from_secs(60),
            &format!("{block} in every kernel"),
            || {
                let times: Vec<Instant> = monitors.iter().filter_map(|m| m.added(&block)).collect();
                (times.len() == monitors.len()).then(|| times.into_iter().max())?
            },
        )
        .with_context(|| {
            // Which kernels lack it, and whether the monitor or the kernel is behind.
            let missing: Vec<String> = all
                .iter()
                .zip(&monitors)
                .filter(|(_, m)| m.added(&block).is_none())
                .map(|(n, _)| {
                    let kernel = n.ns.ip(&["route", "show", &block]).unwrap_or_default();
                    format!("{} (kernel: {:?})", n.name, kernel.trim())
                })
                .collect();
            format!("join of node-{i}: not seen at {}", missing.join(", "))
        })?;
        row.join_ms
            .push(last.duration_since(started).as_secs_f64() * 1000.0);
        // Negative when every kernel had the route before the plugin answered.
        row.spread_ms.push(if last >= answered {
            last.duration_since(answered).as_secs_f64() * 1000.0
        } else {
            -answered.duration_since(last).as_secs_f64() * 1000.0
        });
        monitors.push(Monitor::start_ready(&node.ns)?);
        pods.push(pod);
        all.push(node);
    }
    if row.claim_ms.is_empty() {
        bail!("no samples");
    }
    Ok(row)
}
