//! One task per neighbor: connects (with backoff) and accepts, runs one
//! [`Session`] per TCP connection, resolves collisions (RFC 4271 §6.8), and
//! tells the RIB when the session comes and goes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::conn::{self, ConnEvent};
use super::rib_task::{RibEvent, RibSender};
use super::{
    lock, NeighborConfig, NeighborKind, PeerStatus, SpeakerConfig, StatusMap, MAX_CONNECT_RETRY,
};
use crate::fsm::{DownReason, Input, Negotiated, Output, SessionConfig, State};
use crate::rib::PeerInfo;
use crate::wire::{
    self, codes, AddPathMode, AfiSafi, Capability, GracefulRestart, Message, Notification,
};

/// `info` of a peer that is administratively down (display only; the state is
/// [`PeerStatus::admin_down`]).
const ADMIN_DOWN: &str = "administratively down";

/// Longest wait at a stop for a connection's last messages to be written.
const WRITER_FLUSH: Duration = Duration::from_secs(1);

mod conns;
use conns::{is_collision, timer_index, Conn, TIMERS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Process stop for a restart: close TCP without NOTIFICATION (RFC 4724).
    Graceful,
    /// Process stop for good: Cease/Administrative Shutdown with a message.
    Shutdown,
    /// The peer left the configuration: Cease/Peer De-configured.
    Deconfigured,
    /// The peer was set `shutdown = true`: Cease/Administrative Shutdown with
    /// an RFC 9003 message, and no reconnecting.
    AdminDown,
}

enum PeerCtl {
    Stop(StopMode, oneshot::Sender<()>),
    /// The forwarding path failed (BFD Down): end the session at once, routes and all.
    PathDown,
    /// The forwarding path works again (BFD Up): reconnect now rather than after backoff.
    PathUp,
}

/// Retry after a refused connect (the peer's host answers, its daemon is
/// starting) or a connection lost to collision resolution.
const REFUSED_RETRY: Duration = Duration::from_secs(1);

/// A session this young may still be in OpenConfirm at the peer, which then
/// can still send an OPEN on a crossing connection without having restarted.
const YOUNG_SESSION: Duration = Duration::from_secs(3);

/// RFC 9384: Cease subcode "BFD Down".
const CEASE_BFD_DOWN: u8 = 10;

pub struct PeerHandle {
    pub config: NeighborConfig,
    pub incoming: mpsc::UnboundedSender<TcpStream>,
    ctl: mpsc::UnboundedSender<PeerCtl>,
}

impl PeerHandle {
    /// Asks the task to stop; the receiver completes when it has.
    pub fn stop(self, mode: StopMode) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.ctl.send(PeerCtl::Stop(mode, tx));
        rx
    }

    /// See [`PeerCtl::PathDown`].
    pub fn path_down(&self) {
        let _ = self.ctl.send(PeerCtl::PathDown);
    }

    /// See [`PeerCtl::PathUp`].
    pub fn path_up(&self) {
        let _ = self.ctl.send(PeerCtl::PathUp);
    }
}

pub fn spawn(
    speaker: Arc<SpeakerConfig>,
    config: NeighborConfig,
    rib: RibSender,
    status: StatusMap,
) -> PeerHandle {
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(256);
    let (reset_tx, reset_rx) = mpsc::unbounded_channel();
    let info = if config.shutdown {
        ADMIN_DOWN.to_string()
    } else {
        String::new()
    };
    lock(&status).insert(
        config.address,
        PeerStatus {
            address: config.address,
            asn: config.asn,
            kind: config.kind,
            state: State::Idle,
            admin_down: config.shutdown,
            since: SystemTime::now(),
            configured: SystemTime::now(),
            info,
            router_id: None,
            hostname: None,
            counts: Default::default(),
            messages: Default::default(),
            established_count: 0,
            graceful_restart: false,
        },
    );
    let span = tracing::info_span!("peer", peer = %config.address);
    let peer = Peer {
        retry: speaker.connect_retry,
        refused_retry: REFUSED_RETRY,
        speaker,
        config: config.clone(),
        rib,
        status,
        ev_tx,
        reset_tx,
        conns: Vec::new(),
        next_id: 0,
        next_connect: None,
        connecting: false,
        established: None,
        established_at: None,
        hold_down_until: None,
        stopping: false,
    };
    tokio::spawn(peer.run(in_rx, ctl_rx, ev_rx, reset_rx).instrument(span));
    PeerHandle {
        config,
        incoming: in_tx,
        ctl: ctl_tx,
    }
}

struct Peer {
    speaker: Arc<SpeakerConfig>,
    config: NeighborConfig,
    rib: RibSender,
    status: StatusMap,
    ev_tx: mpsc::Sender<(u64, ConnEvent)>,
    reset_tx: mpsc::UnboundedSender<Notification>,
    conns: Vec<Conn>,
    next_id: u64,
    retry: Duration,
    /// The next wait after a refused connect.
    refused_retry: Duration,
    next_connect: Option<Instant>,
    connecting: bool,
    /// The connection that reached Established, and what it negotiated.
    established: Option<(u64, Negotiated)>,
    /// When `established` came up.
    established_at: Option<Instant>,
    /// After a max-prefix reset: no session until then.
    hold_down_until: Option<Instant>,
    /// Stopping: the status entry may already belong to a successor task.
    stopping: bool,
}

impl Peer {
    /// The task's loop. What it awaits for an event (the FSM's outputs, the RIB, a
    /// connection's set-up: some 4 KiB of state nested async calls need) is boxed for the
    /// event's time, so that an idle peer's task holds only the loop's own state: a
    /// reflector has thousands.
    async fn run(
        mut self,
        mut incoming: mpsc::UnboundedReceiver<TcpStream>,
        mut ctl: mpsc::UnboundedReceiver<PeerCtl>,
        mut events: mpsc::Receiver<(u64, ConnEvent)>,
        mut resets: mpsc::UnboundedReceiver<Notification>,
    ) {
        if !self.config.shutdown && !self.config.passive {
            self.next_connect = Some(Instant::now());
            self.set_state(State::Connect, String::new());
        } else if !self.config.shutdown {
            self.set_state(State::Active, String::new());
        }
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                cmd = ctl.recv() => match cmd {
                    Some(PeerCtl::Stop(mode, done)) => {
                        Box::pin(self.stop(mode)).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(PeerCtl::PathDown) => Box::pin(self.path_down()).await,
                    Some(PeerCtl::PathUp) => self.path_up(),
                    None => return,
                },
                Some(stream) = incoming.recv() => Box::pin(self.accept(stream)).await,
                Some((id, ev)) = events.recv() => Box::pin(self.conn_event(id, ev)).await,
                Some(n) = resets.recv() => {
                    if let Some((id, _)) = &self.established {
                        let id = *id;
                        tracing::warn!(notification = %n, "resetting session");
                        // Hold down before reconnecting so a flood is not re-learned at once.
                        self.hold_down_until = Some(Instant::now() + MAX_CONNECT_RETRY);
                        Box::pin(self.input(id, Input::Stop(Some(n)))).await;
                    }
                }
                _ = sleep_until(deadline) => Box::pin(self.fire_timers()).await,
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let timers = self
            .conns
            .iter()
            .flat_map(|c| c.timers.iter().flatten().copied());
        let connect = if self.conns.is_empty() && !self.connecting {
            self.next_connect
        } else {
            None
        };
        timers.chain(connect).min()
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        if self.conns.is_empty() && !self.connecting && self.next_connect.is_some_and(|t| t <= now)
        {
            self.next_connect = None;
            self.start_connect();
        }
        let mut due = Vec::new();
        for c in &mut self.conns {
            for t in TIMERS {
                let slot = &mut c.timers[timer_index(t)];
                if slot.is_some_and(|d| d <= now) {
                    *slot = None;
                    due.push((c.id, t));
                }
            }
        }
        for (id, t) in due {
            self.input(id, Input::TimerExpired(t)).await;
        }
    }

    async fn message(&mut self, id: u64, bytes: Bytes) {
        let Some(c) = self.conns.iter().find(|c| c.id == id) else {
            return;
        };
        let ctx = c.ctx;
        if bytes.len() > wire::MAX_MESSAGE_LEN && !ctx.extended_message {
            let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
            let n = Notification::new(codes::MESSAGE_HEADER, 2, len.to_be_bytes().to_vec());
            self.input(id, Input::DecodeError(n)).await;
            return;
        }
        match wire::decode(&bytes, &ctx) {
            Ok(m) => self.input(id, Input::Message(m)).await,
            Err(n) => self.input(id, Input::DecodeError(n)).await,
        }
    }

    fn session_config(&self) -> SessionConfig {
        let s = &self.speaker;
        let mut caps = vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(s.local_as),
            Capability::AddPath(vec![
                (AfiSafi::IPV4_UNICAST, AddPathMode::Receive),
                (AfiSafi::IPV6_UNICAST, AddPathMode::Receive),
            ]),
            Capability::ExtendedMessage,
        ];
        if s.graceful_restart_time > 0 {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restart: s.restarting,
                notification: true,
                time: s.graceful_restart_time.min(4095),
                // F: our kernel routes survive our restart, so forwarding is preserved.
                families: vec![(AfiSafi::IPV4_UNICAST, true), (AfiSafi::IPV6_UNICAST, true)],
            }));
        }
        if !s.hostname.is_empty() {
            caps.push(Capability::Fqdn {
                hostname: s.hostname.clone(),
                domain: String::new(),
            });
        }
        SessionConfig {
            local_as: s.local_as,
            local_id: s.router_id,
            peer_as: self.config.asn,
            hold_time: s.hold_time,
            keepalive_time: s.keepalive_time,
            connect_retry: s.connect_retry,
            passive: self.config.passive,
            capabilities: caps,
        }
    }

    /// Feeds one input to a connection's FSM and carries out the outputs.
    async fn input(&mut self, id: u64, input: Input) {
        let Some(idx) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let outputs = match self.conns.get_mut(idx) {
            Some(c) => c.session.handle(input),
            None => return,
        };
        for o in outputs {
            self.output(id, o).await;
        }
        self.resolve_collision(id).await;
    }

    async fn output(&mut self, id: u64, o: Output) {
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
            return;
        };
        match o {
            Output::Connect => {}
            Output::Send(mut m) => {
                if let Message::Notification(n) = &m {
                    // RFC 8538 §5: with the N bit negotiated, these Ceases must end the
                    // session for real, not as a graceful restart: send them as Hard Reset.
                    let n_bit = matches!(&self.established, Some((eid, neg)) if *eid == id && neg.notification_gr);
                    // RFC 9384's BFD Down too: the forwarding plane is gone, keep nothing.
                    if n_bit
                        && n.code == codes::CEASE
                        && matches!(n.subcode, 1..=3 | CEASE_BFD_DOWN)
                    {
                        m = Message::Notification(crate::fsm::hard_reset(n));
                    }
                }
                if let Message::Notification(n) = &m {
                    tracing::warn!(notification = %n, "sending NOTIFICATION");
                }
                let mut buf = BytesMut::new();
                wire::encode(&m, &c.ctx, &mut buf);
                if let Some(w) = &c.writer {
                    let _ = w.send(buf.freeze());
                }
            }
            Output::Close => {
                c.writer = None;
                c.reader.abort();
            }
            Output::Arm(t, d) => c.timers[timer_index(t)] = Some(Instant::now() + d),
            Output::Cancel(t) => c.timers[timer_index(t)] = None,
            Output::StateChanged { to, .. } => {
                if self.established.is_none() && to != State::Idle {
                    self.set_state(to, String::new());
                }
            }
            Output::Established(neg) => {
                c.ctx = neg.context;
                let updates = c.writer.is_some().then(|| c.updates.clone());
                self.established(id, *neg, updates).await;
            }
            Output::Update(u) => {
                self.rib.update(self.config.address, u).await;
            }
            Output::RouteRefresh(r) => {
                let ev = match r.subtype {
                    0 => RibEvent::Refresh(self.config.address),
                    _ => RibEvent::RefreshMarker(self.config.address, r),
                };
                let _ = self.rib.send(ev).await;
            }
            Output::Down(reason) => self.down(id, reason).await,
        }
    }

    async fn established(&mut self, id: u64, neg: Negotiated, updates: Option<conn::UpdateSender>) {
        // Any other connection lost the race.
        let others: Vec<u64> = self
            .conns
            .iter()
            .filter(|c| c.id != id)
            .map(|c| c.id)
            .collect();
        for other in others {
            let cease = Notification::new(codes::CEASE, 7, Vec::new());
            Box::pin(self.input(other, Input::Stop(Some(cease)))).await;
        }
        self.retry = self.speaker.connect_retry;
        self.refused_retry = REFUSED_RETRY;
        let info = PeerInfo {
            address: self.config.address,
            router_id: neg.peer_id,
            asn: neg.peer_as,
            ibgp: neg.peer_as == self.speaker.local_as,
            rr_client: self.config.kind == NeighborKind::RrClient,
            ipv4: neg.families.contains(&AfiSafi::IPV4_UNICAST),
            ipv6: neg.families.contains(&AfiSafi::IPV6_UNICAST),
            context: neg.context,
            max_prefixes: self.config.max_prefixes,
            enhanced_route_refresh: neg.enhanced_route_refresh,
        };
        tracing::info!(router_id = %neg.peer_id, hold = neg.hold_time.as_secs(), graceful_restart = neg.graceful_restart, "session established");
        if let Some(p) = lock(&self.status).get_mut(&self.config.address) {
            p.router_id = Some(neg.peer_id);
            p.hostname = neg.peer_hostname.clone();
            p.established_count += 1;
            p.graceful_restart = neg.graceful_restart;
        }
        self.established = Some((id, neg));
        self.established_at = Some(Instant::now());
        self.set_state(State::Established, String::new());
        if let Some(updates) = updates {
            let _ = self
                .rib
                .send(RibEvent::PeerUp {
                    info,
                    updates,
                    resets: self.reset_tx.clone(),
                })
                .await;
        }
    }

    /// Whether the peer keeps our routes / we keep its routes after this end.
    fn keep_stale(neg: &Negotiated, reason: &DownReason) -> Option<Duration> {
        let gr = neg.peer_graceful_restart.as_ref()?;
        if !neg.graceful_restart || gr.time == 0 {
            return None;
        }
        let keep = match reason {
            DownReason::ConnectionLost => true,
            // RFC 8538: with N negotiated, any NOTIFICATION but Hard Reset keeps routes.
            DownReason::NotificationReceived(n) | DownReason::NotificationSent(n) => {
                neg.notification_gr && !(n.code == codes::CEASE && n.subcode == 9)
            }
            DownReason::Stopped => false,
        };
        keep.then(|| Duration::from_secs(gr.time.into()))
    }

    async fn down(&mut self, id: u64, reason: DownReason) {
        let pos = self.conns.iter().position(|c| c.id == id);
        if let Some(pos) = pos {
            let c = self.conns.swap_remove(pos);
            c.reader.abort();
        }
        match self.established.take() {
            Some((eid, neg)) if eid == id => {
                let keep = Self::keep_stale(&neg, &reason);
                tracing::warn!(%reason, stale_kept = keep.is_some(), "session down");
                let _ = self
                    .rib
                    .send(RibEvent::PeerDown {
                        address: self.config.address,
                        keep_stale: keep,
                    })
                    .await;
            }
            other => self.established = other,
        }
        if self.conns.is_empty() && self.established.is_none() {
            self.set_state(State::Idle, reason.to_string());
            if is_collision(&reason) {
                // The peer is there and wants a session; only the connection
                // lost a race: no reason to back off.
                self.schedule_connect(self.retry.min(REFUSED_RETRY));
            } else {
                self.schedule_reconnect();
            }
        }
    }

    /// BFD says the path to the peer failed: every connection ends now with a
    /// Cease/BFD Down, and the peer's routes leave the RIB without the
    /// graceful-restart retention a lost TCP connection would get.
    async fn path_down(&mut self) {
        let ids: Vec<u64> = self.conns.iter().map(|c| c.id).collect();
        if ids.is_empty() {
            return;
        }
        tracing::warn!("BFD session down: ending the BGP session, its routes are withdrawn");
        for id in ids {
            let cease = Notification::new(codes::CEASE, CEASE_BFD_DOWN, Vec::new());
            self.input(id, Input::Stop(Some(cease))).await;
        }
        self.set_state(State::Idle, "BFD session down".to_string());
    }

    fn path_up(&mut self) {
        if self.conns.is_empty()
            && !self.connecting
            && !self.config.passive
            && !self.config.shutdown
        {
            self.retry = self.speaker.connect_retry;
            let now = Instant::now();
            self.next_connect = Some(self.hold_down_until.map_or(now, |h| h.max(now)));
        }
    }

    async fn stop(&mut self, mode: StopMode) {
        self.stopping = true;
        let notification = match mode {
            StopMode::Graceful => None,
            StopMode::Shutdown => Some(Notification::shutdown(2, "ipipd is shutting down")),
            StopMode::Deconfigured => Some(Notification::new(codes::CEASE, 3, Vec::new())),
            StopMode::AdminDown => Some(Notification::shutdown(
                2,
                "peer administratively shut down on this node",
            )),
        };
        let ids: Vec<u64> = self.conns.iter().map(|c| c.id).collect();
        let writers: Vec<JoinHandle<()>> = self
            .conns
            .iter_mut()
            .filter_map(|c| c.write_task.take())
            .collect();
        for id in ids {
            self.input(id, Input::Stop(notification.clone())).await;
        }
        // The writers end once the NOTIFICATION is on the wire (UPDATEs still
        // queued are dropped). A peer that stopped reading must not hold up the
        // stop for long.
        for w in writers {
            if tokio::time::timeout(WRITER_FLUSH, w).await.is_err() {
                tracing::warn!("the last messages to the peer were not all written");
            }
        }
    }

    fn set_state(&self, state: State, info: String) {
        if self.stopping {
            return;
        }
        if let Some(p) = lock(&self.status).get_mut(&self.config.address) {
            if p.state != state {
                p.since = SystemTime::now();
                tracing::debug!(from = %p.state, to = %state, "state change");
            }
            p.state = state;
            if !info.is_empty() || state == State::Established {
                p.info = info;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
