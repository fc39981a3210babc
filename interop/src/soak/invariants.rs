//! The invariants, as pure functions over one round of observations: each returns
//! what it found with its evidence.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::Ipv4Net;

use super::observe::{EtcdView, NodeObs, PodRef, NO_BFD_SESSION, NO_SESSION};
use crate::harness::KernelRoute;

/// Something a round found. `hold` is how long it must persist, round after round,
/// before it is a violation (zero: at once).
#[derive(Debug, Clone)]
pub struct Finding {
    /// Identifies "the same" finding across rounds.
    pub key: String,
    pub text: String,
    pub hold: Duration,
}

impl Finding {
    fn now(key: String, text: String) -> Finding {
        Finding {
            key,
            text,
            hold: Duration::ZERO,
        }
    }
}

/// One round of observations.
pub struct Round<'a> {
    /// Nodes that ran the whole round (not stopped, frozen or restarted meanwhile).
    pub nodes: &'a [NodeObs],
    /// Of those, the ones whose last fault event is older than the settle window.
    pub settled: &'a BTreeSet<String>,
    /// Pods live the whole round.
    pub pods: &'a [PodRef],
    pub etcd: Option<&'a EtcdView>,
    /// Removed nodes (name, address) whose removal is older than the settle window.
    pub removed: &'a [(String, Ipv4Addr)],
    pub block_len: u8,
}

/// How long a session that exists may be other than Established with BFD Up: BFD at
/// 300 ms × 3 on a loaded two-core machine can miss a beat, and the flap it causes
/// heals in a second or two; a stuck session does not. A missing one counts at once.
pub const SESSION_HOLD: Duration = Duration::from_secs(5);
/// Kernel disagreements that hold in a steady state, not during a hand-over.
pub const ROUTE_HOLD: Duration = Duration::from_secs(10);
/// Two rounds at least: a block blackholed on two nodes.
pub const DOUBLE_BLACKHOLE_HOLD: Duration = Duration::from_secs(2);

/// Every invariant of one round.
pub fn check_round(r: &Round<'_>) -> Vec<Finding> {
    let mut f = Vec::new();
    addresses(r, &mut f);
    if let Some(etcd) = r.etcd {
        etcd_owners(r, etcd, &mut f);
    }
    kernels(r, &mut f);
    sessions(r, &mut f);
    removed(r, &mut f);
    f
}

/// No address twice: tunnel vs pods, pods vs pods across the daemons' records, and every
/// live pod recorded by its node.
fn addresses(r: &Round<'_>, f: &mut Vec<Finding>) {
    let mut holders: BTreeMap<IpAddr, Vec<(String, Option<String>)>> = BTreeMap::new();
    for n in r.nodes {
        for w in &n.workloads {
            holders
                .entry(w.ip)
                .or_default()
                .push((n.name.clone(), w.handle.clone()));
        }
    }
    for (ip, hs) in &holders {
        if hs.len() > 1 {
            f.push(Finding::now(
                format!("dup-workload {ip}"),
                format!("address {ip} is allocated twice: (node, handle) {hs:?}"),
            ));
        }
    }
    for n in r.nodes {
        for t in &n.tunnel {
            if let Some(p) = r.pods.iter().find(|p| p.address == *t) {
                f.push(Finding::now(
                    format!("tunnel-pod {} {t}", n.name),
                    format!(
                        "{}'s tunl0 address {t} is the address of live pod {} on {}; {}'s own blocks: {:?}",
                        n.name, p.id, p.node, n.name, n.own_blocks()
                    ),
                ));
            } else if let Some(hs) = holders.get(&IpAddr::V4(*t)) {
                f.push(Finding::now(
                    format!("tunnel-workload {} {t}", n.name),
                    format!(
                        "{}'s tunl0 address {t} is allocated to a pod: (node, handle) {hs:?}; {}'s own blocks: {:?}",
                        n.name, n.name, n.own_blocks()
                    ),
                ));
            }
        }
    }
    let mut by_address: BTreeMap<Ipv4Addr, Vec<&PodRef>> = BTreeMap::new();
    for p in r.pods {
        by_address.entry(p.address).or_default().push(p);
    }
    for (ip, ps) in by_address.iter().filter(|(_, ps)| ps.len() > 1) {
        f.push(Finding::now(
            format!("dup-pod {ip}"),
            format!("two live pods hold {ip}: {ps:?}"),
        ));
    }
    for p in r.pods {
        let Some(n) = r.nodes.iter().find(|n| n.name == p.node) else {
            continue;
        };
        let held = n.workloads.iter().find(|w| w.ip == IpAddr::V4(p.address));
        match held {
            Some(w) if w.handle.as_deref() == Some(p.handle().as_str()) => {}
            other => f.push(Finding::now(
                format!("pod-unrecorded {}", p.id),
                format!(
                    "live pod {} on {} has {} (its ADD result), but {}'s `workload list` has {:?} for it",
                    p.id, p.node, p.address, n.name, other
                ),
            )),
        }
    }
}

/// etcd: a block has one owner, and every live pod's address is in a block its node owns.
fn etcd_owners(r: &Round<'_>, etcd: &EtcdView, f: &mut Vec<Finding>) {
    for ((node, block), state) in &etcd.affinities {
        if state != "confirmed" {
            continue;
        }
        if let Some((owner, bstate)) = etcd.blocks.get(block) {
            if owner != node {
                f.push(Finding::now(
                    format!("etcd-two-owners {block}"),
                    format!("etcd: {block} is {owner}'s ({bstate}) but {node} holds a confirmed affinity to it"),
                ));
            }
        }
    }
    for p in r.pods {
        match etcd.block_holding(p.address) {
            Some((_, owner, _)) if owner == p.node => {}
            other => f.push(Finding::now(
                format!("pod-block {}", p.id),
                format!(
                    "live pod {} on {} has {}, but etcd's block for it is {:?} (block, owner, state)\n{}",
                    p.id,
                    p.node,
                    p.address,
                    other,
                    etcd.describe(&[&p.node], &[])
                ),
            )),
        }
    }
}

/// Kernels: a block blackholed on one node only; in a steady state, blackholed only at
/// its etcd owner, routed everywhere else to that owner, and nowhere missing.
fn kernels(r: &Round<'_>, f: &mut Vec<Finding>) {
    let mut blackholed: BTreeMap<Ipv4Net, Vec<&str>> = BTreeMap::new();
    for n in r.nodes {
        for b in n.blackholes(r.block_len) {
            blackholed.entry(b).or_default().push(&n.name);
        }
    }
    for (b, ns) in blackholed.iter().filter(|(_, ns)| ns.len() > 1) {
        f.push(Finding {
            key: format!("double-blackhole {b} {ns:?}"),
            text: format!("{b} is blackholed (owned) in the kernels of {ns:?}"),
            hold: DOUBLE_BLACKHOLE_HOLD,
        });
    }
    let address_of = |name: &str| {
        r.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.address.to_string())
    };
    for n in r.nodes {
        for (b, via) in n.tunnel_routes(r.block_len) {
            if let Some(owners) = blackholed.get(&b) {
                for o in owners {
                    if address_of(o).as_deref() != Some(via.as_str()) {
                        f.push(Finding {
                            key: format!("route-conflict {} {b} {via} {o}", n.name),
                            text: format!(
                                "{b} is blackholed at {o} but {} routes it via {via}",
                                n.name
                            ),
                            hold: ROUTE_HOLD,
                        });
                    }
                }
            }
        }
        let Some(etcd) = r.etcd else { continue };
        for b in n.blackholes(r.block_len) {
            let owner = etcd.blocks.get(&b).map(|(o, _)| o.as_str());
            if owner != Some(n.name.as_str()) {
                f.push(Finding {
                    key: format!("blackhole-not-owner {} {b} {owner:?}", n.name),
                    text: format!("{} blackholes {b}, etcd's owner is {owner:?}", n.name),
                    hold: ROUTE_HOLD,
                });
            }
        }
    }
    if let Some(etcd) = r.etcd {
        steady_routes(r, etcd, f);
    }
}

/// Between settled nodes, all along: each holds etcd's confirmed blocks of its own as
/// blackholes and every other's as a route via that node.
fn steady_routes(r: &Round<'_>, etcd: &EtcdView, f: &mut Vec<Finding>) {
    let settled: Vec<&NodeObs> = r
        .nodes
        .iter()
        .filter(|n| r.settled.contains(&n.name))
        .collect();
    for n in &settled {
        let have = n.blackholes(r.block_len);
        for b in etcd.confirmed_of(&n.name).difference(&have) {
            f.push(Finding {
                key: format!("own-block-missing {} {b}", n.name),
                text: format!(
                    "etcd: {b} is {}'s, but its kernel has no blackhole for it; its `show blocks` own: {:?}",
                    n.name,
                    n.own_blocks()
                ),
                hold: ROUTE_HOLD,
            });
        }
        let routed = n.tunnel_routes(r.block_len);
        for m in settled.iter().filter(|m| m.name != n.name) {
            let via = m.address.to_string();
            for b in etcd.confirmed_of(&m.name) {
                if routed.get(&b) != Some(&via) {
                    f.push(Finding {
                        key: format!("route-missing {} {b}", n.name),
                        text: format!(
                            "etcd: {b} is {}'s, {}'s kernel routes it via {:?} (want {via})",
                            m.name,
                            n.name,
                            routed.get(&b)
                        ),
                        hold: ROUTE_HOLD,
                    });
                }
            }
        }
    }
}

/// Every pair of settled running nodes: BGP Established and BFD Up, both ways.
fn sessions(r: &Round<'_>, f: &mut Vec<Finding>) {
    for a in r.nodes.iter().filter(|n| r.settled.contains(&n.name)) {
        for b in r
            .nodes
            .iter()
            .filter(|n| n.name != a.name && r.settled.contains(&n.name))
        {
            let (bgp, bfd) = (a.peer_state(b.address), a.bfd_state(b.address));
            if bgp == "Established" && bfd == "Up" {
                continue;
            }
            let detail = a
                .peers
                .iter()
                .find(|p| p.address == IpAddr::V4(b.address))
                .map(|p| format!("since {} ({})", p.since, p.info))
                .unwrap_or_default();
            let text = format!(
                "{}'s session to {} ({}): BGP {bgp} {detail}, BFD {bfd}",
                a.name, b.name, b.address
            );
            // A session that is not there at all is no flap.
            let (kind, hold) = if bgp == NO_SESSION || bfd == NO_BFD_SESSION {
                ("session-missing", Duration::ZERO)
            } else {
                ("session", SESSION_HOLD)
            };
            f.push(Finding {
                key: format!("{kind} {} {}", a.name, b.name),
                text,
                hold,
            });
        }
    }
}

/// A removed node is gone everywhere: sessions, routes, etcd.
fn removed(r: &Round<'_>, f: &mut Vec<Finding>) {
    for (name, address) in r.removed {
        for n in r.nodes {
            if n.peers.iter().any(|p| p.address == IpAddr::V4(*address)) {
                f.push(Finding::now(
                    format!("removed-peer {} {name}", n.name),
                    format!(
                        "{} still has a session to removed {name}: {}",
                        n.name,
                        n.peer_state(*address)
                    ),
                ));
            }
            let via: Vec<&KernelRoute> = n
                .routes
                .iter()
                .filter(|r| r.gateway.as_deref() == Some(address.to_string().as_str()))
                .collect();
            if !via.is_empty() {
                f.push(Finding::now(
                    format!("removed-route {} {name}", n.name),
                    format!("{} still routes via removed {name}: {via:?}", n.name),
                ));
            }
        }
        if let Some(etcd) = r.etcd {
            let left: Vec<_> = etcd.blocks.iter().filter(|(_, (o, _))| o == name).collect();
            if etcd.nodes.contains(name) || !left.is_empty() {
                f.push(Finding::now(
                    format!("removed-etcd {name}"),
                    format!(
                        "etcd still has removed {name}: registered {}, blocks {left:?}",
                        etcd.nodes.contains(name)
                    ),
                ));
            }
        }
    }
}

/// The steady state after a quiet spell: etcd's blocks of each node = its `show blocks`
/// own blocks = its kernel's blackholes; every other node routes each via the owner and
/// no other block; each node's allocations = its live pods; tunl0 in an own block; every
/// session Established with BFD Up. Returns every difference.
pub fn converged(
    nodes: &[NodeObs],
    etcd: &EtcdView,
    pods: &[PodRef],
    block_len: u8,
) -> std::result::Result<(), String> {
    let mut d = String::new();
    let names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    for (b, (owner, state)) in &etcd.blocks {
        if state != "confirmed" {
            let _ = writeln!(d, "etcd: {b} of {owner} is {state}");
        }
        if !names.contains(owner.as_str()) {
            let _ = writeln!(d, "etcd: {b} belongs to {owner}, not a running node");
        }
    }
    for n in nodes {
        let want = etcd.confirmed_of(&n.name);
        let shown = n.own_blocks();
        let kernel = n.blackholes(block_len);
        if want != shown || want != kernel {
            let _ = writeln!(
                d,
                "{}: etcd's blocks {want:?}, `show blocks` own {shown:?}, kernel blackholes {kernel:?}",
                n.name
            );
        }
        let routed = n.tunnel_routes(block_len);
        for m in nodes.iter().filter(|m| m.name != n.name) {
            for b in etcd.confirmed_of(&m.name) {
                let via = routed.get(&b);
                if via.map(String::as_str) != Some(m.address.to_string().as_str()) {
                    let _ = writeln!(
                        d,
                        "{}: {b} (of {}) should be via {}, kernel has {via:?}",
                        n.name, m.name, m.address
                    );
                }
            }
        }
        for (b, via) in &routed {
            if !nodes
                .iter()
                .any(|m| m.name != n.name && etcd.confirmed_of(&m.name).contains(b))
            {
                let _ = writeln!(
                    d,
                    "{}: stale route {b} via {via} (no running owner in etcd)",
                    n.name
                );
            }
        }
        let held: BTreeSet<(IpAddr, String)> = n
            .workloads
            .iter()
            .map(|w| (w.ip, w.handle.clone().unwrap_or_default()))
            .collect();
        let live: BTreeSet<(IpAddr, String)> = pods
            .iter()
            .filter(|p| p.node == n.name)
            .map(|p| (IpAddr::V4(p.address), p.handle()))
            .collect();
        if held != live {
            let _ = writeln!(
                d,
                "{}: allocations not held by live pods {:?}; live pods without allocation {:?}",
                n.name,
                held.difference(&live).collect::<Vec<_>>(),
                live.difference(&held).collect::<Vec<_>>()
            );
        }
        if !want.is_empty() {
            let ok = n.tunnel.len() == 1 && want.iter().any(|b| b.contains(&n.tunnel[0]));
            if !ok {
                let _ = writeln!(
                    d,
                    "{}: tunl0 has {:?}, own blocks {want:?}",
                    n.name, n.tunnel
                );
            }
        }
    }
    for gap in mesh_gaps(nodes) {
        let _ = writeln!(d, "{gap}");
    }
    if d.is_empty() {
        Ok(())
    } else {
        Err(d)
    }
}

/// Every ordered pair of `nodes` whose session is not Established with BFD Up, as
/// `a → b: BGP state, BFD state`.
pub fn mesh_gaps(nodes: &[NodeObs]) -> Vec<String> {
    let mut gaps = Vec::new();
    for n in nodes {
        for m in nodes.iter().filter(|m| m.name != n.name) {
            let (bgp, bfd) = (n.peer_state(m.address), n.bfd_state(m.address));
            if bgp != "Established" || bfd != "Up" {
                gaps.push(format!("{} → {}: BGP {bgp}, BFD {bfd}", n.name, m.name));
            }
        }
    }
    gaps
}

/// After every pod was deleted: no allocation, no `cali` veth, no workload route.
pub fn clean(nodes: &[(NodeObs, Vec<String>)]) -> std::result::Result<(), String> {
    let mut d = String::new();
    for (n, cali) in nodes {
        if !n.workloads.is_empty() {
            let _ = writeln!(d, "{}: allocations left: {:?}", n.name, n.workloads);
        }
        if !cali.is_empty() {
            let _ = writeln!(d, "{}: veths left: {cali:?}", n.name);
        }
        let routes = n.workload_routes();
        if !routes.is_empty() {
            let _ = writeln!(d, "{}: workload routes left: {routes:?}", n.name);
        }
    }
    if d.is_empty() {
        Ok(())
    } else {
        Err(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::observe::block_id;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn node(name: &str, address: &str, routes: &[(&str, Option<&str>)]) -> NodeObs {
        NodeObs {
            name: name.into(),
            address: ip(address),
            peers: vec![],
            bfd: vec![],
            blocks: vec![],
            workloads: vec![],
            routes: routes
                .iter()
                .map(|(dst, via)| KernelRoute {
                    dst: (*dst).into(),
                    kind: via.is_none().then(|| "blackhole".into()),
                    gateway: via.map(str::to_owned),
                    dev: via.map(|_| "tunl0".into()),
                })
                .collect(),
            tunnel: vec![],
        }
    }

    #[test]
    fn a_block_blackholed_twice_and_a_tunnel_on_a_pod_are_found() {
        let mut a = node("a", "10.0.0.1", &[("101.64.0.0/29", None)]);
        let b = node("b", "10.0.0.2", &[("101.64.0.0/29", None)]);
        a.tunnel = vec![ip("101.64.0.3")];
        let pods = [PodRef {
            id: "p".into(),
            node: "b".into(),
            address: ip("101.64.0.3"),
        }];
        let nodes = [a, b];
        let r = Round {
            nodes: &nodes,
            settled: &BTreeSet::new(),
            pods: &pods,
            etcd: None,
            removed: &[],
            block_len: 29,
        };
        let keys: Vec<String> = check_round(&r).into_iter().map(|f| f.key).collect();
        assert!(
            keys.iter()
                .any(|k| k.starts_with("double-blackhole 101.64.0.0/29")),
            "{keys:?}"
        );
        assert!(
            keys.iter().any(|k| k == "tunnel-pod a 101.64.0.3"),
            "{keys:?}"
        );
    }

    #[test]
    fn etcd_keys_decode_as_the_contract_writes_them() {
        assert_eq!(
            block_id("101.64.0.8-29"),
            "101.64.0.8/29".parse::<Ipv4Net>().ok()
        );
        let a = node(
            "a",
            "10.0.0.1",
            &[("101.64.0.8/29", Some("10.0.0.2")), ("101.64.0.0/29", None)],
        );
        assert_eq!(a.blackholes(29).len(), 1);
        assert_eq!(a.tunnel_routes(29).len(), 1);
    }
}
