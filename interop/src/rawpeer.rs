//! A scripted BGP peer for hostile-input tests: it speaks just enough BGP to reach
//! Established with ipipd, then sends whatever bytes a test wants and reports exactly
//! what ipipd answered (messages, the NOTIFICATION's code, subcode and data, or the
//! connection closing).
//!
//! Blocking std sockets, one per peer: tests read top to bottom. The socket is made in
//! the peers' network namespace by [`netns`]; everything else runs on the test thread.

pub mod craft;
pub mod netns;
pub mod testbed;
pub mod want;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use bgp::fsm::{negotiate, SessionConfig};
use bgp::wire::{
    self, AfiSafi, Attributes, Capability, Context, Message, Notification, Open, Update,
};
use bytes::BytesMut;

pub use netns::{accept, in_netns, listen, Dial};

/// What arrived from ipipd.
///
/// Not boxed: one event is matched right after it is read (as `wire::Message` itself).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(Message),
    /// ipipd closed the connection (FIN or RST).
    Closed,
}

/// One TCP connection to ipipd with a BGP speaker's manners.
pub struct RawPeer {
    stream: TcpStream,
    writer: Arc<Mutex<TcpStream>>,
    buf: Vec<u8>,
    /// What was negotiated (after [`RawPeer::handshake`]); used to encode and decode.
    pub ctx: Context,
    /// ipipd's OPEN, once received.
    pub their_open: Option<Open>,
    keepalives: Option<Arc<AtomicBool>>,
}

/// An OPEN with the capabilities most tests want: IPv4 unicast, 4-octet AS.
pub fn default_open(asn: u32, id: Ipv4Addr, hold: u16) -> Open {
    Open::new(
        asn,
        hold,
        id,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(asn),
            Capability::RouteRefresh,
        ],
    )
}

/// The codec context the raw peer uses once both OPENs are known.
pub fn context_for(ours: &Open, theirs: &Open) -> Context {
    let cfg = SessionConfig {
        local_as: ours.asn(),
        local_id: ours.bgp_id,
        peer_as: theirs.asn(),
        hold_time: ours.hold_time,
        keepalive_time: None,
        connect_retry: Duration::from_secs(1),
        passive: true,
        capabilities: ours.capabilities.clone(),
    };
    match negotiate(&cfg, theirs) {
        Ok(n) => n.context,
        Err(_) => Context {
            four_octet_as: ours.has_capability(65) && theirs.has_capability(65),
            ebgp: ours.asn() != theirs.asn(),
            ..Context::default()
        },
    }
}

impl RawPeer {
    /// Connects as `dial` says; no BGP message is exchanged yet.
    pub fn connect(dial: &Dial) -> Result<RawPeer> {
        RawPeer::from_stream(dial.connect()?)
    }

    /// Wraps a connected stream (e.g. one accepted from a [`listen`] socket).
    pub fn from_stream(stream: TcpStream) -> Result<RawPeer> {
        let writer = Arc::new(Mutex::new(stream.try_clone()?));
        Ok(RawPeer {
            stream,
            writer,
            buf: Vec::with_capacity(64 * 1024),
            ctx: Context::default(),
            their_open: None,
            keepalives: None,
        })
    }

    /// Connects and completes the OPEN exchange with `open`: returns once ipipd's
    /// KEEPALIVE arrived and ours is sent, so the next message is handled in Established.
    pub fn establish(dial: &Dial, open: &Open) -> Result<RawPeer> {
        let mut p = RawPeer::connect(dial)?;
        p.handshake(open, Duration::from_secs(10))?;
        Ok(p)
    }

    /// Sends `open`, expects ipipd's OPEN and KEEPALIVE, answers with a KEEPALIVE.
    pub fn handshake(&mut self, open: &Open, timeout: Duration) -> Result<Open> {
        self.send(&Message::Open(open.clone()))?;
        let theirs = match self.recv(timeout)? {
            Event::Message(Message::Open(o)) => o,
            other => bail!("expected ipipd's OPEN, got {other:?}"),
        };
        self.ctx = context_for(open, &theirs);
        self.their_open = Some(theirs.clone());
        match self.recv(timeout)? {
            Event::Message(Message::Keepalive) => {}
            other => bail!("expected KEEPALIVE after the OPENs, got {other:?}"),
        }
        self.send(&Message::Keepalive)?;
        Ok(theirs)
    }

    /// Writes bytes as they are.
    pub fn send_raw(&self, bytes: &[u8]) -> Result<()> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| anyhow!("writer lock poisoned"))?;
        w.write_all(bytes).context("sending to ipipd")
    }

    /// A handle that writes on this connection from another thread.
    pub fn writer(&self) -> RawWriter {
        RawWriter(self.writer.clone())
    }

    /// Encodes `m` with the negotiated context and sends it.
    pub fn send(&self, m: &Message) -> Result<()> {
        self.send_raw(&wire::encode_to_bytes(m, &self.ctx))
    }

    pub fn send_update(&self, u: &Update) -> Result<()> {
        self.send(&Message::Update(u.clone()))
    }

    /// Announces `prefixes` with `attrs` (its NEXT_HOP must be set) in one UPDATE.
    pub fn announce(&self, attrs: &Attributes, prefixes: &[ipnet::Ipv4Net]) -> Result<()> {
        let nlri = prefixes
            .iter()
            .map(|p| wire::Nlri::new((*p).into()))
            .collect();
        self.send_update(&Update {
            attributes: attrs.clone(),
            nlri,
            ..Update::default()
        })
    }

    /// Withdraws `prefixes` in one UPDATE.
    pub fn withdraw(&self, prefixes: &[ipnet::Ipv4Net]) -> Result<()> {
        let withdrawn = prefixes
            .iter()
            .map(|p| wire::Nlri::new((*p).into()))
            .collect();
        self.send_update(&Update {
            withdrawn,
            ..Update::default()
        })
    }

    /// Waits up to `timeout` for one message or the end of the connection.
    pub fn recv(&mut self, timeout: Duration) -> Result<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.next_buffered()? {
                return Ok(Event::Message(m));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("nothing from ipipd within {timeout:?}");
            }
            if self.read_some(16 * 1024, left)?.is_none() {
                return Ok(Event::Closed);
            }
        }
    }

    /// The next whole message among the bytes read so far, if there is one.
    pub fn next_buffered(&mut self) -> Result<Option<Message>> {
        // Frame with the largest length so a long message is seen whole, then decode
        // with what was negotiated.
        let framing = Context {
            extended_message: true,
            ..self.ctx
        };
        match wire::frame(&self.buf, &framing) {
            Ok(Some(n)) => {
                let msg: Vec<u8> = self.buf.drain(..n).collect();
                wire::decode(&msg, &self.ctx)
                    .map(Some)
                    .map_err(|n| anyhow!("ipipd sent a message we cannot decode ({n}): {msg:02x?}"))
            }
            Ok(None) => Ok(None),
            Err(n) => bail!(
                "ipipd sent bytes that do not frame ({n}): {:02x?}",
                self.buf
            ),
        }
    }

    /// Reads at most `max` octets, waiting up to `timeout` for some, and keeps them for
    /// [`RawPeer::next_buffered`]: how many came (0 when none did in time), or None
    /// when the connection ended.
    pub fn read_some(&mut self, max: usize, timeout: Duration) -> Result<Option<usize>> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 16 * 1024];
        let room = chunk.get_mut(..max.clamp(1, 16 * 1024)).unwrap_or_default();
        match self.stream.read(room) {
            Ok(0) => Ok(None),
            Ok(n) => {
                self.buf
                    .extend_from_slice(room.get(..n).unwrap_or_default());
                Ok(Some(n))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(Some(0))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).context("reading from ipipd"),
        }
    }

    /// Skips KEEPALIVEs, UPDATEs and ROUTE-REFRESHes until a NOTIFICATION arrives.
    pub fn expect_notification(&mut self, timeout: Duration) -> Result<Notification> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Event::Message(Message::Notification(n)) => return Ok(n),
                Event::Message(_) => {}
                Event::Closed => bail!("ipipd closed the connection without a NOTIFICATION"),
            }
        }
    }

    /// Waits until ipipd closes the connection; returns the NOTIFICATION if one came first.
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<Option<Notification>> {
        let deadline = Instant::now() + timeout;
        let mut seen = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Event::Message(Message::Notification(n)) => seen = Some(n),
                Event::Message(_) => {}
                Event::Closed => return Ok(seen),
            }
        }
    }

    /// Reads and drops whatever arrives for `d`; fails if the connection closes.
    pub fn drain(&mut self, d: Duration) -> Result<Vec<Message>> {
        let deadline = Instant::now() + d;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Ok(Event::Message(m)) => got.push(m),
                Ok(Event::Closed) => bail!("ipipd closed the connection"),
                Err(_) => break,
            }
        }
        Ok(got)
    }

    /// Sends a KEEPALIVE every `every` from a background thread, until dropped.
    pub fn start_keepalives(&mut self, every: Duration) {
        let stop = Arc::new(AtomicBool::new(false));
        self.keepalives = Some(stop.clone());
        let writer = self.writer.clone();
        let ka = wire::encode_to_bytes(&Message::Keepalive, &Context::default());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                let Ok(mut w) = writer.lock() else { return };
                if stop.load(Ordering::Relaxed) || w.write_all(&ka).is_err() {
                    return;
                }
            }
        });
    }

    /// Closes with a TCP RST (SO_LINGER 0), as a crashed or unplugged peer would.
    pub fn reset(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    /// Closes with a FIN after sending what is queued.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    pub fn local_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(self.stream.local_addr()?)
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        if let Some(stop) = &self.keepalives {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes on a [`RawPeer`]'s connection; writes from several handles never interleave
/// within one call.
#[derive(Clone)]
pub struct RawWriter(Arc<Mutex<TcpStream>>);

impl RawWriter {
    pub fn send_raw(&self, bytes: &[u8]) -> Result<()> {
        let mut w = self.0.lock().map_err(|_| anyhow!("writer lock poisoned"))?;
        w.write_all(bytes).context("sending to ipipd")
    }
}

/// Encodes an UPDATE for `ctx` (for tests that batch many into one write).
pub fn encode_update(u: &Update, ctx: &Context, out: &mut BytesMut) {
    wire::encode(&Message::Update(u.clone()), ctx, out);
}
