//! ipipd's cluster datastore: registered nodes, the pools, and which node owns which
//! block, with Calico's compare-and-swap block claims.
//!
//! [`Kv`] is the storage (etcd v3's model); [`EtcdKv`] talks to a real etcd cluster,
//! [`MemoryKv`] is the same semantics in memory for tests. [`Datastore`] is the
//! protocol on top, the same code for both. (The file datastore, ipipd's default,
//! needs none of this: blocks and nodes come from the configuration file.)
#![forbid(unsafe_code)]

pub mod allocation;
mod cluster;
pub mod etcd;
pub mod interleaved;
pub mod kv;
mod mac;
pub mod memory;
pub mod model;

#[cfg(test)]
mod allocation_tests;
#[cfg(test)]
mod claim_tests;
#[cfg(test)]
mod lost_answer_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod watch_tests;

use std::path::PathBuf;

pub use allocation::{AllocError, AllocationBlock, Attribute, Held};
pub use cluster::Datastore;
pub use etcd::{EtcdKv, EtcdSettings};
pub use interleaved::Interleaved;
pub use kv::{Change, Kv, WatchEvent};
pub use memory::MemoryKv;
pub use model::{
    Block, BlockRecord, BlockState, CheckRecord, Keys, Leak, LiveRecord, Mac, NodeRecord,
    PoolLayout, PoolsRecord, Snapshot,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing reached etcd, or it refused: nothing was applied.
    #[error("etcd is unreachable ({endpoints}): {reason}")]
    Unreachable { endpoints: String, reason: String },
    /// The request may have reached etcd and been applied, but no answer says so (a
    /// timeout, a connection lost after sending, or a re-sent transaction whose
    /// comparisons failed, maybe because the first attempt was applied).
    #[error("etcd may or may not have applied the transaction ({endpoints}): {reason}")]
    OutcomeUnknown { endpoints: String, reason: String },
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
    #[error("the pools here are {ours}, but the datastore ({key}) records {theirs}; every node must run with the same pools and block sizes")]
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

impl Error {
    /// Whether a transaction that failed with this error may have been applied all the
    /// same: etcd got it, and what came back was lost or unreadable.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. } | Error::Decode { .. })
    }

    /// This error, once a read has shown the transaction was not applied: etcd was
    /// out of reach for it.
    pub fn not_applied(self) -> Error {
        match self {
            Error::OutcomeUnknown { endpoints, reason } => Error::Unreachable { endpoints, reason },
            other => other,
        }
    }
}
