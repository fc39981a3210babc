//! The tokio speaker: a listener, one task per peer driving [`crate::fsm`],
//! and one task owning the [`crate::rib::Rib`]. Readers (the control socket,
//! the FIB wiring) get published snapshots and never lock the hot path.

mod conn;
mod fib_feed;
mod listener;
mod peer;
mod rib_task;
mod sys;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::sync::{oneshot, watch};

use crate::fsm::State;
use crate::rib::{PeerCounts, RouteView};

pub use fib_feed::{FibBatch, FibChange, FibFeed};
pub use sys::MD5_MAX_KEY_LEN;

/// How a neighbor relates to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeighborKind {
    /// Another node of the full mesh.
    Mesh,
    /// An explicitly configured peer.
    Peer,
    /// We reflect routes for it (RFC 4456 client).
    RrClient,
    /// It reflects routes for us.
    RouteReflector,
}

/// One neighbor's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighborConfig {
    pub address: IpAddr,
    pub asn: u32,
    pub port: u16,
    pub kind: NeighborKind,
    pub passive: bool,
    pub password: Option<String>,
    /// GTSM (RFC 5082) for a directly connected peer.
    pub ttl_security: bool,
    pub max_prefixes: Option<u32>,
    /// Administratively down: no session; going down sends the RFC 8203 message.
    pub shutdown: bool,
}

/// The speaker's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Source address of sessions and NEXT_HOP of our IPv4 blocks.
    pub local_address: Ipv4Addr,
    /// NEXT_HOP of our IPv6 blocks, if any.
    pub local_address_v6: Option<Ipv6Addr>,
    pub port: u16,
    pub listen: bool,
    pub hold_time: u16,
    pub keepalive_time: Option<u16>,
    /// First connect-retry interval; it doubles up to [`MAX_CONNECT_RETRY`].
    pub connect_retry: Duration,
    /// 0 turns graceful restart off.
    pub graceful_restart_time: u16,
    /// Set the R bit: this process restarted within the restart time.
    pub restarting: bool,
    pub cluster_id: Option<Ipv4Addr>,
    pub pools: Vec<IpNet>,
    pub own_blocks: Vec<IpNet>,
    pub max_paths: usize,
    pub hostname: String,
    /// Time after start when stale FIB routes may be deleted even if some peer
    /// never sent End-of-RIB.
    pub convergence_timeout: Duration,
    /// Someone installs routes: feed [`Speaker::fib`] the RIB's changes. Off, the
    /// RIB does not record them.
    pub fib_view: bool,
}

/// Longest interval between connection attempts.
pub const MAX_CONNECT_RETRY: Duration = Duration::from_secs(30);

/// A peer as `show peers` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub asn: u32,
    pub kind: NeighborKind,
    pub state: State,
    /// Configured `shutdown`: no session is wanted, so convergence does not wait for it.
    pub admin_down: bool,
    /// Time of the last state change.
    pub since: SystemTime,
    /// When the peer was configured (daemon start, a reload, a node that registered):
    /// a session not up yet is judged against it, not against `since`, which moves
    /// with every connect attempt.
    pub configured: SystemTime,
    /// Last error or a note on the session.
    pub info: String,
    pub router_id: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub counts: PeerCounts,
    /// Messages counted since the peer was configured; they never go back, not even when
    /// a session resets.
    pub messages: MessageCounts,
    /// Sessions established since the process started.
    pub established_count: u64,
    pub graceful_restart: bool,
}

/// UPDATE messages to and from a peer (End-of-RIB markers included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub updates_received: u64,
    pub updates_sent: u64,
}

pub(crate) type StatusMap = Arc<Mutex<HashMap<IpAddr, PeerStatus>>>;

/// Locks a mutex of the speaker. A task that panicked while holding it left
/// plain data (maps of handles and statuses, each update a single insert or
/// remove), still consistent: go on with it rather than skip the work.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle on the running speaker.
pub struct Speaker {
    rib_tx: rib_task::RibSender,
    peers: Mutex<HashMap<IpAddr, peer::PeerHandle>>,
    status: StatusMap,
    fib: FibFeed,
    converged: watch::Receiver<bool>,
    config: ArcSwap<SpeakerConfig>,
    listener: Option<listener::Listener>,
}

/// Why the speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("cannot listen on port {port}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the RIB thread")]
    RibThread(#[source] std::io::Error),
}

impl Speaker {
    /// Starts the RIB task, the listener and one task per neighbor.
    pub async fn start(
        config: SpeakerConfig,
        neighbors: Vec<NeighborConfig>,
    ) -> Result<Speaker, SpeakerError> {
        let status: StatusMap = Arc::default();
        let (rib_tx, fib, converged) = rib_task::spawn(&config, status.clone())?;
        let listener = if config.listen {
            Some(listener::Listener::bind(&config, &neighbors).await?)
        } else {
            None
        };
        let speaker = Speaker {
            rib_tx,
            peers: Mutex::new(HashMap::new()),
            status,
            fib,
            converged,
            config: ArcSwap::from_pointee(config),
            listener,
        };
        speaker.set_neighbors(neighbors).await;
        // Accepting only once every peer task exists: a connection accepted
        // before would find no peer and be closed, and that peer would back off.
        if let Some(listener) = &speaker.listener {
            listener.accept();
        }
        let _ = speaker
            .rib_tx
            .send(rib_task::RibEvent::PeersConfigured)
            .await;
        Ok(speaker)
    }

    fn spawn_peer(&self, n: NeighborConfig) -> peer::PeerHandle {
        let cfg = self.config.load_full();
        peer::spawn(cfg, n, self.rib_tx.clone(), self.status.clone())
    }

    /// Applies a new neighbor list: added peers start, removed ones stop with a
    /// Cease, changed ones restart; unchanged sessions are left alone.
    pub async fn set_neighbors(&self, neighbors: Vec<NeighborConfig>) {
        for addr in self.apply_neighbors(neighbors) {
            // Awaited, not tried: a removal lost on a full queue would leave the
            // peer's routes in the RIB for good. Fails only once the RIB is gone.
            let _ = self
                .rib_tx
                .send(rib_task::RibEvent::PeerRemoved(addr))
                .await;
        }
    }

    /// Starts, stops and restarts peer tasks; returns the removed addresses.
    fn apply_neighbors(&self, neighbors: Vec<NeighborConfig>) -> Vec<IpAddr> {
        let mut peers = lock(&self.peers);
        let wanted: HashMap<IpAddr, NeighborConfig> =
            neighbors.into_iter().map(|n| (n.address, n)).collect();
        let gone: Vec<IpAddr> = peers
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        for addr in &gone {
            if let Some(h) = peers.remove(addr) {
                h.stop(peer::StopMode::Deconfigured);
            }
            lock(&self.status).remove(addr);
        }
        for (addr, n) in wanted {
            match peers.get(&addr) {
                Some(h) if h.config == n => {}
                Some(old) => {
                    let mode = if n.shutdown && !old.config.shutdown {
                        peer::StopMode::AdminDown
                    } else {
                        peer::StopMode::Deconfigured
                    };
                    if let Some(h) = peers.remove(&addr) {
                        h.stop(mode);
                    }
                    peers.insert(addr, self.spawn_peer(n));
                }
                None => {
                    peers.insert(addr, self.spawn_peer(n));
                }
            }
        }
        self.wire_listener(&peers);
        gone
    }

    /// Tells the listener each peer's socket options and where its connections go.
    fn wire_listener(&self, peers: &HashMap<IpAddr, peer::PeerHandle>) {
        if let Some(listener) = &self.listener {
            for h in peers.values() {
                listener.set_neighbor(&h.config);
            }
            listener.set_peers(
                peers
                    .values()
                    .map(|h| (h.config.address, h.incoming.clone()))
                    .collect(),
            );
        }
    }

    /// The forwarding path to `peer` failed (BFD Down): its session ends at once
    /// and its routes are withdrawn, with no graceful-restart retention.
    pub fn path_down(&self, peer: IpAddr) {
        if let Some(h) = lock(&self.peers).get(&peer) {
            h.path_down();
        }
    }

    /// The path to `peer` works again (BFD Up): connect without waiting for backoff.
    pub fn path_up(&self, peer: IpAddr) {
        if let Some(h) = lock(&self.peers).get(&peer) {
            h.path_up();
        }
    }

    /// Whether the RIB task still runs: a speaker without it learns and
    /// announces nothing.
    pub fn rib_running(&self) -> bool {
        !self.rib_tx.is_closed()
    }

    /// Completes when the RIB task has ended.
    pub async fn rib_stopped(&self) {
        self.rib_tx.closed().await;
    }

    /// Replaces our own blocks: announced or withdrawn at once.
    pub async fn set_own_blocks(&self, blocks: Vec<IpNet>) {
        let _ = self
            .rib_tx
            .send(rib_task::RibEvent::SetBlocks(blocks))
            .await;
    }

    /// Every peer's status, sorted by address.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut v: Vec<PeerStatus> = lock(&self.status).values().cloned().collect();
        v.sort_by_key(|p| p.address);
        v
    }

    /// Every route of the Loc-RIB.
    pub async fn routes(&self) -> Vec<RouteView> {
        let (tx, rx) = oneshot::channel();
        if self
            .rib_tx
            .send(rib_task::RibEvent::Query(tx))
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The RIB's changes for the FIB, added after each round of RIB changes (every remote
    /// route first). For one consumer: what it takes is gone.
    pub fn fib(&self) -> FibFeed {
        self.fib.clone()
    }

    /// Becomes true once every peer has sent End-of-RIB, or the convergence
    /// timeout passed: stale kernel routes may then be removed.
    pub fn converged(&self) -> watch::Receiver<bool> {
        self.converged.clone()
    }

    /// Stops every session. `graceful`: close TCP without a NOTIFICATION so
    /// peers keep our routes through the restart (RFC 4724); otherwise send an
    /// administrative-shutdown Cease.
    pub async fn shutdown(&self, graceful: bool) {
        // First: a peer must not get a session opened while the others close.
        if let Some(listener) = &self.listener {
            listener.close().await;
        }
        let handles: Vec<peer::PeerHandle> = lock(&self.peers).drain().map(|(_, h)| h).collect();
        let mode = if graceful {
            peer::StopMode::Graceful
        } else {
            peer::StopMode::Shutdown
        };
        let mut waits = Vec::new();
        for h in handles {
            waits.push(h.stop(mode));
        }
        for w in waits {
            let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn config(graceful_restart_time: u16) -> SpeakerConfig {
        SpeakerConfig {
            local_as: 64512,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            local_address: Ipv4Addr::new(10, 0, 0, 1),
            local_address_v6: None,
            port: 179,
            listen: false,
            hold_time: 90,
            keepalive_time: None,
            connect_retry: Duration::from_secs(1),
            graceful_restart_time,
            restarting: false,
            cluster_id: None,
            pools: Vec::new(),
            own_blocks: Vec::new(),
            max_paths: 4,
            hostname: String::new(),
            convergence_timeout: Duration::from_secs(3600),
            fib_view: false,
        }
    }

    fn passive(address: [u8; 4]) -> NeighborConfig {
        NeighborConfig {
            address: IpAddr::from(address),
            asn: 64512,
            port: 179,
            kind: NeighborKind::Mesh,
            passive: true,
            password: None,
            ttl_security: false,
            max_prefixes: None,
            shutdown: false,
        }
    }

    /// A task that panicked holding the peers' lock must not turn every later
    /// reload into a silent no-op.
    #[tokio::test]
    async fn set_neighbors_applies_after_a_poisoned_lock() -> Result<(), SpeakerError> {
        let speaker = Speaker::start(config(120), vec![passive([10, 0, 0, 2])]).await?;
        std::thread::scope(|s| {
            let poisoner = s.spawn(|| {
                let _guard = speaker.peers.lock();
                panic!("poisoning the peers' lock on purpose");
            });
            assert!(poisoner.join().is_err());
        });
        assert!(speaker.peers.is_poisoned());
        speaker
            .set_neighbors(vec![passive([10, 0, 0, 2]), passive([10, 0, 0, 3])])
            .await;
        let listed: Vec<IpAddr> = speaker.peers().iter().map(|p| p.address).collect();
        assert_eq!(
            listed,
            [IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 3])]
        );
        speaker.shutdown(false).await;
        Ok(())
    }
}
