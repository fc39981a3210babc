//! One round of observations: what a node shows (control socket and kernel), what
//! etcd holds, and the pods the test made.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::etcd::{EtcdCluster, NodeCtl};
use crate::harness::{bgp_routes_json, ipv4_addresses, KernelRoute};
use crate::ipipd::{BfdJson, BlockJson, PeerJson, WorkloadJson};

/// What [`NodeObs::peer_state`] and [`NodeObs::bfd_state`] say of a session the node
/// does not list.
pub const NO_SESSION: &str = "no session";
pub const NO_BFD_SESSION: &str = "no BFD session";

/// Everything one node shows at one moment: its control socket's answers and its kernel.
#[derive(Debug, Clone)]
pub struct NodeObs {
    pub name: String,
    pub address: Ipv4Addr,
    pub peers: Vec<PeerJson>,
    pub bfd: Vec<BfdJson>,
    pub blocks: Vec<BlockJson>,
    pub workloads: Vec<WorkloadJson>,
    /// `ip -j route show proto bgp`.
    pub routes: Vec<KernelRoute>,
    /// The IPv4 addresses on tunl0.
    pub tunnel: Vec<Ipv4Addr>,
}

impl NodeObs {
    /// Reads the node; an error when the daemon does not answer.
    pub fn read(node: &NodeCtl) -> Result<NodeObs> {
        Ok(NodeObs {
            name: node.name.clone(),
            address: node.address.parse().context("node address")?,
            peers: node.peers()?,
            bfd: node.bfd()?,
            blocks: node.blocks()?,
            workloads: node.workloads()?,
            routes: bgp_routes_json(&node.ns)?,
            tunnel: ipv4_addresses(&node.ns, "tunl0")?,
        })
    }

    /// Blocks (routes of the pool's block length) blackholed in the kernel.
    pub fn blackholes(&self, block_len: u8) -> BTreeSet<Ipv4Net> {
        self.routes
            .iter()
            .filter(|r| r.is_blackhole())
            .filter_map(|r| block_of(r, block_len))
            .collect()
    }

    /// Blocks routed through the tunnel, with their gateway.
    pub fn tunnel_routes(&self, block_len: u8) -> BTreeMap<Ipv4Net, String> {
        self.routes
            .iter()
            .filter(|r| !r.is_blackhole())
            .filter_map(|r| Some((block_of(r, block_len)?, r.gateway.clone()?)))
            .collect()
    }

    /// Own confirmed blocks as `show blocks` lists them (not the /32 rows of
    /// borrowed addresses).
    pub fn own_blocks(&self) -> BTreeSet<Ipv4Net> {
        self.blocks
            .iter()
            .filter(|b| b.local && b.state == "confirmed" && !b.borrowed)
            .filter_map(|b| b.block.parse().ok())
            .collect()
    }

    pub fn peer_state(&self, address: Ipv4Addr) -> String {
        self.peers
            .iter()
            .find(|p| p.address == IpAddr::V4(address))
            .map_or_else(|| NO_SESSION.to_owned(), |p| p.state.clone())
    }

    pub fn bfd_state(&self, address: Ipv4Addr) -> String {
        self.bfd
            .iter()
            .find(|s| s.peer == IpAddr::V4(address))
            .map_or_else(|| NO_BFD_SESSION.to_owned(), |s| s.state.clone())
    }

    /// Routes that point at pods (`dev cali…`) or any host route: workload routes.
    pub fn workload_routes(&self) -> Vec<&KernelRoute> {
        self.routes
            .iter()
            .filter(|r| {
                r.dev.as_deref().is_some_and(|d| d.starts_with("cali")) || !r.dst.contains('/')
            })
            .collect()
    }
}

fn block_of(r: &KernelRoute, block_len: u8) -> Option<Ipv4Net> {
    let net: Ipv4Net = r.dst.parse().ok()?;
    (net.prefix_len() == block_len).then_some(net)
}

/// What etcd holds under the prefix, as the contract describes the keys.
#[derive(Debug, Clone, Default)]
pub struct EtcdView {
    pub nodes: BTreeSet<String>,
    /// Block → (owner, state).
    pub blocks: BTreeMap<Ipv4Net, (String, String)>,
    /// (node, block) → state.
    pub affinities: BTreeMap<(String, Ipv4Net), String>,
}

#[derive(Deserialize)]
struct BlockValue {
    node: String,
    state: String,
}

#[derive(Deserialize)]
struct AffinityValue {
    state: String,
}

/// `a.b.c.d-len` → the block.
pub(crate) fn block_id(id: &str) -> Option<Ipv4Net> {
    id.replacen('-', "/", 1).parse().ok()
}

impl EtcdView {
    /// `etcdctl get --prefix PREFIX/`.
    pub fn read(etcd: &EtcdCluster, prefix: &str) -> Result<EtcdView> {
        let mut v = EtcdView::default();
        for (key, value) in etcd.get_prefix(&format!("{prefix}/"))? {
            let Some(rest) = key.strip_prefix(prefix) else {
                continue;
            };
            if let Some(name) = rest.strip_prefix("/nodes/") {
                v.nodes.insert(name.to_owned());
            } else if let Some(id) = rest.strip_prefix("/blocks/") {
                let b: BlockValue =
                    serde_json::from_str(&value).with_context(|| format!("{key}: {value}"))?;
                let net = block_id(id).with_context(|| format!("block key {key}"))?;
                v.blocks.insert(net, (b.node, b.state));
            } else if let Some(rest) = rest.strip_prefix("/affinity/") {
                let (node, id) = rest.split_once('/').context("affinity key")?;
                let a: AffinityValue =
                    serde_json::from_str(&value).with_context(|| format!("{key}: {value}"))?;
                let net = block_id(id).with_context(|| format!("affinity key {key}"))?;
                v.affinities.insert((node.to_owned(), net), a.state);
            }
        }
        Ok(v)
    }

    /// Confirmed blocks of `node`.
    pub fn confirmed_of(&self, node: &str) -> BTreeSet<Ipv4Net> {
        self.blocks
            .iter()
            .filter(|(_, (o, s))| o == node && s == "confirmed")
            .map(|(b, _)| *b)
            .collect()
    }

    /// The block holding `ip`, with its owner and state.
    pub fn block_holding(&self, ip: Ipv4Addr) -> Option<(Ipv4Net, &str, &str)> {
        self.blocks
            .iter()
            .find(|(b, _)| b.contains(&ip))
            .map(|(b, (o, s))| (*b, o.as_str(), s.as_str()))
    }

    /// Every key of `node` and every block holding `ip`, as evidence.
    pub fn describe(&self, nodes: &[&str], ips: &[Ipv4Addr]) -> String {
        let mut s = String::new();
        for n in nodes {
            let own: Vec<String> = self
                .blocks
                .iter()
                .filter(|(_, (o, _))| o == n)
                .map(|(b, (_, st))| format!("{b} ({st})"))
                .collect();
            let _ = writeln!(s, "  etcd blocks of {n}: {}", own.join(", "));
        }
        for ip in ips {
            let _ = writeln!(
                s,
                "  etcd block holding {ip}: {:?}",
                self.block_holding(*ip)
            );
        }
        s
    }
}

/// A pod the test made and has not begun to delete: ADD answered with `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub id: String,
    pub node: String,
    pub address: Ipv4Addr,
}

impl PodRef {
    /// The IPAM handle the daemon files it under.
    pub fn handle(&self) -> String {
        format!("{}.eth0", self.id)
    }
}

/// One node's observation, compact, with the tail of its log.
pub fn describe(o: &NodeObs, ctl: Option<&NodeCtl>) -> String {
    let mut s = format!("--- {} ({})\n", o.name, o.address);
    let _ = writeln!(s, "  tunl0: {:?}", o.tunnel);
    for p in &o.peers {
        let _ = writeln!(
            s,
            "  peer {} {} since {} {} bfd={:?} received {} accepted {} refused {}+{} (overlap)",
            p.address,
            p.state,
            p.since,
            p.info,
            p.bfd,
            p.received,
            p.accepted,
            p.refused,
            p.refused_overlap
        );
    }
    for b in &o.bfd {
        let _ = writeln!(
            s,
            "  bfd {} {} remote {} since {} ({})",
            b.peer, b.state, b.remote_state, b.since, b.diagnostic
        );
    }
    for b in &o.blocks {
        let _ = writeln!(
            s,
            "  block {} node={:?} local={} state={} allocated={:?}",
            b.block, b.node, b.local, b.state, b.allocated
        );
    }
    let w: Vec<String> = o
        .workloads
        .iter()
        .map(|w| format!("{} {}", w.ip, w.handle.as_deref().unwrap_or("-")))
        .collect();
    let _ = writeln!(s, "  workloads: {}", w.join(", "));
    let workload = o.workload_routes();
    for r in o.routes.iter().filter(|r| !workload.contains(r)) {
        let _ = writeln!(
            s,
            "  route {} {} via {} dev {}",
            r.kind.as_deref().unwrap_or("unicast"),
            r.dst,
            r.gateway.as_deref().unwrap_or("-"),
            r.dev.as_deref().unwrap_or("-")
        );
    }
    let hosts: Vec<&str> = workload.iter().map(|r| r.dst.as_str()).collect();
    let _ = writeln!(s, "  workload routes: {}", hosts.join(", "));
    if let Some(c) = ctl {
        // What the daemon believes about its BGP routes, and the tunnel device itself.
        if let Ok(rib) = c.routes() {
            for r in rib.iter().filter(|r| r.origin == "bgp") {
                let _ = writeln!(
                    s,
                    "  rib {} via {} best={} installed={} stale={}",
                    r.prefix,
                    r.next_hop.as_deref().unwrap_or("-"),
                    r.best,
                    r.installed,
                    r.stale
                );
            }
        }
        let link =
            c.ns.ip(&["-br", "link", "show", "tunl0"])
                .unwrap_or_default();
        let _ = writeln!(s, "  link {}", link.trim());
        let _ = writeln!(s, "  log (last 30 lines):\n{}", c.log_tail(30));
    }
    s
}

/// Whether `text` names node `name` (`node-1` but not `node-10`).
pub fn names(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        !text[i + name.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}
