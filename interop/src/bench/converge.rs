//! Block propagation latency in a 3-node lab: a block is added on node A (config edit,
//! then SIGHUP for ipipd, `birdc configure` for BIRD) and the clock runs until node B's
//! kernel has the route; then the block is removed and the clock runs until B's kernel
//! has deleted it. B's kernel is watched with `ip monitor route`, whose lines are
//! timestamped as they arrive; the clock starts just before the trigger command is
//! spawned, so both daemons pay one process start.
//!
//! BIRD is configured the way calico-node configures it in IPIP mode: kernel protocol
//! with `learn`, `persist`, `scan time 2`, `merge paths`, graceful restart; device and
//! direct protocols; the node's blocks as static blackhole routes exported to BGP by a
//! pool filter; `multihop`, `gateway recursive`, `add paths` on the mesh sessions. (Calico's
//! BIRD sets `krt_tunnel = "tunl0"`, an attribute upstream BIRD 2 lacks, so BIRD's kernel
//! routes here go `via A dev eth0` instead of `dev tunl0 onlink`; the latency is the same
//! work.)

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{percentile, Binaries};
use crate::bird::Bird;
use crate::config::NodeConfig;
use crate::harness::{Lan, Netns};
use crate::ipipd::Ipipd;

const ADDRS: [&str; 3] = ["172.31.0.1", "172.31.0.2", "172.31.0.3"];
const BLOCKS: [&str; 3] = ["101.64.1.0/26", "101.64.2.0/26", "101.64.3.0/26"];
const POOL: &str = "101.64.0.0/10";

/// Latencies of one daemon, in milliseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    pub daemon: &'static str,
    pub add_ms: Vec<f64>,
    pub withdraw_ms: Vec<f64>,
    /// Trials that timed out.
    pub lost: usize,
}

impl Latencies {
    pub fn add(&self, p: f64) -> Option<f64> {
        percentile(self.add_ms.clone(), p)
    }

    pub fn withdraw(&self, p: f64) -> Option<f64> {
        percentile(self.withdraw_ms.clone(), p)
    }
}

/// `ip -n NS monitor route`, each line stamped on arrival.
struct RouteWatch {
    child: Child,
    rx: mpsc::Receiver<(Instant, String)>,
}

impl RouteWatch {
    fn start(ns: &Netns) -> Result<RouteWatch> {
        let mut child = Command::new("ip")
            .args(["-n", &ns.name, "monitor", "route"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ip monitor")?;
        let out = child.stdout.take().context("ip monitor has no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        // Let it subscribe before anything is measured.
        std::thread::sleep(Duration::from_millis(200));
        Ok(RouteWatch { child, rx })
    }

    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// The arrival time of the first line `f` accepts.
    fn wait(&self, limit: Duration, f: impl Fn(&str) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok((t, line)) if f(&line) => return Some(t),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn trial_prefix(i: usize) -> String {
    format!("101.120.{}.0/26", i % 256)
}

fn is_add(prefix: &str) -> impl Fn(&str) -> bool + '_ {
    move |l: &str| !l.starts_with("Deleted") && l.split_whitespace().any(|w| w == prefix)
}

fn is_delete(prefix: &str) -> impl Fn(&str) -> bool + '_ {
    move |l: &str| l.starts_with("Deleted") && l.split_whitespace().any(|w| w == prefix)
}

/// Runs `trials` add/withdraw pairs; `set_extra(Some(p))` adds block `p` on A and
/// triggers the reload, `set_extra(None)` removes it.
fn trials(
    daemon: &'static str,
    watch: &RouteWatch,
    n: usize,
    mut set_extra: impl FnMut(Option<&str>) -> Result<Instant>,
) -> Result<Latencies> {
    let mut l = Latencies {
        daemon,
        add_ms: Vec::new(),
        withdraw_ms: Vec::new(),
        lost: 0,
    };
    let limit = Duration::from_secs(10);
    for i in 0..n {
        let p = trial_prefix(i);
        watch.drain();
        let t0 = set_extra(Some(&p))?;
        match watch.wait(limit, is_add(&p)) {
            Some(t) => l
                .add_ms
                .push(t.saturating_duration_since(t0).as_secs_f64() * 1000.0),
            None => l.lost += 1,
        }
        std::thread::sleep(Duration::from_millis(30));
        watch.drain();
        let t0 = set_extra(None)?;
        match watch.wait(limit, is_delete(&p)) {
            Some(t) => l
                .withdraw_ms
                .push(t.saturating_duration_since(t0).as_secs_f64() * 1000.0),
            None => l.lost += 1,
        }
        std::thread::sleep(Duration::from_millis(30));
        if l.lost > 5 {
            bail!("{daemon}: more than 5 trials timed out");
        }
    }
    Ok(l)
}

fn ipipd_conf(i: usize, extra: Option<&str>) -> NodeConfig {
    let mut c = NodeConfig::bare(ADDRS[i], &[BLOCKS[i]])
        .name(&format!("conv-{i}"))
        .asn(64512)
        .pools(&[POOL])
        .mesh(&ADDRS);
    c.bgp.connect_retry_time = Some(1);
    if let Some(p) = extra {
        c = c.block(p);
    }
    c
}

/// ipipd: edit A's `blocks`, SIGHUP.
pub fn ipipd(bins: &Binaries, n: usize) -> Result<Latencies> {
    std::env::set_var("IPIPD_BIN", &bins.ipipd);
    let mut lan = Lan::new()?;
    let mut hosts = Vec::new();
    for a in ADDRS {
        let ns = lan.host(&format!("{a}/24"))?;
        ns.add_standin_tunl0()?;
        hosts.push(ns);
    }
    let mut nodes = Vec::new();
    for (i, ns) in hosts.iter().enumerate() {
        nodes.push(Ipipd::start(ns, &ipipd_conf(i, None).toml())?);
    }
    let (a, b) = match (nodes.first(), nodes.get(1)) {
        (Some(a), Some(b)) => (a, b),
        _ => bail!("lab has fewer than two nodes"),
    };
    b.wait_route(BLOCKS[0], ADDRS[0], Duration::from_secs(30))?;
    let watch = RouteWatch::start(&hosts[1])?;
    let proc = a.proc.as_ref().context("node A is not running")?;
    let pid = proc.pid().context("node A has no pid")?.to_string();
    let r = trials("ipipd", &watch, n, |extra| {
        a.write_config(&ipipd_conf(0, extra).toml())?;
        let t0 = Instant::now();
        let st = Command::new("kill").args(["-HUP", &pid]).status()?;
        if !st.success() {
            bail!("kill -HUP {pid} failed");
        }
        Ok(t0)
    });
    drop(watch);
    drop(nodes);
    r
}

fn bird_conf(i: usize, extra: Option<&str>) -> String {
    let a = ADDRS[i];
    let mut t = format!(
        "router id {a};\n\
         filter calico_export_to_bgp_peers {{\n  if ( net ~ {POOL} ) then {{ accept; }}\n  reject;\n}}\n\
         filter calico_kernel_programming {{\n  if ( net ~ {POOL} ) then {{ accept; }}\n  accept;\n}}\n\
         protocol kernel {{\n  learn;\n  persist;\n  scan time 2;\n  ipv4 {{ import all; export filter calico_kernel_programming; }};\n  graceful restart;\n  merge paths on;\n}}\n\
         protocol device {{\n  scan time 2;\n}}\n\
         protocol direct {{\n  ipv4;\n  interface -\"cali*\", \"*\";\n}}\n\
         protocol static blocks {{\n  ipv4;\n  route {b} blackhole;\n",
        b = BLOCKS[i]
    );
    if let Some(p) = extra {
        t.push_str(&format!("  route {p} blackhole;\n"));
    }
    t.push_str(&format!(
        "}}\ntemplate bgp bgp_template {{\n  local {a} as 64512;\n  multihop;\n  ipv4 {{ gateway recursive; import all; export filter calico_export_to_bgp_peers; add paths on; }};\n  graceful restart;\n  connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n}}\n"
    ));
    for (j, peer) in ADDRS.iter().enumerate() {
        if j != i {
            t.push_str(&format!(
                "protocol bgp Mesh_{j} from bgp_template {{\n  neighbor {peer} as 64512;\n}}\n"
            ));
        }
    }
    t
}

/// BIRD 2, Calico-style: edit A's static protocol, `birdc configure`.
pub fn bird(n: usize) -> Result<Latencies> {
    let mut lan = Lan::new()?;
    let mut hosts = Vec::new();
    for a in ADDRS {
        hosts.push(lan.host(&format!("{a}/24"))?);
    }
    let mut birds = Vec::new();
    for (i, ns) in hosts.iter().enumerate() {
        birds.push(Bird::start(ns, &bird_conf(i, None))?);
    }
    let (a, b) = match (birds.first(), birds.get(1)) {
        (Some(a), Some(b)) => (a, b),
        _ => bail!("lab has fewer than two nodes"),
    };
    b.wait_route(BLOCKS[0], ADDRS[0], Duration::from_secs(60))?;
    let watch = RouteWatch::start(&hosts[1])?;
    let r = trials("BIRD 2 (Calico config)", &watch, n, |extra| {
        a.write_conf(&bird_conf(0, extra))?;
        let t0 = Instant::now();
        a.configure()?;
        Ok(t0)
    });
    drop(watch);
    drop(birds);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_are_told_apart() {
        let p = "101.120.7.0/26";
        let add = "101.120.7.0/26 via 172.31.0.1 dev tunl0 proto bgp onlink ";
        let del = "Deleted 101.120.7.0/26 via 172.31.0.1 dev tunl0 proto bgp onlink ";
        assert!(is_add(p)(add) && !is_add(p)(del));
        assert!(is_delete(p)(del) && !is_delete(p)(add));
        assert!(!is_add(p)("101.120.7.64/26 via 172.31.0.1 dev tunl0"));
    }

    #[test]
    fn bird_conf_has_the_calico_kernel_protocol() {
        let c = bird_conf(0, Some("101.120.0.0/26"));
        assert!(c.contains("scan time 2;") && c.contains("route 101.120.0.0/26 blackhole;"));
        assert!(c.contains("neighbor 172.31.0.2") && !c.contains("neighbor 172.31.0.1 "));
    }
}
