//! The node's runtime state and its one owner.
//!
//! Own blocks, the tunnel address, the registered nodes, the neighbours and their BFD
//! sessions, the pods' and hand-made workloads: one task ([`owner::Owner`]) holds them and
//! applies every event that changes them in the order it arrives — a reload, a read of
//! the datastore, a CNI request, a block claim or release. After each event it publishes
//! a new immutable [`NodeState`], which everything else reads (the speaker, BFD, the FIB
//! feeder, `show`, metrics). Decisions that must be atomic (claim + assign, release +
//! recheck) happen inside one event, so no interleaving of tasks can split them.
//!
//! `Config` is input: the file as read. The published `config` is derived from it and
//! the runtime state.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use api::protocol::{Response, WorkloadJson};
use bgp::speaker::NeighborConfig;
use config::Config;
use datastore::Snapshot;
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

/// What the rest of the daemon reads: one consistent view, replaced whole.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// The file's configuration with the runtime state filled in: `node.blocks` are the
    /// blocks this node owns now, `cluster.nodes` the other registered nodes (datastore
    /// mode; the file's own lists otherwise).
    pub config: Arc<Config>,
    /// The tunnel device's address (an IPAM allocation of its own, never a pod's).
    pub tunnel: Option<Ipv4Addr>,
    /// The BGP sessions to run, whatever their source (file, datastore).
    pub neighbors: Vec<NeighborConfig>,
    /// The BFD sessions: one per neighbour that wants BFD.
    pub bfd: Vec<bfd::Spec>,
    /// Pods made by the CNI plugin and workloads added by hand: address → host interface.
    pub workloads: Vec<(IpAddr, String)>,
    /// The same for `show workloads`: pods with their handle, hand-made without.
    pub workload_list: Vec<WorkloadJson>,
    /// Own blocks: pod addresses in use, and addresses pods can use.
    pub block_use: BTreeMap<IpNet, (u64, u64)>,
    /// Pod addresses in use.
    pub allocated: u64,
    /// Addresses of this node's pods in other nodes' blocks (borrowed): each is
    /// announced as a /32 next to the own blocks.
    pub borrowed: Vec<IpAddr>,
    /// The datastore's last read that was applied, with when it started (datastore mode).
    pub datastore: Option<Arc<Snapshot>>,
}

impl NodeState {
    pub fn own_blocks(&self) -> &[IpNet] {
        &self.config.node.blocks
    }

    /// What the speaker originates: own blocks, and a host route per borrowed address
    /// (never blackholed: the FIB gets the own blocks only, and routes a borrowed
    /// address to its pod like any other).
    pub fn announced(&self) -> Vec<IpNet> {
        let mut out = self.own_blocks().to_vec();
        out.extend(self.borrowed.iter().map(|ip| IpNet::from(*ip)));
        out
    }
}

/// Something that changes the node's state, with where the answer goes.
pub enum Event {
    /// A configuration file read and validated; the owner applies it or refuses it.
    Reload(Box<Config>, oneshot::Sender<Result<String, String>>),
    /// A full read of the datastore, started at `read_at`.
    Snapshot(Arc<Snapshot>, Instant),
    Assign(ipam::Request, oneshot::Sender<Response>),
    Get(String, oneshot::Sender<Response>),
    Release(String, oneshot::Sender<Response>),
    /// CNI GC: keep these handles of the network named (if any), release the rest.
    Gc(Vec<String>, Option<String>, oneshot::Sender<Response>),
    WorkloadAdd(IpAddr, String, oneshot::Sender<Response>),
    WorkloadDel(IpAddr, oneshot::Sender<Response>),
    /// Could an ADD be served now (CNI STATUS)?
    Status(oneshot::Sender<Response>),
    /// Look for empty blocks to give back now (the owner's own timer does it too).
    #[cfg(test)]
    ReleaseTick,
}

/// The sending side, for everything that asks the owner.
#[derive(Clone)]
pub struct Inbox(mpsc::UnboundedSender<Event>);

impl Inbox {
    pub fn new() -> (Inbox, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Inbox(tx), rx)
    }

    /// Sends an event that answers, and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Event) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.0.send(make(tx)).ok()?;
        rx.await.ok()
    }

    /// Sends an event that does not answer; false once the owner is gone.
    pub fn tell(&self, event: Event) -> bool {
        self.0.send(event).is_ok()
    }
}

/// The answer when the owner has stopped (the daemon is stopping).
pub fn gone() -> Response {
    Response::Error {
        message: "ipipd is stopping".into(),
    }
}
