//! The task that owns the RIB. Sessions send it events over one channel; it
//! handles every event waiting, then flushes once, so a burst of UPDATEs
//! becomes one round of exports and one FIB publication.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::conn::{UpdateSender, BACKLOG_HIGH};
use super::{lock, FibFeed, SpeakerConfig, SpeakerError, StatusMap};
use crate::rib::{PeerInfo, PolicyConfig, Rib, RouteView};
use crate::wire::{Notification, Update};

/// Messages to the RIB task.
#[derive(Debug)]
pub enum RibEvent {
    PeerUp {
        info: PeerInfo,
        updates: UpdateSender,
        resets: mpsc::UnboundedSender<Notification>,
    },
    /// `keep_stale`: graceful restart helper mode, for at most this long.
    PeerDown {
        address: IpAddr,
        keep_stale: Option<Duration>,
    },
    PeerRemoved(IpAddr),
    /// With its share of the queue's prefix budget, given back once handled.
    Update(IpAddr, Box<Update>, OwnedSemaphorePermit),
    Refresh(IpAddr),
    /// RFC 7313 BoRR (subtype 1) or EoRR (subtype 2) from the peer.
    RefreshMarker(IpAddr, crate::wire::RouteRefresh),
    SetBlocks(Vec<IpNet>),
    /// All configured peers have been spawned; convergence can be judged.
    PeersConfigured,
    Query(oneshot::Sender<Vec<RouteView>>),
    StaleExpired {
        address: IpAddr,
        generation: u64,
    },
}

/// Decoded prefixes allowed to wait for the RIB at once, all sessions together.
/// A decoded prefix takes about seven times its wire size, so a queue bounded
/// in messages alone would let a burst of large UPDATEs (Extended Message:
/// thousands of prefixes each) wait there by the hundred megabytes; this keeps
/// the queue near half a megabyte and pushes back on the senders' TCP windows
/// instead. Four flushes' worth ([`FLUSH_PREFIXES`]): sessions keep decoding
/// while the RIB works, and a bigger queue was no faster.
const PREFIX_BUDGET: usize = 16_384;

/// The way into the RIB task.
#[derive(Debug, Clone)]
pub struct RibSender {
    tx: mpsc::Sender<RibEvent>,
    budget: Arc<Semaphore>,
    /// Write loops wake a held peer here (at most one wake per connection waits).
    wake: mpsc::UnboundedSender<IpAddr>,
}

impl RibSender {
    /// Where a connection's write loop says that its held peer can take more.
    pub fn waker(&self) -> mpsc::UnboundedSender<IpAddr> {
        self.wake.clone()
    }

    pub async fn send(&self, ev: RibEvent) -> Result<(), mpsc::error::SendError<RibEvent>> {
        self.tx.send(ev).await
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Completes when the RIB task has ended (its receiver is gone).
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Queues an UPDATE once the budget has room for its prefixes.
    pub async fn update(&self, from: IpAddr, update: Box<Update>) {
        let prefixes = update.nlri.len()
            + update.withdrawn.len()
            + update
                .attributes
                .mp_reach
                .as_ref()
                .map_or(0, |m| m.nlri.len())
            + update
                .attributes
                .mp_unreach
                .as_ref()
                .map_or(0, |m| m.withdrawn.len());
        let wanted = u32::try_from(prefixes.clamp(1, PREFIX_BUDGET)).unwrap_or(1);
        let Ok(permit) = self.budget.clone().acquire_many_owned(wanted).await else {
            return;
        };
        let _ = self.tx.send(RibEvent::Update(from, update, permit)).await;
    }
}

struct PeerOut {
    updates: UpdateSender,
    resets: mpsc::UnboundedSender<Notification>,
}

pub fn spawn(
    config: &SpeakerConfig,
    status: StatusMap,
) -> Result<(RibSender, FibFeed, watch::Receiver<bool>), SpeakerError> {
    let (tx, rx) = mpsc::channel(4096);
    let (wake, wake_rx) = mpsc::unbounded_channel();
    let (task, fib_rx, conv_rx) = RibTask::new(config, status, tx.clone());
    run_on_own_thread(task.run(rx, wake_rx))?;
    let sender = RibSender {
        tx,
        budget: Arc::new(Semaphore::new(PREFIX_BUDGET)),
        wake,
    };
    Ok((sender, fib_rx, conv_rx))
}

/// The RIB is the heaviest user of CPU under a flood of UPDATEs (a batch of thousands of
/// UPDATEs is handled without a pause). On its own thread it cannot delay the sessions'
/// keepalives and hold timers, which run on the shared workers.
fn run_on_own_thread(
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), SpeakerError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(SpeakerError::RibThread)?;
    std::thread::Builder::new()
        .name("ipipd-rib".into())
        .spawn(move || rt.block_on(task))
        .map_err(SpeakerError::RibThread)?;
    Ok(())
}

struct RibTask {
    rib: Rib,
    out: HashMap<IpAddr, PeerOut>,
    status: StatusMap,
    fib: FibFeed,
    conv_tx: watch::Sender<bool>,
    self_tx: mpsc::Sender<RibEvent>,
    generations: HashMap<IpAddr, u64>,
    stale_rearmed: HashMap<IpAddr, Duration>,
    /// The restart time each peer advertised when its session last went down
    /// with its routes kept (RFC 4724 helper mode).
    restart_times: HashMap<IpAddr, Duration>,
    /// How long, once a restarted peer is back, its stale routes wait for its
    /// End-of-RIB: our configured graceful-restart time; None when that is 0.
    stale_time: Option<Duration>,
    peers_configured: bool,
    /// What the last flush encoded per prefix it handled (see [`FLUSH_BYTES`]).
    octets_per_prefix: usize,
    /// UPDATEs in and out per peer, kept across sessions (counters never go back).
    messages: HashMap<IpAddr, super::MessageCounts>,
    deadline: Instant,
}

/// The UPDATE messages in a buffer of whole BGP messages (an export batch).
fn count_updates(buf: &[u8]) -> u64 {
    const HEADER: usize = 19;
    const UPDATE: u8 = 2;
    let mut n = 0;
    let mut at = 0;
    while let Some(header) = buf.get(at..at + HEADER) {
        let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
        if header[18] == UPDATE {
            n += 1;
        }
        if len < HEADER {
            break;
        }
        at += len;
    }
    n
}

/// Noted prefixes a held peer is sent per wake (some 20 to 40 KiB of UPDATEs).
const RELEASE_PREFIXES: usize = 4_096;

/// Most prefixes handled before a flush. A flush holds every touched prefix
/// until it is exported (the changed list, the export batches), so this bounds that
/// memory when encodings are cheap. Measured at 10×100k: 256 whole UPDATEs per flush
/// (about 200,000 prefixes) peaked at 81 MiB, 4096 prefixes at 57 MiB, and was no slower.
const FLUSH_PREFIXES: usize = 4_096;

/// Fewest prefixes a flush waits for when more are queued, however costly each is.
const FLUSH_PREFIXES_MIN: usize = 16;

/// Octets of UPDATEs one flush may encode, all peers together (an encoding that peers
/// of one export class share counted once). What a flush encodes waits in memory until
/// the sockets take it, so this, not the count of events, is what bounds it: the
/// prefixes of the next flush are this over the octets per prefix the last one cost.
/// 1,000 reflector clients that each hear every change cost about 80 octets per prefix
/// shared; encoded per peer they cost 1,000 times that.
const FLUSH_BYTES: usize = 1 << 20;

impl RibTask {
    fn new(
        config: &SpeakerConfig,
        status: StatusMap,
        self_tx: mpsc::Sender<RibEvent>,
    ) -> (RibTask, FibFeed, watch::Receiver<bool>) {
        let fib = FibFeed::default();
        let (conv_tx, conv_rx) = watch::channel(false);
        let policy = PolicyConfig {
            local_as: config.local_as,
            router_id: config.router_id,
            cluster_id: config.cluster_id,
            pools: config.pools.clone(),
            own_blocks: config.own_blocks.clone(),
            next_hop_v4: config.local_address,
            next_hop_v6: config.local_address_v6,
        };
        let mut rib = Rib::new(policy, config.max_paths);
        if config.fib_view {
            rib.track_fib();
        }
        let task = RibTask {
            rib,
            out: HashMap::new(),
            status,
            fib: fib.clone(),
            conv_tx,
            self_tx,
            generations: HashMap::new(),
            stale_rearmed: HashMap::new(),
            restart_times: HashMap::new(),
            stale_time: (config.graceful_restart_time > 0)
                .then(|| Duration::from_secs(config.graceful_restart_time.into())),
            peers_configured: false,
            octets_per_prefix: 1,
            messages: HashMap::new(),
            deadline: Instant::now() + config.convergence_timeout,
        };
        (task, fib, conv_rx)
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<RibEvent>,
        mut wakes: mpsc::UnboundedReceiver<IpAddr>,
    ) {
        loop {
            let first = tokio::select! {
                ev = rx.recv() => ev,
                Some(peer) = wakes.recv() => {
                    self.release(peer);
                    while let Ok(peer) = wakes.try_recv() {
                        self.release(peer);
                    }
                    let _ = self.flush();
                    continue;
                }
                _ = tokio::time::sleep_until(self.deadline), if !*self.conv_tx.borrow() => {
                    tracing::info!("convergence timeout: stale routes may now be removed");
                    self.publish_fib();
                    let _ = self.conv_tx.send(true);
                    continue;
                }
            };
            let Some(first) = first else { return };
            let limit = self.flush_limit();
            let mut prefixes = self.handle(first);
            while prefixes < limit && self.rib.encoded() < FLUSH_BYTES {
                match rx.try_recv() {
                    Ok(ev) => prefixes += self.handle(ev),
                    Err(_) => break,
                }
            }
            let encoded = self.flush();
            if encoded > 0 {
                self.octets_per_prefix = (encoded / prefixes.max(1)).max(1);
            }
        }
    }

    /// Prefixes the next flush may take: [`FLUSH_BYTES`] at the last flush's cost each.
    fn flush_limit(&self) -> usize {
        (FLUSH_BYTES / self.octets_per_prefix.max(1)).clamp(FLUSH_PREFIXES_MIN, FLUSH_PREFIXES)
    }

    /// Handles one event; returns how many prefixes it carried (at least one, so that a
    /// flood of other events is bounded too).
    fn handle(&mut self, ev: RibEvent) -> usize {
        if let RibEvent::Update(address, update, permit) = ev {
            self.messages.entry(address).or_default().updates_received += 1;
            self.rib.update(address, *update);
            return permit.num_permits().max(1);
        }
        self.handle_other(ev);
        1
    }

    fn handle_other(&mut self, ev: RibEvent) {
        match ev {
            RibEvent::PeerUp {
                info,
                updates,
                resets,
            } => {
                let addr = info.address;
                self.out.insert(addr, PeerOut { updates, resets });
                self.stale_rearmed.remove(&addr);
                self.rib.peer_up(info);
            }
            RibEvent::PeerDown {
                address,
                keep_stale,
            } => {
                self.out.remove(&address);
                self.rib.peer_down(address, keep_stale.is_some());
                let generation = self.generations.entry(address).or_default();
                *generation += 1;
                if let Some(after) = keep_stale {
                    self.restart_times.insert(address, after);
                    self.arm_stale(address, after);
                }
            }
            RibEvent::PeerRemoved(address) => {
                self.out.remove(&address);
                self.messages.remove(&address);
                self.rib.peer_removed(address);
                self.restart_times.remove(&address);
                self.stale_rearmed.remove(&address);
                *self.generations.entry(address).or_default() += 1;
            }
            RibEvent::Update(address, update, _) => {
                self.messages.entry(address).or_default().updates_received += 1;
                self.rib.update(address, *update)
            }
            RibEvent::Refresh(address) => self.rib.refresh(address),
            RibEvent::RefreshMarker(address, r) => match r.subtype {
                1 => self.rib.begin_refresh(address, r.afi_safi),
                2 => self.rib.end_refresh(address, r.afi_safi),
                _ => {}
            },
            RibEvent::SetBlocks(blocks) => self.rib.set_own_blocks(blocks),
            RibEvent::PeersConfigured => self.peers_configured = true,
            RibEvent::Query(reply) => {
                let _ = reply.send(self.rib.routes());
            }
            RibEvent::StaleExpired {
                address,
                generation,
            } => {
                if self.generations.get(&address) != Some(&generation) {
                    return;
                }
                let up = self.out.contains_key(&address);
                let rearmed = self.stale_rearmed.remove(&address);
                match (up, rearmed, self.stale_after(address)) {
                    // Re-established but no End-of-RIB yet: wait once more, then give up.
                    (true, None, Some(after)) => {
                        self.stale_rearmed.insert(address, after);
                        self.arm_stale(address, after);
                    }
                    _ => {
                        tracing::info!(peer = %address, "graceful restart time over: stale routes removed");
                        self.rib.stale_expired(address);
                    }
                }
            }
        }
    }

    /// How long a re-established peer's stale routes wait for its End-of-RIB
    /// (RFC 4724 §4.2, the receiving speaker's stale-routes time): our configured
    /// graceful-restart time, or else the restart time the peer advertised. None:
    /// no wait, the stale routes go now.
    fn stale_after(&self, address: IpAddr) -> Option<Duration> {
        self.stale_time
            .or_else(|| self.restart_times.get(&address).copied())
    }

    fn arm_stale(&mut self, address: IpAddr, after: Duration) {
        let generation = self.generations.get(&address).copied().unwrap_or_default();
        let tx = self.self_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx
                .send(RibEvent::StaleExpired {
                    address,
                    generation,
                })
                .await;
        });
    }

    /// A held peer's socket took its backlog: send it what was noted for it, a
    /// part at a time.
    fn release(&mut self, peer: IpAddr) {
        self.rib.release(peer, RELEASE_PREFIXES);
    }

    /// Carries out a round of changes; returns the octets of UPDATEs it encoded.
    fn flush(&mut self) -> usize {
        let mut fx = self.rib.flush();
        let mut encoded = fx.encoded;
        loop {
            for (addr, msg) in fx.messages.drain(..) {
                if let Some(o) = self.out.get(&addr) {
                    self.messages.entry(addr).or_default().updates_sent += count_updates(&msg);
                    o.updates.send(msg);
                }
            }
            // A peer whose socket is behind is held: its changes are noted, not
            // encoded, until its write loop wakes us. One whose backlog drained
            // meanwhile is released at once.
            let mut now = Vec::new();
            for (addr, o) in &self.out {
                let backlog = &o.updates.backlog;
                let behind = backlog.queued() > BACKLOG_HIGH;
                if behind && !self.rib.is_held(*addr) {
                    tracing::debug!(peer = %addr, queued = backlog.queued(), "peer's socket is behind: holding its updates");
                    self.rib.hold(*addr);
                }
                if (behind || self.rib.is_held(*addr)) && backlog.block() {
                    now.push(*addr);
                }
            }
            if now.is_empty() {
                break;
            }
            for addr in now {
                self.release(addr);
            }
            let more = self.rib.flush();
            encoded += more.encoded;
            fx.messages = more.messages;
            fx.resets.extend(more.resets);
        }
        for (addr, n) in fx.resets {
            if let Some(o) = self.out.get(&addr) {
                let _ = o.resets.send(n);
            }
        }
        self.publish_fib();
        self.publish_counts();
        self.check_converged();
        encoded
    }

    /// Hands the FIB this round's changes: only the prefixes touched, each with its
    /// next hops now, so the cost follows the changes, not the table. They wait in the
    /// feed (coalescing per prefix) whether or not the consumer is there yet: one that
    /// comes late finds every remote route, not nothing (paired with "converged", that
    /// would delete learned routes).
    fn publish_fib(&mut self) {
        self.fib.push(self.rib.fib_changes());
    }

    fn publish_counts(&mut self) {
        let counts = self.rib.counts();
        let mut status = lock(&self.status);
        for (addr, c) in counts {
            if let Some(s) = status.get_mut(&addr) {
                s.counts = c;
            }
        }
        for (addr, m) in &self.messages {
            if let Some(s) = status.get_mut(addr) {
                s.messages = *m;
            }
        }
    }

    fn check_converged(&mut self) {
        if *self.conv_tx.borrow() || !self.peers_configured {
            return;
        }
        let status = lock(&self.status);
        let all = status
            .values()
            .all(|s| s.admin_down || self.rib.eor_complete(s.address));
        drop(status);
        if all {
            tracing::info!("initial convergence: every peer sent End-of-RIB");
            // The consumer pairs "converged" with the changes it then takes.
            self.publish_fib();
            let _ = self.conv_tx.send(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::fsm::State;
    use crate::speaker::tests::config;
    use crate::speaker::{NeighborKind, PeerStatus};

    fn task(config: &SpeakerConfig, status: StatusMap) -> (RibTask, watch::Receiver<bool>) {
        let (tx, _rx) = mpsc::channel(1);
        let (task, _fib, conv) = RibTask::new(config, status, tx);
        (task, conv)
    }

    #[test]
    fn updates_are_counted_in_a_buffer_of_messages() {
        let msg = |kind: u8, len: u16| {
            let mut m = vec![0xff; 16];
            m.extend_from_slice(&len.to_be_bytes());
            m.push(kind);
            m.resize(usize::from(len), 0);
            m
        };
        let mut buf = msg(2, 23);
        buf.extend(msg(4, 19));
        buf.extend(msg(2, 40));
        assert_eq!(count_updates(&buf), 2);
        assert_eq!(count_updates(&[]), 0);
        assert_eq!(count_updates(&msg(2, 10)[..10]), 0);
    }

    fn peer_status(address: IpAddr, admin_down: bool, info: &str) -> PeerStatus {
        PeerStatus {
            address,
            asn: 64512,
            kind: NeighborKind::Mesh,
            state: State::Idle,
            admin_down,
            since: SystemTime::now(),
            configured: SystemTime::now(),
            info: info.into(),
            router_id: None,
            hostname: None,
            counts: Default::default(),
            messages: Default::default(),
            established_count: 0,
            graceful_restart: false,
        }
    }

    #[test]
    fn stale_routes_wait_the_configured_time_then_the_advertised_one() {
        let peer = IpAddr::from([10, 0, 0, 2]);
        let (t, _) = task(&config(7), StatusMap::default());
        assert_eq!(t.stale_after(peer), Some(Duration::from_secs(7)));

        let (mut t, _) = task(&config(0), StatusMap::default());
        assert_eq!(t.stale_after(peer), None, "graceful restart off: no wait");
        t.restart_times.insert(peer, Duration::from_secs(42));
        assert_eq!(t.stale_after(peer), Some(Duration::from_secs(42)));
    }

    /// Convergence skips an administratively down peer by its typed state,
    /// whatever its `info` text says.
    #[test]
    fn convergence_ignores_admin_down_peers_by_state_not_text() {
        let status = StatusMap::default();
        let down = IpAddr::from([10, 0, 0, 2]);
        let waiting = IpAddr::from([10, 0, 0, 3]);
        {
            let mut s = lock(&status);
            s.insert(down, peer_status(down, true, "connect: refused"));
            s.insert(waiting, peer_status(waiting, false, ""));
        }
        let (mut t, conv) = task(&config(120), status.clone());
        t.peers_configured = true;
        t.check_converged();
        assert!(!*conv.borrow(), "a configured peer has not sent End-of-RIB");
        lock(&status).remove(&waiting);
        t.check_converged();
        assert!(*conv.borrow(), "only an administratively down peer is left");
    }
}
