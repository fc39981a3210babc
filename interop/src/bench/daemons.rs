//! The four daemons as benchmark targets: one route reflector in its own namespace,
//! passive toward S sender peers and one monitor client, not writing the kernel FIB
//! unless the plan says so ([`Plan::kernel`]).
//!
//! Each gets the same job in its own words:
//! - ipipd: `kernel.install = false`, `bgp.route_reflector_cluster_id`, senders as plain
//!   `[[peer]]`s, the monitor as `rr_client`;
//! - BIRD 2: no `kernel` protocol; senders `import all; export none`, the monitor
//!   `rr client; import none; export all`;
//! - GoBGP: no zebra; the monitor a `route-reflector-client`;
//! - FRR: `bgpd -Z` (no zebra, so nothing reaches the kernel), the monitor a
//!   `route-reflector-client`.
//!
//! Senders are non-client iBGP peers, so each route is reflected to the monitor only:
//! the target's work is reading S×P routes, choosing best paths and sending them once.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;

use super::Binaries;
use crate::config::{Kernel, NodeConfig, Peer};
use crate::harness::{wait_until, Netns, Proc, TempDir};

/// A BGP implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ipipd,
    /// The `--ipipd-baseline` build (an earlier revision), for before/after rows.
    IpipdBaseline,
    Bird,
    Gobgp,
    Frr,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Ipipd, Kind::Bird, Kind::Gobgp, Kind::Frr];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ipipd => "ipipd",
            Kind::IpipdBaseline => "ipipd (baseline build)",
            Kind::Bird => "BIRD 2",
            Kind::Gobgp => "GoBGP",
            Kind::Frr => "FRR bgpd",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "ipipd" => Some(Kind::Ipipd),
            "ipipd-baseline" | "baseline" => Some(Kind::IpipdBaseline),
            "bird" | "bird2" => Some(Kind::Bird),
            "gobgp" | "gobgpd" => Some(Kind::Gobgp),
            "frr" | "bgpd" => Some(Kind::Frr),
            _ => None,
        }
    }

    /// The version string, for the report.
    pub fn version(self, bins: &Binaries) -> String {
        match self {
            Kind::Ipipd => {
                let v = super::version(&bins.ipipd.to_string_lossy(), &["--version"]);
                if v.is_empty() {
                    "ipipd (this tree)".into()
                } else {
                    v
                }
            }
            Kind::IpipdBaseline => match &bins.ipipd_baseline {
                Some((path, label)) => {
                    let v = super::version(&path.to_string_lossy(), &["--version"]);
                    format!("{v} built from {label}")
                }
                None => "not given".into(),
            },
            Kind::Bird => super::version("bird", &["--version"]),
            Kind::Gobgp => super::version("gobgpd", &["--version"]),
            Kind::Frr => super::version("/usr/lib/frr/bgpd", &["--version"]),
        }
    }
}

/// Who the reflector talks to.
#[derive(Debug, Clone)]
pub struct Plan {
    pub address: Ipv4Addr,
    pub asn: u32,
    pub senders: Vec<Ipv4Addr>,
    pub monitor: Ipv4Addr,
    pub pool: Ipv4Net,
    /// Write every learned route to the kernel as a node would (ipipd: `kernel.install =
    /// true` and the defaults otherwise; BIRD: a kernel protocol exporting everything).
    pub kernel: bool,
}

/// A running daemon, stopped (and its directory removed) on drop.
pub struct Running {
    pub kind: Kind,
    pub proc: Proc,
    pub pid: u32,
    pub dir: TempDir,
}

impl Running {
    /// The tail of the daemon's output, for error messages.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail(20)
    }
}

fn ipipd_conf(p: &Plan, dir: &TempDir) -> String {
    let a = p.address.to_string();
    let mut c = NodeConfig::bare(&a, &[])
        .name("bench-target")
        .asn(p.asn)
        .pools(&[&p.pool.to_string()])
        .no_mesh()
        .control(&dir.join("ipipd.sock"), &dir.join("state"));
    // With the kernel on, the configuration a node runs: only the reflector's cluster id
    // is added.
    c.bgp.route_reflector_cluster_id = Some(a);
    if !p.kernel {
        c.bgp.graceful_restart_time = Some(0);
    }
    c.kernel = Some(Kernel {
        install: Some(p.kernel),
        ..Kernel::default()
    });
    c.peers = p
        .senders
        .iter()
        .map(|s| Peer::new(s).passive(true))
        .chain([Peer::new(p.monitor).passive(true).rr_client()])
        .collect();
    c.toml()
}

fn bird_conf(p: &Plan, dir: &TempDir) -> String {
    let mut t = format!(
        "log \"{}\" {{ warning, error, fatal, bug }};\nrouter id {a};\nprotocol device {{ }}\n",
        dir.join("bird.log").display(),
        a = p.address
    );
    if p.kernel {
        t.push_str("protocol kernel { ipv4 { import none; export all; }; }\n");
    }
    for (i, s) in p.senders.iter().enumerate() {
        t.push_str(&format!(
            "protocol bgp s{i} {{ local {a} as {asn}; neighbor {s} as {asn}; direct; passive on; ipv4 {{ import all; export none; }}; }}\n",
            a = p.address,
            asn = p.asn
        ));
    }
    t.push_str(&format!(
        "protocol bgp monitor {{ local {a} as {asn}; neighbor {m} as {asn}; direct; passive on; rr client; rr cluster id {a}; ipv4 {{ import none; export all; }}; }}\n",
        a = p.address,
        asn = p.asn,
        m = p.monitor
    ));
    t
}

fn gobgp_conf(p: &Plan) -> String {
    let mut t = format!(
        "[global.config]\n  as = {}\n  router-id = \"{a}\"\n  local-address-list = [\"{a}\"]\n",
        p.asn,
        a = p.address
    );
    let neighbor = |addr: &Ipv4Addr, extra: &str| {
        format!(
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = {}\n  [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"{}\"\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n{extra}",
            p.asn, p.address
        )
    };
    for s in &p.senders {
        t.push_str(&neighbor(s, ""));
    }
    let rr = format!(
        "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"{}\"\n",
        p.address
    );
    t.push_str(&neighbor(&p.monitor, &rr));
    t
}

fn frr_conf(p: &Plan, dir: &TempDir) -> String {
    let mut t = format!(
        "frr defaults traditional\nhostname bench-target\nlog file {} warnings\n!\nrouter bgp {asn}\n bgp router-id {a}\n bgp cluster-id {a}\n no bgp network import-check\n",
        dir.join("bgpd.log").display(),
        asn = p.asn,
        a = p.address
    );
    for s in p.senders.iter().chain(std::iter::once(&p.monitor)) {
        t.push_str(&format!(
            " neighbor {s} remote-as {}\n neighbor {s} passive\n neighbor {s} update-source {}\n",
            p.asn, p.address
        ));
    }
    t.push_str(&format!(" address-family ipv4 unicast\n  neighbor {} route-reflector-client\n exit-address-family\n!\n", p.monitor));
    t
}

/// Whether something listens on TCP `port` inside `ns`.
pub fn listening(ns: &Netns, port: u16) -> bool {
    ns.run(&["ss", "-Hltn", &format!("sport = :{port}")])
        .is_ok_and(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty())
}

/// `ipipd run --config CONF` in `ns`, logging at `warn` unless IPIPD_BENCH_LOG says
/// otherwise (IPIPD_BENCH_LOG=info with IPIPD_KEEP_TEST_DIRS=1 keeps a trace of a run).
pub fn ipipd_command(ns: &Netns, bin: &Path, conf: &Path) -> Command {
    let mut c = ns.command(bin);
    c.arg("run").arg("--config").arg(conf).env(
        "RUST_LOG",
        std::env::var("IPIPD_BENCH_LOG").unwrap_or_else(|_| "warn".to_string()),
    );
    c
}

/// BIRD in the foreground in `ns` with `conf`, its control socket and pid file in `dir`.
pub fn bird_command(ns: &Netns, conf: &Path, dir: &Path) -> Command {
    let mut c = ns.command("bird");
    c.arg("-f")
        .arg("-c")
        .arg(conf)
        .arg("-s")
        .arg(dir.join("bird.ctl"))
        .arg("-P")
        .arg(dir.join("bird.pid"));
    c
}

/// Writes the config and starts `kind` as the reflector in `ns`; returns once it listens.
pub fn start_reflector(kind: Kind, ns: &Netns, plan: &Plan, bins: &Binaries) -> Result<Running> {
    let dir = TempDir::new("bench")?;
    let log = dir.join("daemon.out");
    let cmd: Command = match kind {
        Kind::Ipipd | Kind::IpipdBaseline => {
            let conf = dir.join("ipipd.toml");
            std::fs::write(&conf, ipipd_conf(plan, &dir))?;
            let bin = match (&bins.ipipd_baseline, kind) {
                (Some((path, _)), Kind::IpipdBaseline) => path,
                _ => &bins.ipipd,
            };
            ipipd_command(ns, bin, &conf)
        }
        Kind::Bird => {
            let conf = dir.join("bird.conf");
            std::fs::write(&conf, bird_conf(plan, &dir))?;
            bird_command(ns, &conf, &dir.path)
        }
        Kind::Gobgp => {
            let conf = dir.join("gobgpd.toml");
            std::fs::write(&conf, gobgp_conf(plan))?;
            let mut c = ns.command("gobgpd");
            c.arg("-f")
                .arg(&conf)
                .arg("--api-hosts")
                .arg("127.0.0.1:50051")
                .arg("--log-level")
                .arg("warn");
            c
        }
        Kind::Frr => {
            let conf = dir.join("bgpd.conf");
            std::fs::write(&conf, frr_conf(plan, &dir))?;
            let mut c = ns.command("/usr/lib/frr/bgpd");
            c.args(["-Z", "-S", "-A", "127.0.0.1", "-P", "0", "-f"])
                .arg(&conf)
                .arg("-i")
                .arg(dir.join("bgpd.pid"))
                .arg("--vty_socket")
                .arg(dir.path.as_os_str());
            c
        }
    };
    let mut proc = Proc::spawn(cmd, kind.name(), &log)?;
    let pid = proc.pid().context("daemon has no pid")?;
    let up = wait_until(
        Duration::from_secs(20),
        "the daemon to listen on port 179",
        || listening(ns, 179).then_some(()),
    );
    if up.is_err() || !proc.alive() {
        bail!(
            "{} did not start listening: {}",
            kind.name(),
            proc.log_tail(20)
        );
    }
    // Listening comes before the peers are configured in some daemons; give them a moment.
    std::thread::sleep(Duration::from_millis(500));
    Ok(Running {
        kind,
        proc,
        pid,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            address: Ipv4Addr::new(10, 0, 0, 1),
            asn: 64512,
            senders: vec![Ipv4Addr::new(10, 0, 1, 1), Ipv4Addr::new(10, 0, 1, 2)],
            monitor: Ipv4Addr::new(10, 0, 0, 2),
            pool: "64.0.0.0/4".parse().unwrap_or_default(),
            kernel: false,
        }
    }

    #[test]
    fn configs_name_every_peer() {
        let dir = TempDir::new("conftest").unwrap_or_else(|e| panic!("{e}"));
        let p = plan();
        for text in [
            ipipd_conf(&p, &dir),
            bird_conf(&p, &dir),
            gobgp_conf(&p),
            frr_conf(&p, &dir),
        ] {
            for a in ["10.0.1.1", "10.0.1.2", "10.0.0.2"] {
                assert!(text.contains(a), "{a} missing from:\n{text}");
            }
        }
        assert!(ipipd_conf(&p, &dir).contains("install = false"));
        assert!(!bird_conf(&p, &dir).contains("kernel"));
        let k = Plan {
            kernel: true,
            ..plan()
        };
        assert!(ipipd_conf(&k, &dir).contains("install = true"));
        assert!(!ipipd_conf(&k, &dir).contains("graceful_restart_time"));
        assert!(bird_conf(&k, &dir).contains("protocol kernel"));
    }
}
