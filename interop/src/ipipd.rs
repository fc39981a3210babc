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
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let candidates = [target.join("release/ipipd"), target.join("debug/ipipd")];
    candidates
        .iter()
        .filter_map(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, p.clone()))
        })
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
        let text = format!(
            "{config}\n[control]\nsocket = \"{}\"\nstate_dir = \"{}\"\n",
            socket.display(),
            state.display()
        );
        let path = dir.join("ipipd.toml");
        std::fs::write(&path, text)?;
        let mut d = Ipipd {
            ns,
            dir,
            config: path,
            socket,
            proc: None,
            starts: 0,
        };
        d.restart()?;
        Ok(d)
    }

    /// Starts the daemon again (after a stop) and waits for its socket.
    pub fn restart(&mut self) -> Result<()> {
        self.starts += 1;
        let mut cmd = self.ns.command(binary());
        cmd.args(["run", "--config"]).arg(&self.config).env(
            "RUST_LOG",
            std::env::var("IPIPD_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let log = self.dir.join("ipipd.log");
        self.proc = Some(Proc::spawn(cmd, "ipipd", &log)?);
        let sock = self.socket.clone();
        let r = wait_until(Duration::from_secs(15), "the control socket", || {
            self.cli(&["show", "peers", "--json"])
                .ok()
                .filter(|o| o.status.success())
                .map(|_| ())
        });
        if let Err(e) = r {
            bail!("{e} ({}); log:\n{}", sock.display(), self.log());
        }
        Ok(())
    }

    /// Stops the daemon with a signal and waits for it to exit.
    pub fn stop(&mut self, sig: &str) -> Result<()> {
        crate::harness::stop_slot(&mut self.proc, sig)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ipipd.log")).unwrap_or_default()
    }

    /// Runs `ipipd ARGS --socket SOCKET` from the host namespace.
    pub fn cli(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new(binary())
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .context("running ipipd CLI")
    }

    fn json(&self, args: &[&str]) -> Result<Vec<Value>> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "ipipd {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
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
        self.routes()
            .ok()?
            .into_iter()
            .find(|r| r["prefix"] == prefix && r["best"] == true)
    }

    /// Waits until `prefix` is best and installed with the given next hop.
    pub fn wait_route(&self, prefix: &str, next_hop: &str, limit: Duration) -> Result<Value> {
        wait_until(limit, &format!("{prefix} via {next_hop} installed"), || {
            self.best(prefix)
                .filter(|r| r["next_hop"] == next_hop && r["installed"] == true)
        })
        .with_context(|| format!("routes now: {:?}", self.routes().unwrap_or_default()))
    }

    /// Waits until `prefix` is gone from `show routes`.
    pub fn wait_no_route(&self, prefix: &str, limit: Duration) -> Result<()> {
        wait_until(limit, &format!("{prefix} gone"), || {
            let rs = self.routes().ok()?;
            (!rs.iter()
                .any(|r| r["prefix"] == prefix && r["origin"] == "bgp"))
            .then_some(())
        })
    }

    /// Waits until the peer at `address` is Established.
    pub fn wait_established(&self, address: &str, limit: Duration) -> Result<Value> {
        wait_until(
            limit,
            &format!("session with {address} Established"),
            || {
                self.peers()
                    .ok()?
                    .into_iter()
                    .find(|p| p["address"] == address && p["state"] == "Established")
            },
        )
        .with_context(|| {
            format!(
                "peers now: {:?}\nlog:\n{}",
                self.peers().unwrap_or_default(),
                self.log()
            )
        })
    }
}

/// A node's configuration for tests, with small timers; [`NodeConfig::toml`]
/// renders it (the `[control]` table is added by [`Ipipd::start`]).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `node.name`; default `node-A-B-C-D` from the address.
    pub name: Option<String>,
    pub address: String,
    pub address_v6: Option<String>,
    pub blocks: Vec<String>,
    pub pools: Vec<String>,
    pub mesh: bool,
    pub nodes: Vec<String>,
    pub hold_time: u16,
    pub graceful_restart_time: u16,
    pub connect_retry_time: Option<u16>,
    pub cluster_id: Option<String>,
    /// Raw `[[peer]]` tables.
    pub peers: Vec<String>,
    /// `metrics.listen`.
    pub metrics_listen: Option<String>,
}

impl NodeConfig {
    /// A node at `address` announcing `block` in pool 101.64.0.0/10, with
    /// hold time 9 s, graceful restart time 30 s and a 1 s connect retry.
    pub fn new(address: &str, block: &str) -> NodeConfig {
        NodeConfig {
            name: None,
            address: address.to_owned(),
            address_v6: None,
            blocks: vec![block.to_owned()],
            pools: vec!["101.64.0.0/10".to_owned()],
            mesh: true,
            nodes: Vec::new(),
            hold_time: 9,
            graceful_restart_time: 30,
            connect_retry_time: Some(1),
            cluster_id: None,
            peers: Vec::new(),
            metrics_listen: None,
        }
    }

    pub fn name(mut self, name: &str) -> NodeConfig {
        self.name = Some(name.to_owned());
        self
    }

    /// Another block (IPv4 or IPv6) announced by the node.
    pub fn block(mut self, block: &str) -> NodeConfig {
        self.blocks.push(block.to_owned());
        self
    }

    pub fn pool(mut self, pool: &str) -> NodeConfig {
        self.pools.push(pool.to_owned());
        self
    }

    pub fn address_v6(mut self, address: &str) -> NodeConfig {
        self.address_v6 = Some(address.to_owned());
        self
    }

    pub fn metrics(mut self, listen: &str) -> NodeConfig {
        self.metrics_listen = Some(listen.to_owned());
        self
    }

    /// Full mesh with these node addresses (its own may be among them).
    pub fn mesh(mut self, nodes: &[&str]) -> NodeConfig {
        self.mesh = true;
        self.nodes = nodes.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// An explicit `[[peer]]` at `address` (AS 64512) with extra `key = value` lines.
    pub fn peer(mut self, address: &str, extra: &str) -> NodeConfig {
        self.peers.push(format!(
            "[[peer]]\naddress = \"{address}\"\nasn = 64512\n{extra}\n"
        ));
        self
    }

    pub fn toml(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut t = format!(
            "[node]\nname = \"{name}\"\naddress = \"{addr}\"\n{v6}blocks = [{blocks}]\n\n[cluster]\npools = [{pools}]\nmesh = {mesh}\nnodes = [{nodes}]\n\n[bgp]\nhold_time = {hold}\ngraceful_restart_time = {gr}\n",
            name = self
                .name
                .clone()
                .unwrap_or_else(|| format!("node-{}", self.address.replace('.', "-"))),
            addr = self.address,
            v6 = self
                .address_v6
                .as_ref()
                .map(|a| format!("address_v6 = \"{a}\"\n"))
                .unwrap_or_default(),
            blocks = list(&self.blocks),
            pools = list(&self.pools),
            mesh = self.mesh,
            nodes = list(&self.nodes),
            hold = self.hold_time,
            gr = self.graceful_restart_time,
        );
        if let Some(c) = self.connect_retry_time {
            t.push_str(&format!("connect_retry_time = {c}\n"));
        }
        if let Some(c) = &self.cluster_id {
            t.push_str(&format!("route_reflector_cluster_id = \"{c}\"\n"));
        }
        for p in &self.peers {
            t.push('\n');
            t.push_str(p);
        }
        if let Some(l) = &self.metrics_listen {
            t.push_str(&format!("\n[metrics]\nlisten = \"{l}\"\n"));
        }
        t
    }
}

impl Ipipd<'_> {
    /// Rewrites the config file (the `[control]` table is kept) and sends
    /// SIGHUP so the running daemon reloads it.
    pub fn reconfigure(&self, config: &str) -> Result<()> {
        self.write_config(config)?;
        self.signal("HUP")
    }

    /// Rewrites the config file (the `[control]` table is kept) without telling
    /// the daemon: for the next [`Ipipd::restart`].
    pub fn write_config(&self, config: &str) -> Result<()> {
        let text = format!(
            "{config}\n[control]\nsocket = \"{}\"\nstate_dir = \"{}\"\n",
            self.socket.display(),
            self.dir.join("state").display()
        );
        std::fs::write(&self.config, text)?;
        Ok(())
    }

    /// Sends a signal to the running daemon (e.g. "HUP", "STOP", "CONT").
    pub fn signal(&self, sig: &str) -> Result<()> {
        self.proc
            .as_ref()
            .context("ipipd is not running")?
            .signal(sig)
    }

    /// The peer at `address` as `show peers --json` lists it.
    pub fn peer(&self, address: &str) -> Option<Value> {
        self.peers()
            .ok()?
            .into_iter()
            .find(|p| p["address"] == address)
    }

    /// The state of the session with `address` (`Established`, `Active`, ...).
    pub fn peer_state(&self, address: &str) -> Option<String> {
        self.peer(address)
            .and_then(|p| p["state"].as_str().map(str::to_owned))
    }
}

impl Drop for Ipipd<'_> {
    /// Stops the daemon before its directory goes, so it never writes into a removed one.
    fn drop(&mut self) {
        self.proc.take();
    }
}
