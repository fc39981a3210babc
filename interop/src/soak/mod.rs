//! The soak test's machinery (`interop/tests/soak.rs`): what it reads from a running
//! cluster and the invariants it holds it to, the state its threads share, the pod
//! workers and the checker. The test itself drives the faults.

mod checker;
mod cluster;
mod invariants;
mod observe;
mod pods;

use std::time::Duration;

pub use checker::checker;
pub use cluster::{lock, summary, Pod, Shared, Status, StopOnDrop};
pub use invariants::{check_round, clean, converged, mesh_gaps, Finding, Round, SESSION_HOLD};
pub use observe::{describe, names, EtcdView, NodeObs, PodRef};
pub use pods::pod_worker;

/// Five nodes at the start; the sixth joins.
pub const NODES: usize = 6;
pub const FIRST_NODES: usize = 5;
/// The test's block size: eight addresses, the first block's tunnel address included.
pub const BLOCK_LEN: u8 = 29;
/// Most pods a node holds at once: three /29 blocks' worth.
pub const MAX_PODS: usize = 20;
/// The datastore prefix of the shipped ConfigMap.
pub const PREFIX: &str = "/ipipd";
pub const CHECK_EVERY: Duration = Duration::from_millis(1500);

pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

pub fn node_address(i: usize) -> String {
    format!("172.29.244.{}", 101 + i)
}
