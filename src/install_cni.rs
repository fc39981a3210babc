//! `ipipd install-cni`: what a DaemonSet init container does for a CNI plugin — copy the
//! binary into the runtime's plugin directory and write the network configuration.
//!
//! Both files are written to a temporary name and renamed into place, so a runtime never
//! reads half a plugin or half a configuration.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct Install {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub plugin: Option<PathBuf>,
    pub socket: PathBuf,
    pub name: String,
    pub mtu: Option<u32>,
}

pub const PLUGIN: &str = "ipipd-cni";
pub const CONFLIST: &str = "10-ipipd.conflist";

/// The network configuration list a runtime reads.
pub fn conflist(name: &str, socket: &Path, mtu: Option<u32>) -> serde_json::Value {
    let mut plugin = serde_json::json!({
        "type": PLUGIN,
        "socket": socket,
    });
    if let (Some(mtu), Some(map)) = (mtu, plugin.as_object_mut()) {
        map.insert("mtu".into(), mtu.into());
    }
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [plugin],
    })
}

fn replace(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("ipipd-tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
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
    replace(&bin, &binary, 0o755)?;
    let conf = i.conf_dir.join(CONFLIST);
    let mut text = serde_json::to_vec_pretty(&conflist(&i.name, &i.socket, i.mtu))?;
    text.push(b'\n');
    replace(&conf, &text, 0o644)?;
    Ok(format!(
        "installed {} and {}",
        bin.display(),
        conf.display()
    ))
}
