//! FRR (zebra + bgpd) in a namespace, driven through `vtysh`.
//!
//! Both daemons get their config, pid file, zserv socket and vty sockets in
//! one temporary directory (`-f`, `-i`, `-z`, `--vty_socket`), and no TCP vty
//! (`-P 0`). zebra drops privileges to the `frr` user as packaged, so the
//! directory is world-writable; bgpd runs with `-S` (no user switch).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::harness::{wait_until, Netns, Proc, TempDir};

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";
const BFDD: &str = "/usr/lib/frr/bfdd";

/// One path of `show bgp ipv4 unicast json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrPath {
    pub prefix: String,
    pub next_hop: Option<String>,
    pub best: bool,
    pub valid: bool,
}

/// Running zebra and bgpd.
pub struct Frr<'a> {
    pub ns: &'a Netns,
    pub dir: TempDir,
    pub zebra: Option<Proc>,
    pub bgpd: Option<Proc>,
    /// With BFD: bgpd reaches it through zebra.
    pub bfdd: Option<Proc>,
}

impl<'a> Frr<'a> {
    /// Starts zebra, then bgpd with `bgpd_conf`, and waits until vtysh answers.
    pub fn start(ns: &'a Netns, bgpd_conf: &str) -> Result<Frr<'a>> {
        Frr::start_with(ns, bgpd_conf, false)
    }

    /// As [`Frr::start`], plus bfdd (its own `--bfdctl` socket); the daemons
    /// run as root in group frrvty, which FRR needs for BFD.
    pub fn start_with_bfd(ns: &'a Netns, bgpd_conf: &str) -> Result<Frr<'a>> {
        Frr::start_with(ns, bgpd_conf, true)
    }

    fn start_with(ns: &'a Netns, bgpd_conf: &str, bfd: bool) -> Result<Frr<'a>> {
        let dir = TempDir::new("frr")?;
        set_mode(&dir.path, 0o777)?;
        let d = |name: &str| dir.join(name);
        std::fs::write(d("zebra.conf"), "hostname zebra\n")?;
        std::fs::write(d("bgpd.conf"), bgpd_conf)?;
        let common = |cmd: &mut std::process::Command, name: &str| {
            cmd.arg("-f").arg(d(&format!("{name}.conf")));
            cmd.arg("-i").arg(d(&format!("{name}.pid")));
            cmd.arg("-z").arg(d("zserv.api"));
            cmd.arg("--vty_socket").arg(&dir.path);
            cmd.args(["-P", "0"]);
            if bfd {
                cmd.args(["-u", "root", "-g", "frrvty"]);
            }
        };
        let mut zcmd = ns.command(ZEBRA);
        common(&mut zcmd, "zebra");
        let zebra = Proc::spawn(zcmd, "zebra", &d("zebra.log"))?;
        let zserv = d("zserv.api");
        wait_until(Duration::from_secs(10), "zebra's zserv socket", || {
            zserv.exists().then_some(())
        })
        .with_context(|| std::fs::read_to_string(d("zebra.log")).unwrap_or_default())?;
        let bfdd = if bfd {
            std::fs::write(d("bfdd.conf"), "hostname bfdd\n")?;
            let mut cmd = ns.command(BFDD);
            common(&mut cmd, "bfdd");
            cmd.arg("--bfdctl").arg(d("bfdd.sock"));
            Some(Proc::spawn(cmd, "bfdd", &d("bfdd.log"))?)
        } else {
            None
        };
        let mut bcmd = ns.command(BGPD);
        common(&mut bcmd, "bgpd");
        bcmd.arg("-S");
        let bgpd = Proc::spawn(bcmd, "bgpd", &d("bgpd.log"))?;
        let frr = Frr {
            ns,
            dir,
            zebra: Some(zebra),
            bgpd: Some(bgpd),
            bfdd,
        };
        let start = Instant::now();
        while frr.vtysh("show bgp summary json").is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("bgpd did not answer; log:\n{}", frr.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(frr)
    }

    /// Both daemons' output, for failure messages.
    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "zebra:\n{}\nbgpd:\n{}\nbfdd:\n{}",
            read("zebra.log"),
            read("bgpd.log"),
            read("bfdd.log")
        )
    }

    /// `vtysh --vty_socket DIR -c COMMAND`.
    pub fn vtysh(&self, command: &str) -> Result<String> {
        let out = std::process::Command::new("vtysh")
            .arg("--vty_socket")
            .arg(&self.dir.path)
            .args(["-c", command])
            .output()
            .context("running vtysh")?;
        if !out.status.success() {
            bail!(
                "vtysh -c {command:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs config commands: `vtysh -c "configure terminal" -c LINE...`.
    pub fn configure(&self, lines: &[&str]) -> Result<()> {
        let mut cmd = std::process::Command::new("vtysh");
        cmd.arg("--vty_socket")
            .arg(&self.dir.path)
            .args(["-c", "configure terminal"]);
        for l in lines {
            cmd.args(["-c", l]);
        }
        let out = cmd.output().context("running vtysh")?;
        if !out.status.success() {
            bail!(
                "vtysh configure {lines:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Every path of `show bgp ipv4 unicast json`.
    pub fn routes(&self) -> Result<Vec<FrrPath>> {
        parse_routes(&self.vtysh("show bgp ipv4 unicast json")?)
    }

    pub fn best(&self, prefix: &str) -> Option<FrrPath> {
        self.routes()
            .ok()?
            .into_iter()
            .find(|p| p.prefix == prefix && p.best)
    }

    /// Waits until bgpd's best path for `prefix` is valid via `next_hop`.
    pub fn wait_route(&self, prefix: &str, next_hop: &str, limit: Duration) -> Result<FrrPath> {
        wait_until(limit, &format!("FRR: {prefix} via {next_hop}"), || {
            self.best(prefix)
                .filter(|p| p.valid && p.next_hop.as_deref() == Some(next_hop))
        })
        .with_context(|| {
            format!(
                "FRR routes now:\n{}",
                self.vtysh("show bgp ipv4 unicast").unwrap_or_default()
            )
        })
    }

    /// Waits until bgpd has no path for `prefix`.
    pub fn wait_no_route(&self, prefix: &str, limit: Duration) -> Result<()> {
        wait_until(limit, &format!("FRR: {prefix} gone"), || {
            (!self.routes().ok()?.iter().any(|p| p.prefix == prefix)).then_some(())
        })
        .with_context(|| {
            format!(
                "FRR routes now:\n{}",
                self.vtysh("show bgp ipv4 unicast").unwrap_or_default()
            )
        })
    }

    /// The state of the session with `address` (`Established`, `Active`, ...).
    pub fn peer_state(&self, address: &str) -> Option<String> {
        let v: Value = serde_json::from_str(&self.vtysh("show bgp neighbors json").ok()?).ok()?;
        v[address]["bgpState"].as_str().map(str::to_owned)
    }

    pub fn wait_established(&self, address: &str, limit: Duration) -> Result<()> {
        wait_until(
            limit,
            &format!("FRR session with {address} Established"),
            || (self.peer_state(address).as_deref() == Some("Established")).then_some(()),
        )
        .with_context(|| {
            format!(
                "FRR summary:\n{}\n{}",
                self.vtysh("show bgp summary").unwrap_or_default(),
                self.log()
            )
        })
    }

    /// The config file path of bgpd.
    pub fn bgpd_conf(&self) -> PathBuf {
        self.dir.join("bgpd.conf")
    }
}

impl Drop for Frr<'_> {
    /// Stops bgpd before zebra, both before the directory goes.
    fn drop(&mut self) {
        self.bgpd.take();
        self.bfdd.take();
        self.zebra.take();
    }
}

fn set_mode(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Parses `show bgp ipv4 unicast json`: `routes` maps a prefix to its paths,
/// each with `valid`, `bestpath` and `nexthops[].ip`.
pub fn parse_routes(text: &str) -> Result<Vec<FrrPath>> {
    let v: Value = serde_json::from_str(text).context("parsing show bgp ipv4 unicast json")?;
    let mut out = Vec::new();
    let Some(routes) = v["routes"].as_object() else {
        return Ok(out);
    };
    for (prefix, paths) in routes {
        for p in paths.as_array().into_iter().flatten() {
            out.push(FrrPath {
                prefix: prefix.clone(),
                next_hop: p["nexthops"]
                    .as_array()
                    .and_then(|n| n.first())
                    .and_then(|n| n["ip"].as_str())
                    .map(str::to_owned),
                best: p["bestpath"] == true,
                valid: p["valid"] == true,
            });
        }
    }
    Ok(out)
}

/// A bgpd config for these tests: AS 64512, router id `router_id`, the given
/// `networks` originated, and one iBGP neighbor per address with hold time
/// 9 s and a 1 s connect retry.
pub fn conf(router_id: &str, networks: &[&str], neighbors: &[&str]) -> String {
    let mut t = format!(
        "frr defaults traditional\nhostname frr\n!\nrouter bgp 64512\n bgp router-id {router_id}\n no bgp ebgp-requires-policy\n no bgp network import-check\n bgp graceful-restart\n"
    );
    for n in neighbors {
        t.push_str(&format!(" neighbor {n} remote-as 64512\n neighbor {n} timers 3 9\n neighbor {n} timers connect 1\n"));
    }
    t.push_str(" address-family ipv4 unicast\n");
    for n in networks {
        t.push_str(&format!("  network {n}\n"));
    }
    t.push_str(" exit-address-family\n!\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_bgp_json() {
        let text = r#"{"vrfId": 0, "routes": { "101.101.3.0/26": [{"valid":true,"bestpath":true,"network":"101.101.3.0/26","nexthops":[{"ip":"0.0.0.0","afi":"ipv4","used":true}]}] } }"#;
        assert_eq!(
            parse_routes(text).expect("parses"),
            vec![FrrPath {
                prefix: "101.101.3.0/26".into(),
                next_hop: Some("0.0.0.0".into()),
                best: true,
                valid: true
            }]
        );
    }
}
