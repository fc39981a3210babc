//! A BGP load generator for benchmarks (the shape of bgperf): S sender sessions each
//! announce P unique prefixes to a target, many NLRI per UPDATE, while a monitor session
//! counts what the target passes on and notes when it holds every prefix.
//!
//! Everything a run sends is encoded before the clock starts, so the senders cost only
//! `write` calls during the measurement. The monitor keeps one bit per prefix (see
//! [`prefixes`]), so counting does not allocate per route. [`sink`] is the passive
//! counterpart: it accepts any number of sessions and counts what they announce, which
//! measures the load generator's own rate with no daemon in between.

pub mod clients;
pub mod prefixes;
pub mod session;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use bgp::wire::{self, pack_announce, pack_withdraw, AfiSafi, AsPath, Attributes, Message, Origin};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use prefixes::{Pool, PrefixSet};
pub use session::{Session, SessionConfig};

/// One load run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: SocketAddr,
    pub target_as: u32,
    pub local_as: u32,
    /// Source address (and router id) of each sender.
    pub senders: Vec<Ipv4Addr>,
    /// Source address of the monitor; None: no monitor (the target is a [`sink`]).
    pub monitor: Option<Ipv4Addr>,
    /// Prefixes each sender announces.
    pub prefixes: u64,
    pub pool: Pool,
    pub extended_message: bool,
    pub hold_time: u16,
    /// Pause between the last session coming up and the first UPDATE, so the target
    /// has finished its own session start-up work.
    pub settle: Duration,
    /// Longest wait for sessions, and for the monitor to hold everything.
    pub timeout: Duration,
    /// After the announcements, withdraw everything and time that too.
    pub withdraw: bool,
    /// Print the monitor's count every 100 ms to stderr.
    pub progress: bool,
    /// Once the monitor holds everything, keep the sessions (and so the routes) up until
    /// this file exists or the timeout passes: a benchmark that waits for something
    /// slower than the monitor (the target's kernel) says when it is done.
    pub hold_until: Option<std::path::PathBuf>,
}

/// What a run measured. Times are seconds since the first UPDATE was queued.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub senders: usize,
    pub prefixes_per_sender: u64,
    pub expected: u64,
    pub updates_per_sender: usize,
    pub bytes_per_sender: usize,
    /// Wall clock of the first UPDATE, nanoseconds since the Unix epoch.
    pub start_unix_ns: u128,
    /// Every sender has handed its last UPDATE to the kernel.
    pub sent_s: f64,
    /// The monitor holds every prefix (None: no monitor, or the timeout passed).
    pub complete_s: Option<f64>,
    pub monitor_count: usize,
    /// Prefixes per second, expected / complete_s.
    pub rate: Option<f64>,
    pub withdraw_sent_s: Option<f64>,
    /// From the first withdrawal until the monitor holds nothing.
    pub withdraw_complete_s: Option<f64>,
    /// Problems seen on the sessions (NOTIFICATIONs, early ends).
    pub errors: Vec<String>,
}

/// The monitor's running view.
#[derive(Debug, Clone, Copy)]
struct Progress {
    count: usize,
    at: Instant,
    first_update: Option<Instant>,
}

type Shared = Arc<Mutex<PrefixSet>>;

/// Attributes of the senders' routes: iBGP ones carry LOCAL_PREF and an empty AS_PATH.
fn attributes(local_as: u32, ibgp: bool) -> Attributes {
    Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(if ibgp {
            AsPath::default()
        } else {
            AsPath::sequence(vec![local_as])
        }),
        local_pref: ibgp.then_some(100),
        ..Attributes::default()
    }
}

/// Concatenates whole messages into writes of about `size` bytes.
fn coalesce(msgs: Vec<Bytes>, size: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut cur = BytesMut::with_capacity(size);
    for m in msgs {
        if !cur.is_empty() && cur.len() + m.len() > size {
            out.push(std::mem::replace(&mut cur, BytesMut::with_capacity(size)).freeze());
        }
        cur.extend_from_slice(&m);
    }
    if !cur.is_empty() {
        out.push(cur.freeze());
    }
    out
}

/// Applies one UPDATE to the set; returns the new count.
fn apply(set: &Shared, u: &wire::Update) -> usize {
    let Ok(mut s) = set.lock() else { return 0 };
    apply_to(&mut s, u)
}

/// Applies one UPDATE's withdrawals and announcements to `s`; returns the new count.
fn apply_to(s: &mut PrefixSet, u: &wire::Update) -> usize {
    let unreach = u
        .attributes
        .mp_unreach
        .iter()
        .flat_map(|m| m.withdrawn.iter());
    for n in u.withdrawn.iter().chain(unreach) {
        s.remove(&n.prefix);
    }
    let reach = u
        .nlri
        .iter()
        .chain(u.attributes.mp_reach.iter().flat_map(|m| m.nlri.iter()));
    if u.treat_as_withdraw() {
        for n in reach {
            s.remove(&n.prefix);
        }
    } else {
        for n in reach {
            s.insert(&n.prefix);
        }
    }
    s.count()
}

/// Reads a session to its end, counting prefixes into `set`.
async fn count_into(
    mut s: Session,
    set: Shared,
    progress: Arc<watch::Sender<Progress>>,
) -> Result<()> {
    while let Some(m) = s.next().await? {
        match wire::decode(&m, &s.ctx) {
            Ok(Message::Update(u)) => {
                let count = apply(&set, &u);
                let now = Instant::now();
                progress.send_modify(|p| {
                    p.count = count;
                    p.at = now;
                    p.first_update.get_or_insert(now);
                });
            }
            Ok(Message::Notification(n)) => bail!("NOTIFICATION from the target: {n}"),
            Ok(_) => {}
            Err(n) => bail!("undecodable message from the target: {n}"),
        }
    }
    bail!("the target closed the session")
}

/// Reads and drops what the target sends a sender, keeping the connection drained.
async fn drain(mut s: Session, errors: Arc<Mutex<Vec<String>>>, name: String) {
    let why = loop {
        match s.next().await {
            Ok(Some(m)) => {
                if m.get(18) == Some(&3) {
                    let text = wire::decode(&m, &s.ctx)
                        .map(|m| session::describe(Some(&m)))
                        .unwrap_or_default();
                    break text;
                }
            }
            Ok(None) => break "the target closed the session".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    if let Ok(mut e) = errors.lock() {
        e.push(format!("{name}: {why}"));
    }
}

fn secs(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64()
}

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

async fn wait_count(
    rx: &mut watch::Receiver<Progress>,
    limit: Duration,
    f: impl Fn(usize) -> bool,
) -> Option<Instant> {
    let r = tokio::time::timeout(limit, rx.wait_for(|p| f(p.count))).await;
    match r {
        Ok(Ok(p)) => Some(p.at),
        _ => None,
    }
}

/// Sends each sender's chunks concurrently; returns when all are queued to the kernel.
async fn blast(writers: &[tokio::sync::mpsc::Sender<Bytes>], chunks: &[Arc<Vec<Bytes>>]) {
    let mut tasks = tokio::task::JoinSet::new();
    for (w, c) in writers.iter().zip(chunks) {
        let (w, c) = (w.clone(), c.clone());
        tasks.spawn(async move {
            for b in c.iter() {
                if w.send(b.clone()).await.is_err() {
                    return;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs one measurement against `cfg.target`.
pub async fn run(cfg: &RunConfig) -> Result<RunReport> {
    let expected = cfg.prefixes * cfg.senders.len() as u64;
    if expected > cfg.pool.capacity() {
        bail!(
            "{expected} prefixes do not fit in {}/{} ({} of them)",
            cfg.pool.net,
            cfg.pool.len,
            cfg.pool.capacity()
        );
    }
    let size = usize::try_from(expected)?;
    let session = |id: Ipv4Addr| SessionConfig {
        local_as: cfg.local_as,
        router_id: id,
        hold_time: cfg.hold_time,
        extended_message: cfg.extended_message,
        peer_as: Some(cfg.target_as),
        read_buffer: session::READ_BUFFER,
    };
    let set: Shared = Arc::new(Mutex::new(PrefixSet::new(cfg.pool, size)));
    let now = Instant::now();
    let (ptx, mut prx) = watch::channel(Progress {
        count: 0,
        at: now,
        first_update: None,
    });
    let ptx = Arc::new(ptx);
    let errors = Arc::new(Mutex::new(Vec::new()));

    let mut monitor_task = None;
    if let Some(m) = cfg.monitor {
        let s = session::open(m, cfg.target, &session(m), cfg.timeout)
            .await
            .context("monitor session")?;
        monitor_task = Some(tokio::spawn(count_into(s, set.clone(), ptx.clone())));
    }
    let mut connecting = tokio::task::JoinSet::new();
    for (i, addr) in cfg.senders.iter().copied().enumerate() {
        let (target, limit, sc) = (cfg.target, cfg.timeout, session(addr));
        connecting.spawn(async move {
            let s = session::open(addr, target, &sc, limit)
                .await
                .with_context(|| format!("sender {addr}"))?;
            anyhow::Ok((i, s))
        });
    }
    let mut sessions: Vec<Option<Session>> = (0..cfg.senders.len()).map(|_| None).collect();
    while let Some(r) = connecting.join_next().await {
        let (i, s) = r??;
        if let Some(slot) = sessions.get_mut(i) {
            *slot = Some(s);
        }
    }
    let sessions: Vec<Session> = sessions.into_iter().flatten().collect();

    // Encode everything before the clock starts.
    let attrs = attributes(cfg.local_as, cfg.local_as == cfg.target_as);
    let mut announce = Vec::new();
    let mut withdraw = Vec::new();
    let (mut updates_per_sender, mut bytes_per_sender) = (0, 0);
    for (i, s) in sessions.iter().enumerate() {
        let nlri = cfg.pool.nlri(i as u64 * cfg.prefixes, cfg.prefixes)?;
        let nh = cfg.senders.get(i).copied().unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut msgs = pack_announce(&attrs, nh.into(), AfiSafi::IPV4_UNICAST, &nlri, &s.ctx);
        msgs.push(wire::encode_to_bytes(
            &Message::Update(wire::Update::end_of_rib(AfiSafi::IPV4_UNICAST)),
            &s.ctx,
        ));
        updates_per_sender = msgs.len();
        bytes_per_sender = msgs.iter().map(Bytes::len).sum();
        announce.push(Arc::new(coalesce(msgs, 256 * 1024)));
        if cfg.withdraw {
            withdraw.push(Arc::new(coalesce(
                pack_withdraw(AfiSafi::IPV4_UNICAST, &nlri, &s.ctx),
                256 * 1024,
            )));
        }
    }
    let writers: Vec<_> = sessions.iter().map(|s| s.writer.clone()).collect();
    for (s, addr) in sessions.into_iter().zip(&cfg.senders) {
        tokio::spawn(drain(s, errors.clone(), format!("sender {addr}")));
    }
    tokio::time::sleep(cfg.settle).await;

    let start = Instant::now();
    let start_wall = SystemTime::now();
    let progress = cfg.progress.then(|| {
        let rx = prx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                eprintln!(
                    "{:>8.3} s  {:>9} prefixes",
                    start.elapsed().as_secs_f64(),
                    rx.borrow().count
                );
            }
        })
    });
    blast(&writers, &announce).await;
    let sent = Instant::now();
    let mut report = RunReport {
        senders: cfg.senders.len(),
        prefixes_per_sender: cfg.prefixes,
        expected,
        updates_per_sender,
        bytes_per_sender,
        start_unix_ns: unix_ns(start_wall),
        sent_s: secs(start, sent),
        complete_s: None,
        monitor_count: 0,
        rate: None,
        withdraw_sent_s: None,
        withdraw_complete_s: None,
        errors: Vec::new(),
    };
    if cfg.monitor.is_some() {
        let left = cfg.timeout.saturating_sub(start.elapsed());
        if let Some(done) = wait_count(&mut prx, left, |c| c as u64 >= expected).await {
            let s = secs(start, done);
            report.complete_s = Some(s);
            report.rate = Some(expected as f64 / s.max(1e-9));
            if let Some(file) = &cfg.hold_until {
                let limit = cfg.timeout.saturating_sub(start.elapsed());
                let _ = tokio::time::timeout(limit, async {
                    while !file.exists() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await;
            }
            if cfg.withdraw {
                let w0 = Instant::now();
                blast(&writers, &withdraw).await;
                report.withdraw_sent_s = Some(secs(w0, Instant::now()));
                if let Some(gone) = wait_count(&mut prx, cfg.timeout, |c| c == 0).await {
                    report.withdraw_complete_s = Some(secs(w0, gone));
                }
            }
        }
        report.monitor_count = prx.borrow().count;
    } else {
        // A sink ends the sessions once it has counted everything; wait for that so
        // nothing queued is lost with this process.
        let limit = cfg.timeout.saturating_sub(start.elapsed());
        let _ = tokio::time::timeout(limit, async {
            while errors.lock().map_or(0, |e| e.len()) < writers.len() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    if let Some(p) = progress {
        p.abort();
    }
    if let Some(t) = monitor_task {
        if t.is_finished() {
            if let Ok(Err(e)) = t.await {
                report.errors.push(format!("monitor: {e:#}"));
            }
        } else {
            t.abort();
        }
    }
    if cfg.monitor.is_some() {
        report
            .errors
            .extend(errors.lock().map(|e| e.clone()).unwrap_or_default());
    }
    Ok(report)
}

/// What a sink measured.
#[derive(Debug, Clone, Serialize)]
pub struct SinkReport {
    pub expected: u64,
    pub count: usize,
    pub sessions: usize,
    /// First UPDATE received, nanoseconds since the Unix epoch.
    pub first_update_unix_ns: u128,
    /// Every expected prefix held.
    pub complete_unix_ns: u128,
    /// From the first UPDATE received to the last prefix.
    pub elapsed_s: f64,
}

/// Accepts sessions on `listen` until `expected` prefixes of `pool` are held (or
/// `timeout` passes) and reports when that happened.
pub async fn sink(
    listen: SocketAddr,
    local_as: u32,
    router_id: Ipv4Addr,
    pool: Pool,
    expected: u64,
    timeout: Duration,
) -> Result<SinkReport> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let set: Shared = Arc::new(Mutex::new(PrefixSet::new(pool, usize::try_from(expected)?)));
    let base = (Instant::now(), SystemTime::now());
    let (ptx, mut prx) = watch::channel(Progress {
        count: 0,
        at: base.0,
        first_update: None,
    });
    let ptx = Arc::new(ptx);
    let sessions = Arc::new(Mutex::new(0usize));
    let cfg = SessionConfig {
        local_as,
        router_id,
        hold_time: 90,
        extended_message: true,
        peer_as: None,
        read_buffer: session::READ_BUFFER,
    };
    let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let (set2, ptx2, sessions2, tasks2) =
        (set.clone(), ptx.clone(), sessions.clone(), tasks.clone());
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (cfg, set, ptx, sessions) =
                (cfg.clone(), set2.clone(), ptx2.clone(), sessions2.clone());
            let t = tokio::spawn(async move {
                if let Ok(s) = Session::establish(stream, &cfg).await {
                    if let Ok(mut n) = sessions.lock() {
                        *n += 1;
                    }
                    let _ = count_into(s, set, ptx).await;
                }
            });
            if let Ok(mut v) = tasks2.lock() {
                v.push(t);
            }
        }
    });
    let done = wait_count(&mut prx, timeout, |c| c as u64 >= expected).await;
    acceptor.abort();
    // Closing the sessions tells the senders the count is complete.
    for t in tasks
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
    {
        t.abort();
    }
    let p = *prx.borrow();
    let Some(done) = done else {
        bail!("sink: {} of {expected} prefixes after {timeout:?}", p.count);
    };
    let wall = |t: Instant| unix_ns(base.1 + t.saturating_duration_since(base.0));
    let first = p.first_update.unwrap_or(done);
    Ok(SinkReport {
        expected,
        count: p.count,
        sessions: sessions.lock().map_or(0, |n| *n),
        first_update_unix_ns: wall(first),
        complete_unix_ns: wall(done),
        elapsed_s: secs(first, done),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_keeps_messages_whole() {
        let msgs: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i; 100])).collect();
        let chunks = coalesce(msgs, 250);
        assert_eq!(
            chunks.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![200, 200, 200, 200, 200]
        );
    }

    #[tokio::test]
    async fn loadgen_into_sink_counts_everything() {
        let pool = Pool::new("64.0.0.0/4".parse().unwrap_or_default(), 26)
            .unwrap_or_else(|e| panic!("{e}"));
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = probe.local_addr().unwrap_or_else(|e| panic!("{e}"));
        drop(probe);
        let sink = tokio::spawn(sink(
            addr,
            64512,
            Ipv4Addr::new(9, 9, 9, 9),
            pool,
            3 * 5000,
            Duration::from_secs(20),
        ));
        let cfg = RunConfig {
            target: addr,
            target_as: 64512,
            local_as: 64512,
            senders: vec![
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 3),
                Ipv4Addr::new(127, 0, 0, 4),
            ],
            monitor: None,
            prefixes: 5000,
            pool,
            extended_message: false,
            hold_time: 90,
            settle: Duration::ZERO,
            timeout: Duration::from_secs(20),
            withdraw: false,
            progress: false,
            hold_until: None,
        };
        let r = run(&cfg).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(r.expected, 15000);
        // 5 octets per /26, 4096-octet UPDATEs: 7 UPDATEs and End-of-RIB.
        assert_eq!(r.updates_per_sender, 8);
        let s = sink
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((s.count, s.sessions), (15000, 3));
    }
}
