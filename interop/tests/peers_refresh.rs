//! Route refresh (RFC 2918, RFC 7313) with real peers: BIRD 2 (`birdc reload
//! in`, enhanced route refresh) and GoBGP (`neighbor softresetin`) ask ipipd
//! to re-send its routes, and BIRD re-sends its own (`birdc reload out`).
//! Every side keeps the other's blocks the whole time and the sessions stay up.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use interop::bird::{self, Bird};
use interop::gobgp::{self, Gobgp};
use interop::harness::{require_root, Lan, Sampler};
use interop::ipipd::{Ipipd, NodeConfig};

const A: &str = "172.29.235.101";
const BIRD: &str = "172.29.235.140";
const GOBGP: &str = "172.29.235.150";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_A2: &str = "101.76.9.192/26";
const BLOCK_BIRD: &str = "101.99.1.0/26";
const BLOCK_GOBGP: &str = "101.100.2.0/26";
const T: Duration = Duration::from_secs(20);

#[test]
fn bird_and_gobgp_refresh_ipipd_routes() -> Result<()> {
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
    let mut cfg = NodeConfig::new(A, BLOCK_A).mesh(&[A, BIRD, GOBGP]);
    cfg = cfg.block(BLOCK_A2);
    let a = Ipipd::start(&na, &cfg.toml())?;
    for prefix in [BLOCK_A, BLOCK_A2] {
        bird.wait_route(prefix, A, T)?;
        gobgp.wait_route(prefix, A, T)?;
    }
    a.wait_route(BLOCK_BIRD, BIRD, T)?;
    a.wait_route(BLOCK_GOBGP, GOBGP, T)?;
    let all = bird.birdc(&["show", "protocols", "all", "a"])?;
    let theirs = all
        .split("Neighbor capabilities")
        .nth(1)
        .unwrap_or_default();
    ensure!(
        theirs.contains("Enhanced refresh"),
        "BIRD did not see ipipd's enhanced route refresh capability:\n{all}"
    );

    let sampler = Sampler::new();
    let seen = std::thread::scope(|s| -> Result<_> {
        let on_bird = sampler.run(s, Duration::from_millis(100), || {
            let rs = bird.routes().map_err(|e| e.to_string())?;
            for prefix in [BLOCK_A, BLOCK_A2] {
                if !rs
                    .iter()
                    .any(|r| r.prefix == prefix && r.best && r.via.as_deref() == Some(A))
                {
                    return Err(format!("BIRD lacks {prefix}: {rs:?}"));
                }
            }
            Ok(())
        });
        let on_gobgp = sampler.run(s, Duration::from_millis(100), || {
            let rib = gobgp.rib().map_err(|e| e.to_string())?;
            for prefix in [BLOCK_A, BLOCK_A2] {
                if !rib
                    .iter()
                    .any(|p| p.prefix == prefix && p.best && p.next_hop.as_deref() == Some(A))
                {
                    return Err(format!("GoBGP lacks {prefix}: {rib:?}"));
                }
            }
            Ok(())
        });
        // And ipipd keeps BIRD's block while BIRD re-sends it (`reload out`:
        // framed by BoRR and EoRR).
        let on_a = sampler.run(s, Duration::from_millis(100), || match a.best(BLOCK_BIRD) {
            Some(r) if r.next_hop.as_deref() == Some(BIRD) && r.installed => Ok(()),
            other => Err(format!("ipipd has {other:?}")),
        });
        let r = (|| -> Result<()> {
            for _ in 0..3 {
                bird.birdc(&["reload", "in", "a"])?;
                bird.birdc(&["reload", "out", "a"])?;
                gobgp.gobgp(&["neighbor", A, "softresetin"])?;
                std::thread::sleep(Duration::from_millis(700));
            }
            std::thread::sleep(Duration::from_secs(1));
            Ok(())
        })();
        sampler.finish();
        let b = on_bird
            .join()
            .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
        let g = on_gobgp
            .join()
            .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
        let own = on_a
            .join()
            .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
        r?;
        Ok((b, g, own))
    })?;
    let (on_bird, on_gobgp, on_a) = seen;
    ensure!(
        on_a.misses.is_empty(),
        "ipipd lost BIRD's block while BIRD re-sent it (ms, seen): {:?}",
        on_a.misses
    );
    ensure!(
        on_bird.misses.is_empty(),
        "BIRD lost ipipd's blocks during route refresh (ms, seen): {:?}",
        on_bird.misses
    );
    ensure!(
        on_gobgp.misses.is_empty(),
        "GoBGP lost ipipd's blocks during route refresh (ms, seen): {:?}",
        on_gobgp.misses
    );
    for peer in [BIRD, GOBGP] {
        let p = a
            .peer(peer)
            .with_context(|| format!("{} not in show peers", peer))?;
        ensure!(
            p.state == "Established" && p.established_count == 1,
            "the session with {peer} was reset by route refresh: {p:?}"
        );
    }
    bird.wait_established("a", T)?;
    ensure!(gobgp.established(A), "GoBGP's session with ipipd went down");
    a.wait_route(BLOCK_BIRD, BIRD, T)?;
    a.wait_route(BLOCK_GOBGP, GOBGP, T)?;

    // A block withdrawn right after a refresh is gone from both.
    bird.birdc(&["reload", "in", "a"])?;
    a.reconfigure(&NodeConfig::new(A, BLOCK_A).mesh(&[A, BIRD, GOBGP]).toml())?;
    bird.wait_no_route(BLOCK_A2, T)?;
    gobgp.wait_no_route(BLOCK_A2, T)?;
    bird.wait_route(BLOCK_A, A, T)?;
    println!(
        "route refresh: BIRD polled {} times, GoBGP {} times, nothing missing; done after {:.1} s",
        on_bird.total,
        on_gobgp.total,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
