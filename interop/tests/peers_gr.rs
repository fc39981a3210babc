//! Graceful restart (RFC 4724) both ways. ipipd restarting (SIGTERM, then
//! kill -9): BIRD 2 and GoBGP keep its block the whole time (polled every
//! 100 ms), ipipd keeps its kernel routes, and a block it no longer has after
//! the restart goes from the peers at its End-of-RIB. BIRD restarting
//! (`birdc graceful restart`, then `bird -R`): ipipd keeps BIRD's blocks,
//! marked stale, the kernel route is never deleted, and the block BIRD no
//! longer announces goes at BIRD's End-of-RIB.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use interop::bird::{self, Bird};
use interop::gobgp::{self, Gobgp};
use interop::harness::{require_root, wait_until, Lan, RouteMonitor, Sampler, TempDir};
use interop::ipipd::{Ipipd, NodeConfig};

const A: &str = "172.29.235.101";
const BIRD: &str = "172.29.235.140";
const GOBGP: &str = "172.29.235.150";
const BLOCK_A: &str = "101.76.9.128/26";
/// Dropped from ipipd's config across its first restart, and the next.
const BLOCK_A2: &str = "101.76.9.192/26";
const BLOCK_A3: &str = "101.76.10.0/26";
const BLOCK_BIRD: &str = "101.99.1.0/26";
/// Dropped from BIRD's config across its restart.
const BLOCK_BIRD2: &str = "101.99.1.64/26";
const BLOCK_GOBGP: &str = "101.100.2.0/26";
const T: Duration = Duration::from_secs(20);
const EVERY: Duration = Duration::from_millis(100);
/// A block the restarted speaker no longer announces must go at its
/// End-of-RIB: well before the 30 s (ipipd) or 120 s (BIRD) restart time.
const GONE_AT_EOR: Duration = Duration::from_secs(10);

fn node_a(blocks: &[&str]) -> String {
    NodeConfig::new(A, BLOCK_A)
        .mesh(&[A, BIRD, GOBGP])
        .blocks(blocks)
        .toml()
}

#[test]
fn peers_keep_ipipd_routes_while_it_restarts() -> Result<()> {
    require_root();
    let start = Instant::now();
    let mut lan = Lan::new()?;
    let (na, nbird, ngobgp) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{BIRD}/24"))?,
        lan.host(&format!("{GOBGP}/24"))?,
    );
    na.add_standin_tunl0()?;
    let bird = Bird::start(
        &nbird,
        &(bird::conf_base(BIRD, &[BLOCK_BIRD]) + &bird::conf_peer("a", BIRD, A, "")),
    )?;
    let gobgp = Gobgp::start(&ngobgp, &gobgp::conf(GOBGP, &[(A, "")]), 50051)?;
    gobgp.add_route(BLOCK_GOBGP)?;
    let mut a = Ipipd::start(&na, &node_a(&[BLOCK_A, BLOCK_A2, BLOCK_A3]))?;
    let monitor_dir = TempDir::new("monitor")?;

    for (sig, dropped, blocks) in [
        ("TERM", BLOCK_A2, &[BLOCK_A, BLOCK_A3][..]),
        ("KILL", BLOCK_A3, &[BLOCK_A][..]),
    ] {
        a.wait_established(BIRD, T)?;
        a.wait_established(GOBGP, T)?;
        bird.wait_route(BLOCK_A, A, T)?;
        gobgp.wait_route(BLOCK_A, A, T)?;
        a.wait_route(BLOCK_BIRD, BIRD, T)?;
        a.wait_route(BLOCK_GOBGP, GOBGP, T)?;
        bird.wait_route(dropped, A, T)?;
        gobgp.wait_route(dropped, A, T)?;
        // The peers' routes have been re-sent after the previous restart: not stale any more.
        wait_fresh(&gobgp, BLOCK_A)?;
        // It comes back without `dropped`: peers must let go of it at its End-of-RIB.
        a.write_config(&node_a(blocks))?;

        let monitor = RouteMonitor::start(&na, &monitor_dir)?;
        let sampler = Sampler::new();
        let restarted = std::thread::scope(|s| -> Result<_> {
            let on_bird = sampler.run(s, EVERY, || match bird.best(BLOCK_A) {
                Some(r) if r.via.as_deref() == Some(A) => Ok(()),
                other => Err(format!("BIRD has {other:?}")),
            });
            let on_gobgp = sampler.run(s, EVERY, || match gobgp.best(BLOCK_A) {
                Some(p) if p.next_hop.as_deref() == Some(A) => Ok(()),
                other => Err(format!("GoBGP has {other:?}")),
            });
            let t = Instant::now();
            let r = restart(&mut a, sig).and_then(|()| {
                let t = Instant::now();
                bird.wait_no_route(dropped, GONE_AT_EOR)?;
                gobgp.wait_no_route(dropped, GONE_AT_EOR)?;
                println!("SIG{sig}: the block ipipd dropped while down went from BIRD and GoBGP {:.1} s after re-establishment", t.elapsed().as_secs_f64());
                Ok(())
            });
            sampler.finish();
            let bird_seen = on_bird
                .join()
                .map_err(|_| anyhow::anyhow!("BIRD sampler panicked"))?;
            let gobgp_seen = on_gobgp
                .join()
                .map_err(|_| anyhow::anyhow!("GoBGP sampler panicked"))?;
            r?;
            Ok((t.elapsed(), bird_seen, gobgp_seen))
        });
        let (took, bird_seen, gobgp_seen) = restarted?;
        println!(
            "ipipd restart after SIG{sig}: {:.1} s until routes re-sent; BIRD polled {} times, GoBGP {} times",
            took.as_secs_f64(),
            bird_seen.total,
            gobgp_seen.total
        );
        ensure!(
            bird_seen.misses.is_empty(),
            "SIG{sig}: BIRD lost {BLOCK_A} during ipipd's restart (ms, seen): {:?}",
            bird_seen.misses
        );
        ensure!(
            gobgp_seen.misses.is_empty(),
            "SIG{sig}: GoBGP lost {BLOCK_A} during ipipd's restart (ms, seen): {:?}",
            gobgp_seen.misses
        );
        ensure!(
            bird_seen.total > 5 && gobgp_seen.total > 5,
            "SIG{sig}: too few samples: {} / {}",
            bird_seen.total,
            gobgp_seen.total
        );
        // ipipd is the restarting speaker with F=1: its kernel routes survive.
        for prefix in [BLOCK_BIRD, BLOCK_GOBGP] {
            let deleted = monitor.deleted(prefix);
            ensure!(
                deleted.is_empty(),
                "SIG{sig}: ipipd's restart deleted the kernel route for {prefix}: {deleted:?}"
            );
        }
    }
    println!(
        "ipipd graceful restart: done after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Stops ipipd with `sig`, starts it again, and waits until it has its
/// sessions and the peers' routes back.
fn restart(a: &mut Ipipd, sig: &str) -> Result<()> {
    a.stop(sig)?;
    std::thread::sleep(Duration::from_millis(500));
    a.restart()?;
    a.wait_established(BIRD, T)?;
    a.wait_established(GOBGP, T)?;
    a.wait_route(BLOCK_BIRD, BIRD, T)?;
    a.wait_route(BLOCK_GOBGP, GOBGP, T)?;
    Ok(())
}

fn wait_fresh(gobgp: &Gobgp, prefix: &str) -> Result<()> {
    wait_until(T, &format!("GoBGP: {prefix} not stale"), || {
        gobgp.best(prefix).filter(|p| !p.stale)
    })
    .map(drop)
    .context("GoBGP kept the block stale")
}

#[test]
fn ipipd_keeps_bird_routes_while_bird_restarts() -> Result<()> {
    require_root();
    let start = Instant::now();
    let mut lan = Lan::new()?;
    let (na, nbird) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{BIRD}/24"))?,
    );
    na.add_standin_tunl0()?;
    let bird_conf =
        |blocks: &[&str]| bird::conf_base(BIRD, blocks) + &bird::conf_peer("a", BIRD, A, "");
    let mut bird = Bird::start(&nbird, &bird_conf(&[BLOCK_BIRD, BLOCK_BIRD2]))?;
    let a = Ipipd::start(&na, &NodeConfig::new(A, BLOCK_A).mesh(&[A, BIRD]).toml())?;
    let p = a.wait_established(BIRD, T)?;
    ensure!(
        p.graceful_restart,
        "graceful restart not negotiated with BIRD: {p:?}"
    );
    a.wait_route(BLOCK_BIRD, BIRD, T)?;
    a.wait_route(BLOCK_BIRD2, BIRD, T)?;
    let line = format!("{BLOCK_BIRD} via {BIRD} dev tunl0 onlink");
    na.wait_bgp_route_line(&line, T)?;
    bird.wait_route(BLOCK_A, A, T)?;

    let dir = TempDir::new("monitor")?;
    let monitor = RouteMonitor::start(&na, &dir)?;
    let sampler = Sampler::new();
    let stale = std::sync::atomic::AtomicUsize::new(0);
    let (seen, stale_seen, fresh_after) = std::thread::scope(|s| -> Result<_> {
        let on_a = sampler.run(s, EVERY, || {
            let r = a.best(BLOCK_BIRD);
            match &r {
                Some(r) if r.next_hop.as_deref() == Some(BIRD) && r.installed => {
                    if r.stale {
                        stale.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if na.bgp_routes().lines().any(|l| l.trim() == line) {
                        Ok(())
                    } else {
                        Err(format!("kernel: {:?}", na.bgp_routes()))
                    }
                }
                other => Err(format!("ipipd has {other:?}")),
            }
        });
        let t = Instant::now();
        let r = (|| -> Result<Duration> {
            bird.graceful_stop()?;
            // While BIRD is away, ipipd holds its blocks as stale.
            for prefix in [BLOCK_BIRD, BLOCK_BIRD2] {
                wait_until(T, &format!("ipipd marks {prefix} stale"), || {
                    a.best(prefix).filter(|r| r.stale && r.installed)
                })?;
            }
            std::thread::sleep(Duration::from_secs(1));
            // BIRD comes back without BLOCK_BIRD2.
            bird.write_conf(&bird_conf(&[BLOCK_BIRD]))?;
            bird.restart(&["-R"])?;
            a.wait_established(BIRD, T)?;
            let up = Instant::now();
            wait_until(T, "ipipd refreshes BIRD's block", || {
                a.best(BLOCK_BIRD).filter(|r| !r.stale)
            })?;
            let fresh = t.elapsed();
            // What BIRD did not announce again goes at its End-of-RIB.
            a.wait_no_route(BLOCK_BIRD2, GONE_AT_EOR)?;
            na.wait_no_bgp_route(BLOCK_BIRD2, GONE_AT_EOR)?;
            println!(
                "BIRD's dropped block went from ipipd {:.1} s after re-establishment",
                up.elapsed().as_secs_f64()
            );
            std::thread::sleep(Duration::from_secs(1));
            Ok(fresh)
        })();
        sampler.finish();
        let seen = on_a
            .join()
            .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
        Ok((seen, stale.load(std::sync::atomic::Ordering::Relaxed), r?))
    })?;
    println!(
        "BIRD graceful restart: ipipd polled {} times, stale in {} of them; fresh again after {:.1} s",
        seen.total,
        stale_seen,
        fresh_after.as_secs_f64()
    );
    ensure!(
        seen.misses.is_empty(),
        "ipipd lost BIRD's block during BIRD's restart (ms, seen): {:?}",
        seen.misses
    );
    ensure!(stale_seen > 0, "ipipd never showed BIRD's block as stale");
    let deleted = monitor.deleted(BLOCK_BIRD);
    ensure!(deleted.is_empty(), "the kernel route for {BLOCK_BIRD} was deleted during BIRD's restart: {deleted:?}\nmonitor:\n{}", monitor.text());
    bird.wait_route(BLOCK_A, A, T)?;
    println!(
        "BIRD graceful restart: done after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
