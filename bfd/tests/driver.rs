//! The UDP driver against a hand-driven peer on loopback: the three-way
//! handshake, TTL and discriminator checks, and detection of a silent peer.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use bfd::{Driver, Packet, Spec, State};

mod common;
use common::packet;
use socket2::{Domain, Protocol, Socket, Type};

const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn peer_socket(port: u16, ttl: u32) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_ttl_v4(ttl)?;
    s.bind(&SocketAddr::from((PEER, port)).into())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    Ok(s.into())
}

/// Next packet from the driver, skipping none.
fn recv(s: &UdpSocket) -> Result<Packet, Box<dyn std::error::Error>> {
    let mut buf = [0u8; 64];
    let (n, from) = s.recv_from(&mut buf)?;
    assert!(
        bfd::driver::SOURCE_PORTS.contains(&from.port()),
        "source port {from}"
    );
    Ok(bfd::decode(buf.get(..n).ok_or("short")?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_checks_and_detection_on_loopback() -> Result<(), Box<dyn std::error::Error>> {
    // A port of our own so the test runs beside a real BFD on 3784.
    let port = 43784;
    let (driver, mut events) = Driver::start(port)?;
    let peer = peer_socket(port, 255)?;
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    driver.set_sessions(vec![Spec {
        peer: PEER.into(),
        local: Ipv4Addr::LOCALHOST.into(),
        interval: Duration::from_millis(50),
        multiplier: 3,
    }]);
    let first = tokio::task::block_in_place(|| recv(&peer))?;
    assert_eq!(first.state, State::Down);
    assert!(
        first.cpi,
        "the C bit: BFD lives apart from the control plane"
    );
    let ours = first.my_disc;

    // Down → Init → Up.
    peer.send_to(&bfd::encode(&packet(State::Down, 0)), to)?;
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv()).await?;
    assert_eq!(ev.map(|e| e.to), Some(State::Init));
    peer.send_to(&bfd::encode(&packet(State::Up, ours)), to)?;
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv()).await?;
    assert_eq!(ev.map(|e| e.to), Some(State::Up));

    // Refused: TTL 64, an unknown discriminator, a bad version, multiplier 0.
    let far = peer_socket(port, 64)?;
    far.send_to(&bfd::encode(&packet(State::Up, ours)), to)?;
    peer.send_to(&bfd::encode(&packet(State::Up, ours ^ 1)), to)?;
    let mut bad = bfd::encode(&packet(State::Up, ours));
    bad[0] = 0x40;
    peer.send_to(&bad, to)?;
    let mut zero = bfd::encode(&packet(State::Up, ours));
    zero[2] = 0;
    peer.send_to(&zero, to)?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let drops = driver.drops();
    assert_eq!(
        (
            drops.ttl,
            drops.discriminator,
            drops.version,
            drops.multiplier
        ),
        (1, 1, 1, 1),
        "{drops:?}"
    );
    assert_eq!(driver.sessions()[0].state, State::Up);

    // Silence: down after 3 × 50 ms, flagged as a path failure.
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await?
        .ok_or("no event")?;
    assert_eq!((ev.from, ev.to), (State::Up, State::Down));
    assert_eq!(ev.diag, bfd::Diag::DetectionTimeExpired);
    assert!(ev.path_failed());

    // Back up, then AdminDown from the peer: Down, but not a path failure.
    peer.send_to(&bfd::encode(&packet(State::Down, 0)), to)?;
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv()).await?;
    assert_eq!(ev.map(|e| e.to), Some(State::Init));
    peer.send_to(&bfd::encode(&packet(State::Up, ours)), to)?;
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv()).await?;
    assert_eq!(ev.map(|e| e.to), Some(State::Up));
    peer.send_to(&bfd::encode(&packet(State::AdminDown, ours)), to)?;
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await?
        .ok_or("no event")?;
    assert_eq!(ev.to, State::Down);
    assert!(!ev.path_failed());
    Ok(())
}

/// RFC 5881 §4: every session sends from a source port of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_has_its_own_source_port() -> Result<(), Box<dyn std::error::Error>> {
    let port = 43786;
    let (driver, _events) = Driver::start(port)?;
    let peers = [Ipv4Addr::new(127, 0, 0, 5), Ipv4Addr::new(127, 0, 0, 6)];
    let mut sockets = Vec::new();
    for p in peers {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.bind(&SocketAddr::from((p, port)).into())?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        sockets.push(UdpSocket::from(s));
    }
    driver.set_sessions(
        peers
            .iter()
            .map(|p| Spec {
                peer: (*p).into(),
                local: Ipv4Addr::LOCALHOST.into(),
                interval: Duration::from_millis(50),
                multiplier: 3,
            })
            .collect(),
    );
    let mut ports = Vec::new();
    for s in &sockets {
        let mut buf = [0u8; 64];
        let (_, from) = tokio::task::block_in_place(|| s.recv_from(&mut buf))?;
        assert!(bfd::driver::SOURCE_PORTS.contains(&from.port()), "{from}");
        ports.push(from.port());
    }
    assert_ne!(ports[0], ports[1], "two sessions share a source port");
    Ok(())
}

type SendResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A transmit socket that cannot be bound yet (its local address is not there, as a
/// tentative IPv6 address at boot is not) is bound once it can be: the session stays
/// Down meanwhile, then comes Up. In a namespace of the test's own, where it can
/// add the address.
#[test]
fn a_transmit_socket_is_bound_once_its_address_is_there() -> SendResult<()> {
    let ns = netns::Netns::new("bfdtx")?;
    ns.ip(&["addr", "add", "10.99.0.2/32", "dev", "lo"])?;
    ns.in_netns(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(bind_when_there(&ns))
    })?
}

async fn bind_when_there(ns: &netns::Netns) -> SendResult<()> {
    let (local, peer) = (Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(10, 99, 0, 2));
    let port = 43790;
    let (driver, mut events) = Driver::start(port)?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_ttl_v4(255)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((peer, port)).into())?;
    let sock = tokio::net::UdpSocket::from_std(s.into())?;
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    driver.set_sessions(vec![Spec {
        peer: peer.into(),
        local: local.into(),
        interval: Duration::from_millis(50),
        multiplier: 3,
    }]);

    // No transmit socket: the peer's Down is not answered, and nothing moves.
    for _ in 0..10 {
        sock.send_to(&bfd::encode(&packet(State::Down, 0)), to)
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        driver.sessions().first().map(|s| s.state),
        Some(State::Down)
    );
    let mut buf = [0u8; 64];
    assert!(
        sock.try_recv_from(&mut buf).is_err(),
        "sent without a socket?"
    );

    ns.ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"])?;
    let (n, from) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .map_err(|_| "no packet after the address came")??;
    assert_eq!(from.ip(), std::net::IpAddr::from(local));
    let ours = bfd::decode(buf.get(..n).ok_or("short")?)?.my_disc;
    sock.send_to(&bfd::encode(&packet(State::Down, 0)), to)
        .await?;
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv()).await?;
    assert_eq!(ev.map(|e| e.to), Some(State::Init));
    sock.send_to(&bfd::encode(&packet(State::Up, ours)), to)
        .await?;
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv()).await?;
    assert_eq!(ev.map(|e| e.to), Some(State::Up));
    Ok(())
}
