//! Driving `ipipd-cni` exactly as a container runtime does: CNI_* variables, the network
//! configuration on stdin, the result or error JSON on stdout — run inside the node's
//! network namespace, for pods that are network namespaces.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::harness::Netns;

/// The plugin under test: `IPIPD_CNI_BIN`, or `ipipd-cni` next to the ipipd binary.
pub fn plugin() -> PathBuf {
    if let Some(p) = std::env::var_os("IPIPD_CNI_BIN") {
        return PathBuf::from(p);
    }
    crate::ipipd::binary().with_file_name("ipipd-cni")
}

/// A network configuration for the daemon at `socket`.
pub fn conf(socket: &Path, version: &str) -> String {
    serde_json::json!({
        "cniVersion": version,
        "name": "ipipd",
        "type": "ipipd-cni",
        "socket": socket,
    })
    .to_string()
}

/// What one plugin run printed and how it exited.
#[derive(Debug)]
pub struct Outcome {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    /// The CNI error code, when the run failed with the spec's error JSON.
    pub fn code(&self) -> Option<u64> {
        (self.status == Some(1)).then(|| self.json()["code"].as_u64())?
    }

    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }

    /// The first address of an ADD result, without its prefix length.
    pub fn address(&self) -> Option<String> {
        let a = self.json()["ips"][0]["address"].as_str()?.to_string();
        Some(a.split('/').next()?.to_string())
    }
}

/// One call of the plugin, in `node`'s namespace (the host side of the pod).
pub struct Call<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: Option<String>,
    pub ifname: &'a str,
    pub args: Option<String>,
    pub stdin: String,
    /// Variables left out on purpose (bad-input tests).
    pub unset: Vec<&'static str>,
}

impl<'a> Call<'a> {
    pub fn new(
        command: &'a str,
        container_id: &'a str,
        pod: Option<&Netns>,
        stdin: String,
    ) -> Call<'a> {
        Call {
            command,
            container_id,
            netns: pod.map(|p| crate::harness::netns_path(&p.name)),
            ifname: "eth0",
            args: None,
            stdin,
            unset: Vec::new(),
        }
    }

    pub fn run(&self, node: &Netns) -> Result<Outcome> {
        let mut cmd = node.command(plugin());
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", self.container_id)
            .env("CNI_IFNAME", self.ifname)
            .env("CNI_PATH", "/opt/cni/bin");
        if let Some(n) = &self.netns {
            cmd.env("CNI_NETNS", n);
        }
        if let Some(a) = &self.args {
            cmd.env("CNI_ARGS", a);
        }
        for v in &self.unset {
            cmd.env_remove(v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {}", plugin().display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(self.stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok(Outcome {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// ADD that must succeed; returns the pod's address.
pub fn add(node: &Netns, pod: &Netns, id: &str, stdin: &str) -> Result<String> {
    let out = Call::new("ADD", id, Some(pod), stdin.to_string()).run(node)?;
    if !out.ok() {
        bail!(
            "ADD {id}: status {:?}: {} {}",
            out.status,
            out.stdout,
            out.stderr
        );
    }
    out.address().context("ADD result without an address")
}

/// DEL that must succeed.
pub fn del(node: &Netns, pod: Option<&Netns>, id: &str, stdin: &str) -> Result<()> {
    let out = Call::new("DEL", id, pod, stdin.to_string()).run(node)?;
    if !out.ok() {
        bail!(
            "DEL {id}: status {:?}: {} {}",
            out.status,
            out.stdout,
            out.stderr
        );
    }
    Ok(())
}

/// The host-side veth names (`cali…`) in a namespace.
pub fn cali_links(node: &Netns) -> Vec<String> {
    node.ip(&["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter_map(|n| n.split('@').next())
        .filter(|n| n.starts_with("cali"))
        .map(str::to_owned)
        .collect()
}
