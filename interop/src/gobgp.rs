//! A GoBGP daemon in a namespace, driven through the `gobgp` CLI.
//!
//! `gobgpd` listens for its gRPC API on 127.0.0.1 inside the namespace, so
//! the CLI runs inside the namespace too. GoBGP here never touches the kernel
//! (no zebra).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::harness::{wait_until, Netns, Proc, TempDir};

/// One path of `gobgp global rib -j`.
#[derive(Debug, Clone, PartialEq)]
pub struct GobgpPath {
    pub prefix: String,
    pub next_hop: Option<String>,
    pub best: bool,
    pub stale: bool,
    /// ORIGINATOR_ID (attribute type 9), if present.
    pub originator_id: Option<String>,
    /// CLUSTER_LIST (attribute type 10).
    pub cluster_list: Vec<String>,
    /// The neighbor it came from (absent for local routes).
    pub neighbor: Option<String>,
}

/// A running (or stopped) gobgpd.
pub struct Gobgp<'a> {
    pub ns: &'a Netns,
    pub dir: TempDir,
    pub conf: PathBuf,
    pub api_port: u16,
    pub proc: Option<Proc>,
}

impl<'a> Gobgp<'a> {
    /// Writes `toml` and starts `gobgpd -f FILE --api-hosts 127.0.0.1:PORT` in `ns`.
    pub fn start(ns: &'a Netns, toml: &str, api_port: u16) -> Result<Gobgp<'a>> {
        let dir = TempDir::new("gobgp")?;
        let conf = dir.join("gobgpd.toml");
        std::fs::write(&conf, toml).with_context(|| format!("writing {}", conf.display()))?;
        let mut g = Gobgp {
            ns,
            dir,
            conf,
            api_port,
            proc: None,
        };
        g.restart()?;
        Ok(g)
    }

    /// Starts gobgpd (again) and waits until its API answers.
    pub fn restart(&mut self) -> Result<()> {
        let mut cmd = self.ns.command("gobgpd");
        cmd.arg("-f")
            .arg(&self.conf)
            .arg("--api-hosts")
            .arg(format!("127.0.0.1:{}", self.api_port));
        self.proc = Some(Proc::spawn(cmd, "gobgpd", &self.dir.join("gobgpd.log"))?);
        let r = wait_until(Duration::from_secs(10), "GoBGP's API", || {
            self.gobgp(&["global"]).ok()
        });
        if let Err(e) = r {
            bail!("{e}; log:\n{}", self.log());
        }
        Ok(())
    }

    /// Stops gobgpd with a signal and waits for it to exit.
    pub fn stop(&mut self, sig: &str) -> Result<()> {
        crate::harness::stop_slot(&mut self.proc, sig)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gobgpd.log")).unwrap_or_default()
    }

    /// `gobgp -p PORT ARGS` inside the namespace.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        let port = self.api_port.to_string();
        let out = self
            .ns
            .command("gobgp")
            .args(["-p", &port])
            .args(args)
            .output()
            .context("running gobgp")?;
        if !out.status.success() {
            bail!(
                "gobgp {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Originates `prefix` (next hop chosen by GoBGP: its session address).
    pub fn add_route(&self, prefix: &str) -> Result<()> {
        self.gobgp(&["global", "rib", "add", prefix, "-a", "ipv4"])
            .map(drop)
    }

    /// Withdraws a route originated with [`Gobgp::add_route`].
    pub fn del_route(&self, prefix: &str) -> Result<()> {
        self.gobgp(&["global", "rib", "del", prefix, "-a", "ipv4"])
            .map(drop)
    }

    /// Every path of `gobgp global rib -j`.
    pub fn rib(&self) -> Result<Vec<GobgpPath>> {
        let text = self.gobgp(&["global", "rib", "-a", "ipv4", "-j"])?;
        parse_rib(&text)
    }

    /// The best path for `prefix`, if any.
    pub fn best(&self, prefix: &str) -> Option<GobgpPath> {
        self.rib()
            .ok()?
            .into_iter()
            .find(|p| p.prefix == prefix && p.best)
    }

    /// Waits until GoBGP's best path for `prefix` has next hop `next_hop`.
    pub fn wait_route(&self, prefix: &str, next_hop: &str, limit: Duration) -> Result<GobgpPath> {
        wait_until(limit, &format!("GoBGP: {prefix} via {next_hop}"), || {
            self.best(prefix)
                .filter(|p| p.next_hop.as_deref() == Some(next_hop))
        })
        .with_context(|| {
            format!(
                "GoBGP rib now:\n{}",
                self.gobgp(&["global", "rib"]).unwrap_or_default()
            )
        })
    }

    /// Waits until GoBGP has no path for `prefix`.
    pub fn wait_no_route(&self, prefix: &str, limit: Duration) -> Result<()> {
        wait_until(limit, &format!("GoBGP: {prefix} gone"), || {
            let rib = self.rib().ok()?;
            (!rib.iter().any(|p| p.prefix == prefix)).then_some(())
        })
        .with_context(|| {
            format!(
                "GoBGP rib now:\n{}",
                self.gobgp(&["global", "rib"]).unwrap_or_default()
            )
        })
    }

    /// `gobgp neighbor -j`.
    pub fn neighbors(&self) -> Result<Vec<Value>> {
        let v: Value = serde_json::from_str(&self.gobgp(&["neighbor", "-j"])?)
            .context("parsing gobgp neighbor -j")?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Whether the session with `address` is Established.
    pub fn established(&self, address: &str) -> bool {
        self.neighbors().is_ok_and(|ns| {
            ns.iter().any(|n| {
                n["state"]["neighbor_address"] == address
                    && n["state"]["session_state"] == SESSION_ESTABLISHED
            })
        })
    }

    /// Waits until the session with `address` is Established.
    pub fn wait_established(&self, address: &str, limit: Duration) -> Result<()> {
        wait_until(
            limit,
            &format!("GoBGP session with {address} Established"),
            || self.established(address).then_some(()),
        )
        .with_context(|| {
            format!(
                "GoBGP neighbors:\n{}",
                self.gobgp(&["neighbor"]).unwrap_or_default()
            )
        })
    }
}

/// `session_state` of an Established neighbor in GoBGP's API.
const SESSION_ESTABLISHED: u64 = 6;

impl Drop for Gobgp<'_> {
    /// Stops the daemon before its directory goes.
    fn drop(&mut self) {
        self.proc.take();
    }
}

/// Parses `gobgp global rib -j`: an object from prefix to a list of paths,
/// each with `attrs` as `{type, ...}` objects (3 NEXT_HOP, 9 ORIGINATOR_ID,
/// 10 CLUSTER_LIST).
pub fn parse_rib(text: &str) -> Result<Vec<GobgpPath>> {
    let text = text.trim();
    if text.is_empty() || text == "null" {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text).context("parsing gobgp global rib -j")?;
    let mut out = Vec::new();
    let Some(map) = v.as_object() else {
        return Ok(out);
    };
    for (prefix, paths) in map {
        for p in paths.as_array().into_iter().flatten() {
            let attrs = p["attrs"].as_array().cloned().unwrap_or_default();
            let attr = |t: u64| attrs.iter().find(|a| a["type"] == t).cloned();
            let as_string = |v: &Value| v.as_str().map(str::to_owned);
            out.push(GobgpPath {
                prefix: prefix.clone(),
                next_hop: attr(3).and_then(|a| as_string(&a["nexthop"])),
                best: p["best"] == true,
                stale: p["stale"] == true,
                originator_id: attr(9).and_then(|a| as_string(&a["value"])),
                cluster_list: attr(10)
                    .and_then(|a| {
                        a["value"]
                            .as_array()
                            .map(|l| l.iter().filter_map(as_string).collect())
                    })
                    .unwrap_or_default(),
                neighbor: as_string(&p["neighbor-ip"]).filter(|n| n != "<nil>"),
            });
        }
    }
    Ok(out)
}

/// A gobgpd config for these tests: AS 64512, and one iBGP neighbor per
/// entry of `neighbors` (address, extra TOML appended to that neighbor, e.g.
/// a `[neighbors.route-reflector.config]` table) with hold time 9 s, a 1 s
/// connect retry and graceful restart (30 s) for IPv4 unicast.
pub fn conf(router_id: &str, neighbors: &[(&str, &str)]) -> String {
    let mut t = format!("[global.config]\n  as = 64512\n  router-id = \"{router_id}\"\n  local-address-list = [\"{router_id}\"]\n");
    for (addr, extra) in neighbors {
        t.push_str(&format!(
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = 64512\n  [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 30\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n{extra}\n"
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_global_rib() {
        let text = r#"{"101.77.1.0/26":[{"nlri":{"prefix":"101.77.1.0/26"},"age":1,"best":true,"attrs":[{"type":1,"value":2},{"type":3,"nexthop":"172.29.235.101"},{"type":9,"value":"172.29.235.103"},{"type":10,"value":["172.29.235.101"]}],"stale":false,"neighbor-ip":"172.29.235.101"}]}"#;
        let r = parse_rib(text).expect("parses");
        assert_eq!(
            r,
            vec![GobgpPath {
                prefix: "101.77.1.0/26".into(),
                next_hop: Some("172.29.235.101".into()),
                best: true,
                stale: false,
                originator_id: Some("172.29.235.103".into()),
                cluster_list: vec!["172.29.235.101".into()],
                neighbor: Some("172.29.235.101".into()),
            }]
        );
        assert!(parse_rib("null").expect("empty").is_empty());
    }
}
