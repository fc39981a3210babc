//! Local workloads (pods), persisted under the state directory so a restart
//! keeps them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

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

impl Workloads {
    pub fn load(state_dir: &Path) -> anyhow::Result<Workloads> {
        let path = state_dir.join("workloads.json");
        let map = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let list: Vec<WorkloadJson> = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?;
                list.into_iter().map(|w| (w.ip, w.interface)).collect()
            }
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
        ipam::write_atomic(&self.path, text.as_bytes()).context("saving the workloads")?;
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
