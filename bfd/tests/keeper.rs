//! The keeper as a container of its own runs it (resident): the daemon's side
//! connects and never starts one; when the daemon goes, the session stays Up
//! for the grace time, then goes AdminDown and is dropped, and the keeper waits
//! for the next daemon, which brings the session up again.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bfd::keeper::{KeeperClient, Options};
use bfd::{Packet, Spec, State};

mod common;
use common::packet;
use socket2::{Domain, Protocol, Socket, Type};

const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const PORT: u16 = 43785;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn spec() -> Spec {
    Spec {
        peer: PEER.into(),
        local: Ipv4Addr::LOCALHOST.into(),
        interval: Duration::from_millis(50),
        multiplier: 3,
    }
}

/// A peer on loopback that answers every packet so as to bring the session Up
/// and keep it there, and notes what it received, with when.
struct Peer {
    got: Arc<Mutex<Vec<(Instant, Packet)>>>,
    stop: Arc<AtomicBool>,
}

impl Peer {
    fn start() -> Result<Peer> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_ttl(255)?;
        s.bind(&SocketAddr::from((PEER, PORT)).into())?;
        s.set_read_timeout(Some(Duration::from_millis(20)))?;
        let sock: UdpSocket = s.into();
        let got: Arc<Mutex<Vec<(Instant, Packet)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
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

    fn received(&self) -> Vec<(Instant, Packet)> {
        self.got.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn never_spawn() -> Box<dyn Fn() -> std::io::Result<()> + Send + Sync> {
    Box::new(|| Err(std::io::Error::other("external keeper: not started here")))
}

async fn wait_up(client: &KeeperClient) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if client.sessions().iter().any(|s| s.state == State::Up) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("session not Up: {:?}", client.sessions()).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_keeper_outlives_its_daemon_and_serves_the_next() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ipipd-keeper-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("bfd.sock");
    let grace = Duration::from_secs(1);
    let keeper = tokio::spawn({
        let socket = socket.clone();
        async move {
            bfd::keeper::serve(
                &socket,
                Options {
                    grace,
                    port: PORT,
                    resident: true,
                },
            )
            .await
        }
    });
    let peer = Peer::start()?;

    let (first, _events) = KeeperClient::start(socket.clone(), never_spawn(), vec![spec()]);
    wait_up(&first).await?;
    let up_disc = first.sessions().first().map(|s| s.local_disc);

    // The daemon goes: the session stays Up for the grace time, then AdminDown.
    drop(first);
    let gone = Instant::now();
    let deadline = gone + Duration::from_secs(6);
    let admin_down = loop {
        let first_admin_down = peer
            .received()
            .into_iter()
            .find(|(t, p)| *t >= gone && p.state == State::AdminDown);
        if let Some((t, _)) = first_admin_down {
            break t.duration_since(gone);
        }
        if Instant::now() > deadline {
            return Err("no AdminDown after the grace time".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        admin_down >= grace,
        "AdminDown {admin_down:?} after the daemon left, before the grace time"
    );
    assert!(
        peer.received()
            .iter()
            .any(|(t, p)| *t >= gone && p.state == State::Up && t.duration_since(gone) < grace),
        "the session was not kept Up while the daemon was away"
    );
    // Then the session is dropped: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later: Vec<_> = peer
        .received()
        .into_iter()
        .filter(|(t, _)| *t >= quiet_from)
        .collect();
    assert!(later.is_empty(), "still sending after AdminDown: {later:?}");
    assert!(
        !keeper.is_finished(),
        "a resident keeper exited when left alone"
    );

    // The next daemon: a new session comes Up through the same keeper.
    let (second, _events) = KeeperClient::start(socket.clone(), never_spawn(), vec![spec()]);
    wait_up(&second).await?;
    let again = second.sessions().first().map(|s| s.local_disc);
    assert_ne!(again, up_disc, "a new session has a new discriminator");
    // Leaving for good: AdminDown, and the resident keeper still stays.
    second.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!keeper.is_finished(), "a resident keeper exited on stop");
    keeper.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
