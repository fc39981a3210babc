//! `ipipd status`: whether this node is healthy and, if not, why.
//!
//! `healthy` and `reasons` are the contract (one reason a line, each naming the peer,
//! block or component); the rest is what an operator reads next to decide what to do.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// The answer to [`crate::Request::Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusJson {
    pub healthy: bool,
    /// One line per reason the node is not healthy; empty when it is.
    pub reasons: Vec<String>,
    pub node: String,
    pub address: Ipv4Addr,
    /// Seconds a peer has after it is configured (start, reload, registration) before
    /// a session that is not Established counts against health.
    pub connect_window_s: u64,
    pub peers: Vec<PeerHealthJson>,
    pub blocks: Vec<BlockUseJson>,
    /// Pod addresses allocated on this node.
    pub allocated: u64,
    pub datastore: DatastoreHealthJson,
    /// Null with `kernel.install = false`.
    pub fib: Option<FibHealthJson>,
    pub encapsulation: EncapsulationJson,
    /// Outbound NAT (ipipd's nftables table); null with `kernel.install = false`.
    #[serde(default)]
    pub nat: Option<NatHealthJson>,
}

/// Outbound NAT: ipipd's nftables table `ipipd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatHealthJson {
    /// The families (`ip`, `ip6`) whose table is in the kernel.
    pub tables: Vec<String>,
    /// The pools whose traffic to destinations outside every pool is masqueraded.
    pub pools: Vec<String>,
    /// The kernel held the table as wanted at the last look (done every few seconds).
    pub in_sync: bool,
    /// Times the table was put back after something else changed or deleted it.
    pub repairs: u64,
    /// Why the last attempt to read or write the table failed; null after a success.
    pub last_error: Option<String>,
}

/// One BGP session and its BFD session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerHealthJson {
    pub address: IpAddr,
    /// `[[peer]] name`, else the host name the peer announced.
    pub name: Option<String>,
    pub kind: String,
    /// RFC 4271 state.
    pub state: String,
    /// RFC 3339 time of the last state change.
    pub since: String,
    /// Configured `shutdown`: no session is wanted.
    pub admin_down: bool,
    /// Still within its first connect window: not Established yet is not a fault.
    pub starting: bool,
    /// BFD state (`AdminDown`, `Down`, `Init`, `Up`); null without BFD.
    pub bfd: Option<String>,
    /// Last error or note on the session.
    pub info: String,
}

/// One of this node's blocks and how full it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockUseJson {
    pub block: String,
    /// Pod addresses in use.
    pub allocated: u64,
    /// Pod addresses it can hold (all but the tunnel's).
    pub capacity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatastoreHealthJson {
    /// `file` or `etcd`.
    pub kind: String,
    /// Whether the last request to the datastore had an answer; null for `file`.
    pub reachable: Option<bool>,
    /// RFC 3339 time of the last full read that succeeded; null for `file`.
    pub last_sync: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibHealthJson {
    /// Kernel writes that failed since the start (`ipipd_fib_errors_total`).
    pub errors: u64,
    /// Routes ipipd wants that the kernel lacks while writes have failed.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncapsulationJson {
    /// `ipip` or `vxlan`.
    pub kind: String,
    /// `always`, `cross-subnet` or `never`.
    pub mode: String,
    pub device: String,
    /// The tunnel device's address (an IPAM allocation); null until the node has a block.
    pub address: Option<Ipv4Addr>,
    /// The device in the kernel; null when it was not looked at (mode `never`, or an
    /// older daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DeviceState>,
    /// The device's MTU (what pods get), when it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// VXLAN over IPv6: the second device (`vxlan-v6.calico`), when the node has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<DeviceJson>,
}

/// A tunnel device as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceJson {
    pub device: String,
    pub state: DeviceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A network device as the kernel has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    Up,
    Down,
    Missing,
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceState::Up => "up",
            DeviceState::Down => "down",
            DeviceState::Missing => "missing",
        })
    }
}
