//! BFD with BIRD 2 (`protocol bfd`, `bfd on`) and FRR 8.4 (bfdd, `neighbor X
//! bfd`): sessions come Up both ways; cutting the peer's link takes its block
//! out of ipipd's kernel and ipipd's block out of the peer's table, each well
//! before the hold time (90 s here, so only BFD can do it); restoring the link
//! brings everything back. The measured times are printed.
//!
//! The link is cut by taking the peer's port off the underlay bridge: both
//! veth ends keep their carrier, so no daemon learns of it from the kernel.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use interop::bird::{self, Bird};
use interop::frr::{self, Frr};
use interop::harness::{require_root, wait_until, Lan, Netns};
use interop::ipipd::{BfdJson, Ipipd, NodeConfig};

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.140";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_B: &str = "101.101.3.0/26";
const T: Duration = Duration::from_secs(30);
/// Longer than any detection here: only BFD may end the sessions.
const HOLD: u16 = 90;

fn ipipd_config() -> String {
    let mut c = NodeConfig::new(A, BLOCK_A).mesh(&[A, B]).bfd(300, 3);
    c.bgp.hold_time = Some(HOLD);
    c.toml()
}

fn wait_bfd(a: &Ipipd<'_>, peer: &str, state: &str) -> Result<BfdJson> {
    wait_until(T, &format!("BFD with {peer} {state} at ipipd"), || {
        a.bfd_session(peer).filter(|s| s.state == state)
    })
}

/// The port of the second host on the bridge: the peer's.
const PEER_PORT: &str = "p2";

fn cut(lan: &Lan) -> Result<()> {
    lan.underlay.ip(&["link", "set", PEER_PORT, "nomaster"])?;
    Ok(())
}

fn restore(lan: &Lan) -> Result<()> {
    lan.underlay
        .ip(&["link", "set", PEER_PORT, "master", "br0"])?;
    Ok(())
}

/// Polls both sides from the cut on; returns (ipipd's kernel, the peer's table) times.
fn measure(
    na: &Netns,
    peer_has_a: impl Fn() -> bool,
    cut_at: Instant,
) -> Result<(Duration, Duration)> {
    let (mut kernel, mut table) = (None, None);
    while kernel.is_none() || table.is_none() {
        ensure!(
            cut_at.elapsed() < T,
            "after the cut: ipipd's kernel {kernel:?}, the peer's table {table:?}"
        );
        if kernel.is_none() && !na.bgp_routes().contains(BLOCK_B) {
            kernel = Some(cut_at.elapsed());
        }
        if table.is_none() && !peer_has_a() {
            table = Some(cut_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((kernel.unwrap_or_default(), table.unwrap_or_default()))
}

fn check_ipipd_up(a: &Ipipd<'_>, na: &Netns) -> Result<()> {
    wait_bfd(a, B, "Up")?;
    // Once both ends are Up, the Poll Sequence moves both from 1 s to 300 ms.
    let s = wait_until(T, "BFD at 300 ms with the peer Up", || {
        a.bfd_session(B)
            .filter(|s| s.remote_state == "Up" && s.interval_ms == 300.0)
    })?;
    ensure!(s.multiplier == 3, "multiplier: {s:?}");
    ensure!(s.detection_time_ms == Some(900.0), "detection time: {s:?}");
    ensure!(s.since.ends_with('Z'), "since: {s:?}");
    // What the CLI prints is exactly what the api type serializes to.
    a.same_shape::<Vec<BfdJson>>(&["show", "bfd", "--json"])?;
    a.wait_established(B, T)?;
    let p = a.peer(B).context("peer listed")?;
    ensure!(
        p.bfd.as_deref() == Some("Up"),
        "show peers bfd field: {p:?}"
    );
    a.wait_route(BLOCK_B, B, T)?;
    na.wait_bgp_route_line(&format!("{BLOCK_B} via {B} dev tunl0 onlink"), T)?;
    Ok(())
}

/// BIRD 2 at B with `protocol bfd` (300 ms × 3) and one iBGP session to A whose
/// protocol block gets `extra`, hold time `HOLD`.
fn bird_conf(extra: &str) -> String {
    format!(
        "{}{}{}",
        bird::conf_base(B, &[BLOCK_B]),
        bird::conf_bfd("eth0", 300, 3),
        bird::conf_peer("n1", B, A, extra).replace("hold time 9;", &format!("hold time {HOLD};"))
    )
}

#[test]
fn bird_bfd_detects_a_cut_link_both_ways() -> Result<()> {
    require_root();
    let mut lan = Lan::new()?;
    let na = lan.host(&format!("{A}/24"))?;
    let nb = lan.host(&format!("{B}/24"))?;
    na.add_standin_tunl0()?;
    // BIRD waits `error wait time` (default 60 s) after a BFD-down before it accepts
    // the session again; 1 s keeps the test short.
    let conf = bird_conf("bfd on;\n  error wait time 1, 5;");
    let bird = Bird::start(&nb, &conf)?;
    let a = Ipipd::start(&na, &ipipd_config())?;
    check_ipipd_up(&a, &na)?;
    bird.wait_established("n1", T)?;
    bird.wait_route(BLOCK_A, A, T)?;
    let sessions = bird.birdc(&["show", "bfd", "sessions"])?;
    ensure!(
        sessions.lines().any(|l| l.contains(A) && l.contains("Up")),
        "BIRD's BFD session is not Up:\n{sessions}"
    );

    let cut_at = Instant::now();
    cut(&lan)?;
    let (kernel, table) = measure(&na, || bird.best(BLOCK_A).is_some(), cut_at)?;
    println!(
        "BIRD link cut: {BLOCK_B} left ipipd's kernel after {:.0} ms, {BLOCK_A} left BIRD's table after {:.0} ms",
        kernel.as_secs_f64() * 1000.0,
        table.as_secs_f64() * 1000.0
    );
    let s = a.bfd_session(B).context("session listed")?;
    ensure!(s.state == "Down", "BFD after the cut: {s:?}");
    let p = a.peer(B).context("peer listed")?;
    ensure!(p.state != "Established", "BGP after the cut: {p:?}");

    let back = Instant::now();
    restore(&lan)?;
    check_ipipd_up(&a, &na)?;
    bird.wait_route(BLOCK_A, A, T)?;
    println!(
        "BIRD link restored: BFD, BGP and both blocks back after {:.1} s",
        back.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn frr_bfd_detects_a_cut_link_both_ways() -> Result<()> {
    require_root();
    let mut lan = Lan::new()?;
    let na = lan.host(&format!("{A}/24"))?;
    let nb = lan.host(&format!("{B}/24"))?;
    na.add_standin_tunl0()?;
    let conf = frr::conf(B, &[BLOCK_B], &[A]).replace(
        " timers 3 9\n",
        &format!(" timers 30 {HOLD}\n neighbor {A} bfd\n"),
    );
    let frr = Frr::start_with_bfd(&nb, &conf)?;
    let a = Ipipd::start(&na, &ipipd_config())?;
    check_ipipd_up(&a, &na).with_context(|| {
        format!(
            "FRR's view:\n{}\nipipd: {:?}",
            frr.vtysh("show bfd peers").unwrap_or_default(),
            a.bfd_session(B)
        )
    })?;
    frr.wait_established(A, T)?;
    frr.wait_route(BLOCK_A, A, T)?;
    let peers = frr.vtysh("show bfd peers brief")?;
    ensure!(
        peers.lines().any(|l| l.contains(A) && l.contains("up")),
        "FRR's BFD session is not up:\n{peers}"
    );

    let cut_at = Instant::now();
    cut(&lan)?;
    let (kernel, table) = measure(&na, || frr.best(BLOCK_A).is_some(), cut_at)?;
    println!(
        "FRR link cut: {BLOCK_B} left ipipd's kernel after {:.0} ms, {BLOCK_A} left FRR's table after {:.0} ms",
        kernel.as_secs_f64() * 1000.0,
        table.as_secs_f64() * 1000.0
    );

    let back = Instant::now();
    restore(&lan)?;
    check_ipipd_up(&a, &na)?;
    frr.wait_route(BLOCK_A, A, T)?;
    println!(
        "FRR link restored: BFD, BGP and both blocks back after {:.1} s",
        back.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Restarts stay lossless with BFD on: ipipd is stopped with SIGTERM, then
/// with SIGKILL, each time for 2 s (more than twice the detection time) and
/// started again. The keeper keeps BFD Up meanwhile, so BIRD sees a BGP
/// graceful restart and keeps ipipd's block throughout; ipipd's kernel keeps
/// BIRD's block too.
#[test]
fn bird_keeps_routes_over_ipipd_restarts_with_bfd() -> Result<()> {
    require_root();
    let mut lan = Lan::new()?;
    let na = lan.host(&format!("{A}/24"))?;
    let nb = lan.host(&format!("{B}/24"))?;
    na.add_standin_tunl0()?;
    let conf = bird_conf("bfd on;");
    let bird = Bird::start(&nb, &conf)?;
    let mut a = Ipipd::start(&na, &ipipd_config())?;
    check_ipipd_up(&a, &na)?;
    bird.wait_route(BLOCK_A, A, T)?;
    for sig in ["TERM", "KILL"] {
        let t0 = Instant::now();
        a.stop(sig)?;
        let (mut bird_lost, mut kernel_lost) = (false, false);
        while t0.elapsed() < Duration::from_secs(2) {
            bird_lost |= bird.best(BLOCK_A).is_none();
            kernel_lost |= !na.bgp_routes().contains(BLOCK_B);
            std::thread::sleep(Duration::from_millis(20));
        }
        a.restart()?;
        a.wait_established(B, T)?;
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(2) {
            bird_lost |= bird.best(BLOCK_A).is_none();
            kernel_lost |= !na.bgp_routes().contains(BLOCK_B);
            std::thread::sleep(Duration::from_millis(20));
        }
        let sessions = bird.birdc(&["show", "bfd", "sessions"])?;
        println!(
            "SIG{sig} restart with BFD on: back Established after {:.1} s; BIRD lost {BLOCK_A}: {bird_lost}; ipipd's kernel lost {BLOCK_B}: {kernel_lost}",
            t0.elapsed().as_secs_f64()
        );
        ensure!(
            !bird_lost,
            "BIRD dropped {BLOCK_A} during the SIG{sig} restart; BFD:\n{sessions}\nBIRD log:\n{}",
            bird.log()
        );
        ensure!(
            !kernel_lost,
            "ipipd's kernel lost {BLOCK_B} during the SIG{sig} restart"
        );
        ensure!(
            sessions.lines().any(|l| l.contains(A) && l.contains("Up")),
            "BIRD's BFD session is not Up after the SIG{sig} restart:\n{sessions}"
        );
    }
    Ok(())
}

const A6: &str = "fd00:29:235::101";
const B6: &str = "fd00:29:235::140";
const BLOCK_B6: &str = "fd10::4:0/122";

/// BFD on a BGP session over IPv6 (RFC 5881 over IPv6, Hop Limit 255): BIRD 2
/// at B6, ipipd peering with it from its `node.address_v6`; the cut link takes
/// the session and BIRD's IPv6 block down at ipipd within the detection time,
/// and BIRD's session leaves Up; restored, everything comes back.
#[test]
fn bird_bfd_over_ipv6_detects_a_cut_link() -> Result<()> {
    require_root();
    let mut lan = Lan::new()?;
    let na = lan.host(&format!("{A}/24"))?;
    let nb = lan.host(&format!("{B}/24"))?;
    for (ns, v6) in [(&na, A6), (&nb, B6)] {
        ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"])?;
    }
    na.add_standin_tunl0()?;
    let conf = format!(
        "{}protocol static blocks6 {{\n  ipv6;\n  route {BLOCK_B6} blackhole;\n}}\n{}\
         protocol bgp n6 {{\n  local {B6} as 64512;\n  neighbor {A6} as 64512;\n  direct;\n  hold time {HOLD};\n  connect retry time 1;\n  graceful restart on;\n  bfd on;\n  error wait time 1, 5;\n  ipv6 {{ import all; export all; }};\n}}\n",
        bird::conf_base(B, &[]),
        bird::conf_bfd("eth0", 300, 3),
    );
    let bird = Bird::start(&nb, &conf)?;
    let mut c = NodeConfig::new(A, BLOCK_A)
        .address_v6(A6)
        .pools(&["101.64.0.0/10", "fd10::/48"])
        .no_mesh()
        .peer(B6, |p| p)
        .bfd(300, 3);
    c.bgp.hold_time = Some(HOLD);
    let a = Ipipd::start(&na, &c.toml())?;
    let bird_up = || {
        bird.birdc(&["show", "bfd", "sessions"])
            .is_ok_and(|s| s.lines().any(|l| l.contains(A6) && l.contains("Up")))
    };
    let s = wait_bfd(&a, B6, "Up").with_context(|| a.log())?;
    ensure!(s.peer.is_ipv6(), "{s:?}");
    a.wait_established(B6, T)?;
    a.wait_route(BLOCK_B6, B6, T)?;
    wait_until(T, "BIRD's IPv6 BFD session Up", || bird_up().then_some(()))?;

    let cut_at = Instant::now();
    cut(&lan)?;
    let (mut down, mut route_gone, mut bird_left) = (None, None, None);
    while down.is_none() || route_gone.is_none() || bird_left.is_none() {
        ensure!(
            cut_at.elapsed() < T,
            "after the cut: BFD down at ipipd {down:?}, route gone {route_gone:?}, BIRD's session left Up {bird_left:?}"
        );
        if down.is_none() && a.bfd_session(B6).is_some_and(|s| s.state == "Down") {
            down = Some(cut_at.elapsed());
        }
        if route_gone.is_none() && a.best(BLOCK_B6).is_none() {
            route_gone = Some(cut_at.elapsed());
        }
        if bird_left.is_none() && !bird_up() {
            bird_left = Some(cut_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ms = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64() * 1000.0;
    println!(
        "BIRD over IPv6, link cut: ipipd's BFD Down after {:.0} ms, {BLOCK_B6} gone from ipipd's RIB after {:.0} ms, BIRD's session left Up after {:.0} ms",
        ms(down),
        ms(route_gone),
        ms(bird_left)
    );
    let p = a.peer(B6).context("peer listed")?;
    ensure!(p.state != "Established", "BGP after the cut: {p:?}");

    restore(&lan)?;
    wait_bfd(&a, B6, "Up")?;
    a.wait_route(BLOCK_B6, B6, T)?;
    wait_until(T, "BIRD's IPv6 BFD session Up again", || {
        bird_up().then_some(())
    })?;
    Ok(())
}
