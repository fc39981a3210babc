//! A peer that reads at 10 KB/s while 200,000 routes churn: its session stays up on a
//! 9 s hold (a whole message reaches it at least every few seconds), ipipd's memory does
//! not grow with what the peer has not read yet, a fast peer hears every round as if the
//! slow one were not there, and once the slow peer reads again it ends up knowing
//! exactly what the fast one knows.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use bgp::wire::Message;
use interop::config::Peer;
use interop::harness::{require_root, wait_until, Worker};
use interop::rawpeer::craft::{base, pool_host, prefixes, update, HOSTS_PER_UPDATE};
use interop::rawpeer::testbed::{ipipd_pid, log_tail, memory_kib, peer_status, Testbed};
use interop::rawpeer::{default_open, RawPeer};
use ipnet::Ipv4Net;

/// Routes the sender churns: all announced, then all withdrawn, round after round.
const ROUTES: u32 = 200_000;
/// Rounds (an announcement and a withdrawal each): ipipd's RSS is sampled after each,
/// and the median of the `SAMPLES` after round `WARM_ROUNDS` is compared with the
/// median of the last `SAMPLES` (single samples move by some 10 MiB either way with
/// the allocator; a queue of what the slow peer has not read would grow 2 MB a round,
/// some 77 MiB over these rounds, where bounded sending was seen between -1 and +12).
const WARM_ROUNDS: usize = 8;
const ROUNDS: usize = 48;
const SAMPLES: usize = 5;
/// The slow peer's pace: 1,000 octets every 100 ms.
const SLOW_PIECE: usize = 1_000;
const TICK: Duration = Duration::from_millis(100);
const HOLD: u16 = 9;

/// Whether a route is one the sender churns (ipipd also announces its own block).
fn churned(n: &Ipv4Net) -> bool {
    n.prefix_len() == 32
        && Ipv4Net::new(Ipv4Addr::new(100, 80, 0, 0), 14).is_ok_and(|r| r.contains(n))
}

fn announcements(nh: Ipv4Addr) -> Vec<u8> {
    let attrs = base(&[], nh, true);
    let all: Vec<Ipv4Net> = (0..ROUTES).map(pool_host).collect();
    all.chunks(HOSTS_PER_UPDATE)
        .flat_map(|c| update(&[], &attrs, &prefixes(c)))
        .collect()
}

fn withdrawals() -> Vec<u8> {
    let all: Vec<Ipv4Net> = (0..ROUTES).map(pool_host).collect();
    all.chunks(HOSTS_PER_UPDATE)
        .flat_map(|c| update(&prefixes(c), &[], &[]))
        .collect()
}

/// A peer reading in its own thread, at full speed or `SLOW_PIECE` per `TICK`, keeping
/// what it was told (the routes it knows), the octets it read and the longest time
/// between two whole messages.
struct Reader {
    slow: Arc<AtomicBool>,
    known: Arc<AtomicUsize>,
    read: Arc<AtomicU64>,
    worst_gap: Arc<Mutex<Duration>>,
    worker: Worker<HashSet<Ipv4Net>>,
}

impl Reader {
    fn start(mut p: RawPeer, slow: bool) -> Reader {
        let slow = Arc::new(AtomicBool::new(slow));
        let known = Arc::new(AtomicUsize::new(0));
        let read = Arc::new(AtomicU64::new(0));
        let worst_gap = Arc::new(Mutex::new(Duration::ZERO));
        let (s, k, r, w) = (slow.clone(), known.clone(), read.clone(), worst_gap.clone());
        let worker = Worker::spawn(move |st| {
            let mut routes = HashSet::new();
            let mut last = Instant::now();
            while !st.load(Ordering::Relaxed) {
                let slow = s.load(Ordering::Relaxed);
                let tick = Instant::now();
                let (max, wait) = if slow {
                    (SLOW_PIECE, TICK)
                } else {
                    (64 * 1024, Duration::from_millis(200))
                };
                match p.read_some(max, wait)? {
                    None => bail!("ipipd closed the connection"),
                    Some(n) => r.fetch_add(n as u64, Ordering::Relaxed),
                };
                while let Some(m) = p.next_buffered()? {
                    match m {
                        Message::Update(u) => {
                            for n in &u.withdrawn {
                                if let ipnet::IpNet::V4(v4) = n.prefix {
                                    routes.remove(&v4);
                                }
                            }
                            for n in &u.nlri {
                                if let ipnet::IpNet::V4(v4) = n.prefix {
                                    if churned(&v4) {
                                        routes.insert(v4);
                                    }
                                }
                            }
                        }
                        Message::Notification(n) => bail!("ipipd sent NOTIFICATION {n}"),
                        _ => {}
                    }
                    if let Ok(mut worst) = w.lock() {
                        *worst = (*worst).max(last.elapsed());
                    }
                    last = Instant::now();
                }
                k.store(routes.len(), Ordering::Relaxed);
                if slow {
                    std::thread::sleep(TICK.saturating_sub(tick.elapsed()));
                }
            }
            Ok(routes)
        });
        Reader {
            slow,
            known,
            read,
            worst_gap,
            worker,
        }
    }

    fn known(&self) -> usize {
        self.known.load(Ordering::Relaxed)
    }

    fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    fn worst_gap(&self) -> Duration {
        self.worst_gap.lock().map(|g| *g).unwrap_or_default()
    }

    fn alive(&self) -> bool {
        !self.worker.is_finished()
    }

    fn finish(self) -> Result<HashSet<Ipv4Net>> {
        self.worker.finish()
    }
}

#[test]
fn a_slow_reader_costs_bounded_memory_and_slows_no_one() -> Result<()> {
    require_root();
    let tb = Testbed::new(3)?;
    let (client, slow_addr, fast_addr) = (Testbed::addr(0), Testbed::addr(1), Testbed::addr(2));
    // ipipd reflects the client's routes to both other peers.
    let mut cfg = tb.config(&[
        Peer::new(client).asn(64512).rr_client(),
        Peer::new(slow_addr).asn(64512),
        Peer::new(fast_addr).asn(64512),
    ]);
    cfg.bgp.route_reflector_cluster_id = Some("172.30.0.1".into());
    let d = tb.start(&cfg)?;
    let pid = ipipd_pid(&d)?;

    let mut slow_peer =
        RawPeer::establish(&tb.dial(slow_addr), &default_open(64512, slow_addr, HOLD))?;
    slow_peer.start_keepalives(Duration::from_secs(3));
    let mut fast_peer =
        RawPeer::establish(&tb.dial(fast_addr), &default_open(64512, fast_addr, HOLD))?;
    fast_peer.start_keepalives(Duration::from_secs(3));
    let mut sender = RawPeer::establish(&tb.dial(client), &default_open(64512, client, 0))?;
    sender.start_keepalives(Duration::from_secs(3));
    let slow = Reader::start(slow_peer, true);
    let fast = Reader::start(fast_peer, false);

    let announce = announcements(client);
    let withdraw = withdrawals();
    let mut rss = Vec::new();
    let mut slowest_round = Duration::ZERO;
    let churn_started = Instant::now();
    for round in 1..=ROUNDS {
        let started = Instant::now();
        for (bytes, want) in [(&announce, ROUTES as usize), (&withdraw, 0)] {
            sender.send_raw(bytes)?;
            wait_until(
                Duration::from_secs(60),
                "the fast peer hears the round",
                || (fast.known() == want || !fast.alive() || !slow.alive()).then_some(()),
            )
            .with_context(|| {
                format!(
                    "round {round}: the fast peer knows {} routes, expected {want}",
                    fast.known()
                )
            })?;
            ensure!(
                fast.alive() && slow.alive(),
                "a reader ended: {}",
                log_tail(&d, 20)
            );
        }
        slowest_round = slowest_round.max(started.elapsed());
        rss.push(memory_kib(pid)?.0);
    }
    let median = |s: &[u64]| {
        let mut s = s.to_vec();
        s.sort_unstable();
        s.get(s.len() / 2).copied().unwrap_or_default()
    };
    let rss_warm = median(&rss[WARM_ROUNDS..WARM_ROUNDS + SAMPLES]);
    let rss_end = median(&rss[ROUNDS - SAMPLES..]);
    let churn = churn_started.elapsed();
    let (slow_read, fast_read) = (slow.read(), fast.read());
    println!(
        "{ROUNDS} rounds of {ROUTES} routes in {:.1} s (slowest {:.1} s): fast peer read {:.1} MB, slow peer {:.2} MB (longest wait for a whole message {:.1} s); ipipd RSS (median of {SAMPLES} rounds) {} KiB after round {WARM_ROUNDS}, {} KiB at the end",
        churn.as_secs_f64(),
        slowest_round.as_secs_f64(),
        fast_read as f64 / 1e6,
        slow_read as f64 / 1e6,
        slow.worst_gap().as_secs_f64(),
        rss_warm,
        rss_end,
    );
    // What the slow peer has not read: an unbounded queue would hold most of it.
    let behind_kib = fast_read.saturating_sub(slow_read) / 1024;
    ensure!(
        behind_kib > 20 * 1024,
        "the slow peer is only {behind_kib} KiB behind: the test did not make a backlog"
    );
    let grown = rss_end.saturating_sub(rss_warm);
    ensure!(
        grown < 32 * 1024,
        "ipipd's RSS grew {grown} KiB from round {WARM_ROUNDS} to {ROUNDS} while the slow peer fell {behind_kib} KiB behind"
    );
    let gap = slow.worst_gap();
    ensure!(
        gap < Duration::from_secs(u64::from(HOLD)),
        "the slow peer waited {:.1} s for a whole message: its hold timer ({HOLD} s) would expire",
        gap.as_secs_f64()
    );
    let p = peer_status(&d, slow_addr).context("no status for the slow peer")?;
    ensure!(
        p.state == "Established" && p.established_count == 1,
        "slow peer: {} after {} sessions",
        p.state,
        p.established_count
    );

    // The churn ends with every route announced. Read at full speed now: the slow
    // peer ends knowing exactly what the fast one knows.
    sender.send_raw(&announce)?;
    slow.slow.store(false, Ordering::Relaxed);
    wait_until(
        Duration::from_secs(120),
        "both peers know every route",
        || {
            (fast.known() == ROUTES as usize && slow.known() == ROUTES as usize
                || !slow.alive()
                || !fast.alive())
            .then_some(())
        },
    )
    .with_context(|| format!("slow peer knows {}, fast {}", slow.known(), fast.known()))?;
    let (slow_routes, fast_routes) = (slow.finish()?, fast.finish()?);
    ensure!(
        slow_routes == fast_routes,
        "the peers know different routes"
    );
    ensure!(
        slow_routes.len() == ROUTES as usize,
        "{} routes known",
        slow_routes.len()
    );
    Ok(())
}
