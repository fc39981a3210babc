//! Sockets that live in another network namespace.
//!
//! A socket belongs to the namespace of the thread that created it and keeps working
//! from any thread afterwards. So the test process stays where it is, and a short-lived
//! thread moves into the target namespace (setns only affects the calling thread), makes
//! the socket there and hands it back.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};

/// Runs `f` on a thread inside the network namespace `ns` (a name under /run/netns).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    netns::in_netns_path(&netns::path(ns), f)?
}

/// How a test connection is made.
#[derive(Debug, Clone)]
pub struct Dial {
    /// Namespace the socket lives in.
    pub ns: String,
    /// Source address (must exist in `ns`).
    pub local: IpAddr,
    pub remote: SocketAddr,
    /// IP TTL of every segment, SYN included (GTSM tests send 1).
    pub ttl: Option<u32>,
    pub timeout: Duration,
}

impl Dial {
    pub fn new(ns: &str, local: IpAddr, remote: SocketAddr) -> Dial {
        Dial {
            ns: ns.to_string(),
            local,
            remote,
            ttl: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// Connects from inside the namespace.
    pub fn connect(&self) -> Result<TcpStream> {
        let d = self.clone();
        in_netns(&self.ns, move || {
            let s = Socket::new(
                Domain::for_address(d.remote),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            if let Some(ttl) = d.ttl {
                s.set_ttl_v4(ttl)?;
            }
            s.bind(&SocketAddr::new(d.local, 0).into())
                .with_context(|| format!("binding {}", d.local))?;
            s.connect_timeout(&d.remote.into(), d.timeout)
                .with_context(|| format!("connecting {} -> {}", d.local, d.remote))?;
            s.set_tcp_nodelay(true)?;
            Ok(TcpStream::from(s))
        })
    }
}

/// A listening socket in `ns` on `addr`, for sessions that ipipd opens. `ttl` applies
/// to everything sent on accepted connections, the SYN-ACK included (a GTSM peer
/// answers with 255).
pub fn listen(ns: &str, addr: SocketAddr, ttl: Option<u32>) -> Result<TcpListener> {
    in_netns(ns, move || {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        if let Some(ttl) = ttl {
            s.set_ttl_v4(ttl)?;
        }
        s.bind(&addr.into())
            .with_context(|| format!("binding {addr}"))?;
        s.listen(16)?;
        Ok(TcpListener::from(s))
    })
}

/// Accepts one connection, waiting at most `timeout`.
pub fn accept(listener: &TcpListener, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    listener.set_nonblocking(true)?;
    let end = std::time::Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, from)) => {
                stream.set_nonblocking(false)?;
                return Ok((stream, from));
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && std::time::Instant::now() < end =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                anyhow::bail!("no connection within {timeout:?}")
            }
            Err(e) => return Err(e.into()),
        }
    }
}
