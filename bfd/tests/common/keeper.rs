//! For the keeper tests: a BFD peer on loopback that answers every packet so as to
//! bring the session Up and keep it there, and notes what it received, with when;
//! the daemon's side of an external keeper.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bfd::keeper::{KeeperClient, Options};
use bfd::{Packet, State};
use socket2::{Domain, Protocol, Socket, Type};

use super::packet;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub struct Peer {
    got: Arc<Mutex<Vec<(Instant, Packet)>>>,
    stop: Arc<AtomicBool>,
}

impl Peer {
    /// Listens on `addr`:`port` and sends to the keeper's receive socket on
    /// 127.0.0.1:`port`.
    pub fn start(addr: Ipv4Addr, port: u16) -> Result<Peer> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_ttl_v4(255)?;
        s.bind(&SocketAddr::from((addr, port)).into())?;
        s.set_read_timeout(Some(Duration::from_millis(20)))?;
        let sock: UdpSocket = s.into();
        let got: Arc<Mutex<Vec<(Instant, Packet)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            // What to answer: Down to AdminDown (and before anything), Init to
            // Down, Up to Init and Up (RFC 5880 §6.8.6 as the peer runs it).
            let (mut theirs, mut state) = (0, State::Down);
            let mut last_sent = Instant::now();
            while !st.load(Ordering::Relaxed) {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    if let Some(p) = buf.get(..n).and_then(|b| bfd::decode(b).ok()) {
                        (theirs, state) = match p.state {
                            State::AdminDown => (0, State::Down),
                            State::Down => (p.my_disc, State::Init),
                            State::Init | State::Up => (p.my_disc, State::Up),
                        };
                        g.lock().map(|mut v| v.push((Instant::now(), p))).ok();
                    }
                }
                if last_sent.elapsed() >= Duration::from_millis(30) {
                    let p = packet(state, theirs);
                    let _ = sock.send_to(&bfd::encode(&p), to);
                    last_sent = Instant::now();
                }
            }
        });
        Ok(Peer { got, stop })
    }

    pub fn received(&self) -> Vec<(Instant, Packet)> {
        self.got.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The AdminDown packets received from `since` on: how many, and the time
    /// from the first to the last.
    pub fn admin_down_since(&self, since: Instant) -> (usize, Duration) {
        let times: Vec<Instant> = self
            .received()
            .into_iter()
            .filter(|(t, p)| *t >= since && p.state == State::AdminDown)
            .map(|(t, _)| t)
            .collect();
        let span = match (times.first(), times.last()) {
            (Some(a), Some(b)) => b.duration_since(*a),
            _ => Duration::ZERO,
        };
        (times.len(), span)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A keeper of this process serving `opts` on `<temp>/<tag>-<pid>/bfd.sock`: that
/// socket, and the keeper's task.
pub fn serve_keeper(
    tag: &str,
    opts: Options,
) -> Result<(
    std::path::PathBuf,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("bfd.sock");
    let task = tokio::spawn({
        let socket = socket.clone();
        async move { bfd::keeper::serve(&socket, opts).await }
    });
    Ok((socket, task))
}

/// For a keeper run on its own: the daemon's side never starts one.
pub fn never_spawn() -> Box<dyn Fn() -> std::io::Result<()> + Send + Sync> {
    Box::new(|| Err(std::io::Error::other("external keeper: not started here")))
}

pub async fn wait_up(client: &KeeperClient) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if client.sessions().iter().any(|s| s.state == State::Up) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("session not Up: {:?}", client.sessions()).into())
}
