//! Limits: max-prefix ends a session with Cease 6/1 and holds the peer down; a peer that
//! announces 1,000,000 prefixes against a limit of 10,000 does not make ipipd's memory
//! grow with what it sent, and other sessions stay up; a peer flooding UPDATEs does not
//! starve another session's keepalives; with the FIB on, the kernel ends a flood of
//! routes holding every one, and a flood of withdrawals holding none.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bgp::wire::Message;
use interop::config::Peer;
use interop::harness::{require_root, wait_until, Worker};
use interop::ipipd::Ipipd;
use interop::rawpeer::craft::{base, pool_host, prefix, prefixes, update, HOSTS_PER_UPDATE};
use interop::rawpeer::testbed::{
    ipipd_pid, log_tail, memory_kib, peer_status, route_from, Testbed,
};
use interop::rawpeer::{default_open, Event, RawPeer, RawWriter};
use ipnet::Ipv4Net;

const WAIT: Duration = Duration::from_secs(10);

/// UPDATEs announcing hosts `from..to` with next hop `nh`, concatenated.
fn announcements(from: u32, to: u32, nh: Ipv4Addr) -> Vec<u8> {
    let attrs = base(&[], nh, true);
    let all: Vec<Ipv4Net> = (from..to).map(pool_host).collect();
    all.chunks(HOSTS_PER_UPDATE)
        .flat_map(|c| update(&[], &attrs, &prefixes(c)))
        .collect()
}

fn withdrawals(from: u32, to: u32) -> Vec<u8> {
    let all: Vec<Ipv4Net> = (from..to).map(pool_host).collect();
    all.chunks(HOSTS_PER_UPDATE)
        .flat_map(|c| update(&prefixes(c), &[], &[]))
        .collect()
}

/// Writes `bytes` in 64 KiB pieces; stops quietly when the connection goes.
fn pour(w: &RawWriter, bytes: &[u8]) -> usize {
    let mut sent = 0;
    for piece in bytes.chunks(64 * 1024) {
        if w.send_raw(piece).is_err() {
            break;
        }
        sent += piece.len();
    }
    sent
}

fn established_count(d: &Ipipd<'_>, a: Ipv4Addr) -> u64 {
    peer_status(d, a).map(|p| p.established_count).unwrap_or(0)
}

fn state(d: &Ipipd<'_>, a: Ipv4Addr) -> String {
    peer_status(d, a).map(|p| p.state).unwrap_or_default()
}

/// A session with hold time 3 that sends its keepalives every second and records the
/// longest silence from ipipd.
struct Watcher(Worker<Duration>);

impl Watcher {
    fn start(tb: &Testbed, address: Ipv4Addr) -> Result<Watcher> {
        let mut p = RawPeer::establish(&tb.dial(address), &default_open(64512, address, 3))?;
        p.start_keepalives(Duration::from_secs(1));
        Ok(Watcher(Worker::spawn(move |stop| {
            let mut last = Instant::now();
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                match p.recv(Duration::from_millis(200)) {
                    Ok(Event::Message(Message::Notification(n))) => {
                        bail!("the watched session got NOTIFICATION {n}")
                    }
                    Ok(Event::Closed) => bail!("the watched session was closed"),
                    Ok(Event::Message(_)) => {
                        worst = worst.max(last.elapsed());
                        last = Instant::now();
                    }
                    Err(_) => {}
                }
            }
            Ok(worst.max(last.elapsed()))
        })))
    }

    /// The longest gap between two messages from ipipd.
    fn finish(self) -> Result<Duration> {
        self.0.finish()
    }
}

#[test]
fn max_prefix_memory_and_starvation() -> Result<()> {
    require_root();
    let tb = Testbed::new(5)?;
    let (small, big, stable, watched, churn) = (
        Testbed::addr(0),
        Testbed::addr(1),
        Testbed::addr(2),
        Testbed::addr(3),
        Testbed::addr(4),
    );
    let peers = [
        Peer::new(small).asn(64512).max_prefixes(100),
        Peer::new(big).asn(64512).max_prefixes(10000),
        Peer::new(stable).asn(64512),
        Peer::new(watched).asn(64512),
        Peer::new(churn).asn(64512),
    ];
    let d = tb.start(&tb.config(&peers))?;
    let pid = ipipd_pid(&d)?;

    // Other sessions whose fate is checked throughout.
    let s = RawPeer::establish(&tb.dial(stable), &default_open(64512, stable, 0))?;
    let stable_routes: Vec<Ipv4Net> = (0..10)
        .map(|i| Ipv4Net::new(Ipv4Addr::new(100, 70, i, 0), 24).unwrap_or_default())
        .collect();
    s.send_raw(&update(
        &[],
        &base(&[], stable, true),
        &prefixes(&stable_routes),
    ))?;
    let w = Watcher::start(&tb, watched)?;
    for r in &stable_routes {
        interop::rawpeer::testbed::wait_learned(&d, &r.to_string(), stable, WAIT)?;
    }
    d.wait_established(&watched.to_string(), WAIT)?;

    // 1. Max-prefix: 101 prefixes against 100.
    let mut m = RawPeer::establish(&tb.dial(small), &default_open(64512, small, 0))?;
    m.send_raw(&announcements(0, 101, small))?;
    let n = m.expect_notification(WAIT)?;
    let want = [0u8, 1, 1, 0, 0, 0, 100];
    if (n.code, n.subcode, n.data.as_ref()) != (6, 1, &want[..]) {
        bail!(
            "max-prefix NOTIFICATION {}/{} data {:02x?}, expected 6/1 data {want:02x?}",
            n.code,
            n.subcode,
            n.data.as_ref()
        );
    }
    let reset_at = Instant::now();
    m.expect_closed(WAIT)?;
    wait_until(WAIT, "the max-prefix peer's routes removed", || {
        let routes = d.routes().ok()?;
        (!routes
            .iter()
            .any(|r| r.peer.as_deref() == Some(small.to_string().as_str())))
        .then_some(())
    })?;
    // Held down: a new connection is closed before OPEN.
    for _ in 0..3 {
        let mut again = RawPeer::connect(&tb.dial(small))?;
        match again.recv(WAIT)? {
            Event::Closed => {}
            other => bail!("reconnect during the hold-down got {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!(
        "max-prefix: Cease 6/1 data {:02x?}; reconnects refused during the hold-down",
        n.data.as_ref()
    );

    // 2. One million prefixes against a limit of 10,000.
    let (rss0, hwm0) = memory_kib(pid)?;
    let ups_watched = established_count(&d, watched);
    let ups_stable = established_count(&d, stable);
    let mut f = RawPeer::establish(&tb.dial(big), &default_open(64512, big, 0))?;
    let flood = announcements(0, 1_000_000, big);
    let total = flood.len();
    let started = Instant::now();
    let writer = f.writer();
    let pourer = std::thread::spawn(move || pour(&writer, &flood));
    let n = f.expect_notification(Duration::from_secs(60))?;
    let took = started.elapsed();
    let sent = pourer
        .join()
        .map_err(|_| anyhow::anyhow!("flood thread panicked"))?;
    if (n.code, n.subcode, n.data.as_ref()) != (6, 1, &[0u8, 1, 1, 0, 0, 0x27, 0x10][..]) {
        bail!(
            "1M flood: NOTIFICATION {}/{} data {:02x?}",
            n.code,
            n.subcode,
            n.data.as_ref()
        );
    }
    drop(f);
    wait_until(
        Duration::from_secs(60),
        "the flood's routes removed",
        || {
            let st = peer_status(&d, big)?;
            (st.received == 0).then_some(())
        },
    )?;
    let (rss1, hwm1) = memory_kib(pid)?;
    println!(
        "1M prefixes vs limit 10000: reset after {took:.1?} ({} of {} MB sent); RSS {rss0} -> {rss1} KiB, high-water mark {hwm0} -> {hwm1} KiB",
        sent / 1_000_000,
        total / 1_000_000
    );
    // Bounded: 10,000 routes cost a few MiB; a million would cost hundreds.
    if hwm1.saturating_sub(rss0) > 64 * 1024 {
        bail!(
            "memory grew by {} KiB during a flood against a 10,000 limit",
            hwm1 - rss0
        );
    }
    if established_count(&d, watched) != ups_watched || established_count(&d, stable) != ups_stable
    {
        bail!("another session was reset during the flood");
    }

    // 3. A flood of announcements and withdrawals on one session, keepalives on another.
    let c = RawPeer::establish(&tb.dial(churn), &default_open(64512, churn, 0))?;
    let writer = c.writer();
    let seconds: u64 = std::env::var("HOSTILE_FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let (add, del) = (announcements(0, 50_000, churn), withdrawals(0, 50_000));
    let churner = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut rounds = 0u32;
        while Instant::now() < end {
            if pour(&writer, &add) < add.len() || pour(&writer, &del) < del.len() {
                break;
            }
            rounds += 1;
        }
        rounds
    });
    let rounds = churner
        .join()
        .map_err(|_| anyhow::anyhow!("churn thread panicked"))?;
    // The last withdrawals are processed: the sentinel after them shows up.
    let sentinel = Ipv4Net::new(Ipv4Addr::new(100, 71, 0, 0), 24).unwrap_or_default();
    c.send_raw(&update(&[], &base(&[], churn, true), &prefix(sentinel)))?;
    interop::rawpeer::testbed::wait_learned(
        &d,
        &sentinel.to_string(),
        churn,
        Duration::from_secs(120),
    )?;
    let worst = w.finish()?;
    println!("churn: {rounds} rounds of 50,000 announcements and withdrawals; longest silence on the hold-time-3 session {worst:.1?}");
    if worst >= Duration::from_secs(3) {
        bail!("a session with hold time 3 heard nothing for {worst:?} during the flood");
    }
    if established_count(&d, watched) != ups_watched || state(&d, watched) != "Established" {
        bail!("the watched session was reset during the flood");
    }
    let routes = d.routes()?;
    for r in &stable_routes {
        if route_from(&routes, &r.to_string(), stable).is_none() {
            bail!("the stable peer's {r} is gone");
        }
    }

    // 4. After the hold-down, the max-prefix peer may come back.
    let left = Duration::from_secs(31).saturating_sub(reset_at.elapsed());
    std::thread::sleep(left);
    let back = wait_until(
        Duration::from_secs(15),
        "the max-prefix peer re-established after the hold-down",
        || RawPeer::establish(&tb.dial(small), &default_open(64512, small, 0)).ok(),
    )
    .context("after the hold-down")?;
    d.wait_established(&small.to_string(), WAIT)?;
    drop(back);
    Ok(())
}

/// The FIB view is published less often during a flood (a copy of the table each time),
/// but never lost: after 100,000 routes in 4096-octet UPDATEs the kernel holds them all,
/// and after their withdrawal none.
#[test]
fn fib_follows_a_flood() -> Result<()> {
    require_root();
    const N: u32 = 100_000;
    let tb = Testbed::new(1)?;
    let a = Testbed::addr(0);
    let spec = Peer::new(a).asn(64512);
    let d = tb.start(&tb.config(&[spec]))?;
    let f = RawPeer::establish(&tb.dial(a), &default_open(64512, a, 0))?;
    let in_kernel = || {
        tb.node
            .ip(&["-4", "route", "show", "proto", "bgp"])
            .map(|s| {
                // pool_host(0..100_000) spans 100.80.0.0 to 100.81.134.159.
                s.lines()
                    .filter(|l| l.starts_with("100.80.") || l.starts_with("100.81."))
                    .count()
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    pour(&f.writer(), &announcements(0, N, a));
    let mut seen = 0;
    wait_until(
        Duration::from_secs(90),
        "the kernel to hold all 100,000 flooded routes",
        || {
            seen = in_kernel();
            (seen == N as usize).then_some(())
        },
    )
    .with_context(|| format!("{seen} in the kernel; ipipd log:\n{}", log_tail(&d, 20)))?;
    let added = started.elapsed();
    let started = Instant::now();
    pour(&f.writer(), &withdrawals(0, N));
    wait_until(
        Duration::from_secs(90),
        "the kernel to drop all 100,000 withdrawn routes",
        || (in_kernel() == 0).then_some(()),
    )?;
    println!(
        "FIB flood: 100,000 routes in the kernel {:.2} s after the first UPDATE, gone {:.2} s after the first withdrawal",
        added.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
