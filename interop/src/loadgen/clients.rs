//! The route-reflector cluster load: N clients, each from its own source address, each
//! announcing one block (client `i` announces block `i` of the pool) to every reflector
//! and counting what the reflectors send it back, one bit per client block per session.
//!
//! Converged means every client holds every other client's block **from every
//! reflector** (from both, in a two-reflector cluster): only then would a client that
//! loses either reflector still have the whole table. The time of each reflector alone
//! is reported too.
//!
//! Every session is established, and every UPDATE encoded, before the clock starts.
//! Memory stays small at a thousand clients: a session's read buffer starts at a few KiB
//! (it carries one route per UPDATE), and its view is N bits.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use bgp::wire::{self, pack_announce, AfiSafi, Message};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::session::{self, Session, SessionConfig};
use super::{apply_to, attributes, secs, unix_ns, Pool, PrefixSet};

/// One cluster run.
#[derive(Debug, Clone)]
pub struct ClientsConfig {
    /// The route reflectors; every client peers with each.
    pub reflectors: Vec<SocketAddr>,
    /// iBGP: the reflectors' AS and the clients'.
    pub asn: u32,
    /// Source address (and router id) of each client.
    pub clients: Vec<Ipv4Addr>,
    pub pool: Pool,
    pub hold_time: u16,
    /// Pause between the last session coming up and the first UPDATE.
    pub settle: Duration,
    /// Longest wait for the sessions, and again for convergence.
    pub timeout: Duration,
    /// Sessions opening at once (a thousand SYNs at once overflow a listen backlog).
    pub connect_parallel: usize,
    /// Print the complete sessions per reflector every 500 ms to stderr.
    pub progress: bool,
    /// Once converged, keep the sessions (and so the routes) up until this file exists
    /// or the timeout passes: a benchmark that waits for the reflectors' kernels says
    /// when it is done.
    pub hold_until: Option<std::path::PathBuf>,
}

/// What a cluster run measured. Times are seconds since the first UPDATE was queued.
#[derive(Debug, Clone, Serialize)]
pub struct ClientsReport {
    pub clients: usize,
    pub reflectors: usize,
    /// From the first connection attempt until every session is established.
    pub sessions_up_s: f64,
    /// Wall clock of the first UPDATE, nanoseconds since the Unix epoch.
    pub start_unix_ns: u128,
    /// Every client has handed its UPDATEs to the kernel.
    pub sent_s: f64,
    /// Per reflector: every client holds every other client's block from it.
    pub reflector_complete_s: Vec<Option<f64>>,
    /// Every client holds every other client's block from every reflector.
    pub complete_s: Option<f64>,
    /// Per reflector: sessions still missing a block at the end.
    pub incomplete_sessions: Vec<usize>,
    /// Blocks missing, summed over every session, at the end.
    pub missing: u64,
    /// This process's CPU time from the first UPDATE until converged (or the timeout):
    /// what the clients' side cost, on the same cores as the reflectors.
    pub loadgen_cpu_s: f64,
    /// UPDATEs the clients received, over every session, by the end.
    pub updates: u64,
    /// Socket reads that took them (one per UPDATE: each arrived on its own).
    pub reads: u64,
    /// Problems seen on the sessions (NOTIFICATIONs, early ends), the first few.
    pub errors: Vec<String>,
}

/// What one client holds from one reflector: one bit per client block.
#[derive(Debug, Clone)]
pub struct View {
    set: PrefixSet,
    own: usize,
    clients: usize,
}

impl View {
    /// The view of client `own` among `clients`, whose blocks are indexes `0..clients`.
    pub fn new(pool: Pool, clients: usize, own: usize) -> View {
        View {
            set: PrefixSet::new(pool, clients),
            own,
            clients,
        }
    }

    pub fn apply(&mut self, u: &wire::Update) {
        apply_to(&mut self.set, u);
    }

    /// Other clients' blocks not held (a reflector may or may not echo our own).
    pub fn missing(&self) -> usize {
        let own = usize::from(self.set.contains_index(self.own));
        let others = self.set.count().saturating_sub(own);
        self.clients.saturating_sub(1).saturating_sub(others)
    }

    pub fn complete(&self) -> bool {
        self.missing() == 0
    }
}

/// Complete sessions per reflector.
#[derive(Debug, Clone)]
pub struct Tally {
    sessions: usize,
    complete: Vec<usize>,
}

impl Tally {
    /// `sessions` clients at each of `reflectors`.
    pub fn new(reflectors: usize, sessions: usize) -> Tally {
        Tally {
            sessions,
            complete: vec![0; reflectors],
        }
    }

    /// A session of reflector `rr` became complete (or incomplete again, on a
    /// withdrawal); returns whether every session of `rr` is complete now.
    pub fn mark(&mut self, rr: usize, complete: bool) -> bool {
        if let Some(c) = self.complete.get_mut(rr) {
            *c = if complete {
                *c + 1
            } else {
                c.saturating_sub(1)
            };
        }
        self.done(rr)
    }

    pub fn done(&self, rr: usize) -> bool {
        self.complete.get(rr).is_some_and(|c| *c >= self.sessions)
    }

    pub fn complete(&self) -> &[usize] {
        &self.complete
    }
}

/// What the session tasks share: the tally, when each reflector got done, and each
/// session's missing count for the report.
struct State {
    tally: Mutex<Tally>,
    done: watch::Sender<Vec<Option<Instant>>>,
    missing: Vec<AtomicU32>,
    updates: AtomicU64,
    reads: AtomicU64,
}

impl State {
    fn mark(&self, rr: usize, complete: bool) {
        let done = match self.tally.lock() {
            Ok(mut t) => t.mark(rr, complete),
            Err(_) => return,
        };
        if done {
            let now = Instant::now();
            self.done.send_modify(|v| {
                if let Some(slot) = v.get_mut(rr) {
                    slot.get_or_insert(now);
                }
            });
        }
    }
}

/// Reads one client's session to its end, keeping its view.
async fn client(
    mut s: Session,
    mut view: View,
    rr: usize,
    slot: usize,
    state: Arc<State>,
) -> Result<()> {
    let mut reads = 0;
    while let Some(m) = s.next().await? {
        state.reads.fetch_add(s.reads() - reads, Ordering::Relaxed);
        reads = s.reads();
        match wire::decode(&m, &s.ctx) {
            Ok(Message::Update(u)) => {
                state.updates.fetch_add(1, Ordering::Relaxed);
                let was = view.complete();
                view.apply(&u);
                if let Some(a) = state.missing.get(slot) {
                    a.store(
                        u32::try_from(view.missing()).unwrap_or(u32::MAX),
                        Ordering::Relaxed,
                    );
                }
                let now = view.complete();
                if was != now {
                    state.mark(rr, now);
                }
            }
            Ok(Message::Notification(n)) => bail!("NOTIFICATION from the reflector: {n}"),
            Ok(_) => {}
            Err(n) => bail!("undecodable message from the reflector: {n}"),
        }
    }
    bail!("the reflector closed the session")
}

/// Client `i`'s block announcement and End-of-RIB, as one write.
fn announcement(cfg: &ClientsConfig, i: usize, ctx: &wire::Context) -> Result<Bytes> {
    let addr = cfg.clients.get(i).copied().context("no such client")?;
    let nlri = cfg.pool.nlri(i as u64, 1)?;
    let attrs = attributes(cfg.asn, true);
    let mut out = BytesMut::new();
    for m in pack_announce(&attrs, addr.into(), AfiSafi::IPV4_UNICAST, &nlri, ctx) {
        out.extend_from_slice(&m);
    }
    out.extend_from_slice(&wire::encode_to_bytes(
        &Message::Update(wire::Update::end_of_rib(AfiSafi::IPV4_UNICAST)),
        ctx,
    ));
    Ok(out.freeze())
}

/// Runs the cluster load against `cfg.reflectors`.
pub async fn run(cfg: &ClientsConfig) -> Result<ClientsReport> {
    let (n, r) = (cfg.clients.len(), cfg.reflectors.len());
    if n < 2 || r == 0 {
        bail!("a cluster needs at least two clients and a reflector ({n} and {r} given)");
    }
    if n as u64 > cfg.pool.capacity() {
        bail!("{n} blocks do not fit in {}/{}", cfg.pool.net, cfg.pool.len);
    }
    let (done_tx, mut done_rx) = watch::channel(vec![None; r]);
    let state = Arc::new(State {
        tally: Mutex::new(Tally::new(r, n)),
        done: done_tx,
        missing: (0..n * r)
            .map(|_| AtomicU32::new(u32::try_from(n - 1).unwrap_or(u32::MAX)))
            .collect(),
        updates: AtomicU64::new(0),
        reads: AtomicU64::new(0),
    });

    // Session `i * r + j` is client i at reflector j.
    let t0 = Instant::now();
    let gate = Arc::new(Semaphore::new(cfg.connect_parallel.max(1)));
    let mut connecting = tokio::task::JoinSet::new();
    for (i, addr) in cfg.clients.iter().copied().enumerate() {
        for (j, target) in cfg.reflectors.iter().copied().enumerate() {
            let sc = SessionConfig {
                local_as: cfg.asn,
                router_id: addr,
                hold_time: cfg.hold_time,
                extended_message: false,
                peer_as: Some(cfg.asn),
                read_buffer: 16 * 1024,
            };
            let (gate, limit) = (gate.clone(), cfg.timeout);
            connecting.spawn(async move {
                let _permit = gate.acquire_owned().await?;
                let s = session::open(addr, target, &sc, limit)
                    .await
                    .with_context(|| format!("client {addr} -> {target}"))?;
                anyhow::Ok((i * r + j, s))
            });
        }
    }
    let mut sessions: Vec<Option<Session>> = (0..n * r).map(|_| None).collect();
    while let Some(res) = connecting.join_next().await {
        let (k, s) = res??;
        if let Some(slot) = sessions.get_mut(k) {
            *slot = Some(s);
        }
    }
    let sessions_up_s = t0.elapsed().as_secs_f64();

    // Encode everything, and start reading, before the clock starts.
    let mut writes = Vec::with_capacity(n * r);
    let mut readers = tokio::task::JoinSet::new();
    for (k, s) in sessions.into_iter().enumerate() {
        let s = s.context("a session was not established")?;
        let (i, j) = (k / r, k % r);
        writes.push((s.writer.clone(), announcement(cfg, i, &s.ctx)?));
        let view = View::new(cfg.pool, n, i);
        let name = format!(
            "client {} at {}",
            cfg.clients.get(i).copied().unwrap_or(Ipv4Addr::UNSPECIFIED),
            cfg.reflectors
                .get(j)
                .map_or(String::new(), ToString::to_string)
        );
        let state = state.clone();
        readers.spawn(async move { client(s, view, j, k, state).await.with_context(|| name) });
    }
    tokio::time::sleep(cfg.settle).await;

    let start = Instant::now();
    let start_wall = SystemTime::now();
    let cpu0 = crate::bench::cpu_time(std::process::id()).unwrap_or_default();
    let progress = cfg.progress.then(|| {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let c = state
                    .tally
                    .lock()
                    .map(|t| t.complete().to_vec())
                    .unwrap_or_default();
                eprintln!(
                    "{:>8.3} s  complete sessions per reflector {c:?}",
                    start.elapsed().as_secs_f64()
                );
            }
        })
    });
    for (w, b) in &writes {
        // A closed session shows up as a reader error.
        let _ = w.send(b.clone()).await;
    }
    let sent_s = secs(start, Instant::now());
    // The watch's guard is dropped within the statement: holding it would block the
    // session tasks' updates.
    let converged = tokio::time::timeout(
        cfg.timeout,
        done_rx.wait_for(|v| v.iter().all(Option::is_some)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let loadgen_cpu_s = crate::bench::cpu_time(std::process::id())
        .unwrap_or_default()
        .saturating_sub(cpu0)
        .as_secs_f64();
    if let (true, Some(file)) = (converged, &cfg.hold_until) {
        let limit = cfg.timeout.saturating_sub(start.elapsed());
        let _ = tokio::time::timeout(limit, async {
            while !file.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    if let Some(p) = progress {
        p.abort();
    }
    let done = done_rx.borrow().clone();
    let reflector_complete_s: Vec<Option<f64>> =
        done.iter().map(|d| d.map(|t| secs(start, t))).collect();
    let complete_s = reflector_complete_s
        .iter()
        .try_fold(0.0f64, |m, t| t.map(|t| m.max(t)));
    let mut incomplete_sessions = vec![0; r];
    let mut missing = 0u64;
    for (k, m) in state.missing.iter().enumerate() {
        let m = m.load(Ordering::Relaxed);
        missing += u64::from(m);
        if m > 0 {
            if let Some(c) = incomplete_sessions.get_mut(k % r) {
                *c += 1;
            }
        }
    }
    let mut errors = Vec::new();
    let mut more = 0usize;
    while let Some(res) = readers.try_join_next() {
        if let Ok(Err(e)) = res {
            if errors.len() < 10 {
                errors.push(format!("{e:#}"));
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        errors.push(format!("… and {more} more sessions ended"));
    }
    readers.abort_all();
    Ok(ClientsReport {
        clients: n,
        reflectors: r,
        sessions_up_s,
        start_unix_ns: unix_ns(start_wall),
        sent_s,
        reflector_complete_s,
        complete_s,
        incomplete_sessions,
        missing,
        loadgen_cpu_s,
        updates: state.updates.load(Ordering::Relaxed),
        reads: state.reads.load(Ordering::Relaxed),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp::wire::Nlri;
    use ipnet::IpNet;

    fn pool() -> Pool {
        Pool::new("101.64.0.0/16".parse().unwrap_or_default(), 26).unwrap_or_else(|e| panic!("{e}"))
    }

    fn update(announce: &[u64], withdraw: &[u64]) -> wire::Update {
        let p = pool();
        let nlri = |v: &[u64]| -> Vec<Nlri> {
            v.iter()
                .filter_map(|i| p.prefix(*i))
                .map(|n| Nlri::new(IpNet::V4(n)))
                .collect()
        };
        wire::Update {
            withdrawn: nlri(withdraw),
            nlri: nlri(announce),
            attributes: attributes(64512, true),
            ..wire::Update::default()
        }
    }

    #[test]
    fn a_view_is_complete_with_every_other_block_whether_or_not_its_own_comes_back() {
        let mut v = View::new(pool(), 4, 1);
        assert_eq!(v.missing(), 3);
        v.apply(&update(&[0, 2], &[]));
        assert_eq!(v.missing(), 1);
        v.apply(&update(&[1], &[]));
        assert_eq!(v.missing(), 1, "our own block does not count");
        v.apply(&update(&[3, 3], &[]));
        assert!(v.complete());
        v.apply(&update(&[], &[2]));
        assert_eq!(v.missing(), 1);
        // Blocks of other lengths or outside the clients' range count for nothing.
        v.apply(&update(&[4, 100], &[]));
        assert_eq!(v.missing(), 1);
    }

    /// A reflector stand-in: accepts `n` sessions, then sends each client's UPDATE to
    /// every other client, and keeps the sessions open.
    async fn toy_reflector(l: tokio::net::TcpListener, n: usize) -> Result<()> {
        let cfg = SessionConfig {
            local_as: 64512,
            router_id: Ipv4Addr::new(9, 9, 9, 9),
            hold_time: 90,
            extended_message: false,
            peer_as: None,
            read_buffer: 4096,
        };
        let mut sessions = Vec::new();
        for _ in 0..n {
            let (stream, _) = l.accept().await?;
            sessions.push(Session::establish(stream, &cfg).await?);
        }
        let mut updates = Vec::new();
        for s in &mut sessions {
            // The client's block comes before its End-of-RIB (23 octets).
            loop {
                let m = s.next().await?.context("a client closed")?;
                if m.get(18) == Some(&2) && m.len() > 23 {
                    updates.push(m);
                    break;
                }
            }
        }
        for (i, s) in sessions.iter().enumerate() {
            for (j, u) in updates.iter().enumerate() {
                if i != j {
                    s.send(u.clone()).await?;
                }
            }
        }
        std::future::pending::<()>().await;
        Ok(())
    }

    #[tokio::test]
    async fn clients_converge_through_two_reflectors() {
        let n = 5;
        let mut reflectors = Vec::new();
        let mut toys = Vec::new();
        for _ in 0..2 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            reflectors.push(l.local_addr().unwrap_or_else(|e| panic!("{e}")));
            toys.push(tokio::spawn(toy_reflector(l, n)));
        }
        let cfg = ClientsConfig {
            reflectors,
            asn: 64512,
            clients: (0..n as u8)
                .map(|i| Ipv4Addr::new(127, 0, 0, 11 + i))
                .collect(),
            pool: pool(),
            hold_time: 90,
            settle: Duration::ZERO,
            timeout: Duration::from_secs(20),
            connect_parallel: 2,
            progress: false,
            hold_until: None,
        };
        let r = run(&cfg).await.unwrap_or_else(|e| panic!("{e:#}"));
        for t in toys {
            t.abort();
        }
        assert!(r.complete_s.is_some(), "{r:?}");
        assert!(r.reflector_complete_s.iter().all(Option::is_some), "{r:?}");
        assert_eq!((r.missing, r.incomplete_sessions), (0, vec![0, 0]));
        // Each of 2 × 5 sessions hears of the 4 other blocks.
        assert_eq!(r.updates, 40);
    }

    #[test]
    fn a_reflector_is_done_when_all_its_sessions_are_complete() {
        let mut t = Tally::new(2, 3);
        assert!(!t.mark(0, true));
        assert!(!t.mark(0, true));
        assert!(!t.mark(1, true));
        assert!(t.mark(0, true));
        assert!(!t.done(1));
        assert!(!t.mark(0, false), "a withdrawal undoes it");
        assert_eq!(t.complete(), &[2, 1]);
        assert!(!t.mark(9, true), "an unknown reflector changes nothing");
    }
}
