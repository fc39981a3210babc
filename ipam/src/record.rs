//! The durable record of allocations: one JSON file in the state directory, replaced
//! atomically (`api::durable::write`), so a crash leaves the old record or the new one, never
//! a mix.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Allocation, TunnelAllocation};
use api::durable::{replace, write, WriteError};

/// The record format this build writes and reads.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    pub allocations: Vec<Allocation>,
    /// The tunnel device's address, an allocation of the node's own (absent in records
    /// of earlier versions, which reserved the first address of the first block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelAllocation>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an allocation record")]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: record version {found}, this ipipd reads version {RECORD_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("saving the allocation record")]
    Write(#[source] WriteError),
    #[error("encoding the allocation record")]
    Encode(#[source] serde_json::Error),
}

/// Where the record lives.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    /// The record is a cache of what is kept durably elsewhere (the etcd datastore):
    /// replaced atomically, without an fsync.
    cache: bool,
}

impl Store {
    /// The record `ipam.json` in `state_dir`.
    pub fn in_dir(state_dir: &Path) -> Store {
        Store {
            path: state_dir.join("ipam.json"),
            cache: false,
        }
    }

    /// As [`Store::in_dir`], for a record that is a cache of the datastore's: each
    /// allocation is durable in etcd before it is written here, and the record is
    /// rebuilt from etcd at start, so its writes need no fsync (which would add a disk
    /// flush to every CNI ADD on top of etcd's commit).
    pub fn cache_in_dir(state_dir: &Path) -> Store {
        Store {
            cache: true,
            ..Store::in_dir(state_dir)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record on disk; an empty one when there is none yet.
    pub fn load(&self) -> Result<Record, StoreError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Record::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let record: Record =
            serde_json::from_slice(&text).map_err(|source| StoreError::Decode {
                path: self.path.clone(),
                source,
            })?;
        if record.version != RECORD_VERSION {
            return Err(StoreError::Version {
                path: self.path.clone(),
                found: record.version,
            });
        }
        Ok(record)
    }

    /// Replaces the record on disk; when this returns Ok, the record survives a crash
    /// (of the process only, for a cache).
    pub fn save(&self, record: &Record) -> Result<(), StoreError> {
        let mut text = serde_json::to_vec_pretty(record).map_err(StoreError::Encode)?;
        text.push(b'\n');
        let put = if self.cache { replace } else { write };
        put(&self.path, &text, 0o644).map_err(StoreError::Write)
    }
}

impl Record {
    pub fn new() -> Record {
        Record {
            version: RECORD_VERSION,
            allocations: Vec::new(),
            tunnel: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ipam-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    }

    #[test]
    fn save_then_load_round_trips_and_missing_is_empty() {
        let d = dir("rt");
        let store = Store::in_dir(&d);
        assert_eq!(store.load().ok(), Some(Record::new()));
        let record = Record {
            version: RECORD_VERSION,
            allocations: vec![Allocation {
                sequences: Vec::new(),
                handle: "c1.eth0".into(),
                container_id: "c1".into(),
                ifname: "eth0".into(),
                interface: "cali0123456789a".into(),
                addresses: vec!["10.0.0.1".parse().unwrap_or(std::net::IpAddr::from([0; 4]))],
                pod: None,
                network: Some("ipipd".into()),
            }],
            tunnel: None,
        };
        assert!(store.save(&record).is_ok());
        assert_eq!(store.load().ok(), Some(record));
        assert!(!d.join("ipam.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn garbage_and_other_versions_are_errors_naming_the_file() {
        let d = dir("bad");
        let store = Store::in_dir(&d);
        let _ = std::fs::write(store.path(), "{not json");
        let e = store
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("ipam.json is not an allocation record"), "{e}");
        let _ = std::fs::write(store.path(), r#"{"version":9,"allocations":[]}"#);
        let e = store
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("record version 9"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
