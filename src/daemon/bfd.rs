//! BFD on the BGP sessions that want it. The sessions run in the keeper, a
//! process of their own (`ipipd bfd-keeper`, see `bfd::keeper`), so that a
//! restart of this daemon — graceful or a crash — does not look like a node
//! death to the peers, while a node that dies takes the keeper with it.
//!
//! Coupling: a session that goes from Up to Down for any reason but the peer's
//! AdminDown takes the BGP session down at once, without graceful-restart
//! retention; a session coming Up lets BGP reconnect without backoff.

use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use api::protocol::BfdJson;
use bfd::keeper::KeeperClient;
use config::Config;
use tokio::sync::mpsc;

use super::Daemon;

/// The keeper's socket, in the state directory.
pub fn socket(cfg: &Config) -> PathBuf {
    cfg.control.state_dir.join("bfd.sock")
}

/// The sessions to run: one per neighbour that wants BFD, whatever made it a neighbour
/// (the file, the datastore's registered nodes), from the node's address of the
/// neighbour's family. A neighbour wants BFD by its `[[peer]] bfd`, else `[bfd] enabled`.
pub fn specs(cfg: &Config, neighbors: &[bgp::speaker::NeighborConfig]) -> Vec<bfd::Spec> {
    let configured = cfg.neighbors();
    neighbors
        .iter()
        .filter(|n| !n.shutdown)
        .filter(|n| {
            configured
                .iter()
                .find(|c| c.address == n.address)
                .map_or(cfg.bfd.enabled, |c| c.bfd)
        })
        .filter_map(|n| {
            let local = match n.address {
                IpAddr::V4(_) => IpAddr::V4(cfg.node.address),
                IpAddr::V6(_) => match cfg.node.address_v6 {
                    Some(a) => IpAddr::V6(a),
                    None => {
                        tracing::warn!(peer = %n.address, "BFD with an IPv6 peer needs node.address_v6; this session has none");
                        return None;
                    }
                },
            };
            Some(bfd::Spec {
                peer: n.address,
                local,
                interval: Duration::from_millis(cfg.bfd.interval_ms.into()),
                multiplier: cfg.bfd.multiplier,
            })
        })
        .collect()
}

/// How long the keeper keeps the sessions Up without a daemon: the BGP
/// restart time, after which the peers dropped our routes anyway.
pub fn grace(cfg: &Config) -> u64 {
    u64::from(cfg.bgp.graceful_restart_time).max(5)
}

/// Starts `ipipd bfd-keeper` detached from our process group, so that signals
/// meant for the daemon do not reach it; its log goes to the state directory.
fn spawn_keeper(socket: &Path, grace: u64, log: PathBuf) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = Command::new(exe)
        .arg("bfd-keeper")
        .arg("--socket")
        .arg(socket)
        .arg("--grace")
        .arg(grace.to_string())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    tracing::info!(pid = child.id(), "BFD keeper started");
    // Reap it if it ends while we run.
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Connects to (or starts) the keeper with `specs`; its events go to `events`.
pub fn start(
    cfg: &Config,
    specs: Vec<bfd::Spec>,
    events_tx: mpsc::UnboundedSender<bfd::Event>,
) -> KeeperClient {
    let socket = socket(cfg);
    let grace = grace(cfg);
    let log = cfg.control.state_dir.join("bfd-keeper.log");
    let path = socket.clone();
    let spawn: Box<dyn Fn() -> std::io::Result<()> + Send + Sync> = match cfg.bfd.keeper {
        config::Keeper::Spawn => Box::new(move || spawn_keeper(&path, grace, log.clone())),
        // Another container of the pod runs it: wait for it, never start one here
        // (it would die with this container, and keep the real one out).
        config::Keeper::External => Box::new(move || {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no BFD keeper answers on {} (bfd.keeper = \"external\": run `ipipd bfd-keeper --config FILE`)",
                    path.display()
                ),
            ))
        }),
    };
    let (client, mut events) = KeeperClient::start(socket, spawn, specs);
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if events_tx.send(ev).is_err() {
                return;
            }
        }
    });
    client
}

/// Couples the sessions to BGP: see the module's comment.
pub async fn couple(daemon: Arc<Daemon>, mut events: mpsc::UnboundedReceiver<bfd::Event>) {
    while let Some(ev) = events.recv().await {
        if ev.path_failed() {
            tracing::warn!(peer = %ev.peer, diag = %ev.diag, "BFD down: the path to the peer failed");
            daemon.speaker.path_down(ev.peer);
        } else if ev.to == bfd::State::Up {
            daemon.speaker.path_up(ev.peer);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn json(s: bfd::Status) -> BfdJson {
    BfdJson {
        peer: s.peer,
        state: s.state.name().to_owned(),
        remote_state: s.remote_state.name().to_owned(),
        interval_ms: ms(s.interval),
        multiplier: s.multiplier,
        detection_time_ms: s.detection_time.map(ms),
        since: super::views::rfc3339(s.since.min(SystemTime::now())),
        diagnostic: s.diag.to_string(),
        local_discriminator: s.local_disc,
        remote_discriminator: s.remote_disc,
    }
}
