//! Route reflection (RFC 4456) both ways: ipipd reflecting for BIRD 2 and
//! GoBGP clients, and BIRD 2 reflecting for two ipipd clients.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use interop::bird::{self, Bird};
use interop::gobgp::{self, Gobgp};
use interop::harness::{require_root, Lan};
use interop::ipipd::{Ipipd, NodeConfig};

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const BIRD: &str = "172.29.235.140";
const GOBGP: &str = "172.29.235.150";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_A2: &str = "101.76.9.192/26";
const BLOCK_B: &str = "101.88.228.192/26";
const BLOCK_BIRD: &str = "101.99.1.0/26";
const BLOCK_GOBGP: &str = "101.100.2.0/26";
const CLUSTER_ID: &str = "1.1.1.1";
const T: Duration = Duration::from_secs(20);

#[test]
fn ipipd_reflects_for_bird_and_gobgp() -> Result<()> {
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
        &(bird::conf_base(BIRD, &[BLOCK_BIRD]) + &bird::conf_peer("reflector", BIRD, A, "")),
    )?;
    let gobgp = Gobgp::start(&ngobgp, &gobgp::conf(GOBGP, &[(A, "")]), 50051)?;
    gobgp.add_route(BLOCK_GOBGP)?;
    let mut cfg = NodeConfig::new(A, BLOCK_A)
        .peer(BIRD, |p| p.rr_client())
        .peer(GOBGP, |p| p.rr_client());
    cfg = cfg.no_mesh();
    cfg.bgp.route_reflector_cluster_id = Some(CLUSTER_ID.to_owned());
    let a = Ipipd::start(&na, &cfg.toml())?;

    for (peer, kind) in [(BIRD, "rr-client"), (GOBGP, "rr-client")] {
        let p = a.wait_established(peer, T)?;
        ensure!(
            p.kind == kind,
            "ipipd lists {peer} as {}, not {kind}",
            p.kind
        );
    }
    a.wait_route(BLOCK_BIRD, BIRD, T)?;
    a.wait_route(BLOCK_GOBGP, GOBGP, T)?;
    na.wait_bgp_route_line(&format!("{BLOCK_BIRD} via {BIRD} dev tunl0 onlink"), T)?;
    na.wait_bgp_route_line(&format!("{BLOCK_GOBGP} via {GOBGP} dev tunl0 onlink"), T)?;

    // BIRD hears GoBGP's block through the reflector, next hop unchanged,
    // with ORIGINATOR_ID = GoBGP's router id and CLUSTER_LIST = [cluster id].
    bird.wait_route(BLOCK_A, A, T)?;
    bird.wait_route(BLOCK_GOBGP, GOBGP, T)?;
    let all = bird.route_all(BLOCK_GOBGP)?;
    ensure!(
        all.contains(&format!("BGP.originator_id: {GOBGP}")),
        "BIRD: no ORIGINATOR_ID {GOBGP} on {BLOCK_GOBGP}:\n{all}"
    );
    ensure!(
        all.contains(&format!("BGP.cluster_list: {CLUSTER_ID}")),
        "BIRD: no CLUSTER_LIST {CLUSTER_ID} on {BLOCK_GOBGP}:\n{all}"
    );
    let own = bird.route_all(BLOCK_A)?;
    ensure!(
        !own.contains("BGP.originator_id") && !own.contains("BGP.cluster_list"),
        "BIRD: the reflector's own block carries reflection attributes:\n{own}"
    );

    // GoBGP likewise for BIRD's block.
    gobgp.wait_route(BLOCK_A, A, T)?;
    let p = gobgp.wait_route(BLOCK_BIRD, BIRD, T)?;
    ensure!(
        p.originator_id.as_deref() == Some(BIRD),
        "GoBGP: ORIGINATOR_ID of {BLOCK_BIRD} is {:?}, not {BIRD}",
        p.originator_id
    );
    ensure!(
        p.cluster_list == [CLUSTER_ID],
        "GoBGP: CLUSTER_LIST of {BLOCK_BIRD} is {:?}, not [{CLUSTER_ID}]",
        p.cluster_list
    );

    // A client's withdrawal is reflected too.
    gobgp.del_route(BLOCK_GOBGP)?;
    bird.wait_no_route(BLOCK_GOBGP, T)?;
    a.wait_no_route(BLOCK_GOBGP, T)?;
    println!(
        "ipipd as route reflector: done after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn bird_reflects_for_two_ipipd() -> Result<()> {
    require_root();
    let start = Instant::now();
    let mut lan = Lan::new()?;
    let (na, nb, nbird) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{B}/24"))?,
        lan.host(&format!("{BIRD}/24"))?,
    );
    na.add_standin_tunl0()?;
    nb.add_standin_tunl0()?;

    let conf = bird::conf_base(BIRD, &[BLOCK_BIRD])
        + &bird::conf_peer("a", BIRD, A, "rr client;")
        + &bird::conf_peer("b", BIRD, B, "rr client;");
    let _bird = Bird::start(&nbird, &conf)?;
    let client = |addr: &str, blocks: &[&str]| {
        let mut c = NodeConfig::new(addr, "").peer(BIRD, |p| p.route_reflector());
        c = c.blocks(blocks);
        c = c.no_mesh();
        c.toml()
    };
    let a = Ipipd::start(&na, &client(A, &[BLOCK_A, BLOCK_A2]))?;
    let b = Ipipd::start(&nb, &client(B, &[BLOCK_B]))?;
    for d in [&a, &b] {
        let p = d.wait_established(BIRD, T)?;
        ensure!(
            p.kind == "route-reflector",
            "ipipd lists BIRD as {}, not route-reflector",
            p.kind
        );
    }
    // Each client learns the other's block with the other client as next hop.
    a.wait_route(BLOCK_B, B, T)?;
    b.wait_route(BLOCK_A, A, T)?;
    a.wait_route(BLOCK_BIRD, BIRD, T)?;
    na.wait_bgp_route_line(&format!("{BLOCK_B} via {B} dev tunl0 onlink"), T)?;
    nb.wait_bgp_route_line(&format!("{BLOCK_A} via {A} dev tunl0 onlink"), T)?;
    nb.wait_bgp_route_line(&format!("{BLOCK_BIRD} via {BIRD} dev tunl0 onlink"), T)?;
    let r = b.best(BLOCK_A).context("B: no best route to A's block")?;
    ensure!(
        r.originator_id.map(|o| o.to_string()).as_deref() == Some(A),
        "B: ORIGINATOR_ID of {BLOCK_A} is {:?}, not {A}",
        r.originator_id
    );
    ensure!(
        r.cluster_list.iter().map(|c| c.to_string()).eq([BIRD]),
        "B: CLUSTER_LIST of {BLOCK_A} is {:?}, not [{BIRD}]",
        r.cluster_list
    );
    // A client's withdrawal reaches the other client through the reflector.
    b.wait_route(BLOCK_A2, A, T)?;
    a.reconfigure(&client(A, &[BLOCK_A]))?;
    b.wait_no_route(BLOCK_A2, T)?;
    nb.wait_no_bgp_route(BLOCK_A2, T)?;
    b.wait_route(BLOCK_A, A, T)?;
    println!(
        "BIRD as route reflector: done after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
