//! Pool options on the real etcd, with pods made through `ipipd-cni`: a node without
//! a pool's label never takes a block from it; a pool disabled by a reload gives no
//! new address while its pods keep working; with every pool disabled an ADD fails with
//! code 11 and `ipipd status` says why; an invalid selector is a `check-config` error
//! with its position.
//!
//! The nodes run VXLAN (the stand-in tunl0 carries no packets), so pods reach each
//! other across nodes.

use api::protocol::PoolJson;
use interop::config::Pool;

use super::*;

/// Listed first, so a node it selects claims from it first; two /29 blocks.
const RACK: &str = "10.250.0.0/28";
/// Open to every node; two /29 blocks.
const ALL: &str = "10.250.1.0/28";
const SELECTOR: &str = "rack == 'r1'";

fn config(endpoints: &[String], selector: &str, disabled: [bool; 2]) -> String {
    let pools = vec![
        Pool::new(RACK)
            .block_size(29)
            .node_selector(selector)
            .disabled(disabled[0]),
        Pool::new(ALL).block_size(29).disabled(disabled[1]),
    ];
    format!(
        "{}\n[vxlan]\nmode = \"always\"\n",
        interop::etcd::cluster_config_pools(endpoints, pools)
    )
}

/// Whether `what`, an address or a block, lies inside `pool`.
fn inside(what: &str, pool: &str) -> bool {
    let Ok(pool) = pool.parse::<ipnet::Ipv4Net>() else {
        return false;
    };
    match what.parse::<ipnet::Ipv4Net>() {
        Ok(net) => pool.contains(&net),
        Err(_) => what
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| pool.contains(&ip)),
    }
}

/// Rewrites the cluster's one file and reloads every node.
fn reload(c: &Cluster, text: &str) -> Result<()> {
    std::fs::write(c._dir.join("ipipd.toml"), text)?;
    for n in &c.nodes {
        let out = n.cli(&["reload"])?;
        ensure!(out.status.success(), "reload on {}: {out:?}", n.name);
    }
    Ok(())
}

/// `pool list --json` on `node`, the row of `cidr`.
fn pool_row(node: &Node, cidr: &str) -> Result<PoolJson> {
    let rows: Vec<PoolJson> = node.typed(&["pool", "list", "--json"])?;
    rows.into_iter()
        .find(|r| r.cidr == cidr)
        .with_context(|| format!("{}: no pool {cidr}", node.name))
}

#[test]
fn selectors_and_disabled_pools_on_etcd() -> Result<()> {
    let mut c = start_with(0, |e| config(e, SELECTOR, [false, false]))?;
    // node-0 has the label (from the environment, as the DaemonSet passes it); node-1
    // has none.
    let path = c._dir.join("ipipd.toml");
    for i in 0..2 {
        let mut n = Node::new(&mut c.lan, &path, &format!("node-{i}"), &node_address(i))?;
        if i == 0 {
            n.set_env("IPIPD_NODE_LABELS", "rack=r1,zone=a");
        }
        n.restart()?;
        c.nodes.push(n);
    }

    // An invalid selector, checked by the real binary: the error names its line and
    // the column inside the string where the selector goes wrong.
    let bad = c._dir.join("bad.toml");
    std::fs::write(
        &bad,
        config(&c.etcd.endpoints(), "rack = 'r1'", [false, false]),
    )?;
    let out = std::process::Command::new(interop::ipipd::binary())
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&bad)?;
    let line = text
        .lines()
        .position(|l| l.contains("rack = 'r1'"))
        .context("the selector's line")?
        + 1;
    let column = text
        .lines()
        .nth(line - 1)
        .unwrap_or_default()
        .find("= 'r1'")
        .unwrap_or(0)
        + 1;
    ensure!(
        out.status.code() == Some(2)
            && stderr.contains(&format!(
                "bad.toml:{line}:{column}: invalid node_selector: expected == or != after the label \"rack\""
            )),
        "check-config of a bad selector at {line}:{column}: {out:?}"
    );

    c.wait_full_mesh()?;
    let conf = [c.nodes[0].cni_conf(), c.nodes[1].cni_conf()];
    // node-1 is not selected by the first pool, which has a free block: its pod's
    // address and its block come from the second.
    let (q0, out) = pod_on(&c, 1, "q0", &conf[1])?;
    let q0_ip = address(&out, "q0 on node-1")?;
    ensure!(inside(&q0_ip, ALL), "node-1's pod got {q0_ip}");
    let (_p0, out) = pod_on(&c, 0, "p0", &conf[0])?;
    let p0_ip = address(&out, "p0 on node-0")?;
    ensure!(inside(&p0_ip, RACK), "node-0's pod got {p0_ip}");
    let blocks = c.etcd_blocks()?;
    let of = |node: &str| -> Vec<&String> {
        blocks
            .iter()
            .filter(|(_, o)| *o == node)
            .map(|(b, _)| b)
            .collect()
    };
    ensure!(
        !of("node-1").is_empty() && of("node-1").iter().all(|b| inside(b, ALL)),
        "node-1's blocks in etcd: {blocks:?}"
    );
    ensure!(
        of("node-0").len() == 1 && of("node-0").iter().all(|b| inside(b, RACK)),
        "node-0's blocks in etcd: {blocks:?}"
    );
    let row = pool_row(&c.nodes[1], RACK)?;
    ensure!(
        !row.selected && row.blocks == 0 && row.cluster_blocks == Some(1),
        "node-1's pool list for {RACK}: {row:?}"
    );
    ensure!(
        pool_row(&c.nodes[0], RACK)?.selected,
        "node-0 is selected by {SELECTOR}"
    );
    ping(&q0, &p0_ip)?;

    // The first pool disabled by a reload: its block keeps node-0's pod (reached
    // across nodes as before), and node-0's next pod gets its address from the other
    // pool although the disabled pool's block has room.
    reload(&c, &config(&c.etcd.endpoints(), SELECTOR, [true, false]))?;
    let (p1, out) = pod_on(&c, 0, "p1", &conf[0])?;
    let p1_ip = address(&out, "p1 on node-0 after the reload")?;
    ensure!(
        inside(&p1_ip, ALL),
        "after disabling {RACK}, p1 got {p1_ip}"
    );
    let blocks = c.etcd_blocks()?;
    ensure!(
        blocks.iter().any(|(b, o)| o == "node-0" && inside(b, RACK)),
        "node-0 kept its block of the disabled pool: {blocks:?}"
    );
    let row = pool_row(&c.nodes[0], RACK)?;
    ensure!(
        row.disabled && row.blocks == 1 && row.allocated == 1,
        "node-0's pool list for the disabled {RACK}: {row:?}"
    );
    ping(&q0, &p0_ip)?;
    ping(&p1, &p0_ip)?;

    // Every pool disabled: the ADD fails with code 11 and leaves no veth; STATUS says
    // no address can be had, and the pods there keep working.
    reload(&c, &config(&c.etcd.endpoints(), SELECTOR, [true, true]))?;
    let links = interop::cni::cali_links(&c.nodes[0].ns);
    let (_p2, out) = pod_on(&c, 0, "p2", &conf[0])?;
    ensure!(
        out.code() == Some(11),
        "an ADD with every pool disabled: {} {}",
        out.stdout,
        out.stderr
    );
    ensure!(
        interop::cni::cali_links(&c.nodes[0].ns) == links,
        "the refused ADD left a veth"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&c.nodes[0].cli(&["status", "--json"])?.stdout)?;
    ensure!(
        status["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x
                .as_str()
                .is_some_and(|x| x.starts_with("ipam: a new pod gets no address")))),
        "status with every pool disabled: {status}"
    );
    ping(&q0, &p0_ip)?;
    ping(&q0, &p1_ip)?;
    Ok(())
}
