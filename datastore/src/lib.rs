//! ipipd's cluster datastore: registered nodes, the pools, and which node owns which
//! block, with Calico's compare-and-swap block claims.
//!
//! [`Kv`] is the storage (etcd v3's model); [`EtcdKv`] talks to a real etcd cluster,
//! [`MemoryKv`] is the same semantics in memory for tests. [`Datastore`] is the
//! protocol on top, the same code for both. (The file datastore, ipipd's default,
//! needs none of this: blocks and nodes come from the configuration file.)
#![forbid(unsafe_code)]

mod cluster;
pub mod etcd;
pub mod kv;
pub mod memory;
pub mod model;

#[cfg(test)]
mod claim_tests;

use std::path::PathBuf;

pub use cluster::Datastore;
pub use etcd::{EtcdKv, EtcdSettings};
pub use kv::{Kv, WatchEvent};
pub use memory::MemoryKv;
pub use model::{Block, BlockRecord, BlockState, Keys, NodeRecord, PoolsRecord, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd is unreachable ({endpoints}): {reason}")]
    Unreachable { endpoints: String, reason: String },
    #[error("undecodable answer from etcd to {path}: {reason}")]
    Decode { path: &'static str, reason: String },
    #[error("reading the {what} {path}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS to etcd: {0}")]
    Tls(String),
    #[error("no free block left in the pools {pools}")]
    NoFreeBlock { pools: String },
    #[error("cluster.pools here are {ours}, but the datastore ({key}) records {theirs}; every node must run with the same pools")]
    PoolsDiffer {
        ours: String,
        theirs: String,
        key: String,
    },
    #[error("no node {0:?} is registered in the datastore")]
    NoSuchNode(String),
    #[error("{0:?} cannot be a node name (letters, digits, '-', '.', '_'; at most 253)")]
    InvalidName(String),
    #[error("datastore conflict: {0}")]
    Conflict(String),
}
