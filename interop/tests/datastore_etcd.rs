//! The etcd datastore on a real 3-member etcd cluster (Debian's etcd-server), every
//! member and every ipipd node in its own network namespace on one bridge. All nodes
//! of a test run from ONE configuration file; identity comes from the environment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use interop::cni::Call;
use interop::etcd::{cluster_config, EtcdCluster, Node};
use interop::harness::{require_root, wait_until, Lan, Netns, TempDir};
use interop::ipipd::is;

const ETCD: [&str; 3] = ["172.29.240.11", "172.29.240.12", "172.29.240.13"];
const T: Duration = Duration::from_secs(20);

fn node_address(i: usize) -> String {
    format!("172.29.240.{}", 101 + i)
}

struct Cluster {
    etcd: EtcdCluster,
    nodes: Vec<Node>,
    _dir: TempDir,
    lan: Lan,
    pods: Vec<Netns>,
}

fn start(n: usize, pool: &str) -> Result<Cluster> {
    start_with(n, |endpoints| cluster_config(endpoints, pool, None))
}

/// `n` nodes from one file that `config` writes, given etcd's endpoints.
fn start_with(n: usize, config: impl Fn(&[String]) -> String) -> Result<Cluster> {
    require_root();
    let mut lan = Lan::new()?;
    let etcd = EtcdCluster::start(&mut lan, &ETCD)?;
    let dir = TempDir::new("dscfg")?;
    let path = dir.join("ipipd.toml");
    std::fs::write(&path, config(&etcd.endpoints()))?;
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(Node::start(
            &mut lan,
            &path,
            &format!("node-{i}"),
            &node_address(i),
        )?);
    }
    Ok(Cluster {
        etcd,
        nodes,
        _dir: dir,
        lan,
        pods: Vec::new(),
    })
}

impl Cluster {
    /// Node `victim` is powered off (SIGKILL), then decommissioned with `ipipd node
    /// remove` run on node `by`.
    fn power_off_and_remove(&mut self, victim: usize, by: usize) -> Result<()> {
        let name = format!("node-{victim}");
        self.nodes
            .get_mut(victim)
            .with_context(|| format!("no {name}"))?
            .stop("KILL")?;
        let out = self
            .nodes
            .get(by)
            .with_context(|| format!("no node-{by}"))?
            .cli(&["node", "remove", &name])?;
        ensure!(
            out.status.success(),
            "node remove {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// A pod on node `i` through the real CNI plugin; the plugin's outcome.
    fn pod(&mut self, i: usize, id: &str) -> Result<interop::cni::Outcome> {
        let pod = Netns::new("pod")?;
        let node = self.nodes.get(i).context("no such node")?;
        let out = Call::new("ADD", id, Some(&pod), node.cni_conf()).run(&node.ns)?;
        self.pods.push(pod);
        Ok(out)
    }

    fn wait_full_mesh(&self) -> Result<()> {
        let n = self.nodes.len();
        for node in &self.nodes {
            wait_until(
                T,
                &format!("{} sees {n} nodes, all Established", node.name),
                || {
                    let states = node.node_states().ok()?;
                    (states.len() == n
                        && states.iter().all(|(name, s)| {
                            s == "Established" || (s == "self" && *name == node.name)
                        }))
                    .then_some(())
                },
            )
            .with_context(|| format!("{:?}", node.node_states().unwrap_or_default()))?;
        }
        Ok(())
    }

    /// Block → owner, from etcd itself.
    fn etcd_blocks(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (k, v) in self.etcd.get_prefix("/ipipd/blocks/")? {
            let v: serde_json::Value = serde_json::from_str(&v)?;
            ensure!(v["state"] == "confirmed", "{k} is {v}");
            out.insert(
                k.trim_start_matches("/ipipd/blocks/").replace('-', "/"),
                v["node"].as_str().unwrap_or_default().to_owned(),
            );
        }
        Ok(out)
    }

    fn address_of(&self, name: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.address.as_str())
    }

    /// Every kernel holds each block once: a blackhole at its owner, a route via the
    /// owner everywhere else.
    fn wait_kernels(&self, blocks: &BTreeMap<String, String>) -> Result<()> {
        for node in &self.nodes {
            for (block, owner) in blocks {
                let want = if *owner == node.name {
                    format!("blackhole {block}")
                } else {
                    let via = self.address_of(owner).context("owner not a node")?;
                    format!("{block} via {via} dev tunl0 onlink")
                };
                node.ns
                    .wait_bgp_route_line(&want, T)
                    .with_context(|| format!("{}: {}", node.name, node.ns.bgp_routes()))?;
            }
        }
        Ok(())
    }
}

#[test]
fn six_nodes_from_one_config_mesh_and_route() -> Result<()> {
    let mut c = start(6, "10.244.0.0/16")?;
    c.wait_full_mesh()?;
    for i in 0..6 {
        let out = c.pod(i, &format!("pod{i}"))?;
        ensure!(out.ok(), "ADD on node-{i}: {} {}", out.stdout, out.stderr);
    }
    let blocks = c.etcd_blocks()?;
    ensure!(blocks.len() == 6, "one block per node in etcd: {blocks:?}");
    let owners: BTreeSet<&String> = blocks.values().collect();
    ensure!(owners.len() == 6, "{blocks:?}");
    c.wait_kernels(&blocks)?;
    // A seventh node joins: every other node peers with it.
    let path = c._dir.join("ipipd.toml");
    let n7 = Node::start(&mut c.lan, &path, "node-6", &node_address(6))?;
    c.nodes.push(n7);
    c.wait_full_mesh()?;
    Ok(())
}

#[test]
fn eight_nodes_race_for_four_blocks() -> Result<()> {
    // A /24 pool holds four /26 blocks.
    let mut c = start(8, "10.245.0.0/24")?;
    c.wait_full_mesh()?;
    let conf: Vec<(String, String)> = c
        .nodes
        .iter()
        .map(|n| (n.ns.name.clone(), n.cni_conf()))
        .collect();
    let pods: Vec<Netns> = (0..8)
        .map(|_| Netns::new("pod"))
        .collect::<Result<_, _>>()?;
    let outcomes: Vec<Result<interop::cni::Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = c
            .nodes
            .iter()
            .zip(&pods)
            .zip(&conf)
            .enumerate()
            .map(|(i, ((node, pod), (_, conf)))| {
                s.spawn(move || {
                    Call::new("ADD", &format!("race{i}"), Some(pod), conf.clone()).run(&node.ns)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("thread panicked")))
            .collect()
    });
    let mut ok = 0;
    for (i, o) in outcomes.into_iter().enumerate() {
        let o = o?;
        if o.ok() {
            ok += 1;
        } else {
            ensure!(o.code() == Some(11), "node-{i}: {} {}", o.stdout, o.stderr);
        }
    }
    c.pods.extend(pods);
    // Four win a block each. A loser borrows from a winner's block once that block is
    // confirmed (ipam.strict_affinity = false); one that finds every block still pending
    // gets code 11.
    ensure!(ok >= 4, "{ok} pods got an address, 4 blocks exist");
    let blocks = c.etcd_blocks()?;
    ensure!(blocks.len() == 4, "{blocks:?}");
    let owners: BTreeSet<&String> = blocks.values().collect();
    ensure!(owners.len() == 4, "one block per winner: {blocks:?}");
    // Every node's view agrees with etcd.
    for node in &c.nodes {
        wait_until(T, &format!("{}'s view of the blocks", node.name), || {
            let view: BTreeMap<String, String> = node
                .blocks()
                .ok()?
                .into_iter()
                .filter(|b| b.state == "confirmed" && !b.borrowed)
                .map(|b| (b.block, b.node.unwrap_or_default()))
                .collect();
            (view == blocks).then_some(())
        })?;
    }
    c.wait_kernels(&blocks)?;
    Ok(())
}

#[test]
fn node_remove_drops_sessions_and_routes_everywhere() -> Result<()> {
    let mut c = start(4, "10.246.0.0/16")?;
    c.wait_full_mesh()?;
    for i in 0..4 {
        let out = c.pod(i, &format!("p{i}"))?;
        ensure!(out.ok(), "{}", out.stdout);
    }
    let blocks = c.etcd_blocks()?;
    c.wait_kernels(&blocks)?;
    let gone_block = blocks
        .iter()
        .find(|(_, o)| *o == "node-3")
        .map(|(b, _)| b.clone())
        .context("node-3 has no block")?;
    // node-3 is powered off, then decommissioned from node-0.
    c.power_off_and_remove(3, 0)?;
    for node in &c.nodes[..3] {
        node.ns
            .wait_no_bgp_route(&gone_block, Duration::from_secs(5))
            .with_context(|| format!("{} kept {gone_block}", node.name))?;
        wait_until(
            Duration::from_secs(5),
            "node-3 gone from show nodes",
            || {
                let states = node.node_states().ok()?;
                (!states.iter().any(|(n, _)| n == "node-3")).then_some(())
            },
        )?;
        let peers = node.peers()?;
        ensure!(
            !peers.iter().any(|p| is(&p.address, &node_address(3))),
            "{} still has a session to node-3",
            node.name
        );
    }
    ensure!(c.etcd.get_prefix("/ipipd/nodes/node-3")?.is_empty());
    ensure!(!c.etcd_blocks()?.contains_key(&gone_block));
    Ok(())
}

#[test]
fn etcd_outages_change_nothing_running() -> Result<()> {
    let mut c = start(3, "10.247.0.0/16")?;
    c.wait_full_mesh()?;
    for i in 0..3 {
        let out = c.pod(i, &format!("o{i}"))?;
        ensure!(out.ok(), "{}", out.stdout);
    }
    let blocks = c.etcd_blocks()?;
    c.wait_kernels(&blocks)?;
    let routes_before: Vec<String> = c.nodes.iter().map(|n| n.ns.bgp_routes()).collect();

    // One member killed: nothing changes, and claims still work.
    c.etcd.kill(0)?;
    std::thread::sleep(Duration::from_secs(3));
    c.wait_full_mesh()?;
    // A /26 holds 63 pod addresses besides tunl0's: the 64th pod needs a new block.
    for k in 0..63 {
        let out = c.pod(1, &format!("fill{k}"))?;
        ensure!(out.ok(), "pod {k} with one member down: {}", out.stdout);
    }
    ensure!(c.etcd_blocks()?.values().filter(|o| *o == "node-1").count() == 2);
    c.etcd.restart(0)?;

    // Every member down for 30 s: sessions and routes stay. Every allocation is
    // recorded in etcd before ADD answers, so an ADD fails with 11 (try again later),
    // even on a node whose block has room, and records nothing.
    for i in 0..3 {
        c.etcd.kill(i)?;
    }
    let routes_mid: Vec<String> = c.nodes.iter().map(|n| n.ns.bgp_routes()).collect();
    let workloads_mid = c.nodes[0].workloads()?.len();
    let start = std::time::Instant::now();
    let mut add_failed = false;
    while start.elapsed() < Duration::from_secs(30) {
        if !add_failed {
            let out = c.pod(0, &format!("down{}", c.pods.len()))?;
            ensure!(
                !out.ok(),
                "an ADD answered while etcd was down: {}",
                out.stdout
            );
            ensure!(out.code() == Some(11), "{}", out.stdout);
            add_failed = true;
            ensure!(
                c.nodes[0].workloads()?.len() == workloads_mid,
                "the refused ADD left an allocation"
            );
            continue;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    ensure!(add_failed, "no ADD was tried while etcd was down");
    // `ipipd status` names the datastore, and what it means for new pods.
    let out = c.nodes[0].cli(&["status", "--json"])?;
    ensure!(
        out.status.code() == Some(1),
        "status with etcd down exited {:?}",
        out.status
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let reasons: Vec<&str> = status["reasons"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
        .unwrap_or_default();
    ensure!(
        reasons
            .iter()
            .any(|r| r.starts_with("datastore: etcd unreachable"))
            && reasons
                .iter()
                .any(|r| r.starts_with("ipam: a new pod gets no address")),
        "status with etcd down: {reasons:?}"
    );
    c.wait_full_mesh()?;
    for (node, before) in c.nodes.iter().zip(&routes_mid) {
        let now = node.ns.bgp_routes();
        for line in before.lines().filter(|l| !l.contains(" dev cali")) {
            ensure!(now.contains(line), "{} lost {line}:\n{now}", node.name);
        }
    }
    for (node, before) in c.nodes.iter().zip(&routes_before) {
        let now = node.ns.bgp_routes();
        for line in before.lines().filter(|l| l.contains("via")) {
            ensure!(now.contains(line), "{} lost {line}", node.name);
        }
    }
    // Recovery: etcd back, the refused pod's retry gets an address.
    for i in 0..3 {
        c.etcd.restart(i)?;
    }
    wait_until(T, "an ADD after etcd came back", || {
        let out = c.pod(0, &format!("back{}", c.pods.len())).ok()?;
        out.ok().then_some(())
    })?;
    ensure!(c.nodes[0].workloads()?.len() == workloads_mid + 1);
    wait_until(T, "a healthy `ipipd status` after etcd came back", || {
        let out = c.nodes[0].cli(&["status"]).ok()?;
        out.status.success().then_some(())
    })?;
    Ok(())
}

#[test]
fn restart_keeps_blocks_and_compaction_changes_nothing() -> Result<()> {
    let mut c = start(3, "10.248.0.0/16")?;
    c.wait_full_mesh()?;
    for i in 0..3 {
        let out = c.pod(i, &format!("r{i}"))?;
        ensure!(out.ok(), "{}", out.stdout);
    }
    let blocks = c.etcd_blocks()?;
    c.wait_kernels(&blocks)?;
    // Graceful restart of node-2: its block stays its own, peers keep the route.
    c.nodes[2].stop("TERM")?;
    c.nodes[2].restart()?;
    c.wait_full_mesh()?;
    ensure!(
        c.etcd_blocks()? == blocks,
        "blocks changed across a restart"
    );
    c.wait_kernels(&blocks)?;
    // History compacted under running watches, then a node joins: every node peers
    // with it (a watch that fell behind the compaction re-reads in full).
    c.etcd.compact()?;
    let path = c._dir.join("ipipd.toml");
    let n = Node::start(&mut c.lan, &path, "node-3", &node_address(3))?;
    c.nodes.push(n);
    c.wait_full_mesh()?;
    Ok(())
}

#[test]
fn a_frozen_watcher_catches_up_across_a_compaction() -> Result<()> {
    // etcd 3.4 keeps a stopped reader's watch open and queues its events, so the node
    // catches up from the queued events, each answered by a full read. What this
    // checks: after a freeze across a compaction the node's view is whole again. (A
    // compaction notice comes only once etcd has stopped sending to the watch: see
    // `a_watch_gap_from_compaction_is_read_again_in_full`.)
    let mut c = start(3, "10.249.0.0/16")?;
    c.wait_full_mesh()?;
    for i in 0..3 {
        let out = c.pod(i, &format!("g{i}"))?;
        ensure!(out.ok(), "{}", out.stdout);
    }
    let blocks = c.etcd_blocks()?;
    c.wait_kernels(&blocks)?;
    let gone_block = blocks
        .iter()
        .find(|(_, o)| *o == "node-2")
        .map(|(b, _)| b.clone())
        .context("node-2 has no block")?;

    // node-0 frozen: its watch stream stops being read.
    c.nodes[0].signal("STOP")?;
    let frozen = std::time::Instant::now();
    // Changes it misses: node-2 decommissioned, node-3 registered.
    c.power_off_and_remove(2, 1)?;
    let path = c._dir.join("ipipd.toml");
    let n3 = Node::start(&mut c.lan, &path, "node-3", &node_address(3))?;
    c.nodes.push(n3);
    // History compacted (and physically dropped) past every revision node-0 has seen.
    c.etcd.compact()?;
    c.nodes[0].signal("CONT")?;
    let thawed = std::time::Instant::now();

    // node-0 re-reads in full: it peers with node-3 and forgets node-2.
    wait_until(T, "node-0 sees node-0, node-1, node-3", || {
        let states = c.nodes[0].node_states().ok()?;
        let names: BTreeSet<&str> = states.iter().map(|(n, _)| n.as_str()).collect();
        let all_up = states
            .iter()
            .all(|(n, s)| s == "Established" || (s == "self" && n == "node-0"));
        (names == BTreeSet::from(["node-0", "node-1", "node-3"]) && all_up).then_some(())
    })
    .with_context(|| format!("{:?}", c.nodes[0].node_states().unwrap_or_default()))?;
    // Well before the 30 s periodic re-read: the recovery came from the watch.
    let recovered = thawed.elapsed();
    ensure!(
        recovered < Duration::from_secs(25),
        "recovered {:.1} s after SIGCONT (frozen {:.1} s)",
        recovered.as_secs_f64(),
        thawed.duration_since(frozen).as_secs_f64()
    );
    let peers = c.nodes[0].peers()?;
    ensure!(
        !peers.iter().any(|p| is(&p.address, &node_address(2))),
        "node-0 still has a session to the removed node-2"
    );
    c.nodes[0]
        .ns
        .wait_no_bgp_route(&gone_block, Duration::from_secs(5))
        .with_context(|| "node-0 kept the removed node's block".to_string())?;
    // A pod on the new node: its block reaches node-0's kernel through the watch
    // node-0 set up again after the gap.
    let out = c.pod(3, "g3")?;
    ensure!(out.ok(), "{}", out.stdout);
    let blocks = c.etcd_blocks()?;
    // The removed node's block is free again (node-3 may well have claimed it).
    ensure!(
        blocks.get(&gone_block).map(String::as_str) != Some("node-2"),
        "{blocks:?}"
    );
    for node in [&c.nodes[0], &c.nodes[1], &c.nodes[3]] {
        for (block, owner) in &blocks {
            if *owner != node.name {
                let via = node_address(owner.trim_start_matches("node-").parse()?);
                node.ns
                    .wait_bgp_route_line(&format!("{block} via {via} dev tunl0 onlink"), T)
                    .with_context(|| format!("{}: {}", node.name, node.ns.bgp_routes()))?;
            }
        }
    }
    Ok(())
}

/// A pod on node `i` through the real CNI plugin with `conf`; the test keeps its
/// namespace (to reach the pod, or drop it without DEL).
fn pod_on(c: &Cluster, i: usize, id: &str, conf: &str) -> Result<(Netns, interop::cni::Outcome)> {
    let pod = Netns::new("pod")?;
    let node = c.nodes.get(i).context("no such node")?;
    let out = Call::new("ADD", id, Some(&pod), conf.to_owned()).run(&node.ns)?;
    Ok((pod, out))
}

/// The address an ADD gave, or why it gave none.
fn address(out: &interop::cni::Outcome, what: &str) -> Result<String> {
    ensure!(out.ok(), "{what}: {} {}", out.stdout, out.stderr);
    out.address()
        .with_context(|| format!("{what}: no address in {}", out.stdout))
}

/// Two echoes from `pod` to `to`, both answered.
fn ping(pod: &Netns, to: &str) -> Result<()> {
    let out = pod.run(&["ping", "-n", "-c", "2", "-W", "2", to])?;
    ensure!(
        out.status.success(),
        "ping {to}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The underlay bridge's port that `ns`'s eth0 is plugged into.
fn bridge_port(lan: &Lan, ns: &Netns) -> Result<String> {
    // `2: eth0@if7: ...`: the other end's index, in the underlay.
    let line = ns.ip(&["-o", "link", "show", "eth0"])?;
    let index = line
        .split_once("@if")
        .and_then(|(_, r)| r.split(':').next())
        .context("no peer index")?
        .to_owned();
    let links = lan.underlay.ip(&["-o", "link"])?;
    links
        .lines()
        .find_map(|l| {
            let (i, rest) = l.split_once(": ")?;
            (i == index).then(|| rest.split(['@', ':']).next().unwrap_or_default().to_owned())
        })
        .with_context(|| format!("no underlay link with index {index}:\n{links}"))
}

/// A node's view of the cluster as `show nodes` and `show blocks` print it: the node
/// names, and the confirmed blocks with their owners.
fn view(node: &Node) -> Option<(BTreeSet<String>, BTreeMap<String, String>)> {
    let names = node
        .node_states()
        .ok()?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let blocks = node
        .blocks()
        .ok()?
        .into_iter()
        .filter(|b| b.state == "confirmed")
        .map(|b| (b.block, b.node.unwrap_or_default()))
        .collect();
    Some((names, blocks))
}

#[test]
fn a_watch_gap_from_compaction_is_read_again_in_full() -> Result<()> {
    // node-0's etcd connections stall (its port off the bridge) while node-2 is
    // decommissioned and node-1's record is written again and again: the watch stream
    // etcd cannot deliver falls behind, and etcd compacts the history past it. Once
    // the port is back, etcd answers the stalled watch with a compaction notice
    // (`compact_revision`): the only way node-0 learns what it missed is a full read,
    // and the only way it follows what comes next is a new watch.
    // A stall round with its writes can take longer than the default 30 s on a loaded
    // machine; a quiet re-read in between would answer before the notice does.
    let mut c = start_with(3, |endpoints| {
        cluster_config(endpoints, "10.243.0.0/16", None)
            .replace("[datastore]\n", "[datastore]\nresync = 600\n")
    })?;
    ensure!(
        std::fs::read_to_string(c._dir.join("ipipd.toml"))?.contains("resync = 600"),
        "the test's configuration lacks its resync"
    );
    c.wait_full_mesh()?;
    for i in 0..3 {
        let out = c.pod(i, &format!("w{i}"))?;
        ensure!(out.ok(), "{}", out.stdout);
    }
    let blocks = c.etcd_blocks()?;
    c.wait_kernels(&blocks)?;
    let gone_block = blocks
        .iter()
        .find(|(_, o)| *o == "node-2")
        .map(|(b, _)| b.clone())
        .context("node-2 has no block")?;
    let record = c
        .etcd
        .get_prefix("/ipipd/nodes/node-1")?
        .into_iter()
        .next()
        .context("node-1 not registered")?
        .1;
    // A change every node reads now.
    c.etcd
        .put_repeatedly(0, "/ipipd/nodes/node-1", &record, 1)?;
    std::thread::sleep(Duration::from_secs(1));
    let read_before = std::time::Instant::now();

    let port = bridge_port(&c.lan, &c.nodes[0].ns)?;
    let want_names: BTreeSet<String> = ["node-0", "node-1"].map(String::from).into();
    let mut want_blocks;
    // How much etcd buffers for a stalled watch before it gives up sending to it
    // depends on its gRPC gateway's windows, so a round that ends without a gap is
    // stalled again, with more: the test fails only if no round made one.
    let mut rounds = 0;
    loop {
        rounds += 1;
        c.lan.underlay.ip(&["link", "set", &port, "nomaster"])?;
        if rounds == 1 {
            c.power_off_and_remove(2, 1)?;
        }
        // More than the stalled stream's buffers hold (large values under the prefix,
        // so every one is an event of node-0's watch), then more events than etcd
        // queues for one watch: etcd stops sending to it and will resume from the
        // history.
        let junk = "x".repeat(1_000_000);
        c.etcd
            .put_repeatedly(1, "/ipipd/junk", &junk, 100 * rounds)?;
        c.etcd.etcdctl(&["del", "/ipipd/junk"])?;
        c.etcd
            .put_repeatedly(1, "/ipipd/nodes/node-1", &record, 300 * rounds)?;
        c.etcd.compact()?;
        c.lan
            .underlay
            .ip(&["link", "set", &port, "master", "br0"])?;

        want_blocks = c
            .etcd_blocks()?
            .into_iter()
            .filter(|(_, o)| o != "node-2")
            .collect::<BTreeMap<String, String>>();
        ensure!(
            !want_blocks.contains_key(&gone_block),
            "etcd still has node-2's block"
        );
        wait_until(T, "node-0's view equal to etcd's", || {
            (view(&c.nodes[0])? == (want_names.clone(), want_blocks.clone())).then_some(())
        })
        .with_context(|| format!("node-0's view: {:?}", view(&c.nodes[0])))?;
        // The events etcd had sent before it stopped come first; the notice follows.
        let notice = wait_until(T, "etcd's compaction notice at node-0", || {
            c.nodes[0]
                .log()
                .contains("etcd compacted past the watch")
                .then_some(())
        });
        match notice {
            Ok(()) => break,
            Err(e) if rounds == 3 => {
                return Err(e).with_context(|| {
                    format!(
                        "no compaction notice at node-0 in {rounds} rounds; its log:\n{}",
                        c.nodes[0].log()
                    )
                })
            }
            Err(_) => println!(
                "round {rounds}: etcd delivered the stalled watch in full (no gap); stalling it again with more"
            ),
        }
    }
    println!("compaction notice after {rounds} stalled round(s)");
    c.nodes[0]
        .ns
        .wait_no_bgp_route(&gone_block, Duration::from_secs(5))
        .context("node-0 kept the removed node's block")?;
    // node-2 is gone: the live nodes' kernels hold every remaining block.
    for node in &c.nodes[..2] {
        for (block, owner) in want_blocks.iter().filter(|(_, o)| **o != node.name) {
            let via = c.address_of(owner).context("owner not a node")?;
            node.ns
                .wait_bgp_route_line(&format!("{block} via {via} dev tunl0 onlink"), T)
                .with_context(|| format!("{}: {}", node.name, node.ns.bgp_routes()))?;
        }
    }

    // What comes next arrives through the new watch, well before the 30 s re-read:
    // a node joins, and node-0 peers with it and installs its block.
    let path = c._dir.join("ipipd.toml");
    let n3 = Node::start(&mut c.lan, &path, "node-3", &node_address(3))?;
    c.nodes.push(n3);
    let out = c.pod(3, "w3")?;
    ensure!(out.ok(), "{}", out.stdout);
    let answered = std::time::Instant::now();
    let block3 = c
        .etcd_blocks()?
        .into_iter()
        .find(|(_, o)| o == "node-3")
        .map(|(b, _)| b)
        .context("node-3 has no block")?;
    c.nodes[0]
        .ns
        .wait_bgp_route_line(
            &format!("{block3} via {} dev tunl0 onlink", node_address(3)),
            Duration::from_secs(5),
        )
        .with_context(|| {
            format!(
                "node-0 did not follow node-3's join ({:.1} s after the gap's last read): {:?}",
                read_before.elapsed().as_secs_f64(),
                view(&c.nodes[0])
            )
        })?;
    println!(
        "watch gap recovered; node-3's block at node-0 {:.0} ms after its ADD",
        answered.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

#[test]
fn nodes_reach_etcd_over_tls_with_client_certificates() -> Result<()> {
    // etcd with a CA made for this test, serving https and requiring a client
    // certificate; the nodes' one config carries ca_file, cert_file and key_file.
    require_root();
    let mut lan = Lan::new()?;
    let etcd = EtcdCluster::start_tls(&mut lan, &ETCD)?;
    let tls = etcd.tls.clone().context("no TLS")?;
    // Without a client certificate, etcd refuses.
    let plain = etcd.members[0]
        .ns
        .command("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.members[0].endpoint()])
        .arg("--cacert")
        .arg(&tls.ca)
        .args(["--command-timeout=3s", "get", "/ipipd/"])
        .output()?;
    ensure!(
        !plain.status.success(),
        "etcd answered a client without a certificate"
    );
    let dir = TempDir::new("dscfg")?;
    let path = dir.join("ipipd.toml");
    std::fs::write(
        &path,
        cluster_config(&etcd.endpoints(), "10.242.0.0/16", Some(&tls)),
    )?;
    let mut c = Cluster {
        nodes: Vec::new(),
        etcd,
        _dir: dir,
        lan,
        pods: Vec::new(),
    };
    for i in 0..2 {
        let n = Node::start(&mut c.lan, &path, &format!("node-{i}"), &node_address(i))?;
        c.nodes.push(n);
    }
    c.wait_full_mesh()?;
    for i in 0..2 {
        let out = c.pod(i, &format!("t{i}"))?;
        ensure!(out.ok(), "ADD on node-{i}: {} {}", out.stdout, out.stderr);
    }
    let blocks = c.etcd_blocks()?;
    ensure!(blocks.len() == 2, "one block per node in etcd: {blocks:?}");
    c.wait_kernels(&blocks)?;
    Ok(())
}

#[path = "datastore_etcd/borrow.rs"]
mod borrow;
#[path = "datastore_etcd/current.rs"]
mod current;
#[path = "datastore_etcd/ipam.rs"]
mod ipam;
#[path = "datastore_etcd/pools.rs"]
mod pools;
#[path = "datastore_etcd/vtep.rs"]
mod vtep;
