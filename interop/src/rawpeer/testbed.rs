//! Two namespaces joined by a veth pair: ipipd on one side (172.30.0.1), raw peers on
//! the other (172.30.0.2 and up, one address per configured peer). The kernel sees a
//! real next hop on the link, so routes learned from the raw peers are installed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::Dial;
use crate::config::{NodeConfig, Peer};
use crate::harness::{wait_until, Netns};
use crate::ipipd::{Ipipd, PeerJson, RouteJson};
use anyhow::{Context, Result};

/// ipipd's address and AS in every testbed.
pub const NODE: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
pub const NODE_AS: u32 = 64512;
/// ipipd's own block and the pool it accepts routes from.
pub const OWN_BLOCK: &str = "100.64.0.0/26";
pub const POOL: &str = "100.64.0.0/10";

#[derive(Debug)]
pub struct Testbed {
    /// Where ipipd runs.
    pub node: Netns,
    /// Where the raw peers' sockets live.
    pub peers: Netns,
    pub port: u16,
    count: u8,
}

impl Testbed {
    /// Namespaces with `count` raw-peer addresses.
    pub fn new(count: u8) -> Result<Testbed> {
        let node = Netns::new("hn")?;
        let peers = Netns::new("hp")?;
        node.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &peers.name,
        ])?;
        node.ip(&["addr", "add", &format!("{NODE}/24"), "dev", "eth0"])?;
        node.ip(&["link", "set", "eth0", "up"])?;
        node.add_standin_tunl0()?;
        node.ip(&["link", "set", "tunl0", "up"])?;
        for i in 0..count {
            peers.ip(&[
                "addr",
                "add",
                &format!("{}/24", Testbed::addr(i)),
                "dev",
                "eth0",
            ])?;
        }
        peers.ip(&["link", "set", "eth0", "up"])?;
        Ok(Testbed {
            node,
            peers,
            port: 179,
            count,
        })
    }

    /// The address of raw peer `i` (0-based).
    pub fn addr(i: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 30, 0, 2 + i)
    }

    /// How a raw peer at `address` reaches ipipd.
    pub fn dial(&self, address: Ipv4Addr) -> Dial {
        Dial::new(
            &self.peers.name,
            IpAddr::V4(address),
            SocketAddr::new(IpAddr::V4(NODE), self.port),
        )
    }

    pub fn count(&self) -> u8 {
        self.count
    }

    /// ipipd's configuration: every peer passive (the raw peers connect) unless it
    /// says otherwise; hold time 90 and graceful restart off, so a reset removes
    /// routes at once (a test may change them before rendering).
    pub fn config(&self, peers: &[Peer]) -> NodeConfig {
        let mut c = NodeConfig::bare(&NODE.to_string(), &[OWN_BLOCK])
            .name("hostile")
            .asn(NODE_AS)
            .pools(&[POOL])
            .no_mesh()
            .timers(90, 0, Some(1));
        c.bgp.port = Some(self.port);
        c.peers = peers
            .iter()
            .map(|p| Peer {
                passive: p.passive.or(Some(true)),
                ..p.clone()
            })
            .collect();
        c
    }

    /// Starts ipipd with `config` in the node namespace.
    pub fn start(&self, config: &NodeConfig) -> Result<Ipipd<'_>> {
        Ipipd::start(&self.node, &config.toml())
    }
}

/// The route for `prefix` learned from `peer`, if `show routes` has it.
pub fn route_from(routes: &[RouteJson], prefix: &str, peer: Ipv4Addr) -> Option<RouteJson> {
    let peer = peer.to_string();
    routes
        .iter()
        .find(|r| r.prefix == prefix && r.peer.as_deref() == Some(peer.as_str()))
        .cloned()
}

/// Waits until `prefix` from `peer` is in `show routes` and in the kernel.
pub fn wait_learned(
    d: &Ipipd<'_>,
    prefix: &str,
    peer: Ipv4Addr,
    limit: Duration,
) -> Result<RouteJson> {
    wait_until(limit, &format!("{prefix} from {peer} installed"), || {
        let r = route_from(&d.routes().ok()?, prefix, peer)?;
        r.installed.then_some(r)
    })
    .with_context(|| format!("routes now: {:?}", d.routes().unwrap_or_default()))
}

/// Waits until `prefix` is neither in `show routes` (from any peer) nor in the kernel.
pub fn wait_gone(d: &Ipipd<'_>, prefix: &str, limit: Duration) -> Result<()> {
    wait_until(
        limit,
        &format!("{prefix} gone from show routes and the kernel"),
        || {
            let in_rib = d
                .routes()
                .ok()?
                .iter()
                .any(|r| r.prefix == prefix && r.origin == "bgp");
            let in_kernel = kernel_has(&d.ns.bgp_routes(), prefix);
            (!in_rib && !in_kernel).then_some(())
        },
    )
}

/// Whether `ip route show proto bgp` output has a line for `prefix`.
pub fn kernel_has(ip_route: &str, prefix: &str) -> bool {
    let bare = prefix.strip_suffix("/32").unwrap_or(prefix);
    ip_route
        .lines()
        .any(|l| l.split_whitespace().next() == Some(bare))
}

/// The session with `address` as `show peers` reports it.
pub fn peer_status(d: &Ipipd<'_>, address: Ipv4Addr) -> Option<PeerJson> {
    d.peers()
        .ok()?
        .into_iter()
        .find(|p| p.address == IpAddr::V4(address))
}

/// Resident set size and its high-water mark, in KiB, from /proc/PID/status.
pub fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Ok((
        field("VmRSS:").context("no VmRSS")?,
        field("VmHWM:").context("no VmHWM")?,
    ))
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The pid of the ipipd process itself (the `ip netns exec` wrapper execs it).
pub fn ipipd_pid(d: &Ipipd<'_>) -> Result<u32> {
    d.proc
        .as_ref()
        .and_then(|p| p.pid())
        .context("ipipd is not running")
}

/// The last `n` lines of ipipd's log without terminal colour codes, for failure messages.
pub fn log_tail(d: &Ipipd<'_>, n: usize) -> String {
    let log = d.log();
    let mut plain = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, up to and including a final letter.
            for x in chars.by_ref() {
                if x.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let lines: Vec<&str> = plain.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
