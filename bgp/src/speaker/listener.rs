//! The BGP listener: accepts connections and hands each to its peer's task.
//! A connection from an address that is not a configured peer is closed
//! before any OPEN is exchanged.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{conn, lock, sys, NeighborConfig, SpeakerConfig, SpeakerError};

type Routes = Arc<Mutex<HashMap<IpAddr, mpsc::UnboundedSender<TcpStream>>>>;

pub struct Listener {
    /// Emptied by [`Listener::close`]; with the accept tasks' copies gone, the
    /// sockets close and the kernel completes no more handshakes.
    sockets: Mutex<Vec<Arc<TcpListener>>>,
    routes: Routes,
    gtsm: Arc<Mutex<HashMap<IpAddr, bool>>>,
    closing: watch::Sender<bool>,
    accepting: Mutex<Vec<JoinHandle<()>>>,
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    if let Err(e) = sys::save_syn(&socket) {
        tracing::warn!(error = %e, "cannot keep SYNs: GTSM checks only what arrives after accept");
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

impl Listener {
    /// Binds and listens; connections wait in the kernel until [`Listener::accept`].
    pub async fn bind(
        config: &SpeakerConfig,
        neighbors: &[NeighborConfig],
    ) -> Result<Listener, SpeakerError> {
        let port = config.port;
        let v4 = bind(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port))
            .map_err(|source| SpeakerError::Listen { port, source })?;
        let mut sockets = vec![Arc::new(v4)];
        if config.local_address_v6.is_some() || neighbors.iter().any(|n| n.address.is_ipv6()) {
            match bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
                Ok(l) => sockets.push(Arc::new(l)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen on IPv6; IPv6 peers must be connected to")
                }
            }
        }
        let (closing, _) = watch::channel(false);
        Ok(Listener {
            sockets: Mutex::new(sockets),
            routes: Routes::default(),
            gtsm: Arc::default(),
            closing,
            accepting: Mutex::new(Vec::new()),
        })
    }

    /// Starts handing connections to their peers. Until then the kernel queues
    /// them (they are neither refused nor closed), so that the peers and their
    /// keys can be set first.
    pub fn accept(&self) {
        let sockets = lock(&self.sockets);
        let mut accepting = lock(&self.accepting);
        for s in sockets.iter() {
            accepting.push(tokio::spawn(accept_loop(
                s.clone(),
                self.routes.clone(),
                self.gtsm.clone(),
                self.closing.subscribe(),
            )));
        }
    }

    /// Stops accepting and closes the listening sockets: from now on a peer's
    /// connection attempt is refused by the kernel, not opened and then closed.
    pub async fn close(&self) {
        self.closing.send_replace(true);
        lock(&self.sockets).clear();
        let tasks: Vec<JoinHandle<()>> = lock(&self.accepting).drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The addresses listened on (none once closed).
    #[cfg(test)]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.sockets)
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Installs the neighbor's TCP-MD5 key on the listening sockets.
    pub fn set_neighbor(&self, n: &NeighborConfig) {
        for s in lock(&self.sockets).iter() {
            let is_v6_socket = s.local_addr().is_ok_and(|a| a.is_ipv6());
            if is_v6_socket != n.address.is_ipv6() {
                continue;
            }
            if let Some(pw) = &n.password {
                if let Err(e) = sys::set_md5(s.as_ref(), n.address, Some(pw.as_bytes())) {
                    tracing::error!(peer = %n.address, error = %e, "cannot set TCP-MD5 key on the listener");
                }
            } else {
                // No key wanted: remove any left from an earlier configuration.
                let _ = sys::set_md5(s.as_ref(), n.address, None);
            }
        }
        lock(&self.gtsm).insert(n.address, n.ttl_security);
    }

    pub fn set_peers(&self, peers: HashMap<IpAddr, mpsc::UnboundedSender<TcpStream>>) {
        *lock(&self.routes) = peers;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        lock(&self.routes).clear();
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    routes: Routes,
    gtsm: Arc<Mutex<HashMap<IpAddr, bool>>>,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => return,
            r = listener.accept() => r,
        };
        let (stream, from) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = canonical(from.ip());
        let target = lock(&routes).get(&ip).cloned();
        let Some(tx) = target else {
            tracing::warn!(from = %ip, "connection from an address that is not a configured peer: closed");
            drop(stream);
            continue;
        };
        let ttl_security = lock(&gtsm).get(&ip).copied().unwrap_or(false);
        if ttl_security {
            if let Err(e) = conn::apply_ttl_security(&stream, ip) {
                tracing::error!(peer = %ip, error = %e, "cannot apply GTSM");
                continue;
            }
            // What arrived before the minimum TTL was set went unchecked: judge
            // the connection by its SYN (RFC 5082 §3).
            if let Ok(Some(ttl)) = sys::syn_ttl(&stream) {
                if ttl < 255 {
                    tracing::warn!(peer = %ip, ttl, "GTSM: connection opened with a TTL below 255: closed");
                    continue;
                }
            }
        }
        let _ = stream.set_nodelay(true);
        let _ = tx.send(stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speaker::tests::config;

    /// Once shutdown starts, the port is closed: a peer's connection attempt is
    /// refused instead of being opened and closed again.
    #[tokio::test]
    async fn nothing_is_accepted_once_closed() -> Result<(), SpeakerError> {
        let mut cfg = config(120);
        cfg.port = 0;
        let listener = Listener::bind(&cfg, &[]).await?;
        listener.accept();
        let port = listener
            .local_addrs()
            .first()
            .map(SocketAddr::port)
            .unwrap_or_default();
        assert_ne!(port, 0);
        let open = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(open.is_ok(), "listening before the close: {open:?}");
        listener.close().await;
        let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(refused.is_err(), "connected after the close: {refused:?}");
        assert!(listener.local_addrs().is_empty());
        Ok(())
    }

    /// A peer that connects while the daemon is still setting up its peers is
    /// kept waiting, then handed to its peer task, not closed.
    #[tokio::test]
    async fn a_connection_before_accepting_reaches_its_peer() -> Result<(), SpeakerError> {
        let mut cfg = config(120);
        cfg.port = 0;
        let listener = Listener::bind(&cfg, &[]).await?;
        let port = listener
            .local_addrs()
            .first()
            .map(SocketAddr::port)
            .unwrap_or_default();
        let early = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(early.is_ok(), "queued by the kernel: {early:?}");
        let (tx, mut rx) = mpsc::unbounded_channel();
        listener.set_peers(HashMap::from([(IpAddr::from([127, 0, 0, 1]), tx)]));
        listener.accept();
        let handed = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert!(
            matches!(handed, Ok(Some(_))),
            "the early connection reached its peer"
        );
        listener.close().await;
        Ok(())
    }
}
