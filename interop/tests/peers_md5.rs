//! Session protection with BIRD 2. TCP-MD5 (RFC 2385): a matching password
//! establishes and routes flow; a wrong one never reaches Established, until
//! a reload corrects it. GTSM
//! (RFC 5082): with `ttl security` on both sides the session comes up; when
//! only ipipd asks for it, BIRD's TTL-1 packets are refused.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use interop::bird::{self, Bird};
use interop::harness::{require_root, Lan};
use interop::ipipd::{Ipipd, NodeConfig};

const A: &str = "172.29.235.101";
const GOOD: &str = "172.29.235.140";
const BAD: &str = "172.29.235.141";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_GOOD: &str = "101.99.1.0/26";
const BLOCK_BAD: &str = "101.99.2.0/26";
const T: Duration = Duration::from_secs(20);
/// How long the wrong password is watched.
const NEVER_FOR: Duration = Duration::from_secs(15);

#[test]
fn md5_with_bird() -> Result<()> {
    require_root();
    let start = Instant::now();
    let mut lan = Lan::new()?;
    let (na, ngood, nbad) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{GOOD}/24"))?,
        lan.host(&format!("{BAD}/24"))?,
    );
    na.add_standin_tunl0()?;
    let good = Bird::start(
        &ngood,
        &(bird::conf_base(GOOD, &[BLOCK_GOOD]) + &bird::conf_peer("a", GOOD, A, "password \"x\";")),
    )?;
    let bad = Bird::start(
        &nbad,
        &(bird::conf_base(BAD, &[BLOCK_BAD]) + &bird::conf_peer("a", BAD, A, "password \"x\";")),
    )?;
    let mut cfg = NodeConfig::new(A, BLOCK_A)
        .peer(GOOD, |p| p.password("x"))
        .peer(BAD, |p| p.password("wrong"));
    cfg = cfg.no_mesh();
    let a = Ipipd::start(&na, &cfg.toml())?;

    a.wait_established(GOOD, T)?;
    good.wait_established("a", T)?;
    a.wait_route(BLOCK_GOOD, GOOD, T)?;
    good.wait_route(BLOCK_A, A, T)?;
    na.wait_bgp_route_line(&format!("{BLOCK_GOOD} via {GOOD} dev tunl0 onlink"), T)?;
    println!(
        "matching password: Established and routes exchanged after {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let samples = never_established(&a, BAD, &bad, "a", NEVER_FOR)?;
    ensure!(
        a.best(BLOCK_BAD).is_none(),
        "ipipd learned {BLOCK_BAD} over a session with a wrong password"
    );
    ensure!(samples > 50, "too few samples: {samples}");
    // The good session is unaffected by the bad one's attempts.
    let p = a
        .peer(GOOD)
        .with_context(|| format!("{} not in show peers", GOOD))?;
    ensure!(
        p.state == "Established" && p.established_count == 1,
        "the good session flapped: {p:?}"
    );
    println!(
        "wrong password: never Established in {:.0} s ({samples} samples)",
        NEVER_FOR.as_secs_f64()
    );

    // The right password by reload (SIGHUP): the session comes up.
    let mut fixed = NodeConfig::new(A, BLOCK_A)
        .peer(GOOD, |p| p.password("x"))
        .peer(BAD, |p| p.password("x"));
    fixed = fixed.no_mesh();
    a.reconfigure(&fixed.toml())?;
    a.wait_established(BAD, T)?;
    a.wait_route(BLOCK_BAD, BAD, T)?;
    bad.wait_route(BLOCK_A, A, T)?;
    let p = a
        .peer(GOOD)
        .with_context(|| format!("{} not in show peers", GOOD))?;
    ensure!(
        p.state == "Established" && p.established_count == 1,
        "reloading the other peer's password reset this session: {p:?}"
    );
    println!(
        "password corrected by reload: Established; done after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Watches that the session with `addr` (BIRD protocol `proto`) never gets
/// to Established for `limit`; returns the number of samples.
fn never_established(
    a: &Ipipd,
    addr: &str,
    bird: &Bird,
    proto: &str,
    limit: Duration,
) -> Result<u32> {
    let t = Instant::now();
    let mut samples = 0;
    while t.elapsed() < limit {
        ensure!(
            a.peer_state(addr).as_deref() != Some("Established"),
            "ipipd reached Established with {addr}"
        );
        ensure!(
            bird.protocol_state(proto).as_deref() != Some("Established"),
            "BIRD at {addr} reached Established"
        );
        samples += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(samples)
}

#[test]
fn gtsm_with_bird() -> Result<()> {
    require_root();
    let start = Instant::now();
    let mut lan = Lan::new()?;
    let (na, ngood, nbad) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{GOOD}/24"))?,
        lan.host(&format!("{BAD}/24"))?,
    );
    na.add_standin_tunl0()?;
    let good = Bird::start(
        &ngood,
        &(bird::conf_base(GOOD, &[BLOCK_GOOD])
            + &bird::conf_peer("a", GOOD, A, "ttl security on;")),
    )?;
    let bad = Bird::start(
        &nbad,
        &(bird::conf_base(BAD, &[BLOCK_BAD]) + &bird::conf_peer("a", BAD, A, "")),
    )?;
    // Passive towards the peer without GTSM: its connections, whose first
    // segments arrive before ipipd can set a minimum TTL on the accepted
    // socket, are what is checked.
    let mut cfg = NodeConfig::new(A, BLOCK_A)
        .peer(GOOD, |p| p.ttl_security())
        .peer(BAD, |p| p.ttl_security().passive(true));
    cfg = cfg.no_mesh();
    let a = Ipipd::start(&na, &cfg.toml())?;

    a.wait_established(GOOD, T)?;
    good.wait_established("a", T)?;
    a.wait_route(BLOCK_GOOD, GOOD, T)?;
    good.wait_route(BLOCK_A, A, T)?;
    let samples = never_established(&a, BAD, &bad, "a", Duration::from_secs(10))?;
    ensure!(
        a.best(BLOCK_BAD).is_none(),
        "ipipd learned {BLOCK_BAD} from a peer without GTSM"
    );
    ensure!(
        a.log().contains("TTL below 255"),
        "ipipd never refused a connection from the peer without GTSM:\n{}",
        a.log()
    );
    println!("GTSM: on both sides Established; BIRD without it never Established ({samples} samples); done after {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
