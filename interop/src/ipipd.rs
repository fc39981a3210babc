//! A running ipipd, driven through its real command line.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;

pub use api::protocol::{
    BfdJson, BlockJson, NodeJson, PeerJson, PoolJson, RouteJson, WorkloadJson,
};

pub use crate::config::NodeConfig;
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
        let text = with_control(config, &socket, &state);
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

    /// Runs `ipipd ARGS` and returns its standard output; an error if it failed.
    pub fn stdout(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "ipipd {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    }

    /// `ipipd ARGS` (a `--json` command) parsed into the control API's types: the CLI
    /// prints exactly what the daemon answered, so this fails on any field a user's
    /// script would miss.
    pub fn typed<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T> {
        let out = self.stdout(args)?;
        serde_json::from_slice(&out).with_context(|| {
            format!(
                "parsing `ipipd {}`: {}",
                args.join(" "),
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// `ipipd ARGS` as untyped JSON: only for tests of the documented key names
    /// themselves, as scripts outside the project read them.
    pub fn raw_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let out = self.stdout(args)?;
        serde_json::from_slice(&out).context("parsing JSON")
    }

    /// Checks that `ipipd ARGS` prints exactly what `T` serializes to: parsing the
    /// output into `T` and writing it back gives the same JSON, so no key is renamed,
    /// dropped or added between the api types and what users' scripts read.
    pub fn same_shape<T: DeserializeOwned + serde::Serialize>(&self, args: &[&str]) -> Result<()> {
        let raw = self.raw_json(args)?;
        let typed: T = serde_json::from_value(raw.clone())
            .with_context(|| format!("`ipipd {}` as the api type: {raw}", args.join(" ")))?;
        let back = serde_json::to_value(&typed)?;
        if back != raw {
            bail!(
                "`ipipd {}` differs from its api type:\nprinted: {raw}\napi:     {back}",
                args.join(" ")
            );
        }
        Ok(())
    }

    /// `show routes --json`.
    pub fn routes(&self) -> Result<Vec<RouteJson>> {
        self.typed(&["show", "routes", "--json"])
    }

    /// `show peers --json`.
    pub fn peers(&self) -> Result<Vec<PeerJson>> {
        self.typed(&["show", "peers", "--json"])
    }

    /// `show blocks --json`.
    pub fn blocks(&self) -> Result<Vec<BlockJson>> {
        self.typed(&["show", "blocks", "--json"])
    }

    /// `show nodes --json`.
    pub fn nodes(&self) -> Result<Vec<NodeJson>> {
        self.typed(&["show", "nodes", "--json"])
    }

    /// `show bfd --json`.
    pub fn bfd(&self) -> Result<Vec<BfdJson>> {
        self.typed(&["show", "bfd", "--json"])
    }

    /// `pool list --json`.
    pub fn pools(&self) -> Result<Vec<PoolJson>> {
        self.typed(&["pool", "list", "--json"])
    }

    /// `workload list --json`.
    pub fn workloads(&self) -> Result<Vec<WorkloadJson>> {
        self.typed(&["workload", "list", "--json"])
    }

    /// The BFD session with `peer`, if `show bfd` lists it.
    pub fn bfd_session(&self, peer: &str) -> Option<BfdJson> {
        self.bfd().ok()?.into_iter().find(|s| is(&s.peer, peer))
    }

    /// The best route for `prefix`, if any.
    pub fn best(&self, prefix: &str) -> Option<RouteJson> {
        self.routes()
            .ok()?
            .into_iter()
            .find(|r| r.prefix == prefix && r.best)
    }

    /// Waits until `prefix` is best and installed with the given next hop.
    pub fn wait_route(&self, prefix: &str, next_hop: &str, limit: Duration) -> Result<RouteJson> {
        wait_until(limit, &format!("{prefix} via {next_hop} installed"), || {
            self.best(prefix)
                .filter(|r| r.next_hop.as_deref() == Some(next_hop) && r.installed)
        })
        .with_context(|| format!("routes now: {:?}", self.routes().unwrap_or_default()))
    }

    /// Waits until `prefix` is gone from `show routes`.
    pub fn wait_no_route(&self, prefix: &str, limit: Duration) -> Result<()> {
        wait_until(limit, &format!("{prefix} gone"), || {
            let rs = self.routes().ok()?;
            (!rs.iter().any(|r| r.prefix == prefix && r.origin == "bgp")).then_some(())
        })
    }

    /// Waits until the peer at `address` is Established.
    pub fn wait_established(&self, address: &str, limit: Duration) -> Result<PeerJson> {
        wait_until(
            limit,
            &format!("session with {address} Established"),
            || self.peer(address).filter(|p| p.state == "Established"),
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

/// Whether `ip` is the address written `text`.
pub fn is(ip: &IpAddr, text: &str) -> bool {
    text.parse::<IpAddr>().is_ok_and(|t| t == *ip)
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
        std::fs::write(&self.config, self.with_control(config))?;
        Ok(())
    }

    /// `config` with this daemon's `[control]` table appended: its socket and state
    /// directory, whatever file it is written to.
    pub fn with_control(&self, config: &str) -> String {
        with_control(config, &self.socket, &self.dir.join("state"))
    }

    /// Sends a signal to the running daemon (e.g. "HUP", "STOP", "CONT").
    pub fn signal(&self, sig: &str) -> Result<()> {
        self.proc
            .as_ref()
            .context("ipipd is not running")?
            .signal(sig)
    }

    /// The peer at `address` as `show peers --json` lists it.
    pub fn peer(&self, address: &str) -> Option<PeerJson> {
        self.peers()
            .ok()?
            .into_iter()
            .find(|p| is(&p.address, address))
    }

    /// The state of the session with `address` (`Established`, `Active`, ...).
    pub fn peer_state(&self, address: &str) -> Option<String> {
        self.peer(address).map(|p| p.state)
    }
}

impl Drop for Ipipd<'_> {
    /// Stops the daemon before its directory goes, so it never writes into a removed one.
    fn drop(&mut self) {
        self.proc.take();
    }
}

/// The `[control]` table: the config file is TOML, so appending a table is enough.
fn with_control(config: &str, socket: &Path, state_dir: &Path) -> String {
    let control = crate::config::NodeConfig::default()
        .control(socket, state_dir)
        .control
        .map(|c| {
            toml::to_string(&std::collections::BTreeMap::from([("control", c)]))
                .unwrap_or_else(|e| panic!("rendering [control]: {e}"))
        })
        .unwrap_or_default();
    format!("{config}\n{control}")
}
