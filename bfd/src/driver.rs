//! The RFC 5881 single-hop driver: one tokio task owns every session, the
//! receive sockets on port 3784 (IPv4, and IPv6 where the host has it) and one
//! transmit socket per session, so that each session has a source port of its
//! own (RFC 5881 §4).
//!
//! Wakeups are shared: a transmit timer is put off to the next point of a grid of
//! [`TICK`] (never past what §6.8.7 allows, [`Session::tx_latest`]), and a readable
//! socket is read at the next grid point, so that one wakeup sends and reads the
//! packets of many sessions instead of one wakeup per packet.
//!
//! Received datagrams must carry TTL (Hop Limit) 255 (§5, GTSM-style) and are matched to a
//! session by Your Discriminator, or by source address when that is 0 and the
//! packet says Down or AdminDown (RFC 5880 §6.8.6). Everything else is counted
//! in [`Counters`] and dropped.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::packet::{self, DecodeError, Diag, State};
use crate::session::{Config, Input, Output, Session, Timer};
use crate::sys;

/// RFC 5881 §4: destination port of single-hop Control packets.
pub const PORT: u16 = 3784;
/// RFC 5881 §4: the source port range.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// The grid of shared wakeups, for sessions at 100 ms or slower; faster ones use
/// 1/25 of their interval (whole milliseconds, the timer's resolution), and below
/// 25 ms nothing is put off.
pub const TICK: Duration = Duration::from_millis(4);

/// A transmit socket that cannot be bound (its local address is not there yet, or
/// still tentative, as an IPv6 address is during duplicate address detection at
/// boot) is tried again after this, doubling up to [`TX_BIND_RETRY_MAX`].
const TX_BIND_RETRY: Duration = Duration::from_millis(100);
const TX_BIND_RETRY_MAX: Duration = Duration::from_secs(5);

/// One wanted session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Spec {
    pub peer: IpAddr,
    /// Our address towards the peer, of the same family.
    pub local: IpAddr,
    pub interval: Duration,
    pub multiplier: u8,
}

impl Spec {
    fn config(&self) -> Config {
        Config {
            desired_min_tx: self.interval,
            required_min_rx: self.interval,
            detect_mult: self.multiplier.max(1),
            // The sessions live in their own process (the keeper), which a
            // daemon restart leaves running: they do not share its fate.
            control_plane_independent: true,
        }
    }
}

/// A session as `show bfd` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub peer: IpAddr,
    pub state: State,
    pub remote_state: State,
    pub diag: Diag,
    /// Negotiated transmit interval.
    pub interval: Duration,
    /// Local detect multiplier.
    pub multiplier: u8,
    pub detection_time: Option<Duration>,
    pub since: SystemTime,
    pub local_disc: u32,
    pub remote_disc: u32,
}

/// A session changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub peer: IpAddr,
    pub from: State,
    pub to: State,
    pub diag: Diag,
    pub remote_state: State,
}

impl Event {
    /// The forwarding path to the peer failed: Up → Down for any reason but
    /// the peer's AdminDown (RFC 5882 §3.2: that one is not a path failure).
    pub fn path_failed(&self) -> bool {
        self.from == State::Up && self.to == State::Down && self.remote_state != State::AdminDown
    }
}

/// Received packets dropped, by reason.
#[derive(Debug, Default)]
pub struct Counters {
    pub ttl: AtomicU64,
    pub version: AtomicU64,
    pub length: AtomicU64,
    pub multiplier: AtomicU64,
    pub discriminator: AtomicU64,
    /// Multipoint, authentication, my discriminator 0.
    pub other: AtomicU64,
}

/// [`Counters`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DropCounts {
    pub ttl: u64,
    pub version: u64,
    pub length: u64,
    pub multiplier: u64,
    pub discriminator: u64,
    pub other: u64,
}

impl Counters {
    fn count(&self, e: &DecodeError) {
        let c = match e {
            DecodeError::Short(_) | DecodeError::Length { .. } => &self.length,
            DecodeError::Version(_) => &self.version,
            DecodeError::DetectMultZero => &self.multiplier,
            DecodeError::Multipoint
            | DecodeError::MyDiscriminatorZero
            | DecodeError::Authentication => &self.other,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> DropCounts {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DropCounts {
            ttl: r(&self.ttl),
            version: r(&self.version),
            length: r(&self.length),
            multiplier: r(&self.multiplier),
            discriminator: r(&self.discriminator),
            other: r(&self.other),
        }
    }
}

enum Cmd {
    Set(Vec<Spec>),
    AdminDown(oneshot::Sender<()>),
}

type StatusMap = Arc<Mutex<BTreeMap<IpAddr, Status>>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle on the running driver.
pub struct Driver {
    cmd: mpsc::UnboundedSender<Cmd>,
    status: StatusMap,
    counters: Arc<Counters>,
}

impl Driver {
    /// Binds the receive socket on `port` (normally [`PORT`]) and starts the task.
    /// Without IPv6 on the host, IPv6 sessions stay Down (and say so in the log).
    pub fn start(port: u16) -> io::Result<(Driver, mpsc::UnboundedReceiver<Event>)> {
        let rx = rx_socket(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)?;
        let rx6 = match rx_socket(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no IPv6 BFD receive socket: IPv6 sessions cannot come up");
                None
            }
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let status: StatusMap = Arc::default();
        let counters = Arc::new(Counters::default());
        let task = Task {
            port,
            rx,
            rx6,
            sessions: HashMap::new(),
            by_disc: HashMap::new(),
            status: status.clone(),
            counters: counters.clone(),
            events: ev_tx,
            rng: seed(),
            epoch: Instant::now(),
            tick: TICK,
            admin_down_waiters: Vec::new(),
        };
        tokio::spawn(task.run(cmd_rx));
        Ok((
            Driver {
                cmd: cmd_tx,
                status,
                counters,
            },
            ev_rx,
        ))
    }

    /// The sessions wanted from now on: new ones start, gone ones stop,
    /// changed intervals go through a Poll Sequence, the rest stay untouched.
    pub fn set_sessions(&self, specs: Vec<Spec>) {
        let _ = self.cmd.send(Cmd::Set(specs));
    }

    /// Every session, sorted by peer.
    pub fn sessions(&self) -> Vec<Status> {
        lock(&self.status).values().cloned().collect()
    }

    /// The session with `peer`, if there is one.
    pub fn session(&self, peer: IpAddr) -> Option<Status> {
        lock(&self.status).get(&peer).cloned()
    }

    pub fn drops(&self) -> DropCounts {
        self.counters.read()
    }

    /// Signals AdminDown on every session (RFC 5880 §6.8.16) and returns once it
    /// has been sent for a Detection Time; the sessions stay AdminDown, quiet.
    pub async fn admin_down(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::AdminDown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
}

struct Entry {
    spec: Spec,
    session: Session,
    /// Bound to `spec.local` and a source port of this session's own. Without it
    /// the session hears nothing either, and stays Down.
    tx: Option<UdpSocket>,
    /// Without `tx`: when to try binding it again, and the wait after that.
    tx_retry: Option<(Instant, Duration)>,
    tx_at: Option<Instant>,
    detect_at: Option<Instant>,
}

struct Task {
    port: u16,
    rx: UdpSocket,
    rx6: Option<UdpSocket>,
    sessions: HashMap<IpAddr, Entry>,
    by_disc: HashMap<u32, IpAddr>,
    status: StatusMap,
    counters: Arc<Counters>,
    events: mpsc::UnboundedSender<Event>,
    rng: u64,
    /// Where the grid of shared wakeups starts, and its step now ([`TICK`] or less).
    epoch: Instant,
    tick: Duration,
    /// Answered once no session is signalling AdminDown any more.
    admin_down_waiters: Vec<oneshot::Sender<()>>,
}

impl Task {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let mut buf = [0u8; 128];
        // The socket is readable and will be read at the next grid point.
        let mut rx_pending = false;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let sleep = tokio::time::sleep_until(far);
        tokio::pin!(sleep);
        loop {
            self.tick = self.tick_now();
            let timers = self
                .sessions
                .values()
                .flat_map(|e| [e.tx_at, e.detect_at, e.tx_retry.map(|(at, _)| at)])
                .flatten()
                .min();
            let read_at = rx_pending.then(|| grid(self.epoch, self.tick, Instant::now()));
            let deadline = timers.into_iter().chain(read_at).min();
            if sleep.deadline() != deadline.unwrap_or(far) {
                sleep.as_mut().reset(deadline.unwrap_or(far));
            }
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Set(specs)) => self.set(specs),
                    Some(Cmd::AdminDown(done)) => {
                        let peers: Vec<IpAddr> = self.sessions.keys().copied().collect();
                        for p in peers {
                            self.input(p, Input::AdminDown);
                        }
                        self.admin_down_waiters.push(done);
                    }
                    None => return,
                },
                r = readable(&self.rx, self.rx6.as_ref()), if !rx_pending => {
                    if r.is_ok() {
                        if self.tick.is_zero() {
                            self.drain(&mut buf);
                        } else {
                            rx_pending = true;
                        }
                    }
                }
                () = &mut sleep, if deadline.is_some() => {
                    // What arrived before a detection timer ran out counts: read first.
                    let now = Instant::now();
                    let detect_due = self.sessions.values().any(|e| e.detect_at.is_some_and(|t| t <= now));
                    if rx_pending || detect_due {
                        rx_pending = false;
                        self.drain(&mut buf);
                    }
                    self.fire();
                }
            }
            let signalling = self
                .sessions
                .values()
                .any(|e| e.session.signalling_admin_down());
            if !signalling {
                for done in self.admin_down_waiters.drain(..) {
                    let _ = done.send(());
                }
            }
        }
    }

    /// The grid step for the sessions now: [`TICK`], or 1/25 of the shortest
    /// transmit interval in whole milliseconds when that is less.
    fn tick_now(&self) -> Duration {
        let shortest = self
            .sessions
            .values()
            .map(|e| e.session.tx_interval())
            .min()
            .unwrap_or(Duration::MAX);
        let ms = (shortest / 25).as_millis().min(TICK.as_millis());
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    fn set(&mut self, specs: Vec<Spec>) {
        let wanted: HashMap<IpAddr, Spec> = specs.into_iter().map(|s| (s.peer, s)).collect();
        let gone: Vec<IpAddr> = self
            .sessions
            .keys()
            .filter(|p| !wanted.contains_key(p))
            .copied()
            .collect();
        for p in gone {
            if let Some(e) = self.sessions.remove(&p) {
                self.by_disc.remove(&e.session.local_disc());
            }
            lock(&self.status).remove(&p);
        }
        for (peer, spec) in wanted {
            match self.sessions.get_mut(&peer) {
                Some(e) if e.spec == spec => {}
                Some(e) if e.spec.local == spec.local => {
                    e.spec = spec;
                    self.input(peer, Input::Reconfigure(spec.config()));
                }
                _ => {
                    if let Some(old) = self.sessions.remove(&peer) {
                        self.by_disc.remove(&old.session.local_disc());
                    }
                    self.add(spec);
                }
            }
        }
    }

    fn add(&mut self, spec: Spec) {
        let disc = loop {
            let d = (self.next_random() >> 32) as u32;
            if d != 0 && !self.by_disc.contains_key(&d) {
                break d;
            }
        };
        let seed = self.next_random();
        let mut session = Session::new(spec.config(), disc, seed);
        let out = session.start();
        let (tx, tx_retry) = match tx_socket(spec.local, &mut self.rng) {
            Ok(s) => (Some(s), None),
            Err(e) => {
                tracing::warn!(peer = %spec.peer, local = %spec.local, error = %e, "no BFD transmit socket yet: the session stays Down, binding is retried");
                (None, Some((Instant::now() + TX_BIND_RETRY, TX_BIND_RETRY)))
            }
        };
        self.by_disc.insert(disc, spec.peer);
        self.sessions.insert(
            spec.peer,
            Entry {
                spec,
                session,
                tx,
                tx_retry,
                tx_at: None,
                detect_at: None,
            },
        );
        lock(&self.status).insert(
            spec.peer,
            Status {
                peer: spec.peer,
                state: State::Down,
                remote_state: State::Down,
                diag: Diag::None,
                interval: Duration::ZERO,
                multiplier: spec.multiplier,
                detection_time: None,
                since: SystemTime::now(),
                local_disc: disc,
                remote_disc: 0,
            },
        );
        self.apply(spec.peer, out);
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn drain(&mut self, buf: &mut [u8]) {
        self.drain_one(false, buf);
        self.drain_one(true, buf);
    }

    fn drain_one(&mut self, v6: bool, buf: &mut [u8]) {
        loop {
            let sock = if v6 {
                self.rx6.as_ref()
            } else {
                Some(&self.rx)
            };
            let Some(sock) = sock else {
                return;
            };
            let fd = sock.as_raw_fd();
            match sock.try_io(Interest::READABLE, || sys::recv_with_ttl(fd, buf)) {
                Ok(got) => self.received(got, buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "BFD receive failed");
                    return;
                }
            }
        }
    }

    fn received(&mut self, got: sys::Received, buf: &[u8]) {
        if got.ttl != Some(255) {
            self.counters.ttl.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(source = %got.source, ttl = ?got.ttl, "BFD packet dropped: TTL is not 255");
            return;
        }
        let Some(data) = buf.get(..got.len) else {
            self.counters.length.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let p = match packet::decode(data) {
            Ok(p) => p,
            Err(e) => {
                self.counters.count(&e);
                tracing::debug!(source = %got.source, error = %e, "BFD packet dropped");
                return;
            }
        };
        let source = got.source.ip();
        let peer = if p.your_disc != 0 {
            self.by_disc.get(&p.your_disc).copied()
        } else if matches!(p.state, State::Down | State::AdminDown) {
            self.sessions.contains_key(&source).then_some(source)
        } else {
            None
        };
        match peer {
            Some(peer) if self.sessions.get(&peer).is_some_and(|e| e.tx.is_none()) => {
                // It could not answer: coming Up would only make the peer wait.
                tracing::debug!(%peer, "BFD packet ignored: no transmit socket yet");
            }
            Some(peer) if peer == source => self.input(peer, Input::Received(p)),
            _ => {
                self.counters.discriminator.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%source, your_disc = p.your_disc, "BFD packet dropped: no session");
            }
        }
    }

    fn fire(&mut self) {
        let now = Instant::now();
        self.retry_tx_sockets(now);
        let mut due = Vec::new();
        for (peer, e) in &mut self.sessions {
            if e.detect_at.is_some_and(|t| t <= now) {
                e.detect_at = None;
                due.push((*peer, Timer::Detect));
            }
            if e.tx_at.is_some_and(|t| t <= now) {
                e.tx_at = None;
                due.push((*peer, Timer::Tx));
            }
        }
        for (peer, t) in due {
            self.input(peer, Input::TimerExpired(t));
        }
    }

    /// Binds the transmit sockets whose retry is due; a failure waits twice as long.
    fn retry_tx_sockets(&mut self, now: Instant) {
        for (peer, e) in &mut self.sessions {
            let Some((at, wait)) = e.tx_retry else {
                continue;
            };
            if at > now {
                continue;
            }
            match tx_socket(e.spec.local, &mut self.rng) {
                Ok(sock) => {
                    tracing::info!(%peer, local = %e.spec.local, "BFD transmit socket bound");
                    e.tx = Some(sock);
                    e.tx_retry = None;
                }
                Err(err) => {
                    let wait = (wait * 2).min(TX_BIND_RETRY_MAX);
                    tracing::debug!(%peer, local = %e.spec.local, error = %err, retry_ms = wait.as_millis() as u64, "BFD transmit socket still not bound");
                    e.tx_retry = Some((now + wait, wait));
                }
            }
        }
    }

    fn input(&mut self, peer: IpAddr, input: Input) {
        let Some(e) = self.sessions.get_mut(&peer) else {
            return;
        };
        let out = e.session.handle(input);
        self.apply(peer, out);
    }

    fn apply(&mut self, peer: IpAddr, out: Vec<Output>) {
        let Some(e) = self.sessions.get_mut(&peer) else {
            return;
        };
        let mut changed = None;
        let mut packets = Vec::new();
        let now = Instant::now();
        for o in out {
            match o {
                Output::Send(p) => packets.push(packet::encode(&p)),
                Output::Arm(Timer::Tx, d) => {
                    // Put off to the grid when that stays within §6.8.7.
                    let (at, latest) = (now + d, now + e.session.tx_latest());
                    let shared = grid(self.epoch, self.tick, at);
                    e.tx_at = Some(if shared <= latest { shared } else { at });
                }
                Output::Arm(Timer::Detect, d) => e.detect_at = Some(now + d),
                Output::Cancel(Timer::Tx) => e.tx_at = None,
                Output::Cancel(Timer::Detect) => e.detect_at = None,
                Output::StateChanged {
                    from,
                    to,
                    diag,
                    remote_state,
                } => {
                    changed = Some(Event {
                        peer,
                        from,
                        to,
                        diag,
                        remote_state,
                    })
                }
            }
        }
        let s = &e.session;
        if let Some(st) = lock(&self.status).get_mut(&peer) {
            if changed.is_some() {
                st.since = SystemTime::now();
            }
            st.state = s.state();
            st.remote_state = s.remote_state();
            st.diag = s.diag();
            st.interval = s.tx_interval();
            st.detection_time = s.detection_time();
            st.remote_disc = s.remote_disc();
        }
        if let Some(ev) = changed {
            tracing::info!(peer = %peer, from = %ev.from, to = %ev.to, diag = %ev.diag, remote = %ev.remote_state, "BFD session state change");
            let _ = self.events.send(ev);
        }
        let to = SocketAddr::new(peer, self.port);
        for p in packets {
            let sent = e.tx.as_ref().map(|sock| sock.try_send_to(&p, to));
            if let Some(Err(err)) = sent {
                tracing::debug!(%peer, error = %err, "BFD send failed");
            }
        }
    }
}

/// The receive socket of one family on `port`, with the TTL (Hop Limit) of each
/// datagram attached.
fn rx_socket(any: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let s = Socket::new(
        Domain::for_address(SocketAddr::new(any, port)),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    if any.is_ipv6() {
        s.set_only_v6(true)?;
        sys::set_recv_hoplimit(s.as_raw_fd())?;
    } else {
        sys::set_recv_ttl(s.as_raw_fd())?;
    }
    s.bind(&SocketAddr::new(any, port).into())?;
    UdpSocket::from_std(s.into())
}

/// Either receive socket readable.
async fn readable(rx: &UdpSocket, rx6: Option<&UdpSocket>) -> io::Result<()> {
    match rx6 {
        Some(rx6) => tokio::select! {
            r = rx.readable() => r,
            r = rx6.readable() => r,
        },
        None => rx.readable().await,
    }
}

/// A socket bound to `local` and a free port of [`SOURCE_PORTS`], sending with
/// TTL (Hop Limit) 255.
fn tx_socket(local: IpAddr, rng: &mut u64) -> io::Result<UdpSocket> {
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    for _ in 0..64 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let port = SOURCE_PORTS.start() + (*rng % span) as u16;
        let addr = SocketAddr::new(local, port);
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if local.is_ipv6() {
            s.set_unicast_hops_v6(255)?;
        } else {
            s.set_ttl_v4(255)?;
        }
        s.set_nonblocking(true)?;
        match s.bind(&addr.into()) {
            Ok(()) => return UdpSocket::from_std(s.into()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The first point at or after `t` of the grid of `step` from `epoch` (`t` itself
/// for a zero step).
fn grid(epoch: Instant, step: Duration, t: Instant) -> Instant {
    let step = step.as_nanos();
    if step == 0 {
        return t;
    }
    let since = t.saturating_duration_since(epoch).as_nanos();
    let at = since.div_ceil(step) * step;
    epoch + Duration::from_nanos(u64::try_from(at).unwrap_or(u64::MAX))
}
