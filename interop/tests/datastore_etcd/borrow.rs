//! Borrowing, with pods made through `ipipd-cni`: three nodes on a pool of exactly four
//! blocks, filled past its blocks. The overflow pod gets an address from another node's
//! block; the borrower routes it to the pod and announces its /32, which every other
//! kernel, the block's owner included, routes to the borrower past the owner's
//! blackhole; pods on the other nodes ping it; it survives a restart of the borrower
//! with a wiped `state_dir`; with `ipam.strict_affinity = true` the ADD fails with CNI
//! code 11 instead; its DEL withdraws the /32 everywhere.
//!
//! The nodes run VXLAN (this kernel has no ipip module, and the stand-in tunl0 carries
//! no packets): the borrowed /32 takes the same path as a block would, on the
//! encapsulation device in use.

use super::*;

/// A /27 of /29 blocks: four blocks of eight addresses.
const POOL: &str = "10.248.0.0/27";
const DEV: &str = "vxlan.calico";

fn config(endpoints: &[String], strict: bool) -> String {
    format!(
        "{}\n[vxlan]\nmode = \"always\"\n\n[ipam]\nstrict_affinity = {strict}\n",
        interop::etcd::cluster_config_sized(endpoints, POOL, 29, None)
    )
}

/// The `proto bgp` kernel route lines for exactly `ip` (a /32 prints bare).
fn host_routes(ns: &Netns, ip: &str) -> Vec<String> {
    ns.bgp_routes()
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(ip))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// Waits until node `i`'s kernel routes `ip` as `want` says, once.
fn wait_host_route(c: &Cluster, i: usize, ip: &str, want: impl Fn(&str) -> bool) -> Result<()> {
    let node = c.nodes.get(i).context("no such node")?;
    wait_until(T, &format!("{}: the route for {ip}", node.name), || {
        let lines = host_routes(&node.ns, ip);
        (lines.len() == 1 && want(&lines[0])).then_some(())
    })
    .with_context(|| format!("{}:\n{}", node.name, node.ns.bgp_routes()))
}

/// Every kernel routes the borrowed `ip` to node-0: there to the pod's veth, elsewhere
/// over the tunnel to node-0; the owner keeps its blackhole for `block`.
fn wait_routed_to_borrower(c: &Cluster, ip: &str, block: &str, owner: usize) -> Result<()> {
    wait_host_route(c, 0, ip, |l| {
        l.starts_with(&format!("{ip} dev cali")) && l.contains("scope link")
    })?;
    for i in 1..c.nodes.len() {
        wait_host_route(c, i, ip, |l| {
            l.starts_with(&format!("{ip} via "))
                && l.contains(&format!("dev {DEV}"))
                && l.contains("onlink")
        })?;
    }
    let o = c.nodes.get(owner).context("owner")?;
    o.ns.wait_bgp_route_line(&format!("blackhole {block}"), T)?;
    Ok(())
}

#[test]
fn a_full_pool_lends_addresses_announced_as_host_routes() -> Result<()> {
    let mut c = start_with(3, |e| config(e, false))?;
    c.wait_full_mesh()?;
    // node-1 and node-2 take a block each with their first pod.
    let mut pods = Vec::new();
    for i in [1, 2] {
        let conf = c.nodes[i].cni_conf();
        let (p, out) = pod_on(&c, i, &format!("first{i}"), &conf)?;
        address(&out, "first pod")?;
        pods.push(p);
    }
    // node-0 fills the other two blocks: 7 pods beside its tunnel address, then 8.
    let conf0 = c.nodes[0].cni_conf();
    for k in 0..15 {
        let (p, out) = pod_on(&c, 0, &format!("fill{k}"), &conf0)?;
        address(&out, &format!("fill{k}"))?;
        pods.push(p);
    }
    let blocks = c.etcd_blocks()?;
    ensure!(blocks.len() == 4, "the pool's four blocks: {blocks:?}");

    // The pool is full of blocks: the next pod on node-0 borrows.
    let (borrowed_pod, out) = pod_on(&c, 0, "over", &conf0)?;
    let ip = address(&out, "the overflow pod")?;
    let ipv4: std::net::Ipv4Addr = ip.parse()?;
    let (block, owner) = blocks
        .iter()
        .find(|(b, _)| b.parse::<ipnet::Ipv4Net>().is_ok_and(|n| n.contains(&ipv4)))
        .with_context(|| format!("{ip} is in no block: {blocks:?}"))?;
    ensure!(owner != "node-0", "{ip} is in node-0's own block {block}");
    let owner_i = c
        .nodes
        .iter()
        .position(|n| n.name == *owner)
        .context("owner")?;
    let shown = c.nodes[0].blocks()?;
    ensure!(
        shown.iter().any(|b| b.block == format!("{ip}/32")
            && b.borrowed
            && b.node.as_deref() == Some(owner.as_str())),
        "show blocks on node-0 lists no borrowed {ip}/32: {shown:?}"
    );
    wait_routed_to_borrower(&c, &ip, block, owner_i)?;
    // Pods on both other nodes (the owner's among them) reach the borrowed pod.
    for p in &pods[..2] {
        ping(p, &ip)?;
    }

    // A restart of the borrower with its state_dir wiped keeps the pod, its route and
    // its announcement (the allocation is taken up from etcd).
    c.nodes[0].stop("KILL")?;
    std::fs::remove_dir_all(c.nodes[0].dir.join("state"))?;
    c.nodes[0].restart()?;
    c.wait_full_mesh()?;
    wait_routed_to_borrower(&c, &ip, block, owner_i)?;
    ping(&pods[0], &ip)?;

    // strict_affinity = true, applied by a reload: no borrowing, CNI code 11.
    std::fs::write(c._dir.join("ipipd.toml"), config(&c.etcd.endpoints(), true))?;
    let out = c.nodes[0].cli(&["reload"])?;
    ensure!(out.status.success(), "reload: {out:?}");
    let (_strict_pod, out) = pod_on(&c, 0, "strict", &conf0)?;
    ensure!(
        out.code() == Some(11),
        "strict_affinity = true: {} {}",
        out.stdout,
        out.stderr
    );

    // DEL of the borrowed pod: freed in the owner's block record, /32 gone everywhere,
    // the owner's blackhole stays.
    let del = Call::new("DEL", "over", Some(&borrowed_pod), conf0.clone()).run(&c.nodes[0].ns)?;
    ensure!(del.ok(), "DEL: {del:?}");
    for n in &c.nodes {
        wait_until(T, &format!("{}: no route for {ip}", n.name), || {
            host_routes(&n.ns, &ip).is_empty().then_some(())
        })
        .with_context(|| format!("{}:\n{}", n.name, n.ns.bgp_routes()))?;
    }
    c.nodes[owner_i]
        .ns
        .wait_bgp_route_line(&format!("blackhole {block}"), T)?;
    let held = c.etcd.get_prefix("/ipipd/ipam/")?;
    ensure!(
        !held.iter().any(|(_, v)| v.contains("\"over.eth0\"")),
        "the borrowed address is still recorded: {held:?}"
    );
    Ok(())
}
