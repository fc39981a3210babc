//! The connection side of a neighbor's task: connecting (with backoff and
//! jitter) and accepting, one [`Conn`] per TCP connection with its own
//! [`Session`] and timers, and the choice between two connections (RFC 4271
//! §6.8 collisions, RFC 4724 §4.2 restarts).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::conn::{self, ConnEvent, SocketOptions};
use super::super::MAX_CONNECT_RETRY;
use super::{Peer, YOUNG_SESSION};
use crate::fsm::{DownReason, Input, Session, State, Timer};
use crate::wire::{codes, Capability, Context, Notification};

pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) session: Session,
    pub(super) outgoing: bool,
    /// The session's own messages; dropping it ends the write task.
    pub(super) writer: Option<mpsc::UnboundedSender<Bytes>>,
    /// Where the RIB queues UPDATEs, once Established.
    pub(super) updates: conn::UpdateSender,
    /// Ends once every queued message is written and the socket shut down.
    pub(super) write_task: Option<JoinHandle<()>>,
    pub(super) reader: JoinHandle<()>,
    pub(super) timers: [Option<Instant>; 3],
    pub(super) ctx: Context,
}

pub(super) fn timer_index(t: Timer) -> usize {
    match t {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
    }
}

pub(super) const TIMERS: [Timer; 3] = [Timer::ConnectRetry, Timer::Hold, Timer::Keepalive];

impl Peer {
    pub(super) fn start_connect(&mut self) {
        if self.hold_down_until.is_some_and(|t| t > Instant::now()) {
            self.next_connect = self.hold_down_until;
            return;
        }
        self.connecting = true;
        self.set_state(State::Connect, String::new());
        let peer = SocketAddr::new(self.config.address, self.config.port);
        let source = match peer {
            SocketAddr::V4(_) => Some(IpAddr::V4(self.speaker.local_address)),
            SocketAddr::V6(_) => self.speaker.local_address_v6.map(IpAddr::V6),
        };
        let opts = SocketOptions {
            password: self.config.password.clone(),
            ttl_security: self.config.ttl_security,
        };
        let tx = self.ev_tx.clone();
        tokio::spawn(async move {
            let r = conn::connect(source, peer, &opts).await;
            let _ = tx.send((u64::MAX, ConnEvent::Connected(r))).await;
        });
    }

    pub(super) async fn accept(&mut self, stream: TcpStream) {
        if self.config.shutdown || self.hold_down_until.is_some_and(|t| t > Instant::now()) {
            tracing::info!("incoming connection refused: peer is held down");
            return;
        }
        if let Some((_, neg)) = &self.established {
            if !neg.graceful_restart {
                tracing::info!("incoming connection while established: closed (RFC 4271 §6.8)");
                return;
            }
            // It may be the peer back after a restart, or only its half of a
            // collision: the OPEN on it decides (`judge_second_open`).
            tracing::debug!("incoming connection while established: waiting for its OPEN");
        }
        if self.conns.len() >= 2 {
            return;
        }
        self.add_conn(stream, false).await;
    }

    pub(super) async fn conn_event(&mut self, id: u64, ev: ConnEvent) {
        match ev {
            ConnEvent::Connected(r) => {
                self.connecting = false;
                match r {
                    Ok(stream) if self.established.is_none() && self.conns.len() < 2 => {
                        self.add_conn(stream, true).await
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "connect failed");
                        if self.conns.is_empty() {
                            self.set_state(State::Active, format!("connect: {e}"));
                            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                                // The node is up but not listening yet (it is starting):
                                // try again soon, backing off from 1 s up to the usual
                                // retry so that a node down for long costs little.
                                let after = self.refused_retry.min(self.retry);
                                self.refused_retry = (self.refused_retry * 2).min(self.retry);
                                self.schedule_connect(after);
                            } else {
                                self.schedule_reconnect();
                            }
                        }
                    }
                }
            }
            ConnEvent::Message(bytes) => self.message(id, bytes).await,
            ConnEvent::FramingError(n) => self.input(id, Input::DecodeError(n)).await,
            ConnEvent::Closed => self.input(id, Input::TcpFailed).await,
        }
    }

    pub(super) async fn add_conn(&mut self, stream: TcpStream, outgoing: bool) {
        let (rd, wr) = stream.into_split();
        let id = self.next_id;
        self.next_id += 1;
        let backlog = conn::Backlog::new(self.config.address, self.rib.waker());
        let (wtx, updates, ctl_rx, upd_rx) = conn::write_queues(backlog.clone());
        let write_task = tokio::spawn(conn::write_loop(wr, ctl_rx, upd_rx, backlog));
        let reader = tokio::spawn(conn::read_loop(rd, id, self.ev_tx.clone()));
        self.conns.push(Conn {
            id,
            session: Session::new(self.session_config()),
            outgoing,
            writer: Some(wtx),
            updates,
            write_task: Some(write_task),
            reader,
            timers: [None; 3],
            ctx: Context::default(),
        });
        self.input(id, Input::TcpConnected).await;
    }

    /// The established connection is presumed dead (the peer reconnected).
    pub(super) async fn lose(&mut self, id: u64) {
        self.input(id, Input::TcpFailed).await;
    }

    pub(super) fn schedule_reconnect(&mut self) {
        self.schedule_connect(self.retry);
        self.retry = (self.retry * 2).min(MAX_CONNECT_RETRY);
    }

    /// The next connection attempt in `after`, less up to a quarter at random
    /// (RFC 4271 §10 jitter) so that nodes started together do not retry in step.
    pub(super) fn schedule_connect(&mut self, after: Duration) {
        if self.config.passive || self.config.shutdown {
            return;
        }
        let at = Instant::now() + jitter(after);
        self.next_connect = Some(self.hold_down_until.map_or(at, |h| h.max(at)));
    }

    /// A connection other than the established one got the peer's OPEN. If the
    /// peer restarted (RFC 4724 §4.2: an OPEN on a new connection while the
    /// session is established), the old session ends with its routes kept as
    /// stale and the new one goes on. If the session is young and the OPEN does
    /// not announce a restart, it is the other half of a collision the peer has
    /// not seen resolved yet, and RFC 4271 §6.8 decides which connection stays.
    pub(super) async fn judge_second_open(&mut self, id: u64) {
        let Some((eid, neg)) = &self.established else {
            return;
        };
        let eid = *eid;
        if eid == id {
            return;
        }
        let Some(this) = self.conns.iter().find(|c| c.id == id) else {
            return;
        };
        if this.session.state() != State::OpenConfirm {
            return;
        }
        let restarting = this.session.peer_open().is_some_and(|o| {
            o.capabilities
                .iter()
                .any(|c| matches!(c, Capability::GracefulRestart(gr) if gr.restart))
        });
        let young = self
            .established_at
            .is_some_and(|t| t.elapsed() < YOUNG_SESSION);
        // In a collision the connection opened by the higher identifier stays. The
        // peer, still in OpenConfirm, closes ours when it is the higher one: follow
        // it to its connection rather than lose both.
        let peer_wins = !this.outgoing
            && this
                .session
                .peer_open()
                .is_some_and(|o| u32::from(o.bgp_id) > u32::from(self.speaker.router_id));
        if neg.graceful_restart && (restarting || !young) {
            tracing::info!(
                restarting,
                "peer reconnected while established: treating as a graceful restart"
            );
            Box::pin(self.lose(eid)).await;
        } else if neg.graceful_restart && peer_wins {
            tracing::debug!("connection collision after establishment: moving to the peer's connection (RFC 4271 §6.8)");
            Box::pin(self.lose(eid)).await;
        } else {
            tracing::debug!("second connection while established: closed (RFC 4271 §6.8)");
            let cease = Notification::new(codes::CEASE, 7, Vec::new());
            Box::pin(self.input(id, Input::Stop(Some(cease)))).await;
        }
    }

    /// RFC 4271 §6.8: with two connections past OPEN, keep the one opened by
    /// the speaker with the higher BGP identifier.
    pub(super) async fn resolve_collision(&mut self, id: u64) {
        if self.conns.len() < 2 {
            return;
        }
        if self.established.is_some() {
            self.judge_second_open(id).await;
            return;
        }
        let Some(this) = self.conns.iter().find(|c| c.id == id) else {
            return;
        };
        if this.session.state() != State::OpenConfirm {
            return;
        }
        let Some(remote_id) = this.session.peer_open().map(|o| o.bgp_id) else {
            return;
        };
        let local_wins = u32::from(self.speaker.router_id) > u32::from(remote_id);
        // Close the connection the loser initiated.
        let loser = self.conns.iter().find(|c| {
            matches!(c.session.state(), State::OpenSent | State::OpenConfirm)
                && c.outgoing != local_wins
        });
        if let Some(loser) = loser.map(|c| c.id) {
            tracing::debug!(local_wins, "connection collision resolved");
            let cease = Notification::new(codes::CEASE, 7, Vec::new());
            Box::pin(self.input(loser, Input::Stop(Some(cease)))).await;
        }
    }
}

/// A connection closed by collision resolution (Cease 6/7), by either side.
pub(super) fn is_collision(reason: &DownReason) -> bool {
    matches!(reason, DownReason::NotificationReceived(n) | DownReason::NotificationSent(n)
        if n.code == codes::CEASE && n.subcode == 7)
}

/// `d` less a random part of up to a quarter of it.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    let frac = (h.finish() % 1000) as f64 / 4000.0;
    d.mul_f64(1.0 - frac)
}
