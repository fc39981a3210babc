//! A minimal BGP session for load generation: the OPEN exchange, keepalives, and whole
//! messages in and out. No FSM beyond that: the load generator never enforces the hold
//! timer (a target busy with a million routes may be late with its KEEPALIVEs, and that
//! must not end the measurement), and it answers nothing but KEEPALIVEs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use bgp::wire::{self, AfiSafi, Capability, Context, Message, Open};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What this end says in its OPEN.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    /// Announce the Extended Message capability (RFC 8654).
    pub extended_message: bool,
    /// The AS the peer must announce; None accepts any.
    pub peer_as: Option<u32>,
    /// Octets the read buffer starts with and grows by: [`READ_BUFFER`] for a few
    /// sessions carrying bulk, a few KiB for a thousand sessions carrying one route each.
    pub read_buffer: usize,
}

/// The read buffer of a bulk session.
pub const READ_BUFFER: usize = 256 * 1024;

impl SessionConfig {
    fn open(&self) -> Open {
        let mut caps = vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(self.local_as),
        ];
        if self.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        Open::new(self.local_as, self.hold_time, self.router_id, caps)
    }
}

/// An established session.
pub struct Session {
    /// What was negotiated: 4-octet AS, extended messages.
    pub ctx: Context,
    pub peer_open: Open,
    /// Whole encoded messages to send, in order.
    pub writer: mpsc::Sender<Bytes>,
    reader: OwnedReadHalf,
    buf: BytesMut,
    read_step: usize,
    reads: u64,
    writer_task: Option<JoinHandle<()>>,
    keepalive_task: Option<JoinHandle<()>>,
}

/// A dropped session ends its tasks, which closes the connection.
impl Drop for Session {
    fn drop(&mut self) {
        for t in [self.writer_task.take(), self.keepalive_task.take()]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
    }
}

const KEEPALIVE: [u8; 19] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 19, 4,
];

/// Connects from `source` to `target`, retrying refused connections until `limit`
/// (the target may still be starting).
pub async fn connect(source: Ipv4Addr, target: SocketAddr, limit: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + limit;
    loop {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket
            .bind(SocketAddr::new(IpAddr::V4(source), 0))
            .with_context(|| format!("binding {source}"))?;
        match tokio::time::timeout(Duration::from_secs(5), socket.connect(target)).await {
            Ok(Ok(s)) => return Ok(s),
            // Refused while the target starts: try again.
            Ok(Err(_)) if Instant::now() < deadline => {}
            Ok(Err(e)) => {
                return Err(e).with_context(|| format!("connecting {source} -> {target}"))
            }
            Err(_) if Instant::now() < deadline => {}
            Err(_) => bail!("connecting {source} -> {target}: timed out"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects and establishes, starting over while `limit` lasts: a daemon may accept
/// connections before its peers are configured and close the first ones.
pub async fn open(
    source: Ipv4Addr,
    target: SocketAddr,
    cfg: &SessionConfig,
    limit: Duration,
) -> Result<Session> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = connect(source, target, left).await?;
        match Session::establish(stream, cfg).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() + Duration::from_millis(500) >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

impl Session {
    /// Runs the OPEN exchange on `stream` (either end may have connected) and starts the
    /// writer and keepalive tasks. Fails on a NOTIFICATION, a wrong AS, or EOF.
    pub async fn establish(stream: TcpStream, cfg: &SessionConfig) -> Result<Session> {
        stream.set_nodelay(true)?;
        let peer_addr = stream.peer_addr()?;
        let (reader, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        let writer_task = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        let mut s = Session {
            ctx: Context::default(),
            peer_open: Open::new(0, 0, Ipv4Addr::UNSPECIFIED, Vec::new()),
            writer: tx,
            reader,
            buf: BytesMut::with_capacity(cfg.read_buffer.max(4096)),
            read_step: cfg.read_buffer.max(4096),
            reads: 0,
            writer_task: Some(writer_task),
            keepalive_task: None,
        };
        let open = wire::encode_to_bytes(&Message::Open(cfg.open()), &Context::default());
        s.send(open).await?;
        let peer = match s.next_decoded().await? {
            Some(Message::Open(o)) => o,
            other => bail!(
                "{peer_addr}: expected OPEN, got {}",
                describe(other.as_ref())
            ),
        };
        if let Some(want) = cfg.peer_as {
            if peer.asn() != want {
                bail!(
                    "{peer_addr}: peer announced AS {}, expected {want}",
                    peer.asn()
                );
            }
        }
        s.ctx.four_octet_as = peer.has_capability(65);
        s.ctx.extended_message = cfg.extended_message && peer.has_capability(6);
        let hold = cfg.hold_time.min(peer.hold_time);
        s.peer_open = peer;
        s.send(Bytes::from_static(&KEEPALIVE)).await?;
        match s.next_decoded().await? {
            Some(Message::Keepalive) => {}
            other => bail!(
                "{peer_addr}: expected KEEPALIVE, got {}",
                describe(other.as_ref())
            ),
        }
        if hold > 0 {
            let tx = s.writer.clone();
            let every = Duration::from_secs(u64::from(hold / 3).max(1));
            s.keepalive_task = Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if tx.send(Bytes::from_static(&KEEPALIVE)).await.is_err() {
                        return;
                    }
                }
            }));
        }
        Ok(s)
    }

    /// Queues one or more whole messages.
    pub async fn send(&self, b: Bytes) -> Result<()> {
        self.writer
            .send(b)
            .await
            .map_err(|_| anyhow!("connection closed while sending"))
    }

    /// The next whole message (header included), or None at EOF.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        loop {
            match wire::frame(&self.buf, &self.ctx) {
                Ok(Some(n)) => return Ok(Some(self.buf.split_to(n).freeze())),
                Ok(None) => {}
                Err(n) => bail!("framing error: {n}"),
            }
            if self.buf.capacity() - self.buf.len() < self.read_step / 4 {
                self.buf.reserve(self.read_step);
            }
            self.reads += 1;
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads from the socket so far (how finely the peer's messages arrive).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The next message decoded with the negotiated context, or None at EOF.
    pub async fn next_decoded(&mut self) -> Result<Option<Message>> {
        match self.next().await? {
            None => Ok(None),
            Some(m) => wire::decode(&m, &self.ctx)
                .map(Some)
                .map_err(|n| anyhow!("undecodable message from the peer: {n}")),
        }
    }

    /// Stops the keepalives and closes the write side once queued data is out.
    pub async fn close(mut self) {
        if let Some(k) = self.keepalive_task.take() {
            k.abort();
        }
        let writer = self.writer_task.take();
        // The writer task ends once every sender handle is gone.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.writer, closed));
        if let Some(w) = writer {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
    }
}

/// A message kind for error texts; a NOTIFICATION is spelled out.
pub fn describe(m: Option<&Message>) -> String {
    match m {
        None => "end of stream".into(),
        Some(Message::Notification(n)) => format!("NOTIFICATION {n}"),
        Some(m) => format!("{:?}", m.message_type()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn cfg(asn: u32, id: [u8; 4]) -> SessionConfig {
        SessionConfig {
            local_as: asn,
            router_id: Ipv4Addr::from(id),
            hold_time: 90,
            extended_message: true,
            peer_as: None,
            read_buffer: READ_BUFFER,
        }
    }

    #[tokio::test]
    async fn two_ends_establish_and_exchange() {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let mut sess = Session::establish(s, &cfg(4_200_000_000, [2, 2, 2, 2]))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let m = sess.next_decoded().await.unwrap_or_else(|e| panic!("{e}"));
            (sess.ctx, m)
        });
        let stream = connect(Ipv4Addr::LOCALHOST, addr, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut c = cfg(64512, [1, 1, 1, 1]);
        c.peer_as = Some(4_200_000_000);
        let sess = Session::establish(stream, &c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(sess.ctx.four_octet_as && sess.ctx.extended_message);
        let eor = wire::encode_to_bytes(&Message::Update(wire::Update::default()), &sess.ctx);
        sess.send(eor).await.unwrap_or_else(|e| panic!("{e}"));
        sess.close().await;
        let (ctx, m) = server.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(ctx.four_octet_as);
        assert!(
            matches!(m, Some(Message::Update(u)) if u.end_of_rib_family() == Some(AfiSafi::IPV4_UNICAST))
        );
    }
}
