//! `ipipd ipam check --json`: the cluster's allocations against every node's live pods,
//! and what `ipipd ipam release --from-report` reads back.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// An allocation whose pod no node has: its node is gone, or the node reports the
/// handle no longer live.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeakJson {
    pub address: IpAddr,
    pub handle: String,
    pub node: String,
    /// The allocation's sequence in its block: a release of the address after it was
    /// taken again is refused.
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Why: `node removed` or `pod gone`.
    pub reason: String,
}

/// A pod a node reports live whose address has no allocation under its handle.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MissingJson {
    pub address: IpAddr,
    pub handle: String,
    pub node: String,
}

/// An address held by more than one handle.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DuplicateJson {
    pub address: IpAddr,
    pub handles: Vec<String>,
}

/// A block whose owner is no registered node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrphanBlockJson {
    pub block: String,
    /// The node recorded as its owner, or holding its addresses.
    pub node: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamReport {
    pub leaked: Vec<LeakJson>,
    pub missing: Vec<MissingJson>,
    pub duplicates: Vec<DuplicateJson>,
    pub orphan_blocks: Vec<OrphanBlockJson>,
    /// Registered nodes that have not reported their live pods (not running this
    /// version, or never started): their allocations are not judged.
    #[serde(default)]
    pub unreported_nodes: Vec<String>,
    /// RFC 3339, milliseconds, UTC.
    pub checked_at: String,
}

impl IpamReport {
    /// Whether the cluster is clean (exit 0).
    pub fn clean(&self) -> bool {
        self.leaked.is_empty()
            && self.missing.is_empty()
            && self.duplicates.is_empty()
            && self.orphan_blocks.is_empty()
    }
}
