//! The resolved configuration: every default applied, every value checked.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::selector::Selector;

pub const DEFAULT_ASN: u32 = 64512;
pub const DEFAULT_PORT: u16 = 179;
pub const DEFAULT_HOLD_TIME: u16 = 90;
pub const DEFAULT_GRACEFUL_RESTART_TIME: u16 = 120;
pub const DEFAULT_BFD_INTERVAL_MS: u32 = 300;
pub const DEFAULT_BFD_MULTIPLIER: u8 = 3;
pub const DEFAULT_MAX_PATHS: usize = 4;
pub const DEFAULT_CONNECT_RETRY_TIME: u16 = 5;
pub const DEFAULT_DEVICE: &str = "tunl0";
/// Calico's VXLAN device name, VNI and UDP port (the IANA VXLAN port).
pub const DEFAULT_VXLAN_DEVICE: &str = "vxlan.calico";
pub const DEFAULT_VXLAN_VNI: u32 = 4096;
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// "bgp" in iproute2's rt_protos, the number BIRD and calico use too.
pub const DEFAULT_PROTOCOL: u8 = 186;
/// RT_TABLE_MAIN.
pub const DEFAULT_TABLE: u32 = 254;
pub const DEFAULT_SOCKET: &str = "/run/ipipd/ipipd.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ipipd";
/// Used when the host name cannot be read.
pub const FALLBACK_NAME: &str = "ipipd";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub node: Node,
    pub cluster: Cluster,
    pub bgp: Bgp,
    pub peers: Vec<Peer>,
    /// The pod address pools, from `[[pool]]` or `cluster.pools`; `cluster.pools` lists
    /// their CIDRs.
    pub pools: Vec<Pool>,
    pub ipip: Ipip,
    pub vxlan: Vxlan,
    pub kernel: Kernel,
    pub control: Control,
    pub metrics: Metrics,
    pub datastore: Datastore,
    pub bfd: Bfd,
    pub ipam: IpamSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    /// Router id, BGP source address and the next hop other nodes tunnel to.
    pub address: Ipv4Addr,
    pub address_v6: Option<Ipv6Addr>,
    pub asn: u32,
    pub blocks: Vec<IpNet>,
    /// What pools' `node_selector`s match (`node.labels`, or `IPIPD_NODE_LABELS`).
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// The CIDRs of [`Config::pools`]: nothing outside them is announced, accepted or
    /// installed.
    pub pools: Vec<IpNet>,
    pub mesh: bool,
    pub nodes: Vec<IpAddr>,
    pub mesh_password: Option<String>,
    /// Length of the IPv4 blocks a datastore node claims from the pools.
    pub block_size: u8,
    /// Length of the IPv6 blocks.
    pub block_size_v6: u8,
}

/// One pod address pool: `[[pool]]`, or an entry of `cluster.pools` with the defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pool {
    pub cidr: IpNet,
    /// Length of the blocks a datastore node claims from the pool: `cluster.block_size`
    /// (`block_size_v6`) unless set, and the pool's own length for a pool shorter than
    /// that (it is one block).
    pub block_size: u8,
    /// Masquerade pod traffic from this pool to destinations outside every pool.
    pub nat_outgoing: bool,
    /// No new blocks or addresses from the pool; the ones in use stay.
    pub disabled: bool,
    /// Which nodes may take blocks from the pool, by their labels.
    pub node_selector: Selector,
}

impl Pool {
    /// A pool as `cluster.pools` lists it: every option at its default.
    pub fn with_defaults(cidr: IpNet, block_size: u8) -> Pool {
        Pool {
            cidr,
            block_size: block_size.max(cidr.prefix_len()),
            nat_outgoing: false,
            disabled: false,
            node_selector: Selector::all(),
        }
    }

    /// Whether a node with `labels` may take new blocks and addresses from the pool.
    pub fn open_to(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.disabled && self.node_selector.matches(labels)
    }
}

impl Config {
    /// The pools this node may take new blocks and addresses from.
    pub fn open_pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.iter().filter(|p| p.open_to(&self.node.labels))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bgp {
    pub port: u16,
    pub hold_time: u16,
    /// `None`: a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    pub graceful_restart_time: u16,
    /// Set: this node reflects routes for its `rr_client` peers.
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    /// ECMP next hops installed per prefix.
    pub max_paths: usize,
    pub connect_retry_time: u16,
    pub listen: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    pub address: IpAddr,
    pub asn: u32,
    /// `None`: `bgp.port`.
    pub port: Option<u16>,
    pub passive: bool,
    pub password: Option<String>,
    pub rr_client: bool,
    /// The peer reflects routes for this node (used only when this node is no reflector).
    pub route_reflector: bool,
    pub ttl_security: bool,
    pub max_prefixes: Option<u32>,
    pub name: Option<String>,
    /// Administratively down: configured, never connected.
    pub shutdown: bool,
    /// BFD on this session; `None`: `bfd.enabled`.
    pub bfd: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpipMode {
    /// Every remote block goes through the tunnel.
    #[default]
    Always,
    /// Tunnel only to nodes outside this node's subnet; route directly inside it.
    CrossSubnet,
    /// Plain routes via the peer, no tunnel.
    Never,
}

impl std::fmt::Display for IpipMode {
    /// The spelling of the configuration file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IpipMode::Always => "always",
            IpipMode::CrossSubnet => "cross-subnet",
            IpipMode::Never => "never",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ipip {
    pub mode: IpipMode,
    pub device: String,
    /// `None`: the MTU of the interface holding `node.address`, minus the 20-byte outer header.
    pub mtu: Option<u32>,
}

/// VXLAN encapsulation, Calico's `vxlanMode`: the same modes as IPIP, through a VXLAN
/// device. At most one of `[ipip]` and `[vxlan]` has a mode other than `never`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vxlan {
    pub mode: IpipMode,
    pub device: String,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// `None`: the MTU of the interface holding `node.address`, minus the 50 bytes of
    /// outer IPv4, UDP, VXLAN and Ethernet headers.
    pub mtu: Option<u32>,
}

impl Config {
    /// The encapsulation device in use (`[vxlan]` when its mode is not `never`, else
    /// `[ipip]`'s unless that is `never` too), with its configured MTU.
    pub fn tunnel_device(&self) -> Option<(&str, Option<u32>)> {
        if self.vxlan.mode != IpipMode::Never {
            Some((&self.vxlan.device, self.vxlan.mtu))
        } else if self.ipip.mode != IpipMode::Never {
            Some((&self.ipip.device, self.ipip.mtu))
        } else {
            None
        }
    }

    /// VXLAN over IPv6 (Calico's `vxlan-v6.calico`): with `vxlan.mode` not `never`,
    /// `node.address_v6` set and an IPv6 pool, IPv6 blocks go through a second device,
    /// with the IPv4 device's VNI and port. Its MTU: `vxlan.mtu` minus the 20 bytes the
    /// larger outer header takes, or (`None`) the underlay's minus 70.
    pub fn vxlan_v6_device(&self) -> Option<(&'static str, Option<u32>)> {
        let on = self.vxlan.mode != IpipMode::Never
            && self.node.address_v6.is_some()
            && self.pools.iter().any(|p| p.cidr.addr().is_ipv6());
        on.then_some((
            VXLAN_V6_DEVICE,
            self.vxlan.mtu.map(|m| m.saturating_sub(20)),
        ))
    }
}

/// The IPv6 VXLAN device's name, as Calico names it.
pub const VXLAN_V6_DEVICE: &str = "vxlan-v6.calico";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kernel {
    /// rtm_protocol of every route ipipd owns; routes with another protocol are never touched.
    pub protocol: u8,
    pub table: u32,
    /// false: compute routes but never write the FIB (benchmarks).
    pub install: bool,
    pub flush_on_stop: bool,
}

/// `[ipam]`: how a node gets addresses once its blocks are full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpamSettings {
    /// A node uses only its own blocks: no address borrowed from another node's block.
    pub strict_affinity: bool,
    /// Most blocks a node claims (Calico's `maxBlocksPerHost`); 0: no limit.
    pub max_blocks_per_node: u32,
}

impl Default for IpamSettings {
    fn default() -> IpamSettings {
        IpamSettings {
            strict_affinity: false,
            max_blocks_per_node: 20,
        }
    }
}

/// Prometheus metrics: off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Address and port of the HTTP endpoint serving `GET /metrics`.
    pub listen: Option<std::net::SocketAddr>,
}

/// BFD (RFC 5880/5881 single hop) on BGP sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bfd {
    /// On for mesh sessions and every `[[peer]]` without its own `bfd` key.
    pub enabled: bool,
    /// Desired min TX and required min RX.
    pub interval_ms: u32,
    /// Detect multiplier.
    pub multiplier: u8,
    /// Who starts the keeper process that holds the sessions.
    pub keeper: Keeper,
}

/// Who starts the BFD keeper (`ipipd bfd-keeper`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keeper {
    /// The daemon starts one when none answers on its socket (systemd, a host).
    #[default]
    Spawn,
    /// Something else runs it (a container of its own in the pod): the daemon
    /// only connects, and waits for it.
    External,
}

impl Default for Bfd {
    fn default() -> Bfd {
        Bfd {
            enabled: false,
            interval_ms: DEFAULT_BFD_INTERVAL_MS,
            multiplier: DEFAULT_BFD_MULTIPLIER,
            keeper: Keeper::Spawn,
        }
    }
}

impl Bfd {
    /// Whether a session has BFD: its own `bfd` key, else `enabled`.
    pub fn on(&self, peer_key: Option<bool>) -> bool {
        peer_key.unwrap_or(self.enabled)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Control {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
}

pub const DEFAULT_BLOCK_SIZE: u8 = 26;
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;
pub const DEFAULT_ETCD_ENDPOINT: &str = "http://127.0.0.1:2379";
pub const DEFAULT_PREFIX: &str = "/ipipd";
pub const DEFAULT_DIAL_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5000;
pub const DEFAULT_BLOCK_RELEASE_GRACE: u64 = 300;
pub const DEFAULT_RESYNC: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatastoreKind {
    /// Nodes and blocks come from this file.
    #[default]
    File,
    /// Nodes, pools and block ownership live in etcd v3.
    Etcd,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datastore {
    pub kind: DatastoreKind,
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub dial_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Seconds a claimed block stays empty before the node gives it back.
    pub block_release_grace: u64,
    /// Seconds with nothing on the datastore watch before the view is checked against
    /// the store (a full read only if it differs), and a tenth of the longest time
    /// between full reads.
    pub resync: u64,
}

/// Values from the environment or the command line that replace the file's, so one
/// file serves every node (`IPIPD_NODE_NAME`, `IPIPD_NODE_ADDRESS`, `IPIPD_NODE_LABELS`,
/// `IPIPD_SOCKET`, `IPIPD_STATE_DIR`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub node_name: Option<String>,
    pub node_address: Option<String>,
    /// `rack=r1,zone=a`: replaces `node.labels` as a whole.
    pub node_labels: Option<String>,
    pub socket: Option<String>,
    pub state_dir: Option<String>,
}

impl Overrides {
    /// The `IPIPD_*` variables that are set and not empty.
    pub fn from_env() -> Overrides {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Overrides {
            node_name: var("IPIPD_NODE_NAME"),
            node_address: var("IPIPD_NODE_ADDRESS"),
            node_labels: var("IPIPD_NODE_LABELS"),
            socket: var("IPIPD_SOCKET"),
            state_dir: var("IPIPD_STATE_DIR"),
        }
    }

    /// `self`, with each value `other` has replacing it (flags over the environment).
    pub fn or(self, other: Overrides) -> Overrides {
        Overrides {
            node_name: other.node_name.or(self.node_name),
            node_address: other.node_address.or(self.node_address),
            node_labels: other.node_labels.or(self.node_labels),
            socket: other.socket.or(self.socket),
            state_dir: other.state_dir.or(self.state_dir),
        }
    }
}

/// The host name, as the kernel knows it, for `node.name`.
pub(crate) fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| FALLBACK_NAME.to_owned())
}
