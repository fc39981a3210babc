//! Session flaps against one ipipd: TCP resets, FINs, NOTIFICATIONs, malformed UPDATEs,
//! OPENs dropped half-way and hold-timer expiry with a hold time of 3 s, mixed over
//! several peers at once. Stable peers' routes must never change, ipipd's open file
//! descriptors must come back to within 5% of where they were, and its resident memory
//! must not grow with the number of flaps (judged over windows of flaps after a warm-up,
//! so that a one-off step of the allocator is not taken for a leak).
//!
//! `HOSTILE_FLAPS` sets the number of flaps (default 3000, at least three windows),
//! `HOSTILE_FLAPS_WINDOW` the flaps per window (default 1000), `HOSTILE_HOLD_EXPIRIES`
//! how many of them are hold-timer expiries (default 12; they take 3 s each).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bgp::wire::{Message, Notification};
use interop::config::Peer;
use interop::harness::{require_root, wait_until};
use interop::ipipd::Ipipd;
use interop::rawpeer::craft::{base, message, prefixes, update, UPDATE};
use interop::rawpeer::testbed::{
    fd_count, ipipd_pid, kernel_has, memory_kib, peer_status, route_from, wait_learned, Testbed,
};
use interop::rawpeer::{default_open, Event, RawPeer};
use ipnet::Ipv4Net;

const WAIT: Duration = Duration::from_secs(10);
const STABLE: usize = 2;
/// Peers that flap fast (resets, FINs, NOTIFICATIONs, malformed UPDATEs, dropped OPENs).
const FAST_FLAPPERS: usize = 4;
/// Peers that flap by letting the hold timer run out.
const SLOW_FLAPPERS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Reset,
    Fin,
    Cease,
    Malformed,
    OpenDropped,
    HoldExpiry,
}

const FAST: [Mode; 5] = [
    Mode::Reset,
    Mode::Fin,
    Mode::Cease,
    Mode::Malformed,
    Mode::OpenDropped,
];

fn flapper_routes(address: Ipv4Addr) -> Vec<Ipv4Net> {
    (0..3)
        .map(|i| {
            Ipv4Net::new(Ipv4Addr::new(100, 90, address.octets()[3], i), 32).unwrap_or_default()
        })
        .collect()
}

/// Connects until the session is up on ipipd's side (its End-of-RIB arrived): a session
/// that just went down may still be winding down inside ipipd.
fn come_up(tb: &Testbed, address: Ipv4Addr, hold: u16) -> Result<RawPeer> {
    let mut last = None;
    for _ in 0..100 {
        match RawPeer::establish(&tb.dial(address), &default_open(64512, address, hold)) {
            Ok(mut p) => loop {
                match p.recv(WAIT)? {
                    Event::Message(Message::Update(_)) => return Ok(p),
                    Event::Message(_) => {}
                    Event::Closed => break,
                }
            },
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("closed after OPEN every time")))
        .context("the flapping peer could not come up")
}

fn flap(tb: &Testbed, address: Ipv4Addr, mode: Mode) -> Result<()> {
    if mode == Mode::OpenDropped {
        let mut p = RawPeer::connect(&tb.dial(address))?;
        p.send(&Message::Open(default_open(64512, address, 0)))?;
        let _ = p.recv(WAIT)?;
        p.reset();
        return Ok(());
    }
    let hold = if mode == Mode::HoldExpiry { 3 } else { 0 };
    let mut p = come_up(tb, address, hold)?;
    p.send_raw(&update(
        &[],
        &base(&[], address, true),
        &prefixes(&flapper_routes(address)),
    ))?;
    match mode {
        Mode::Reset => p.reset(),
        Mode::Fin => p.close(),
        Mode::Cease => {
            p.send(&Message::Notification(Notification::new(6, 2, Vec::new())))?;
            p.close();
        }
        Mode::Malformed => {
            p.send_raw(&message(UPDATE, &[0, 200, 0, 0]))?;
            let n = p.expect_notification(WAIT)?;
            if (n.code, n.subcode) != (3, 1) {
                bail!("malformed UPDATE answered with {n}");
            }
        }
        Mode::HoldExpiry => {
            // Silence: no KEEPALIVE from us, so ipipd's 3 s hold timer runs out.
            let n = p.expect_notification(Duration::from_secs(10))?;
            if (n.code, n.subcode) != (4, 0) {
                bail!("hold timer expiry answered with {n}");
            }
        }
        Mode::OpenDropped => {}
    }
    Ok(())
}

fn snapshot(d: &Ipipd<'_>) -> Result<(usize, u64)> {
    let pid = ipipd_pid(d)?;
    Ok((fd_count(pid)?, memory_kib(pid)?.0))
}

/// Waits until no flapping session is up and none of their routes is left.
fn settle(d: &Ipipd<'_>, flappers: &[Ipv4Addr]) -> Result<()> {
    wait_until(
        Duration::from_secs(30),
        "flapping sessions down and their routes gone",
        || {
            let routes = d.routes().ok()?;
            let clean = flappers.iter().all(|a| {
                let down = peer_status(d, *a).is_some_and(|s| {
                    s.state != "Established" && s.state != "OpenSent" && s.state != "OpenConfirm"
                });
                down && !routes
                    .iter()
                    .any(|r| r.peer.as_deref() == Some(a.to_string().as_str()))
            });
            clean.then_some(())
        },
    )
}

/// What one round of flapping did.
#[derive(Default)]
struct Round {
    modes: Vec<Mode>,
    errors: Vec<String>,
    route_changes: Vec<String>,
    elapsed: Duration,
}

/// Flaps `fast` times on the fast peers and `slow` times on the slow ones, all at once,
/// while watching that the stable routes stay exactly as they are.
fn run_flaps(
    d: &Ipipd<'_>,
    tb: &Testbed,
    fast_peers: &[Ipv4Addr],
    slow_peers: &[Ipv4Addr],
    fast: usize,
    slow: usize,
    stable_routes: &[(String, Ipv4Addr)],
) -> Round {
    let (fast_done, slow_done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let stop = AtomicBool::new(false);
    let modes = Mutex::new(Vec::<Mode>::new());
    let changes = Mutex::new(Vec::<String>::new());
    let started = Instant::now();
    let note = |m: String| {
        if let Ok(mut v) = changes.lock() {
            v.push(m);
        }
    };
    let errors: Vec<String> = std::thread::scope(|s| {
        let monitor = s.spawn(|| {
            let mut polls = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(routes) = d.routes() {
                    polls += 1;
                    for (r, a) in stable_routes {
                        let same = route_from(&routes, r, *a).is_some_and(|x| {
                            x.best
                                && x.installed
                                && x.next_hop.as_deref() == Some(a.to_string().as_str())
                        });
                        if !same {
                            note(format!("{r} from {a} changed at {:.1?}", started.elapsed()));
                        }
                    }
                    if polls % 10 == 0 {
                        let kernel = d.ns.bgp_routes();
                        for (r, _) in stable_routes
                            .iter()
                            .filter(|(r, _)| !kernel_has(&kernel, r))
                        {
                            note(format!(
                                "{r} missing from the kernel at {:.1?}",
                                started.elapsed()
                            ));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            polls
        });
        let peers = fast_peers
            .iter()
            .map(|a| (*a, false))
            .chain(slow_peers.iter().map(|a| (*a, true)));
        let workers: Vec<_> = peers
            .enumerate()
            .map(|(i, (a, slow_peer))| {
                let (counter, goal) = if slow_peer {
                    (&slow_done, slow)
                } else {
                    (&fast_done, fast)
                };
                let modes = &modes;
                s.spawn(move || -> Vec<String> {
                    let mut errs = Vec::new();
                    let mut n = i;
                    // Take a ticket first, so the goal is met exactly.
                    while counter.fetch_add(1, Ordering::Relaxed) < goal {
                        let mode = if slow_peer {
                            Mode::HoldExpiry
                        } else {
                            FAST[n % FAST.len()]
                        };
                        n += 1;
                        match flap(tb, a, mode) {
                            Ok(()) => {
                                if let Ok(mut c) = modes.lock() {
                                    c.push(mode);
                                }
                            }
                            Err(e) => {
                                errs.push(format!("peer {a} {mode:?}: {e:#}"));
                                if errs.len() > 5 {
                                    break;
                                }
                            }
                        }
                    }
                    errs
                })
            })
            .collect();
        let mut errs: Vec<String> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|_| vec!["flapper panicked".into()]))
            .collect();
        stop.store(true, Ordering::Relaxed);
        let polls = monitor.join().unwrap_or(0);
        if polls < 5 {
            errs.push(format!("the monitor could read routes only {polls} times"));
        }
        errs
    });
    Round {
        modes: modes.into_inner().unwrap_or_default(),
        errors,
        route_changes: changes.into_inner().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

fn per_mode(modes: &[Mode]) -> String {
    FAST.iter()
        .chain(std::iter::once(&Mode::HoldExpiry))
        .map(|m| format!("{m:?} {}", modes.iter().filter(|c| *c == m).count()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn thousand_flaps() -> Result<()> {
    require_root();
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let window = env("HOSTILE_FLAPS_WINDOW", 1000).max(1);
    let windows = (env("HOSTILE_FLAPS", 3000) / window).max(3);
    let slow_per_window = env("HOSTILE_HOLD_EXPIRIES", 12)
        .div_ceil(windows)
        .min(window);
    let tb = Testbed::new((STABLE + FAST_FLAPPERS + SLOW_FLAPPERS) as u8)?;
    let addrs: Vec<Ipv4Addr> = (0..(STABLE + FAST_FLAPPERS + SLOW_FLAPPERS) as u8)
        .map(Testbed::addr)
        .collect();
    let (stable, flappers) = addrs.split_at(STABLE);
    let (fast_peers, slow_peers) = flappers.split_at(FAST_FLAPPERS);
    let specs: Vec<Peer> = addrs.iter().map(|a| Peer::new(*a).asn(64512)).collect();
    // One malloc arena: memory that glibc spreads over per-thread arenas (and keeps) would
    // otherwise move the resident size by several percent from run to run, hiding or
    // faking a leak of that size.
    std::env::set_var("MALLOC_ARENA_MAX", "1");
    let d = tb.start(&tb.config(&specs))?;

    // Stable peers and their routes.
    let mut keep = Vec::new();
    let mut stable_routes = Vec::new();
    for (i, a) in stable.iter().enumerate() {
        let p = RawPeer::establish(&tb.dial(*a), &default_open(64512, *a, 0))?;
        let rs: Vec<Ipv4Net> = (0..20)
            .map(|j| Ipv4Net::new(Ipv4Addr::new(100, 80 + i as u8, j, 0), 24).unwrap_or_default())
            .collect();
        p.send_raw(&update(&[], &base(&[], *a, true), &prefixes(&rs)))?;
        stable_routes.extend(rs.iter().map(|r| (r.to_string(), *a)));
        keep.push(p);
    }
    for (r, a) in &stable_routes {
        wait_learned(&d, r, *a, WAIT)?;
    }

    // Warm-up: the same mix and size as a window, so that the baseline includes what the
    // allocator and the runtime keep for reuse once sessions have come and gone.
    let fast_per_window = window - slow_per_window;
    let warm = run_flaps(
        &d,
        &tb,
        fast_peers,
        slow_peers,
        fast_per_window,
        slow_per_window,
        &stable_routes,
    );
    if !warm.errors.is_empty() {
        bail!("warm-up: {}", warm.errors.join("\n"));
    }
    settle(&d, flappers)?;
    let (fds0, rss0) = snapshot(&d)?;

    let mut rss = vec![rss0];
    let mut round = Round::default();
    for w in 1..=windows {
        let r = run_flaps(
            &d,
            &tb,
            fast_peers,
            slow_peers,
            fast_per_window,
            slow_per_window,
            &stable_routes,
        );
        settle(&d, flappers)?;
        let (_, kib) = snapshot(&d)?;
        println!(
            "window {w}/{windows}: {} flaps in {:.1?}; RSS {kib} KiB",
            r.modes.len(),
            r.elapsed
        );
        rss.push(kib);
        round.modes.extend(r.modes);
        round.errors.extend(r.errors);
        round.route_changes.extend(r.route_changes);
        round.elapsed += r.elapsed;
        if round.errors.len() > 5 {
            break;
        }
    }
    let total = window * windows;
    // A connection that just ended may still be closing inside ipipd.
    let _ = wait_until(WAIT, "file descriptors back", || {
        snapshot(&d).ok().filter(|(fds, _)| *fds <= fds0)
    });
    let (fds1, rss1) = snapshot(&d)?;
    println!(
        "{} flaps in {:.1?} ({}); fds {fds0} -> {fds1}; RSS {rss0} -> {rss1} KiB by window {rss:?} (after a warm-up of {} flaps)",
        round.modes.len(),
        round.elapsed,
        per_mode(&round.modes),
        warm.modes.len()
    );
    let mut problems = round.errors;
    problems.extend(
        warm.route_changes
            .into_iter()
            .chain(round.route_changes)
            .take(10),
    );
    if round.modes.len() < total {
        problems.push(format!("only {} of {total} flaps done", round.modes.len()));
    }
    for a in stable {
        let st = peer_status(&d, *a).context("stable peer missing")?;
        if st.established_count != 1 || st.state != "Established" {
            problems.push(format!("stable peer {a} flapped: {st:?}"));
        }
    }
    if fds1 as f64 > fds0 as f64 * 1.05 {
        let pid = ipipd_pid(&d)?;
        let open: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|l| l.display().to_string())
            .collect();
        problems.push(format!(
            "open file descriptors grew from {fds0} to {fds1}: {open:?}"
        ));
    }
    if let Some(leak) = leak(&rss, window) {
        problems.push(leak);
    }
    drop(keep);
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// Resident-memory growth per flap above which the flaps leak. A leak grows with the
/// flap count; the allocator's noise does not: it moves the resident size in steps
/// (one of 400 KiB, 5 %, was seen after a warm-up on a fresh machine) that do not
/// repeat window after window. Measured: over 30,000 flaps the resident size rose
/// 8492 → 9024 KiB, 416 KiB of it in the first 10 windows and 44 KiB in the last 16
/// (under 3 bytes per flap), flat at the end; with MALLOC_ARENA_MAX=1 the same shape.
/// That is the allocator settling (arenas, table capacities reaching their high-water
/// marks), not a leak, which would add the same amount every window. A 10,000-flap run
/// taken alone looks like 64 bytes per flap; the threshold sits well above that and well
/// below any leak of one allocation per flap.
const LEAK_BYTES_PER_FLAP: f64 = 256.0;

/// Judges the resident size after each window (`rss[0]` after the warm-up) by the
/// least-squares slope over the windows, so that one step of noise, wherever it falls,
/// moves the slope by at most half its size per window.
fn leak(rss: &[u64], window: usize) -> Option<String> {
    let n = rss.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = rss.iter().map(|&k| k as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, &k) in rss.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (k as f64 - mean_y);
        den += dx * dx;
    }
    let bytes_per_flap = num / den * 1024.0 / window as f64;
    (bytes_per_flap > LEAK_BYTES_PER_FLAP).then(|| {
        format!(
            "resident memory grows with the flaps: {bytes_per_flap:.0} bytes per flap \
             (KiB after each window of {window}: {rss:?})"
        )
    })
}

#[test]
fn leak_is_told_from_allocator_noise() {
    // Measured on a fresh machine: one step after the warm-up, then flat.
    assert_eq!(leak(&[7700, 8116, 8120, 8118], 1000), None);
    // Measured over 10,000 flaps: a steady 64 bytes per flap.
    let measured = [
        7816, 7940, 7980, 8148, 8160, 8212, 8248, 8260, 8288, 8404, 8444,
    ];
    assert_eq!(leak(&measured, 1000), None);
    // Measured over 30,000 flaps: settling, then flat.
    let long = [
        8492, 8648, 8684, 8744, 8760, 8844, 8856, 8856, 8876, 8908, 8920, 8932, 8952, 8968, 8980,
        8980, 8980, 8980, 8980, 9000, 9000, 9000, 9000, 9008, 9012, 9016, 9016, 9016, 9024, 9024,
        9024,
    ];
    assert_eq!(leak(&long, 1000), None);
    assert_eq!(leak(&long[15..], 1000), None);
    // 300 bytes per flap, every window.
    let leaking: Vec<u64> = (0..4).map(|w| 7700 + w * 293).collect();
    assert!(leak(&leaking, 1000).is_some());
}
