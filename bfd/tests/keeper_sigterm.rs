//! SIGTERM (the keeper's container or unit stopped): AdminDown at the transmit
//! interval for a Detection Time (RFC 5880 §6.8.16), then the keeper exits. A test
//! binary of its own: the signal goes to the whole process.
#![allow(unsafe_code)] // kill(2) on this very process

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bfd::keeper::{KeeperClient, Options};
use bfd::Spec;

mod common;
use common::keeper::{never_spawn, serve_keeper, wait_up, Peer, Result};

const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
const PORT: u16 = 43788;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_admin_down_for_a_detection_time_then_exits() -> Result<()> {
    let (socket, keeper) = serve_keeper(
        "ipipd-keeper-term",
        Options {
            grace: Duration::from_secs(60),
            port: PORT,
            resident: true,
        },
    )?;
    let peer = Peer::start(PEER, PORT)?;
    let spec = Spec {
        peer: PEER.into(),
        local: Ipv4Addr::LOCALHOST.into(),
        interval: Duration::from_millis(50),
        multiplier: 3,
    };
    let (client, _events) = KeeperClient::start(socket.clone(), never_spawn(), vec![spec]);
    wait_up(&client).await?;

    let termed = Instant::now();
    // SAFETY: kill(2) with this process's own id; the keeper has a handler for
    // SIGTERM, so the process goes on.
    let r = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    let exited = tokio::time::timeout(Duration::from_secs(3), keeper).await;
    assert!(
        matches!(exited, Ok(Ok(Ok(())))),
        "the keeper did not exit on SIGTERM: {exited:?}"
    );
    let (count, spread) = peer.admin_down_since(termed);
    // Three packets at 75–100 % of 50 ms cover the peer's 150 ms detection time.
    assert!(
        count >= 3 && spread >= Duration::from_millis(75),
        "AdminDown sent {count} times over {spread:?} on SIGTERM"
    );
    if let Some(dir) = socket.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
