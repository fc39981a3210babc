//! A running ipipd, driven through its real command line.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::harness::{wait_until, Netns, Proc, TempDir};

/// The ipipd binary under test: `IPIPD_BIN`, or the workspace's release or
/// debug build (the newer of the two).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IPIPD_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let candidates = [target.join("release/ipipd"), target.join("debug/ipipd")];
    candidates
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok().map(|t| (t, p.clone())))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| candidates[0].clone())
}

/// One ipipd in a namespace, with its own config, socket and state directory.
pub struct Ipipd<'a> {
    pub ns: &'a Netns,
    pub dir: TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub proc: Option<Proc>,
    starts: u32,
}

impl<'a> Ipipd<'a> {
    /// Writes `config` (the `[control]` table is appended) and starts ipipd.
    pub fn start(ns: &'a Netns, config: &str) -> Result<Ipipd<'a>> {
        let dir = TempDir::new("node")?;
        let socket = dir.join("ipipd.sock");
        let state = dir.join("state");
        let text = format!("{config}\n[control]\nsocket = \"{}\"\nstate_dir = \"{}\"\n", socket.display(), state.display());
        let path = dir.join("ipipd.toml");
        std::fs::write(&path, text)?;
        let mut d = Ipipd { ns, dir, config: path, socket, proc: None, starts: 0 };
        d.restart()?;
        Ok(d)
    }

    /// Starts the daemon again (after a stop) and waits for its socket.
    pub fn restart(&mut self) -> Result<()> {
        self.starts += 1;
        let mut cmd = self.ns.command(binary());
        cmd.args(["run", "--config"]).arg(&self.config).env("RUST_LOG", std::env::var("IPIPD_TEST_LOG").unwrap_or_else(|_| "info".into()));
        let log = self.dir.join("ipipd.log");
        self.proc = Some(Proc::spawn(cmd, "ipipd", &log)?);
        let sock = self.socket.clone();
        let r = wait_until(Duration::from_secs(15), "the control socket", || {
            self.cli(&["show", "peers", "--json"]).ok().filter(|o| o.status.success()).map(|_| ())
        });
        if let Err(e) = r {
            bail!("{e} ({}); log:\n{}", sock.display(), self.log());
        }
        Ok(())
    }

    /// Stops the daemon with a signal and waits for it to exit.
    pub fn stop(&mut self, sig: &str) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.signal(sig)?;
            p.wait(Duration::from_secs(10))?;
        }
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ipipd.log")).unwrap_or_default()
    }

    /// Runs `ipipd ARGS --socket SOCKET` from the host namespace.
    pub fn cli(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new(binary()).args(args).arg("--socket").arg(&self.socket).output().context("running ipipd CLI")
    }

    fn json(&self, args: &[&str]) -> Result<Vec<Value>> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!("ipipd {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        let v: Value = serde_json::from_slice(&out.stdout).context("parsing JSON")?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `show routes --json`.
    pub fn routes(&self) -> Result<Vec<Value>> {
        self.json(&["show", "routes", "--json"])
    }

    /// `show peers --json`.
    pub fn peers(&self) -> Result<Vec<Value>> {
        self.json(&["show", "peers", "--json"])
    }

    /// The best route for `prefix`, if any.
    pub fn best(&self, prefix: &str) -> Option<Value> {
        self.routes().ok()?.into_iter().find(|r| r["prefix"] == prefix && r["best"] == true)
    }

    /// Waits until `prefix` is best and installed with the given next hop.
    pub fn wait_route(&self, prefix: &str, next_hop: &str, limit: Duration) -> Result<Value> {
        wait_until(limit, &format!("{prefix} via {next_hop} installed"), || {
            self.best(prefix).filter(|r| r["next_hop"] == next_hop && r["installed"] == true)
        })
        .with_context(|| format!("routes now: {:?}", self.routes().unwrap_or_default()))
    }

    /// Waits until `prefix` is gone from `show routes`.
    pub fn wait_no_route(&self, prefix: &str, limit: Duration) -> Result<()> {
        wait_until(limit, &format!("{prefix} gone"), || {
            let rs = self.routes().ok()?;
            (!rs.iter().any(|r| r["prefix"] == prefix && r["origin"] == "bgp")).then_some(())
        })
    }

    /// Waits until the peer at `address` is Established.
    pub fn wait_established(&self, address: &str, limit: Duration) -> Result<Value> {
        wait_until(limit, &format!("session with {address} Established"), || {
            self.peers().ok()?.into_iter().find(|p| p["address"] == address && p["state"] == "Established")
        })
        .with_context(|| format!("peers now: {:?}\nlog:\n{}", self.peers().unwrap_or_default(), self.log()))
    }
}
