//! The keeper as a container of its own runs it (resident): the daemon's side
//! connects and never starts one; when the daemon goes, the session stays Up
//! for the grace time, then goes AdminDown and is dropped, and the keeper waits
//! for the next daemon, which brings the session up again. AdminDown goes out for
//! a Detection Time (RFC 5880 §6.8.16), at the grace expiry as on `stop`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bfd::keeper::{KeeperClient, Options};
use bfd::{Spec, State};

mod common;
use common::keeper::{never_spawn, serve_keeper, wait_up, Peer, Result};

const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const PORT: u16 = 43785;

fn spec() -> Spec {
    spec_to(PEER)
}

fn spec_to(peer: Ipv4Addr) -> Spec {
    Spec {
        peer: peer.into(),
        local: Ipv4Addr::LOCALHOST.into(),
        interval: Duration::from_millis(50),
        multiplier: 3,
    }
}

/// The peer's detection time of us (our multiplier 3 × 50 ms), over which AdminDown
/// must go out (RFC 5880 §6.8.16), and the least spread of the packets that cover it:
/// three, each 75–100 % of an interval after the one before.
const DETECTION_TIME: Duration = Duration::from_millis(150);
const ADMIN_DOWN_SPREAD: Duration = Duration::from_millis(75);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_keeper_outlives_its_daemon_and_serves_the_next() -> Result<()> {
    let grace = Duration::from_secs(1);
    let (socket, keeper) = serve_keeper(
        "ipipd-keeper-test",
        Options {
            grace,
            port: PORT,
            resident: true,
        },
    )?;
    let peer = Peer::start(PEER, PORT)?;

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
    // AdminDown for a Detection Time before the session is dropped.
    tokio::time::sleep(DETECTION_TIME * 2).await;
    let (count, spread) = peer.admin_down_since(gone);
    assert!(
        count >= 3 && spread >= ADMIN_DOWN_SPREAD,
        "AdminDown sent {count} times over {spread:?} at the grace expiry"
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
    if let Some(dir) = socket.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// `stop` (the daemon leaving for good): AdminDown at the transmit interval for a
/// Detection Time, then the keeper is quiet and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sends_admin_down_for_a_detection_time_then_exits() -> Result<()> {
    const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
    const PORT: u16 = 43787;
    let (socket, keeper) = serve_keeper(
        "ipipd-keeper-stop",
        Options {
            grace: Duration::from_secs(60),
            port: PORT,
            resident: false,
        },
    )?;
    let peer = Peer::start(PEER, PORT)?;
    let (client, _events) = KeeperClient::start(socket.clone(), never_spawn(), vec![spec_to(PEER)]);
    wait_up(&client).await?;

    let stopped = Instant::now();
    client.stop().await;
    let exited = tokio::time::timeout(Duration::from_secs(3), keeper).await;
    assert!(
        matches!(exited, Ok(Ok(Ok(())))),
        "the keeper did not exit after stop: {exited:?}"
    );
    let quiet_from = Instant::now();
    let (count, spread) = peer.admin_down_since(stopped);
    assert!(
        count >= 3 && spread >= ADMIN_DOWN_SPREAD,
        "AdminDown sent {count} times over {spread:?} on stop"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later = peer
        .received()
        .into_iter()
        .filter(|(t, _)| *t > quiet_from)
        .count();
    assert_eq!(later, 0, "packets after the keeper exited");
    if let Some(dir) = socket.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
