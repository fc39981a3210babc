//! TCP plumbing of one BGP connection: connecting with the right socket
//! options, a reader task that frames messages, a writer task that batches and
//! puts the session's own messages before UPDATEs.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::sys;
use crate::wire::{self, Context, Notification};

/// What a connection's reader reports to its peer task.
#[derive(Debug)]
pub enum ConnEvent {
    /// An outgoing connection attempt finished.
    Connected(io::Result<TcpStream>),
    /// One whole message, header included.
    Message(Bytes),
    /// The header was malformed: reset with this NOTIFICATION.
    FramingError(Notification),
    /// The connection closed or failed.
    Closed,
}

/// Socket options shared by outgoing and accepted connections.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    pub password: Option<String>,
    pub ttl_security: bool,
}

/// Applies GTSM to a connected socket: send with TTL 255, accept only 255.
pub fn apply_ttl_security(stream: &TcpStream, peer: IpAddr) -> io::Result<()> {
    match peer {
        IpAddr::V4(_) => stream.set_ttl(255)?,
        IpAddr::V6(_) => socket2::SockRef::from(stream).set_unicast_hops_v6(255)?,
    }
    sys::set_min_ttl(stream, peer.is_ipv6(), 255)
}

/// Connects to `peer` from `source` with TCP-MD5 and GTSM as configured.
pub async fn connect(
    source: Option<IpAddr>,
    peer: SocketAddr,
    opts: &SocketOptions,
) -> io::Result<TcpStream> {
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(src) = source {
        if src.is_ipv4() == peer.is_ipv4() {
            socket.bind(SocketAddr::new(src, 0))?;
        }
    }
    if let Some(pw) = &opts.password {
        sys::set_md5(&socket, peer.ip(), Some(pw.as_bytes()))?;
    }
    if opts.ttl_security {
        let s = socket2::SockRef::from(&socket);
        match peer {
            SocketAddr::V4(_) => s.set_ttl(255)?,
            SocketAddr::V6(_) => s.set_unicast_hops_v6(255)?,
        }
        // Before connecting, so that the SYN-ACK and a peer's OPEN sent right
        // after it are checked too.
        sys::set_min_ttl(&socket, peer.is_ipv6(), 255)?;
    }
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(peer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads and frames messages until the connection ends.
pub async fn read_loop(mut rd: OwnedReadHalf, id: u64, tx: mpsc::Sender<(u64, ConnEvent)>) {
    // Framing accepts extended lengths; the peer task refuses a long message
    // when extended messages were not negotiated.
    let ctx = Context {
        extended_message: true,
        ..Context::default()
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        loop {
            match wire::frame(&buf, &ctx) {
                Ok(Some(n)) => {
                    let msg = buf.split_to(n).freeze();
                    if tx.send((id, ConnEvent::Message(msg))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(n) => {
                    let _ = tx.send((id, ConnEvent::FramingError(n))).await;
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send((id, ConnEvent::Closed)).await;
                return;
            }
            Ok(_) => {}
        }
    }
}

/// The UPDATE side of a connection's queue, shared by the RIB task (which queues and,
/// when too much waits, stops encoding for the peer) and the write loop (which wakes
/// the RIB once the backlog is low again). A peer that reads slowly so costs at most
/// [`BACKLOG_HIGH`] octets of encoded UPDATEs here, plus what the RIB notes for it.
#[derive(Debug)]
pub struct Backlog {
    peer: IpAddr,
    queued: AtomicUsize,
    /// The RIB held the peer and waits for a wake.
    blocked: AtomicBool,
    wake: mpsc::UnboundedSender<IpAddr>,
}

/// Octets of UPDATEs queued for one connection above which the RIB holds the peer.
pub const BACKLOG_HIGH: usize = 4 << 20;
/// ... and below which the write loop wakes it again.
pub const BACKLOG_LOW: usize = 1 << 20;

impl Backlog {
    pub fn new(peer: IpAddr, wake: mpsc::UnboundedSender<IpAddr>) -> Arc<Backlog> {
        Arc::new(Backlog {
            peer,
            queued: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            wake,
        })
    }

    /// Octets of UPDATEs queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The RIB holds the peer: returns true when it must release it at once (the
    /// backlog drained while it decided), false when the write loop will wake it.
    pub fn block(&self) -> bool {
        self.blocked.store(true, Ordering::Release);
        self.queued() <= BACKLOG_LOW && self.blocked.swap(false, Ordering::AcqRel)
    }

    fn written(&self, n: usize) {
        let left = self.queued.fetch_sub(n, Ordering::AcqRel).saturating_sub(n);
        if left <= BACKLOG_LOW && self.blocked.swap(false, Ordering::AcqRel) {
            let _ = self.wake.send(self.peer);
        }
    }
}

/// Where the RIB queues a connection's UPDATEs.
#[derive(Debug, Clone)]
pub struct UpdateSender {
    tx: mpsc::UnboundedSender<Bytes>,
    pub backlog: Arc<Backlog>,
}

impl UpdateSender {
    pub fn send(&self, msg: Bytes) {
        let n = msg.len();
        self.backlog.queued.fetch_add(n, Ordering::AcqRel);
        if self.tx.send(msg).is_err() {
            self.backlog.queued.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

/// A connection's two queues: `control` (OPEN, KEEPALIVE, NOTIFICATION, from the
/// session) and the UPDATE queue of `backlog`.
pub fn write_queues(
    backlog: Arc<Backlog>,
) -> (
    mpsc::UnboundedSender<Bytes>,
    UpdateSender,
    mpsc::UnboundedReceiver<Bytes>,
    mpsc::UnboundedReceiver<Bytes>,
) {
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (upd_tx, upd_rx) = mpsc::unbounded_channel();
    let updates = UpdateSender {
        tx: upd_tx,
        backlog,
    };
    (ctl_tx, updates, ctl_rx, upd_rx)
}

/// Writes queued messages, the session's own before UPDATEs (a KEEPALIVE or a
/// NOTIFICATION never waits behind a backlog of UPDATEs), flushing when both queues
/// run dry. Ends (closing the write side) when the session drops its control sender;
/// UPDATEs still queued then are dropped with the connection.
pub async fn write_loop(
    wr: OwnedWriteHalf,
    mut control: mpsc::UnboundedReceiver<Bytes>,
    mut updates: mpsc::UnboundedReceiver<Bytes>,
    backlog: Arc<Backlog>,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let first = tokio::select! {
            biased;
            m = control.recv() => match m {
                Some(m) => (m, false),
                None => break,
            },
            Some(u) = updates.recv() => (u, true),
        };
        let mut next = Some(first);
        while let Some((msg, is_update)) = next {
            if w.write_all(&msg).await.is_err() {
                return;
            }
            if is_update {
                backlog.written(msg.len());
            }
            next = match control.try_recv() {
                Ok(m) => Some((m, false)),
                Err(_) => updates.try_recv().ok().map(|u| (u, true)),
            };
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GTSM on an outgoing connection checks the SYN-ACK already: a peer
    /// that does not send with TTL 255 is never connected to.
    #[tokio::test]
    async fn gtsm_connect_needs_ttl_255_from_the_start() -> io::Result<()> {
        let opts = SocketOptions {
            password: None,
            ttl_security: true,
        };
        for (listener_ttl, connects) in [(64, false), (255, true)] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_ttl(listener_ttl)?;
            let addr = listener.local_addr()?;
            let r =
                tokio::time::timeout(Duration::from_millis(500), connect(None, addr, &opts)).await;
            assert_eq!(
                matches!(r, Ok(Ok(_))),
                connects,
                "listener TTL {listener_ttl}: {r:?}"
            );
        }
        Ok(())
    }
}
