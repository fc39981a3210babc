//! An interop smoke with FRR (zebra + bgpd): ipipd and FRR exchange blocks
//! over iBGP, and a block FRR withdraws disappears from ipipd and its kernel.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use interop::frr::{self, Frr};
use interop::harness::{require_root, Lan};
use interop::ipipd::{Ipipd, NodeConfig};

const A: &str = "172.29.235.101";
const FRR: &str = "172.29.235.160";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_FRR: &str = "101.101.3.0/26";
const BLOCK_FRR2: &str = "101.101.3.64/26";
const T: Duration = Duration::from_secs(20);

#[test]
fn ipipd_and_frr_exchange_blocks() -> Result<()> {
    require_root();
    let start = Instant::now();
    let mut lan = Lan::new()?;
    let (na, nfrr) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{FRR}/24"))?,
    );
    na.add_standin_tunl0()?;
    let frr = Frr::start(&nfrr, &frr::conf(FRR, &[BLOCK_FRR, BLOCK_FRR2], &[A]))?;
    let a = Ipipd::start(&na, &NodeConfig::new(A, BLOCK_A).mesh(&[A, FRR]).toml())?;

    let p = a.wait_established(FRR, T)?;
    ensure!(
        p.graceful_restart,
        "graceful restart not negotiated with FRR: {p:?}"
    );
    frr.wait_established(A, T)?;
    for prefix in [BLOCK_FRR, BLOCK_FRR2] {
        a.wait_route(prefix, FRR, T)?;
        na.wait_bgp_route_line(&format!("{prefix} via {FRR} dev tunl0 onlink"), T)?;
    }
    frr.wait_route(BLOCK_A, A, T)?;
    println!(
        "ipipd and FRR exchanged blocks after {:.1} s",
        start.elapsed().as_secs_f64()
    );

    frr.configure(&[
        "router bgp 64512",
        "address-family ipv4 unicast",
        &format!("no network {BLOCK_FRR2}"),
    ])?;
    a.wait_no_route(BLOCK_FRR2, T)?;
    na.wait_no_bgp_route(BLOCK_FRR2, T)?;
    a.wait_route(BLOCK_FRR, FRR, T)?;
    println!(
        "FRR withdrawal seen by ipipd after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
