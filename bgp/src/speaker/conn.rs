//! TCP plumbing of one BGP connection: connecting with the right socket
//! options, a reader task that frames messages, a writer task that batches.

use std::io;
use std::net::{IpAddr, SocketAddr};
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

/// Writes queued messages, flushing when the queue runs dry. Ends (closing the
/// write side) when every sender is gone.
pub async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(first) = rx.recv().await {
        if w.write_all(&first).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if w.write_all(&more).await.is_err() {
                return;
            }
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
