//! A four-node iBGP full mesh on one bridge: two ipipd, BIRD 2 and GoBGP.
//! Every node announces its /26; every node learns every other block with
//! the announcing node as next hop; a withdrawn block disappears everywhere.

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
const BLOCK_BIRD2: &str = "101.99.1.64/26";
const BLOCK_GOBGP: &str = "101.100.2.0/26";
const T: Duration = Duration::from_secs(20);

fn bird_conf(blocks: &[&str]) -> String {
    let mut c = bird::conf_base(BIRD, blocks);
    c += &bird::conf_peer("a", BIRD, A, "");
    c += &bird::conf_peer("b", BIRD, B, "");
    c += &bird::conf_peer("gobgp", BIRD, GOBGP, "");
    c
}

fn node_a(blocks: &[&str]) -> String {
    NodeConfig::new(A, BLOCK_A)
        .mesh(&[A, B, BIRD, GOBGP])
        .blocks(blocks)
        .toml()
}

#[test]
fn four_node_mesh_with_bird_and_gobgp() -> Result<()> {
    require_root();
    let start = Instant::now();
    let mut lan = Lan::new()?;
    let (na, nb, nbird, ngobgp) = (
        lan.host(&format!("{A}/24"))?,
        lan.host(&format!("{B}/24"))?,
        lan.host(&format!("{BIRD}/24"))?,
        lan.host(&format!("{GOBGP}/24"))?,
    );
    na.add_standin_tunl0()?;
    nb.add_standin_tunl0()?;

    let bird = Bird::start(&nbird, &bird_conf(&[BLOCK_BIRD, BLOCK_BIRD2]))?;
    let gobgp = Gobgp::start(
        &ngobgp,
        &gobgp::conf(GOBGP, &[(A, ""), (B, ""), (BIRD, "")]),
        50051,
    )?;
    gobgp.add_route(BLOCK_GOBGP)?;
    let a = Ipipd::start(&na, &node_a(&[BLOCK_A, BLOCK_A2]))?;
    let b = Ipipd::start(
        &nb,
        &NodeConfig::new(B, BLOCK_B)
            .mesh(&[A, B, BIRD, GOBGP])
            .toml(),
    )?;

    for (d, own) in [(&a, A), (&b, B)] {
        for peer in [A, B, BIRD, GOBGP].into_iter().filter(|p| *p != own) {
            d.wait_established(peer, T)?;
        }
    }
    // ipipd: show routes and the kernel.
    let expect_a = [
        (BLOCK_B, B),
        (BLOCK_BIRD, BIRD),
        (BLOCK_BIRD2, BIRD),
        (BLOCK_GOBGP, GOBGP),
    ];
    let expect_b = [
        (BLOCK_A, A),
        (BLOCK_A2, A),
        (BLOCK_BIRD, BIRD),
        (BLOCK_BIRD2, BIRD),
        (BLOCK_GOBGP, GOBGP),
    ];
    for (d, expect) in [(&a, &expect_a[..]), (&b, &expect_b[..])] {
        for (prefix, nh) in expect {
            d.wait_route(prefix, nh, T)?;
            d.ns.wait_bgp_route_line(&format!("{prefix} via {nh} dev tunl0 onlink"), T)?;
        }
    }
    na.wait_bgp_route_line(&format!("blackhole {BLOCK_A}"), T)?;
    // BIRD and GoBGP learn both ipipd blocks and each other's.
    for (prefix, nh) in [
        (BLOCK_A, A),
        (BLOCK_A2, A),
        (BLOCK_B, B),
        (BLOCK_GOBGP, GOBGP),
    ] {
        bird.wait_route(prefix, nh, T)?;
    }
    for (prefix, nh) in [
        (BLOCK_A, A),
        (BLOCK_A2, A),
        (BLOCK_B, B),
        (BLOCK_BIRD, BIRD),
        (BLOCK_BIRD2, BIRD),
    ] {
        gobgp.wait_route(prefix, nh, T)?;
    }
    // The attributes as BIRD reads them: iBGP, IGP origin, empty AS_PATH, LOCAL_PREF 100.
    let all = bird.route_all(BLOCK_A)?;
    for want in [
        "BGP.origin: IGP".to_owned(),
        format!("BGP.next_hop: {A}"),
        "BGP.local_pref: 100".to_owned(),
    ] {
        ensure!(
            all.contains(&want),
            "BIRD: {BLOCK_A} lacks `{want}`:\n{all}"
        );
    }
    ensure!(
        all.lines().any(|l| l.trim() == "BGP.as_path:"),
        "BIRD: {BLOCK_A} has a non-empty AS_PATH:\n{all}"
    );
    for (prefix, peer) in [(BLOCK_BIRD, BIRD), (BLOCK_GOBGP, GOBGP)] {
        let r = a
            .best(prefix)
            .with_context(|| format!("ipipd A: no best route to {prefix}"))?;
        ensure!(
            r.peer.as_deref() == Some(peer) && r.as_path.is_empty() && r.origin == "bgp",
            "ipipd A: {prefix} as {r:?}"
        );
    }
    println!(
        "mesh converged after {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // Withdrawals from each kind of node disappear everywhere.
    a.reconfigure(&node_a(&[BLOCK_A]))?;
    bird.write_conf(&bird_conf(&[BLOCK_BIRD]))?;
    bird.configure()?;
    gobgp.del_route(BLOCK_GOBGP)?;
    for prefix in [BLOCK_A2, BLOCK_BIRD2, BLOCK_GOBGP] {
        for d in [&a, &b] {
            d.wait_no_route(prefix, T)?;
            d.ns.wait_no_bgp_route(prefix, T)?;
        }
        if prefix != BLOCK_BIRD2 {
            bird.wait_no_route(prefix, T)?;
        }
        if prefix != BLOCK_GOBGP {
            gobgp.wait_no_route(prefix, T)?;
        }
    }
    // What stays, stays.
    b.wait_route(BLOCK_A, A, T)?;
    a.wait_route(BLOCK_BIRD, BIRD, T)?;
    bird.wait_route(BLOCK_A, A, T)?;
    gobgp.wait_route(BLOCK_BIRD, BIRD, T)?;
    println!("scenario done after {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
