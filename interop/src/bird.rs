//! A BIRD 2 daemon in a namespace, driven through `birdc`.
//!
//! Each instance has its own config file, control socket, pid file and log
//! under a temporary directory. Tests write the BIRD config themselves; the
//! functions here only start, stop and query. A BIRD config for these tests
//! defines no `kernel` protocol: BIRD's routes stay in its own tables and never
//! touch the kernel (each daemon has its own namespace anyway).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::harness::{wait_until, Netns, Proc, TempDir};

/// One route line of `birdc show route`: a prefix, the protocol that
/// brought it, its next hop (if any) and whether it is the best route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdRoute {
    pub prefix: String,
    pub protocol: String,
    pub via: Option<String>,
    pub best: bool,
}

/// A running (or stopped) BIRD.
pub struct Bird<'a> {
    pub ns: &'a Netns,
    pub dir: TempDir,
    pub conf: PathBuf,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub proc: Option<Proc>,
}

impl<'a> Bird<'a> {
    /// Writes `conf` (a `log` line is prepended) and starts `bird -f` in `ns`.
    pub fn start(ns: &'a Netns, conf: &str) -> Result<Bird<'a>> {
        let dir = TempDir::new("bird")?;
        let socket = dir.join("bird.ctl");
        let pidfile = dir.join("bird.pid");
        let path = dir.join("bird.conf");
        let mut b = Bird {
            ns,
            conf: path,
            socket,
            pidfile,
            proc: None,
            dir,
        };
        b.write_conf(conf)?;
        b.restart(&[])?;
        Ok(b)
    }

    /// Replaces the config file (takes effect on [`Bird::configure`] or restart).
    pub fn write_conf(&self, conf: &str) -> Result<()> {
        let text = format!(
            "log \"{}\" all;\n{conf}\n",
            self.dir.join("bird.log").display()
        );
        std::fs::write(&self.conf, text).with_context(|| format!("writing {}", self.conf.display()))
    }

    /// Starts BIRD again with extra arguments (e.g. `-R` for a graceful
    /// restart recovery) and waits until its control socket answers.
    pub fn restart(&mut self, extra: &[&str]) -> Result<()> {
        let mut cmd = self.ns.command("bird");
        cmd.arg("-c")
            .arg(&self.conf)
            .arg("-s")
            .arg(&self.socket)
            .arg("-P")
            .arg(&self.pidfile)
            .arg("-f")
            .args(extra);
        let mut proc = Proc::spawn(cmd, "bird", &self.dir.join("bird.out"))?;
        let start = std::time::Instant::now();
        while self.birdc(&["show", "status"]).is_err() {
            if !proc.alive() || start.elapsed() > Duration::from_secs(10) {
                bail!(
                    "BIRD did not start; output:\n{}\nlog:\n{}",
                    self.output(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc = Some(proc);
        Ok(())
    }

    /// `birdc -s SOCKET ARGS`; fails when birdc fails or BIRD reports an error.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let out = std::process::Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("running birdc")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || text.contains("Unable to connect") {
            bail!(
                "birdc {}: {}{}",
                args.join(" "),
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(text)
    }

    /// Re-reads the config file (`birdc configure`).
    pub fn configure(&self) -> Result<()> {
        let out = self.birdc(&["configure"])?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            bail!("birdc configure: {out}");
        }
        Ok(())
    }

    /// `birdc graceful restart`: BIRD exits, closing its BGP sessions without
    /// a NOTIFICATION so that peers keep its routes (RFC 4724).
    pub fn graceful_stop(&mut self) -> Result<()> {
        self.birdc(&["graceful", "restart"])?;
        if let Some(mut p) = self.proc.take() {
            p.wait(Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Stops BIRD with a signal and waits for it to exit.
    pub fn stop(&mut self, sig: &str) -> Result<()> {
        crate::harness::stop_slot(&mut self.proc, sig)
    }

    /// Sends a signal without waiting (e.g. "STOP", "CONT").
    pub fn signal(&self, sig: &str) -> Result<()> {
        self.proc
            .as_ref()
            .context("BIRD is not running")?
            .signal(sig)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.out")).unwrap_or_default()
    }

    /// Every route of `show route` (all tables BIRD shows by default).
    pub fn routes(&self) -> Result<Vec<BirdRoute>> {
        Ok(parse_routes(&self.birdc(&["show", "route"])?))
    }

    /// `show route all for PREFIX`: every attribute, for checks like
    /// `BGP.originator_id`.
    pub fn route_all(&self, prefix: &str) -> Result<String> {
        self.birdc(&["show", "route", "all", "for", prefix])
    }

    /// The best route for exactly `prefix`, if BIRD has one.
    pub fn best(&self, prefix: &str) -> Option<BirdRoute> {
        self.routes()
            .ok()?
            .into_iter()
            .find(|r| r.prefix == prefix && r.best)
    }

    /// Waits until BIRD's best route for `prefix` came from BGP via `via`.
    pub fn wait_route(&self, prefix: &str, via: &str, limit: Duration) -> Result<BirdRoute> {
        wait_until(limit, &format!("BIRD: {prefix} via {via}"), || {
            self.best(prefix).filter(|r| r.via.as_deref() == Some(via))
        })
        .with_context(|| {
            format!(
                "BIRD routes now:\n{}",
                self.birdc(&["show", "route"]).unwrap_or_default()
            )
        })
    }

    /// Waits until BIRD has no route for `prefix`.
    pub fn wait_no_route(&self, prefix: &str, limit: Duration) -> Result<()> {
        wait_until(limit, &format!("BIRD: {prefix} gone"), || {
            let rs = self.routes().ok()?;
            (!rs.iter().any(|r| r.prefix == prefix)).then_some(())
        })
        .with_context(|| {
            format!(
                "BIRD routes now:\n{}",
                self.birdc(&["show", "route"]).unwrap_or_default()
            )
        })
    }

    /// The BGP state of protocol `name` (`Established`, `Active`, ...), from
    /// the Info column of `show protocols`.
    pub fn protocol_state(&self, name: &str) -> Option<String> {
        let out = self.birdc(&["show", "protocols", name]).ok()?;
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(5).map(str::to_owned))
    }

    /// Waits until protocol `name` is Established.
    pub fn wait_established(&self, name: &str, limit: Duration) -> Result<()> {
        wait_until(limit, &format!("BIRD protocol {name} Established"), || {
            (self.protocol_state(name).as_deref() == Some("Established")).then_some(())
        })
        .with_context(|| {
            format!(
                "BIRD protocols:\n{}\nlog:\n{}",
                self.birdc(&["show", "protocols", "all", name])
                    .unwrap_or_default(),
                self.log()
            )
        })
    }
}

impl Drop for Bird<'_> {
    /// Stops the daemon before its directory goes.
    fn drop(&mut self) {
        self.proc.take();
    }
}

/// Parses `show route` output of BIRD 2:
///
/// ```text
/// Table master4:
/// 101.76.9.128/26      unicast [n1 21:00:00.000] * (100) [i]
///         via 172.29.235.101 on eth0
///                      unicast [n2 21:00:01.000] (100) [i]
///         via 172.29.235.130 on eth0
/// 101.77.0.0/26        blackhole [s4 21:00:00.000] * (200)
/// ```
pub fn parse_routes(text: &str) -> Vec<BirdRoute> {
    let mut out: Vec<BirdRoute> = Vec::new();
    let mut prefix = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if line.starts_with("BIRD ") || line.starts_with("Table ") || trimmed.is_empty() {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("via ") {
            if let Some(last) = out.last_mut() {
                if last.via.is_none() {
                    last.via = rest.split_whitespace().next().map(str::to_owned);
                }
            }
            continue;
        }
        let Some(open) = trimmed.find('[') else {
            continue;
        };
        if !line.starts_with(char::is_whitespace) {
            if let Some(p) = trimmed.split_whitespace().next() {
                prefix = p.to_owned();
            }
        }
        let after = trimmed.get(open + 1..).unwrap_or_default();
        let protocol = after
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let close = after.find(']').unwrap_or(0);
        let best = after
            .get(close + 1..)
            .is_some_and(|t| t.trim_start().starts_with('*'));
        out.push(BirdRoute {
            prefix: prefix.clone(),
            protocol,
            via: None,
            best,
        });
    }
    out
}

/// The start of a BIRD config for these tests: router id, the device
/// protocol (needed for directly connected sessions) and one static
/// blackhole route per block, which is what BIRD announces. No kernel protocol.
pub fn conf_base(router_id: &str, blocks: &[&str]) -> String {
    let mut t = format!("router id {router_id};\nprotocol device {{}}\n");
    if !blocks.is_empty() {
        t.push_str("protocol static blocks {\n  ipv4;\n");
        for b in blocks {
            t.push_str(&format!("  route {b} blackhole;\n"));
        }
        t.push_str("}\n");
    }
    t
}

/// `protocol bfd` on `iface` with these timers (BIRD's default is 100 ms × 5).
pub fn conf_bfd(iface: &str, interval_ms: u32, multiplier: u8) -> String {
    format!(
        "protocol bfd {{\n  interface \"{iface}\" {{ min rx interval {interval_ms} ms; min tx interval {interval_ms} ms; multiplier {multiplier}; }};\n}}\n"
    )
}

/// One directly connected iBGP session (AS 64512) with hold time 9 s, a 1 s
/// connect retry and graceful restart on; `extra` goes inside the protocol
/// block (e.g. `rr client;`, `password "x";`).
pub fn conf_peer(name: &str, local: &str, neighbor: &str, extra: &str) -> String {
    format!(
        "protocol bgp {name} {{\n  local {local} as 64512;\n  neighbor {neighbor} as 64512;\n  direct;\n  hold time 9;\n  connect retry time 1;\n  graceful restart on;\n  {extra}\n  ipv4 {{ import all; export all; }};\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_route() {
        let text = "BIRD 2.0.12 ready.\nTable master4:\n101.76.9.128/26      unicast [n1 21:00:00.000] * (100) [i]\n\tvia 172.29.235.101 on eth0\n                     unicast [n2 21:00:01.000] (100) [i]\n\tvia 172.29.235.130 on eth0\n101.77.0.0/26        blackhole [s4 21:00:00.000] * (200)\n";
        let r = parse_routes(text);
        assert_eq!(
            r,
            vec![
                BirdRoute {
                    prefix: "101.76.9.128/26".into(),
                    protocol: "n1".into(),
                    via: Some("172.29.235.101".into()),
                    best: true
                },
                BirdRoute {
                    prefix: "101.76.9.128/26".into(),
                    protocol: "n2".into(),
                    via: Some("172.29.235.130".into()),
                    best: false
                },
                BirdRoute {
                    prefix: "101.77.0.0/26".into(),
                    protocol: "s4".into(),
                    via: None,
                    best: true
                },
            ]
        );
    }
}
