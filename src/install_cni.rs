//! `ipipd install-cni`: what a DaemonSet init container does for a CNI plugin — copy the
//! binary into the runtime's plugin directory and write the network configuration.
//!
//! Both files are written to a temporary name and renamed into place, so a runtime never
//! reads half a plugin or half a configuration.

use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct Install {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub plugin: Option<PathBuf>,
    pub socket: PathBuf,
    pub name: String,
    pub mtu: Option<u32>,
    /// The `cniVersion` written: 1.1.0 unless the runtime's CNI library is older.
    pub cni_version: String,
}

/// The versions `--cni-version` takes: what ipipd-cni supports.
pub const CNI_VERSIONS: [&str; 4] = ["1.1.0", "1.0.0", "0.4.0", "0.3.1"];

pub const PLUGIN: &str = "ipipd-cni";
pub const CONFLIST: &str = "10-ipipd.conflist";

/// The network configuration list a runtime reads: CNI 1.1.0 by default, so that
/// runtimes send GC and STATUS, and the `ips` capability, so that a runtime's requested
/// address reaches the plugin. Runtimes built on
/// a CNI library older than 1.2 (podman 4, containerd 1.7) refuse 1.1.0 results: they
/// need `version` 1.0.0.
pub fn conflist(name: &str, socket: &Path, mtu: Option<u32>, version: &str) -> serde_json::Value {
    let mut plugin = serde_json::json!({
        "type": PLUGIN,
        "socket": socket,
        "capabilities": {"ips": true},
    });
    if let (Some(mtu), Some(map)) = (mtu, plugin.as_object_mut()) {
        map.insert("mtu".into(), mtu.into());
    }
    serde_json::json!({
        "cniVersion": version,
        "name": name,
        "plugins": [plugin],
    })
}

pub fn install(i: &Install) -> anyhow::Result<String> {
    let plugin = match &i.plugin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("finding this program")?
            .with_file_name(PLUGIN),
    };
    let binary = std::fs::read(&plugin).with_context(|| {
        format!(
            "reading the CNI plugin {} (build it with `cargo build --release`, or name it with --plugin)",
            plugin.display()
        )
    })?;
    for dir in [&i.bin_dir, &i.conf_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bin = i.bin_dir.join(PLUGIN);
    api::durable::write(&bin, &binary, 0o755)?;
    let conf = i.conf_dir.join(CONFLIST);
    let mut text = serde_json::to_vec_pretty(&conflist(&i.name, &i.socket, i.mtu, &i.cni_version))?;
    text.push(b'\n');
    api::durable::write(&conf, &text, 0o644)?;
    Ok(format!(
        "installed {} and {}",
        bin.display(),
        conf.display()
    ))
}
