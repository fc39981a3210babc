//! A frozen peer (SIGSTOP): its routes go when the hold time (9 s) runs out,
//! with a Hold Timer Expired NOTIFICATION; everything else stays. The frozen
//! side turns graceful restart off, so no stale routes are kept for it.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use interop::bird::{self, Bird};
use interop::harness::{require_root, wait_until, Lan};
use interop::ipipd::{Ipipd, NodeConfig};

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const BIRD: &str = "172.29.235.140";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_B: &str = "101.88.228.192/26";
const BLOCK_BIRD: &str = "101.99.1.0/26";
const T: Duration = Duration::from_secs(20);
/// Hold time 9 s plus slack for a loaded machine.
const GONE_WITHIN: Duration = Duration::from_secs(20);

fn mesh(addr: &str, block: &str, gr: u16) -> String {
    let mut c = NodeConfig::new(addr, block).mesh(&[A, B, BIRD]);
    c.bgp.graceful_restart_time = Some(gr);
    c.toml()
}

fn bird_conf(extra: &str) -> String {
    bird::conf_base(BIRD, &[BLOCK_BIRD])
        + &bird::conf_peer("a", BIRD, A, extra)
        + &bird::conf_peer("b", BIRD, B, extra)
}

#[test]
fn frozen_ipipd_loses_its_routes_after_hold_time() -> Result<()> {
    require_root();
    let mut lan = Lan::new()?;
    let (na, nb, nbird) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{B}/24"))?,
        lan.host(&format!("{BIRD}/24"))?,
    );
    na.add_standin_tunl0()?;
    nb.add_standin_tunl0()?;
    let bird = Bird::start(&nbird, &bird_conf(""))?;
    let a = Ipipd::start(&na, &mesh(A, BLOCK_A, 30))?;
    // B is the one to freeze: no graceful restart, so peers keep nothing stale.
    let b = Ipipd::start(&nb, &mesh(B, BLOCK_B, 0))?;
    a.wait_route(BLOCK_B, B, T)?;
    a.wait_route(BLOCK_BIRD, BIRD, T)?;
    bird.wait_route(BLOCK_B, B, T)?;
    bird.wait_route(BLOCK_A, A, T)?;

    let t = Instant::now();
    b.signal("STOP")?;
    let r = (|| -> Result<()> {
        a.wait_no_route(BLOCK_B, GONE_WITHIN)?;
        let on_a = t.elapsed();
        na.wait_no_bgp_route(BLOCK_B, T)?;
        bird.wait_no_route(BLOCK_B, GONE_WITHIN)?;
        let on_bird = t.elapsed();
        println!(
            "frozen ipipd: its block gone from ipipd after {:.1} s, from BIRD after {:.1} s",
            on_a.as_secs_f64(),
            on_bird.as_secs_f64()
        );
        let p = a
            .peer(B)
            .with_context(|| format!("{} not in show peers", B))?;
        ensure!(
            p.info.as_str().contains("(4/0)"),
            "ipipd's session with the frozen node did not end with Hold Timer Expired: {p:?}"
        );
        // The others stay.
        a.wait_route(BLOCK_BIRD, BIRD, T)?;
        na.wait_bgp_route_line(&format!("{BLOCK_BIRD} via {BIRD} dev tunl0 onlink"), T)?;
        bird.wait_route(BLOCK_A, A, T)?;
        let p = a
            .peer(BIRD)
            .with_context(|| format!("{} not in show peers", BIRD))?;
        ensure!(
            p.state == "Established" && p.established_count == 1,
            "the session with BIRD flapped: {p:?}"
        );
        Ok(())
    })();
    b.signal("CONT")?;
    r?;
    // Thawed, it comes back.
    a.wait_route(BLOCK_B, B, Duration::from_secs(40))?;
    Ok(())
}

#[test]
fn frozen_bird_loses_its_routes_after_hold_time() -> Result<()> {
    require_root();
    let mut lan = Lan::new()?;
    let (na, nb, nbird) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{B}/24"))?,
        lan.host(&format!("{BIRD}/24"))?,
    );
    na.add_standin_tunl0()?;
    nb.add_standin_tunl0()?;
    // BIRD waits `error wait time` (60 s by default) after a hold-timer error
    // before it accepts the session again; shorten that for the thaw at the end.
    let bird = Bird::start(
        &nbird,
        &bird_conf("graceful restart off; error wait time 1, 5;"),
    )?;
    let a = Ipipd::start(&na, &mesh(A, BLOCK_A, 30))?;
    let b = Ipipd::start(&nb, &mesh(B, BLOCK_B, 30))?;
    for d in [&a, &b] {
        d.wait_route(BLOCK_BIRD, BIRD, T)?;
    }
    a.wait_route(BLOCK_B, B, T)?;
    b.wait_route(BLOCK_A, A, T)?;

    let t = Instant::now();
    bird.signal("STOP")?;
    let r = (|| -> Result<()> {
        for (d, name) in [(&a, "A"), (&b, "B")] {
            d.wait_no_route(BLOCK_BIRD, GONE_WITHIN)?;
            d.ns.wait_no_bgp_route(BLOCK_BIRD, T)?;
            println!(
                "frozen BIRD: its block gone from ipipd {name} after {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let p = d
                .peer(BIRD)
                .with_context(|| format!("{} not in show peers", BIRD))?;
            ensure!(p.info.as_str().contains("(4/0)"), "ipipd {name}: the session with frozen BIRD did not end with Hold Timer Expired: {p:?}");
        }
        // The ipipd pair is untouched.
        a.wait_route(BLOCK_B, B, T)?;
        b.wait_route(BLOCK_A, A, T)?;
        na.wait_bgp_route_line(&format!("{BLOCK_B} via {B} dev tunl0 onlink"), T)?;
        let p = a
            .peer(B)
            .with_context(|| format!("{} not in show peers", B))?;
        ensure!(
            p.state == "Established" && p.established_count == 1,
            "the session between the ipipd nodes flapped: {p:?}"
        );
        Ok(())
    })();
    bird.signal("CONT")?;
    r?;
    wait_until(Duration::from_secs(40), "BIRD back after SIGCONT", || {
        a.best(BLOCK_BIRD)
    })?;
    Ok(())
}
