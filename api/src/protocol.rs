//! The control protocol: newline-delimited JSON, one [`Request`] per line from
//! the CLI, one [`Response`] per line back. Shared by daemon and CLI.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Longest request line the daemon reads; longer ones are refused.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    ShowPeers,
    ShowRoutes,
    WorkloadAdd {
        ip: IpAddr,
        interface: String,
    },
    WorkloadDel {
        ip: IpAddr,
    },
    WorkloadList,
    /// Re-read the configuration file now (as SIGHUP does).
    Reload,
    /// The node's blocks and the blocks learned from peers (`show blocks`).
    ShowBlocks,
    /// The cluster's nodes as this node sees them (`show nodes`).
    ShowNodes,
    /// Datastore mode: decommission a node; its blocks are released.
    NodeRemove {
        name: String,
    },
    /// BFD sessions (`show bfd`).
    ShowBfd,
    /// The pools with their options and use (`pool list`).
    PoolList,
    /// Datastore mode: the cluster's allocations against every node's live pods
    /// (`ipam check`); the check is recorded as the last one.
    IpamCheck,
    /// Datastore mode: frees what `report` found leaked, if a later check agrees
    /// (`ipam release --from-report`).
    IpamReleaseReport {
        report: Box<crate::ipam_report::IpamReport>,
    },
    /// Whether this node is healthy, and if not why (`ipipd status`).
    Status,
    /// CNI ADD: the addresses of a pod interface, new or held already by the handle
    /// `container_id.ifname`; recorded durably before the answer. The daemon installs the
    /// workload route `<ip> dev <interface>` as soon as that interface exists.
    IpamAssign {
        container_id: String,
        ifname: String,
        /// The host side of the pod's veth.
        interface: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod_namespace: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod_name: Option<String>,
        /// The CNI network (`name` of its configuration) the allocation belongs to: GC of
        /// one network must not release another's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
        /// Addresses the runtime asks for (the CNI `ips` capability); empty: any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ips: Vec<IpAddr>,
    },
    /// CNI CHECK: what the daemon holds for the handle.
    IpamGet {
        container_id: String,
        ifname: String,
    },
    /// CNI GC: releases every pod allocation of `network` whose handle is not among `keep`
    /// (`container_id.ifname`); answers with what it released. Allocations recorded without
    /// a network are only collected by a GC that names none.
    IpamGc {
        keep: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
    },
    /// CNI DEL: releases the handle's addresses and its workload route; succeeds when the
    /// handle holds nothing.
    IpamRelease {
        container_id: String,
        ifname: String,
    },
    /// CNI STATUS: `Ok` when an ADD could be served now, `IpamError { kind: Exhausted }`
    /// when it could not (no free address and none obtainable).
    IpamStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    Peers {
        peers: Vec<PeerJson>,
    },
    Routes {
        routes: Vec<RouteJson>,
    },
    Workloads {
        workloads: Vec<WorkloadJson>,
    },
    Ok {
        message: String,
    },
    Error {
        message: String,
    },
    Blocks {
        blocks: Vec<BlockJson>,
    },
    Nodes {
        nodes: Vec<NodeJson>,
    },
    Bfd {
        sessions: Vec<BfdJson>,
    },
    Pools {
        pools: Vec<PoolJson>,
    },
    /// `ipam check` (boxed: it is much larger than every other answer).
    IpamReport(Box<crate::ipam_report::IpamReport>),
    /// A pod interface's addresses (IpamAssign, IpamGet).
    Assigned(AssignedJson),
    /// IpamRelease: the addresses released (empty when the handle held none).
    Released {
        released: Vec<IpAddr>,
    },
    /// IpamGc: the allocations released.
    Collected {
        released: Vec<WorkloadJson>,
    },
    /// `ipipd status`.
    /// Boxed: by far the largest answer, and a rare one.
    Status(Box<crate::status::StatusJson>),
    /// An IPAM request refused; `kind` tells a plugin which CNI error code to use.
    IpamError {
        kind: IpamErrorKind,
        message: String,
    },
}

/// Why an IPAM request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpamErrorKind {
    /// No free address in the node's blocks (CNI code 11: try again later).
    Exhausted,
    /// The request itself is bad (a container id or interface name ipipd cannot use).
    Invalid,
    /// The handle holds no addresses (IpamGet).
    Unknown,
    /// The allocation could not be recorded durably; nothing was taken.
    Storage,
}

/// A pod interface's addresses, as the daemon recorded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedJson {
    pub handle: String,
    pub interface: String,
    /// One per family, IPv4 first.
    pub addresses: Vec<IpAddr>,
    /// The handle held these already (a repeated ADD).
    pub existing: bool,
    /// The tunnel device whose MTU pods get (None with `ipip.mode = "never"`).
    pub tunnel: Option<String>,
    /// `ipip.mtu` when configured.
    pub mtu: Option<u32>,
    /// `kernel.protocol`: the workload route is written with it.
    #[serde(default = "default_protocol")]
    pub route_protocol: u8,
}

fn default_protocol() -> u8 {
    186
}

/// One element of `show nodes --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeJson {
    pub name: String,
    pub address: IpAddr,
    pub asn: u32,
    /// The node's confirmed blocks.
    pub blocks: Vec<String>,
    /// RFC 4271 state of the session to it, `self` for this node, `none` when no
    /// session is configured to it (route reflector topologies).
    pub state: String,
    /// The node is a route reflector.
    pub route_reflector: bool,
}

/// One element of `show blocks --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJson {
    pub block: String,
    /// The owner's name, or null if unknown.
    pub node: Option<String>,
    /// Owned by this node.
    pub local: bool,
    /// Pod addresses in use, for local blocks.
    pub allocated: Option<u64>,
    /// Pod addresses the block can hold (all but the tunnel's), for local blocks.
    pub capacity: Option<u64>,
    /// `static` (from a config file), `confirmed`, `pending` or `releasing`.
    pub state: String,
    /// The next hop (the owner's node address) of a learned block.
    pub next_hop: Option<IpAddr>,
    /// A `/32` (`/128`) row: an address this node's pod borrowed from another node's
    /// block (`node` names that block's owner).
    #[serde(default)]
    pub borrowed: bool,
}

/// One element of `pool list --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolJson {
    pub cidr: String,
    /// Prefix length of the blocks carved from the pool.
    pub block_size: u8,
    pub nat_outgoing: bool,
    /// No new blocks or addresses from the pool.
    pub disabled: bool,
    pub node_selector: String,
    /// `node_selector` selects this node's labels.
    pub selected: bool,
    /// Blocks of the pool this node holds.
    pub blocks: u64,
    /// Blocks of the pool held by any node, from the datastore; null with the file
    /// datastore.
    pub cluster_blocks: Option<u64>,
    /// Blocks the pool holds in all (at most 2^64 - 1 is shown).
    pub total_blocks: u64,
    /// Pod addresses allocated from the pool on this node.
    pub allocated: u64,
}

/// One element of `show peers --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerJson {
    pub address: IpAddr,
    /// `[[peer]] name`; null when unset (and for mesh nodes).
    pub name: Option<String>,
    pub asn: u32,
    pub kind: String,
    pub state: String,
    /// RFC 3339 time of the last state change.
    pub since: String,
    pub info: String,
    pub received: u64,
    pub accepted: u64,
    /// Refused because they overlap one of this node's blocks.
    pub refused_overlap: u64,
    /// Refused by any other import rule (outside the pools, AS loop, ...).
    pub refused: u64,
    /// UPDATEs handled as withdrawals (RFC 7606).
    pub treat_as_withdraw: u64,
    /// UPDATEs with attributes discarded (RFC 7606).
    pub attributes_discarded: u64,
    /// UPDATE messages received from and sent to the peer since it was configured
    /// (End-of-RIB included); they never go back across session resets.
    #[serde(default)]
    pub updates_received: u64,
    #[serde(default)]
    pub updates_sent: u64,
    pub router_id: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub established_count: u64,
    pub graceful_restart: bool,
    /// BFD state of the session (`AdminDown`, `Down`, `Init`, `Up`); null without BFD.
    #[serde(default)]
    pub bfd: Option<String>,
}

/// One element of `show bfd --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BfdJson {
    pub peer: IpAddr,
    /// `AdminDown`, `Down`, `Init` or `Up`.
    pub state: String,
    /// The peer's state as last heard.
    pub remote_state: String,
    /// Negotiated transmit interval.
    pub interval_ms: f64,
    /// Local detect multiplier.
    pub multiplier: u8,
    /// Time without packets after which the session goes Down; null until the peer is heard.
    pub detection_time_ms: Option<f64>,
    /// RFC 3339 time of the last state change.
    pub since: String,
    /// Reason for the last state change (RFC 5880 diagnostic).
    pub diagnostic: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
}

/// One element of `show routes --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteJson {
    pub prefix: String,
    /// `local` (own block), `bgp` or `workload`.
    pub origin: String,
    pub next_hop: Option<String>,
    pub interface: Option<String>,
    pub peer: Option<String>,
    pub best: bool,
    /// Present in the kernel right now, as ipipd wants it.
    pub installed: bool,
    pub stale: bool,
    pub as_path: String,
    pub local_pref: Option<u32>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    #[serde(flatten)]
    pub attributes: AttributesJson,
}

/// The other path attributes of a BGP route, as stored after RFC 7606 handling (an
/// attribute that was discarded is absent here).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AttributesJson {
    /// ORIGIN: `igp`, `egp` or `incomplete`.
    pub bgp_origin: Option<String>,
    pub med: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<AggregatorJson>,
    /// `ASN:VALUE`, as RFC 1997 writes them.
    pub communities: Vec<String>,
    /// Each 8-octet community as 16 hex digits.
    pub extended_communities: Vec<String>,
    /// `GLOBAL:LOCAL1:LOCAL2` (RFC 8092).
    pub large_communities: Vec<String>,
    /// Type codes of optional transitive attributes ipipd does not know, passed on as received.
    pub unknown_attributes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatorJson {
    pub asn: u32,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadJson {
    pub ip: IpAddr,
    pub interface: String,
    /// The IPAM handle (`container id.ifname`) of a pod made by the CNI plugin; null for
    /// workloads added by `ipipd workload add`.
    #[serde(default)]
    pub handle: Option<String>,
}

/// Parses one request line; the error text is sent back to the client.
pub fn parse_request(line: &str) -> Result<Request, String> {
    if line.len() > MAX_REQUEST_LEN {
        return Err(format!("request longer than {MAX_REQUEST_LEN} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("malformed request: {e}"))?;
    let request: Request =
        serde_json::from_value(value.clone()).map_err(|e| format!("malformed request: {e}"))?;
    // serde ignores unknown fields next to the tag of a unit variant despite
    // `deny_unknown_fields`; a request must carry exactly the fields it serializes to.
    if let (Some(sent), Ok(serde_json::Value::Object(known))) =
        (value.as_object(), serde_json::to_value(&request))
    {
        if let Some(extra) = sent.keys().find(|k| !known.contains_key(k.as_str())) {
            return Err(format!("malformed request: unknown field `{extra}`"));
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::ShowPeers,
            Request::ShowRoutes,
            Request::WorkloadAdd {
                ip: "101.76.9.136".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                interface: "cali0".into(),
            },
            Request::Reload,
            Request::ShowBlocks,
            Request::ShowBfd,
            Request::PoolList,
            Request::Status,
            Request::IpamAssign {
                container_id: "c1".into(),
                ifname: "eth0".into(),
                interface: "cali1".into(),
                pod_namespace: Some("default".into()),
                pod_name: None,
                network: Some("ipipd".into()),
                ips: Vec::new(),
            },
            Request::IpamGc {
                keep: vec!["c1.eth0".into()],
                network: None,
            },
            Request::IpamStatus,
            Request::IpamRelease {
                container_id: "c1".into(),
                ifname: "eth0".into(),
            },
        ] {
            let line = serde_json::to_string(&r).unwrap_or_default();
            assert_eq!(parse_request(&line), Ok(r));
        }
    }

    #[test]
    fn requests_of_plugins_that_name_no_network_still_parse() {
        assert_eq!(
            parse_request(r#"{"request":"ipam-gc","keep":["c1.eth0"]}"#),
            Ok(Request::IpamGc {
                keep: vec!["c1.eth0".into()],
                network: None
            })
        );
        assert!(matches!(
            parse_request(
                r#"{"request":"ipam-assign","container_id":"c","ifname":"eth0","interface":"cali1"}"#
            ),
            Ok(Request::IpamAssign { network: None, .. })
        ));
    }

    #[test]
    fn malformed_requests_are_errors() {
        assert!(parse_request("{").is_err());
        assert!(parse_request(r#"{"request":"launch-missiles"}"#).is_err());
        assert!(parse_request(r#"{"request":"workload-add","ip":"x","interface":"y"}"#).is_err());
        assert!(parse_request(&"a".repeat(MAX_REQUEST_LEN + 1)).is_err());
        assert!(parse_request(r#"{"request":"show-peers","extra":1}"#).is_err());
        assert!(parse_request(r#"{"request":"workload-del","ip":"10.0.0.1","extra":1}"#).is_err());
    }
}
