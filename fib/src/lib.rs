//! The Linux FIB side of ipipd: which routes the node should have, and keeping the kernel
//! exactly so.
//!
//! The crate knows nothing of BGP. The daemon hands it changes to the remote routes
//! ([`RemoteChange`]: best next hops per prefix, as they change), own blocks and local
//! workloads; the [`Installer`] task turns each change into the route [`desired`] defines,
//! writes the difference to the kernel, puts back what others change, and keeps the
//! tunnel device in shape: `tunl0` (IPIP), or a VXLAN device with its neighbour and FDB
//! entries ([`vtep`]). The reconciler is written against the [`Fib`]
//! trait so that the same code runs over the kernel ([`NetlinkFib`]) and over memory
//! ([`MemFib`]) in tests.

pub mod desired;
mod error;
mod fib;
#[cfg(feature = "tokio")]
mod installer;
#[cfg(feature = "tokio")]
mod memory;
mod netlink;
pub mod netns;
#[cfg(feature = "tokio")]
mod reconcile;
#[cfg(feature = "tokio")]
mod state;
// Without tokio, the daemon's side of these (the notification filter) is left unused.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
mod sys;
pub mod vtep;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

pub use desired::desired;
pub use error::FibError;
pub use fib::{Fib, FibEvent, Link, Op, TunnelSpec, Underlay, VxlanDevice};
#[cfg(feature = "tokio")]
pub use installer::{Counts, Installer, Stats};
#[cfg(feature = "tokio")]
pub use memory::{MemFib, MemHandle};
pub use netlink::pod::{LinkRoute, Peer, PodNetlink};
#[cfg(feature = "tokio")]
pub use netlink::{ensure_tunnel, vxlan_mac, NetlinkFib};

/// The IPIP mode, as in Calico's `ipipMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every remote IPv4 block goes through the tunnel.
    Always,
    /// Only next hops outside the node's own subnet go through the tunnel.
    CrossSubnet,
    /// No tunnel: plain routes via the next hop.
    Never,
}

/// One change to the remote routes: a prefix and its best next hops now, or `None` when
/// it has no route any more.
pub type RemoteChange = (IpNet, Option<Vec<IpAddr>>);

/// Everything the desired route set is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    /// Remote prefixes and their best next hops (one or several: ECMP).
    pub remote: BTreeMap<IpNet, Vec<IpAddr>>,
    pub own_blocks: Vec<IpNet>,
    /// Local workloads: pod IP and host-side interface name.
    pub workloads: Vec<(IpAddr, String)>,
    /// The tunnel device's address: an IPAM allocation of the node's own (never a
    /// pod's), chosen by the daemon; None leaves the device without one.
    pub tunnel_address: Option<Ipv4Addr>,
    /// VXLAN: the nodes whose tunnel endpoints are known (other nodes of the cluster),
    /// with their VTEP MACs; a next hop outside them is routed without encapsulation.
    /// `None`: every next hop can be tunnelled to (IPIP).
    pub vteps: Option<vtep::Macs<Ipv4Addr>>,
    /// VXLAN over IPv6: the IPv6 device and the IPv6 addresses of the nodes whose
    /// endpoints are known, with their IPv6 VTEP MACs; an IPv6 next hop outside them is
    /// routed natively. `None`: no IPv6 device (IPv6 is routed natively).
    pub vxlan_v6: Option<(String, vtep::Macs<Ipv6Addr>)>,
}

impl std::str::FromStr for Mode {
    type Err = String;

    /// The spelling of the configuration file: `always`, `cross-subnet`, `never`.
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "always" => Ok(Mode::Always),
            "cross-subnet" => Ok(Mode::CrossSubnet),
            "never" => Ok(Mode::Never),
            other => Err(format!(
                "unknown IPIP mode {other:?} (always, cross-subnet, never)"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Always => "always",
            Mode::CrossSubnet => "cross-subnet",
            Mode::Never => "never",
        })
    }
}

/// How the installer runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// The tunnel device, normally `tunl0`.
    pub tunnel: String,
    /// `None`: the underlay interface's MTU minus the 20-byte outer IPv4 header.
    pub tunnel_mtu: Option<u32>,
    /// The node's own address: the interface holding it is the underlay, its subnet decides
    /// cross-subnet routing.
    pub node_address: Ipv4Addr,
    /// `rtm_protocol` of every route ipipd owns; routes of other protocols are never touched.
    pub protocol: u8,
    pub table: u32,
    /// Create and configure the tunnel device (off only for setups that bring their own).
    pub manage_tunnel: bool,
    /// `Some`: the tunnel is a VXLAN device (with neighbour and FDB entries per remote
    /// node); `None`: IPIP.
    pub vxlan: Option<Vxlan>,
    /// `Some` (with `vxlan`): IPv6 blocks of known nodes go through a second VXLAN
    /// device over the IPv6 underlay.
    pub vxlan_v6: Option<VxlanV6>,
}

/// The IPv6 VXLAN device (Calico's `vxlan-v6.calico`): same VNI and port as the IPv4 one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanV6 {
    pub device: String,
    /// The node's IPv6 address: the outer source.
    pub local: Ipv6Addr,
    /// `None`: the underlay interface's MTU minus 70 (outer IPv6 40, UDP 8, VXLAN 8,
    /// inner Ethernet 14).
    pub mtu: Option<u32>,
    /// The device's MAC; `None`: derived from `local` ([`vtep::vtep_mac_v6`]).
    pub mac: Option<[u8; 6]>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vxlan {
    pub vni: u32,
    pub port: u16,
    /// The IPv4 device's MAC; `None`: derived from the node address
    /// ([`vtep::vtep_mac`]).
    pub mac: Option<[u8; 6]>,
}

impl Settings {
    /// Protocol 186 is what iproute2 prints as `proto bgp`.
    pub const DEFAULT_PROTOCOL: u8 = 186;
    /// The main table.
    pub const DEFAULT_TABLE: u32 = 254;

    /// Defaults for everything but the mode and the node address.
    pub fn new(mode: Mode, node_address: Ipv4Addr) -> Settings {
        Settings {
            mode,
            tunnel: "tunl0".to_string(),
            tunnel_mtu: None,
            node_address,
            protocol: Self::DEFAULT_PROTOCOL,
            table: Self::DEFAULT_TABLE,
            manage_tunnel: true,
            vxlan: None,
            vxlan_v6: None,
        }
    }
}

/// One kernel route as ipipd wants it or finds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub prefix: IpNet,
    pub kind: RouteKind,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    /// One next hop is a plain route, several a multipath route.
    Via(Vec<NextHop>),
    Blackhole,
    /// `dev X scope link`: a local workload.
    Link {
        device: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    pub gateway: IpAddr,
    /// `None`: let the kernel pick the device from its routes to the gateway.
    pub device: Option<String>,
    pub onlink: bool,
}

impl RouteKind {
    /// Whether a route found in the kernel is this wanted one. A wanted next hop without a
    /// device matches whatever device the kernel chose for it; everything else must be
    /// identical, so an identical route is never rewritten and a different one always is.
    pub fn matches(&self, found: &RouteKind) -> bool {
        match (self, found) {
            (RouteKind::Via(want), RouteKind::Via(have)) => {
                want.len() == have.len()
                    && want.iter().all(|w| {
                        have.iter().any(|h| {
                            w.gateway == h.gateway
                                && w.onlink == h.onlink
                                && (w.device.is_none() || w.device == h.device)
                        })
                    })
            }
            (a, b) => a == b,
        }
    }

    /// The devices this route needs to exist and be up before the kernel accepts it.
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        let (hops, link) = match self {
            RouteKind::Via(hops) => (hops.as_slice(), None),
            RouteKind::Blackhole => (&[][..], None),
            RouteKind::Link { device } => (&[][..], Some(device.as_str())),
        };
        hops.iter().filter_map(|h| h.device.as_deref()).chain(link)
    }
}
