//! The keeper: the BFD sessions live in a process of their own, as FRR's bfdd
//! does, so that a restart or crash of the routing daemon does not look like a
//! node death to the peers (RFC 5880 C bit set; RFC 5882 §4.3.2). A node that
//! dies takes the keeper with it, and the peers detect it within
//! interval × multiplier.
//!
//! The daemon talks to the keeper over a Unix socket, one JSON object per line:
//! it sends the sessions it wants, the keeper sends every state change and the
//! changed session after it. When the daemon goes away without saying `stop`,
//! the keeper goes on; after `grace` alone (the BGP restart time: by then the
//! peers dropped the routes anyway), or when its socket file is removed, it
//! signals AdminDown and exits. `stop` (ipipd leaving for good) and SIGTERM do
//! the same at once.
//!
//! A resident keeper (a container of its own in a Kubernetes pod, so that a
//! restart of the daemon's container does not take the sessions with it) does
//! not exit for being alone or told `stop`: it signals AdminDown, drops the
//! sessions and waits for the next daemon. Only SIGTERM or its socket file
//! going away end it.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::driver::{lock, Driver, DropCounts, Event, Spec, Status};

/// Daemon → keeper.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToKeeper {
    /// The sessions wanted from now on.
    Set { sessions: Vec<Spec> },
    /// Leave for good: AdminDown on every session, then exit.
    Stop,
}

/// Keeper → daemon.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FromKeeper {
    Sessions {
        sessions: Vec<Status>,
        drops: DropCounts,
    },
    Event {
        event: Event,
    },
    /// One session changed (sent after its `Event`).
    Session {
        status: Status,
    },
    Stopped,
}

type Client = (Lines<BufReader<OwnedReadHalf>>, OwnedWriteHalf);

async fn send(w: &mut OwnedWriteHalf, m: &FromKeeper) -> io::Result<()> {
    let mut line = serde_json::to_vec(m).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

async fn next_line(c: &mut Option<Client>) -> io::Result<Option<String>> {
    match c {
        Some((lines, _)) => lines.next_line().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; never with None.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn inode(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.ino())
}

/// After a failed accept (out of file descriptors, a connection aborted while
/// queued) the listener rests this long, doubling up to [`ACCEPT_RETRY_MAX`]:
/// retrying at once would spin on the same error.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(2);

/// AdminDown is sent for a Detection Time (RFC 5880 §6.8.16) but the keeper waits
/// no longer than this for it: multipliers and intervals from the configuration
/// can make a Detection Time longer than a shutdown may take.
const ADMIN_DOWN_LIMIT: Duration = Duration::from_secs(10);

/// Errors of `accept` that say the listening socket itself is broken; the others
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, EINTR, EPROTO…) pass, and
/// ending the keeper for one would read as this node's death to every peer.
fn accept_error_is_fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT)
    )
}

/// AdminDown on every session, sent for a Detection Time (at most
/// [`ADMIN_DOWN_LIMIT`]).
async fn admin_down(driver: &Driver, reason: &'static str) {
    tracing::info!(reason, "AdminDown on every session");
    if tokio::time::timeout(ADMIN_DOWN_LIMIT, driver.admin_down())
        .await
        .is_err()
    {
        tracing::warn!(
            limit_s = ADMIN_DOWN_LIMIT.as_secs(),
            "AdminDown sent for less than a Detection Time: the limit was reached"
        );
    }
}

/// How a keeper ends.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Alone this long, the sessions go AdminDown.
    pub grace: Duration,
    /// UDP port of the receive socket (normally [`crate::driver::PORT`]).
    pub port: u16,
    /// Stay and wait for the next daemon instead of exiting (see the module).
    pub resident: bool,
}

/// Runs the keeper on `socket` until told to stop, left alone for `grace`, or
/// its socket file is gone (see [`Options`]). Returns at once if another keeper
/// answers there.
pub async fn serve(socket: &Path, opts: Options) -> io::Result<()> {
    if UnixStream::connect(socket).await.is_ok() {
        tracing::info!(socket = %socket.display(), "a BFD keeper already runs there");
        return Ok(());
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    let ino = inode(socket);
    let (driver, mut events) = Driver::start(opts.port)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut client: Option<Client> = None;
    let mut alone_since = Some(Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Intervals and the peer's state change without a state change of ours
    // (Poll/Final): the daemon's copy is refreshed when it differs.
    let mut refresh = tokio::time::interval(Duration::from_millis(200));
    let mut last_sent: Option<FromKeeper> = None;
    // Set after a failed accept: when to accept again, and the next wait.
    let mut accept_paused: Option<Instant> = None;
    let mut accept_retry = ACCEPT_RETRY;
    let snapshot = |d: &Driver| FromKeeper::Sessions {
        sessions: d.sessions(),
        drops: d.drops(),
    };
    loop {
        tokio::select! {
            acc = listener.accept(), if accept_paused.is_none() => match acc {
                Ok((stream, _)) => {
                    accept_retry = ACCEPT_RETRY;
                    let (r, mut w) = stream.into_split();
                    if send(&mut w, &snapshot(&driver)).await.is_ok() {
                        tracing::info!("daemon connected");
                        client = Some((BufReader::new(r).lines(), w));
                        alone_since = None;
                    }
                }
                Err(e) if accept_error_is_fatal(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = accept_retry.as_millis() as u64, "accepting a daemon connection failed; retrying");
                    accept_paused = Some(Instant::now() + accept_retry);
                    accept_retry = (accept_retry * 2).min(ACCEPT_RETRY_MAX);
                }
            },
            () = sleep_until_some(accept_paused) => accept_paused = None,
            line = next_line(&mut client) => match line {
                Ok(Some(line)) => match serde_json::from_str::<ToKeeper>(&line) {
                    Ok(ToKeeper::Set { sessions }) => driver.set_sessions(sessions),
                    Ok(ToKeeper::Stop) => {
                        admin_down(&driver, "stop").await;
                        if let Some((_, w)) = client.as_mut() {
                            let _ = send(w, &FromKeeper::Stopped).await;
                        }
                        if opts.resident {
                            driver.set_sessions(Vec::new());
                            client = None;
                            continue;
                        }
                        let _ = std::fs::remove_file(socket);
                        return Ok(());
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable request from the daemon"),
                },
                Ok(None) | Err(_) => {
                    tracing::info!(grace_s = opts.grace.as_secs(), "daemon gone: the sessions stay up meanwhile");
                    client = None;
                    alone_since = Some(Instant::now());
                }
            },
            Some(event) = events.recv() => {
                if let Some((_, w)) = client.as_mut() {
                    let status = driver.session(event.peer);
                    let mut ok = send(w, &FromKeeper::Event { event }).await.is_ok();
                    if let Some(status) = status {
                        ok = ok && send(w, &FromKeeper::Session { status }).await.is_ok();
                    }
                    if !ok {
                        client = None;
                        alone_since = Some(Instant::now());
                    }
                }
            }
            _ = refresh.tick(), if client.is_some() => {
                let now = snapshot(&driver);
                if last_sent.as_ref() != Some(&now) {
                    if let Some((_, w)) = client.as_mut() {
                        if send(w, &now).await.is_err() {
                            client = None;
                            alone_since = Some(Instant::now());
                        }
                    }
                    last_sent = Some(now);
                }
            }
            _ = term.recv() => {
                admin_down(&driver, "SIGTERM").await;
                if inode(socket) == ino {
                    let _ = std::fs::remove_file(socket);
                }
                return Ok(());
            }
            _ = tick.tick() => {
                let gone = inode(socket) != ino;
                let expired = alone_since.is_some_and(|t| t.elapsed() >= opts.grace);
                if gone {
                    admin_down(&driver, "socket file gone").await;
                    return Ok(());
                }
                if expired {
                    admin_down(&driver, "no daemon").await;
                    if opts.resident {
                        driver.set_sessions(Vec::new());
                        alone_since = None;
                        continue;
                    }
                    let _ = std::fs::remove_file(socket);
                    return Ok(());
                }
            }
        }
    }
}

enum Cmd {
    Set(Vec<Spec>),
    Stop(oneshot::Sender<()>),
}

/// The daemon's side: keeps a connection to the keeper (starting one when
/// none answers), re-sends the wanted sessions after each reconnect, and
/// passes state changes on.
pub struct KeeperClient {
    cmd: mpsc::UnboundedSender<Cmd>,
    sessions: Arc<Mutex<(Vec<Status>, DropCounts)>>,
}

impl KeeperClient {
    /// `spawn` starts a keeper on `socket` (detached, so it outlives us).
    pub fn start(
        socket: PathBuf,
        spawn: Box<dyn Fn() -> io::Result<()> + Send + Sync>,
        sessions: Vec<Spec>,
    ) -> (KeeperClient, mpsc::UnboundedReceiver<Event>) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let shared: Arc<Mutex<(Vec<Status>, DropCounts)>> = Arc::default();
        tokio::spawn(client_task(
            socket,
            spawn,
            sessions,
            cmd_rx,
            ev_tx,
            shared.clone(),
        ));
        (
            KeeperClient {
                cmd: cmd_tx,
                sessions: shared,
            },
            ev_rx,
        )
    }

    pub fn set_sessions(&self, specs: Vec<Spec>) {
        let _ = self.cmd.send(Cmd::Set(specs));
    }

    /// The sessions as the keeper last reported them.
    pub fn sessions(&self) -> Vec<Status> {
        lock(&self.sessions).0.clone()
    }

    pub fn drops(&self) -> DropCounts {
        lock(&self.sessions).1
    }

    /// Tells the keeper to signal AdminDown and exit; waits at most 2 s.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Stop(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }
}

async fn connect(
    socket: &Path,
    spawn: &(dyn Fn() -> io::Result<()> + Send + Sync),
) -> io::Result<UnixStream> {
    if let Ok(s) = UnixStream::connect(socket).await {
        return Ok(s);
    }
    spawn()?;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match UnixStream::connect(socket).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn client_task(
    socket: PathBuf,
    spawn: Box<dyn Fn() -> io::Result<()> + Send + Sync>,
    mut wanted: Vec<Spec>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<Event>,
    shared: Arc<Mutex<(Vec<Status>, DropCounts)>>,
) {
    loop {
        let stream = match connect(&socket, spawn.as_ref()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(socket = %socket.display(), error = %e, "cannot reach the BFD keeper; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut stopping: Option<oneshot::Sender<()>> = None;
        let set = |w: &[Spec]| {
            let mut l = serde_json::to_vec(&ToKeeper::Set {
                sessions: w.to_vec(),
            })
            .unwrap_or_default();
            l.push(b'\n');
            l
        };
        if w.write_all(&set(&wanted)).await.is_err() {
            continue;
        }
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Set(specs)) => {
                        wanted = specs;
                        if w.write_all(&set(&wanted)).await.is_err() {
                            break;
                        }
                    }
                    Some(Cmd::Stop(done)) => {
                        let mut l = serde_json::to_vec(&ToKeeper::Stop).unwrap_or_default();
                        l.push(b'\n');
                        if w.write_all(&l).await.is_err() {
                            let _ = done.send(());
                            return;
                        }
                        stopping = Some(done);
                    }
                    None => return,
                },
                line = lines.next_line() => match line {
                    Ok(Some(line)) => match serde_json::from_str::<FromKeeper>(&line) {
                        Ok(FromKeeper::Sessions { sessions, drops }) => *lock(&shared) = (sessions, drops),
                        Ok(FromKeeper::Session { status }) => upsert(&mut lock(&shared).0, status),
                        Ok(FromKeeper::Event { event }) => {
                            let _ = events.send(event);
                        }
                        Ok(FromKeeper::Stopped) => {
                            if let Some(done) = stopping.take() {
                                let _ = done.send(());
                            }
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "unreadable message from the BFD keeper"),
                    },
                    Ok(None) | Err(_) => {
                        if let Some(done) = stopping.take() {
                            let _ = done.send(());
                            return;
                        }
                        tracing::warn!("the BFD keeper went away; starting another");
                        break;
                    }
                },
            }
        }
    }
}

/// Replaces the session of `status.peer` in `list` (sorted by peer), or adds it.
fn upsert(list: &mut Vec<Status>, status: Status) {
    match list.binary_search_by(|s| s.peer.cmp(&status.peer)) {
        Ok(i) => {
            if let Some(slot) = list.get_mut(i) {
                *slot = status;
            }
        }
        Err(i) => list.insert(i, status),
    }
}
