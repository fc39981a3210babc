//! Local workloads (pods), persisted under the state directory so a restart
//! keeps them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ipnet::IpNet;

use crate::control::protocol::WorkloadJson;

#[derive(Debug)]
pub struct Workloads {
    path: PathBuf,
    map: BTreeMap<IpAddr, String>,
}

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const IFNAMSIZ_MAX: usize = 15;

pub fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > IFNAMSIZ_MAX
        || name.contains(['/', ' ', '\0'])
        || name == "."
        || name == ".."
    {
        return Err(format!(
            "invalid interface name {name:?}: 1 to 15 bytes, no '/' or spaces"
        ));
    }
    Ok(())
}

/// A workload's address must lie in a pod pool: nothing outside the pools is
/// installed (README), so one outside would be accepted and never routed.
pub fn check_in_pools(ip: IpAddr, pools: &[IpNet]) -> Result<(), String> {
    if pools.iter().any(|p| p.contains(&ip)) {
        return Ok(());
    }
    let pools = if pools.is_empty() {
        "none configured".to_owned()
    } else {
        pools
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(format!(
        "workload {ip} is outside every pod pool (cluster.pools: {pools}): refused"
    ))
}

/// Renames `path` to `path.bad-<unix time>` and returns the new name.
fn move_aside(path: &Path) -> anyhow::Result<PathBuf> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".bad-{now}"));
    let aside = path.with_file_name(name);
    std::fs::rename(path, &aside)
        .with_context(|| format!("moving {} aside to {}", path.display(), aside.display()))?;
    Ok(aside)
}

impl Workloads {
    /// The workloads recorded in `state_dir`. A file that does not parse (torn by a
    /// disk fault, edited by hand) must not keep the node from starting: it is moved
    /// aside to `workloads.json.bad-<unix time>` for a look, and the node starts
    /// without workloads, as on a first start.
    pub fn load(state_dir: &Path) -> anyhow::Result<Workloads> {
        let path = state_dir.join("workloads.json");
        let map = match std::fs::read(&path) {
            Ok(text) => match serde_json::from_slice::<Vec<WorkloadJson>>(&text) {
                Ok(list) => list.into_iter().map(|w| (w.ip, w.interface)).collect(),
                Err(e) => {
                    let aside = move_aside(&path)?;
                    tracing::error!(file = %path.display(), moved_to = %aside.display(), error = %e, "workloads file unreadable: moved aside, starting without workloads");
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
        };
        Ok(Workloads { path, map })
    }

    pub fn list(&self) -> Vec<WorkloadJson> {
        self.map
            .iter()
            .map(|(ip, i)| WorkloadJson {
                ip: *ip,
                interface: i.clone(),
                handle: None,
            })
            .collect()
    }

    pub fn pairs(&self) -> Vec<(IpAddr, String)> {
        self.map.iter().map(|(ip, i)| (*ip, i.clone())).collect()
    }

    pub fn add(&mut self, ip: IpAddr, interface: String) -> anyhow::Result<()> {
        self.map.insert(ip, interface);
        self.save()
    }

    pub fn del(&mut self, ip: IpAddr) -> anyhow::Result<bool> {
        let had = self.map.remove(&ip).is_some();
        self.save()?;
        Ok(had)
    }

    /// Writes atomically and durably: a crash leaves the old or the new file, never
    /// half, and once this returns the new one survives a power cut.
    fn save(&self) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.list())?;
        api::durable::write(&self.path, text.as_bytes(), 0o644).context("saving the workloads")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ipipd-workloads-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    }

    #[test]
    fn saved_workloads_load_back_and_no_temporary_is_left() {
        let d = state_dir("rt");
        let ip: IpAddr = [10, 64, 0, 5].into();
        let mut w = Workloads::load(&d).unwrap_or_else(|e| panic!("{e:#}"));
        w.add(ip, "cali0".into())
            .unwrap_or_else(|e| panic!("{e:#}"));
        let again = Workloads::load(&d).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(again.pairs(), vec![(ip, "cali0".to_owned())]);
        assert!(!d.join("workloads.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A torn or garbage file (a disk fault, a hand edit) must not keep the daemon from
    /// starting: it is kept aside for a look, and the daemon starts without it.
    #[test]
    fn a_garbage_workloads_file_is_moved_aside_and_startup_goes_on() {
        let d = state_dir("bad");
        let path = d.join("workloads.json");
        std::fs::write(&path, "[{\"ip\":\"10.64.0.5\",\"interf").unwrap_or_else(|e| panic!("{e}"));
        let w = Workloads::load(&d).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(w.pairs().is_empty());
        assert!(!path.exists(), "the bad file is still in place");
        let aside: Vec<PathBuf> = std::fs::read_dir(&d)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert_eq!(aside.len(), 1, "{aside:?}");
        let name = aside[0]
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let stamp = name
            .as_deref()
            .and_then(|n| n.strip_prefix("workloads.json.bad-"))
            .and_then(|t| t.parse::<u64>().ok());
        assert!(stamp.is_some_and(|t| t > 1_600_000_000), "{name:?}");
        assert_eq!(
            std::fs::read_to_string(&aside[0]).ok().as_deref(),
            Some("[{\"ip\":\"10.64.0.5\",\"interf")
        );
        // And the next save writes a good file again.
        let mut w = w;
        w.add([10, 64, 0, 6].into(), "cali1".into())
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(Workloads::load(&d).map(|w| w.pairs().len()).ok(), Some(1));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn workloads_outside_the_pools_are_refused_naming_the_pools() {
        let pools: Vec<IpNet> = ["101.64.0.0/10", "fd10::/48"]
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(check_in_pools(ip("101.76.9.136"), &pools), Ok(()));
        assert_eq!(check_in_pools(ip("fd10::5"), &pools), Ok(()));
        let err = check_in_pools(ip("10.9.9.9"), &pools)
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("10.9.9.9") && err.contains("101.64.0.0/10, fd10::/48"),
            "{err}"
        );
        let err = check_in_pools(ip("101.76.9.136"), &[])
            .err()
            .unwrap_or_default();
        assert!(err.contains("none configured"), "{err}");
    }
}
