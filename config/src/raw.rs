//! The file as written: serde structs with `deny_unknown_fields`, every key optional so
//! that defaults and "missing key" messages are decided in validation, with the key's
//! position at hand.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::model::IpipMode;

pub(crate) type Opt<T> = Option<Spanned<T>>;
pub(crate) type List = Option<Vec<Spanned<String>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub node: Option<RawNode>,
    pub cluster: Option<RawCluster>,
    pub bgp: Option<RawBgp>,
    pub peer: Option<Vec<RawPeer>>,
    pub pool: Option<Vec<RawPool>>,
    pub ipip: Option<RawIpip>,
    pub vxlan: Option<RawVxlan>,
    pub kernel: Option<RawKernel>,
    pub control: Option<RawControl>,
    pub metrics: Option<RawMetrics>,
    pub datastore: Option<RawDatastore>,
    pub bfd: Option<RawBfd>,
    pub ipam: Option<RawIpam>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub name: Opt<String>,
    pub address: Opt<String>,
    pub address_v6: Opt<String>,
    pub asn: Opt<u32>,
    pub blocks: List,
    pub labels: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub pools: List,
    pub mesh: Opt<bool>,
    pub nodes: List,
    pub mesh_password: Opt<String>,
    pub block_size: Opt<u8>,
    pub block_size_v6: Opt<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBgp {
    pub port: Opt<u16>,
    pub hold_time: Opt<u16>,
    pub keepalive_time: Opt<u16>,
    pub graceful_restart_time: Opt<u16>,
    pub route_reflector_cluster_id: Opt<String>,
    pub max_paths: Opt<usize>,
    pub connect_retry_time: Opt<u16>,
    pub listen: Opt<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    pub address: Opt<String>,
    pub asn: Opt<u32>,
    pub port: Opt<u16>,
    pub passive: Opt<bool>,
    pub password: Opt<String>,
    pub rr_client: Opt<bool>,
    pub route_reflector: Opt<bool>,
    pub ttl_security: Opt<bool>,
    pub max_prefixes: Opt<u32>,
    pub name: Opt<String>,
    pub shutdown: Opt<bool>,
    pub bfd: Opt<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub cidr: Opt<String>,
    pub block_size: Opt<u8>,
    pub nat_outgoing: Opt<bool>,
    pub disabled: Opt<bool>,
    pub node_selector: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpip {
    pub mode: Opt<IpipMode>,
    pub device: Opt<String>,
    pub mtu: Opt<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVxlan {
    pub mode: Opt<IpipMode>,
    pub device: Opt<String>,
    pub vni: Opt<u32>,
    pub port: Opt<u16>,
    pub mtu: Opt<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKernel {
    pub protocol: Opt<u8>,
    pub table: Opt<u32>,
    pub install: Opt<bool>,
    pub flush_on_stop: Opt<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub socket: Opt<String>,
    pub state_dir: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpam {
    pub strict_affinity: Opt<bool>,
    pub max_blocks_per_node: Opt<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatastore {
    pub kind: Opt<String>,
    pub endpoints: List,
    pub prefix: Opt<String>,
    pub ca_file: Opt<String>,
    pub cert_file: Opt<String>,
    pub key_file: Opt<String>,
    pub dial_timeout_ms: Opt<u64>,
    pub request_timeout_ms: Opt<u64>,
    pub block_release_grace: Opt<u64>,
    pub resync: Opt<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBfd {
    pub enabled: Opt<bool>,
    pub interval_ms: Opt<u32>,
    pub multiplier: Opt<u8>,
    pub keeper: Opt<String>,
}
