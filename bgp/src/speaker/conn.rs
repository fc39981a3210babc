//! TCP plumbing of one BGP connection: connecting with the right socket
//! options, a reader task that frames messages, a writer task that batches and
//! puts the session's own messages before UPDATEs.
//!
//! Neither side keeps a buffer per idle connection: a mesh or a route reflector has
//! hundreds to thousands of mostly idle sessions. The reader waits with no buffer (its
//! first read goes into a few octets of the task's state), then reads into [`READ_MIN`]
//! (BIRD's receive buffer is 4 KiB) and grows towards [`READ_MAX`] only while reads
//! keep filling it; the writer hands the
//! queued messages to the kernel as they are (`writev`), with no copy into a buffer.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            SocketAddr::V4(_) => s.set_ttl_v4(255)?,
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
    let mut buf = BytesMut::new();
    let mut want = READ_MIN;
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
        if buf.is_empty() {
            // Everything read was framed: hold no buffer while the session idles (a
            // reflector has thousands of sessions that hear a KEEPALIVE a minute). The
            // messages still in use keep their part of the old one. The next read goes
            // into a few octets on the task's own state, then into a buffer of its size.
            buf = BytesMut::new();
            let mut first = [0u8; IDLE_READ];
            match rd.read(&mut first).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send((id, ConnEvent::Closed)).await;
                    return;
                }
                Ok(n) => {
                    buf.extend_from_slice(first.get(..n).unwrap_or_default());
                    continue;
                }
            }
        }
        if buf.capacity() - buf.len() < want {
            buf.reserve(want);
        }
        let room = buf.capacity() - buf.len();
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send((id, ConnEvent::Closed)).await;
                return;
            }
            Ok(n) => want = next_read_size(want, n, room),
        }
    }
}

/// What an idle connection's first read takes: a KEEPALIVE (19 octets) or the start of
/// a longer message, whose rest is then read into a buffer.
const IDLE_READ: usize = 64;

/// The reader's first and smallest read: one standard message (RFC 4271).
pub const READ_MIN: usize = 4096;
/// The largest read, reached while the peer sends faster than it is read.
pub const READ_MAX: usize = 64 * 1024;

/// The next read's size after one that got `got` octets into `room`: double
/// when it filled the room (more is waiting), halve when it used under a
/// quarter of it.
fn next_read_size(want: usize, got: usize, room: usize) -> usize {
    if got >= room {
        (want * 2).min(READ_MAX)
    } else if got < want / 4 {
        (want / 2).max(READ_MIN)
    } else {
        want
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
    mut wr: OwnedWriteHalf,
    mut control: mpsc::UnboundedReceiver<Bytes>,
    mut updates: mpsc::UnboundedReceiver<Bytes>,
    backlog: Arc<Backlog>,
) {
    let mut pending = Pending::default();
    loop {
        tokio::select! {
            biased;
            m = control.recv() => match m {
                Some(m) => pending.control(m),
                None => break,
            },
            Some(u) = updates.recv() => pending.update(u),
        }
        while !pending.is_empty() {
            // The session's own messages go before any UPDATE not yet started;
            // UPDATEs join while the write stays small.
            while let Ok(m) = control.try_recv() {
                pending.control(m);
            }
            while pending.room() {
                match updates.try_recv() {
                    Ok(u) => pending.update(u),
                    Err(_) => break,
                }
            }
            let written = {
                let slices: Vec<IoSlice<'_>> = pending
                    .queue
                    .iter()
                    .map(|m| IoSlice::new(&m.rest))
                    .collect();
                wr.write_vectored(&slices).await
            };
            match written {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.consume(n, &backlog),
            }
        }
        // A burst grew the queue to up to WRITE_BATCH entries: an idle session keeps none.
        pending.queue = VecDeque::new();
    }
    let _ = wr.shutdown().await;
}

/// Most messages handed to one `writev` (the kernel takes at most 1024 slices).
const WRITE_BATCH: usize = 256;
/// UPDATEs join a write while less than this is pending, so that the session's
/// own messages never wait behind much more.
const WRITE_BYTES: usize = 64 * 1024;

/// One message taken from the queues and not yet written whole.
struct Out {
    rest: Bytes,
    /// Its length, to leave the backlog once written whole; 0 for the
    /// session's own messages, which never entered it.
    update_len: usize,
}

/// What the writer holds: the messages of the next `writev`, in order.
#[derive(Default)]
struct Pending {
    queue: VecDeque<Out>,
    bytes: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn room(&self) -> bool {
        self.queue.len() < WRITE_BATCH && self.bytes < WRITE_BYTES
    }

    fn update(&mut self, u: Bytes) {
        self.bytes += u.len();
        self.queue.push_back(Out {
            update_len: u.len(),
            rest: u,
        });
    }

    /// Before the first UPDATE not yet started (after the session's own
    /// messages already waiting, so they keep their order).
    fn control(&mut self, m: Bytes) {
        let at = self
            .queue
            .iter()
            .position(|o| o.update_len > 0 && o.rest.len() == o.update_len)
            .unwrap_or(self.queue.len());
        self.bytes += m.len();
        self.queue.insert(
            at,
            Out {
                rest: m,
                update_len: 0,
            },
        );
    }

    /// Drops the first `n` octets written; an UPDATE written whole leaves the backlog.
    fn consume(&mut self, mut n: usize, backlog: &Backlog) {
        self.bytes = self.bytes.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if n < front.rest.len() {
                front.rest.advance(n);
                return;
            }
            n -= front.rest.len();
            if front.update_len > 0 {
                backlog.written(front.update_len);
            }
            self.queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_while_they_fill_and_shrink_when_idle() {
        assert_eq!(next_read_size(READ_MIN, READ_MIN, READ_MIN), 2 * READ_MIN);
        let mut want = READ_MIN;
        for _ in 0..10 {
            want = next_read_size(want, want, want);
        }
        assert_eq!(want, READ_MAX);
        // A KEEPALIVE at a time: back down to the minimum.
        for _ in 0..10 {
            want = next_read_size(want, 19, want);
        }
        assert_eq!(want, READ_MIN);
        assert_eq!(next_read_size(8192, 3000, 8192), 8192);
    }

    /// The writer's queue: the session's own messages go before UPDATEs not
    /// yet started but after one being written, keep their order among
    /// themselves, and an UPDATE leaves the backlog once written whole.
    #[test]
    fn pending_puts_control_before_unstarted_updates() {
        let (wake, _rx) = mpsc::unbounded_channel();
        let backlog = Backlog::new(IpAddr::from([10, 0, 0, 1]), wake);
        let (_ctl, sender, _crx, _urx) = write_queues(backlog.clone());
        let (u1, u2) = (Bytes::from(vec![1u8; 100]), Bytes::from(vec![2u8; 50]));
        sender.send(u1.clone());
        sender.send(u2.clone());
        assert_eq!(backlog.queued(), 150);
        let mut p = Pending::default();
        p.update(u1);
        p.update(u2);
        p.consume(40, &backlog);
        p.control(Bytes::from_static(b"keepalive"));
        p.control(Bytes::from_static(b"notification"));
        let order: Vec<(u8, usize)> = p.queue.iter().map(|o| (o.rest[0], o.rest.len())).collect();
        assert_eq!(
            order,
            vec![(1, 60), (b'k', 9), (b'n', 12), (2, 50)],
            "the started UPDATE, then KEEPALIVE, NOTIFICATION, then the rest"
        );
        assert_eq!(backlog.queued(), 150, "nothing written whole yet");
        p.consume(60, &backlog);
        assert_eq!(backlog.queued(), 50);
        p.consume(9 + 12 + 50, &backlog);
        assert!(p.is_empty());
        assert_eq!(backlog.queued(), 0);
        assert_eq!(p.bytes, 0);
    }

    /// End to end over loopback: every message arrives whole and in order,
    /// and the backlog ends empty.
    #[tokio::test]
    async fn write_loop_delivers_every_message_in_order() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = TcpStream::connect(addr).await?;
        let (mut server, _) = listener.accept().await?;
        let (_rd, wr) = client.into_split();
        let (wake, _rx) = mpsc::unbounded_channel();
        let backlog = Backlog::new(addr.ip(), wake);
        let (ctl, sender, ctl_rx, upd_rx) = write_queues(backlog.clone());
        let mut want = Vec::new();
        for i in 0..2000u32 {
            let m = Bytes::from(vec![(i % 251) as u8; 100 + (i as usize % 700)]);
            want.extend_from_slice(&m);
            sender.send(m);
        }
        let task = tokio::spawn(write_loop(wr, ctl_rx, upd_rx, backlog.clone()));
        let mut got = vec![0u8; want.len()];
        server.read_exact(&mut got).await?;
        assert!(got == want, "the bytes differ");
        // Ending the session's queue ends the writer, which closes its side.
        drop(ctl);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await?;
        task.await.map_err(io::Error::other)?;
        assert!(rest.is_empty());
        assert_eq!(backlog.queued(), 0);
        Ok(())
    }

    /// The reader, which holds no buffer between messages, frames every message of a
    /// peer that sends one now and then, whole and in order, and one split across reads.
    #[tokio::test]
    async fn read_loop_frames_messages_that_come_apart() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        let (rd, _wr) = server.into_split();
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(read_loop(rd, 7, tx));
        let keepalive = |n: u8| {
            let mut m = vec![0xffu8; 16];
            m.extend_from_slice(&[0, 19, 4]);
            m[0] = 0xff;
            let _ = n;
            m
        };
        for round in 0..3u8 {
            client.write_all(&keepalive(round)).await?;
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            assert!(
                matches!(&got, Ok(Some((7, ConnEvent::Message(m)))) if m.len() == 19),
                "round {round}: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // One message in two writes.
        let m = keepalive(9);
        client.write_all(&m[..5]).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.write_all(&m[5..]).await?;
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(
            matches!(&got, Ok(Some((7, ConnEvent::Message(m)))) if m.len() == 19),
            "split: {got:?}"
        );
        drop(client);
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(got, Ok(Some((7, ConnEvent::Closed)))), "{got:?}");
        task.await.map_err(io::Error::other)?;
        Ok(())
    }

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
