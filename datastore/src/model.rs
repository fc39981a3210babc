//! What ipipd keeps in the datastore, its keys, and the decoding of a full read.
//! Everything read is input: a key or value that does not decode is skipped and
//! named in [`Snapshot::invalid`], never trusted and never a panic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use crate::allocation::AllocationBlock;
use crate::kv::{Change, KeyValue, Range};
pub use crate::mac::Mac;

/// `<prefix>/nodes/<name>`: a registered node.
///
/// Fields this version does not know are ignored, so that a later version's record
/// still registers its node here. (Versions before the VXLAN MACs refused unknown
/// fields: they skip the record of a node that writes one, which is why a MAC is
/// written only when it is not the derived one.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub address: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_v6: Option<Ipv6Addr>,
    pub asn: u32,
    /// BGP port the node listens on (tests run several on one machine).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Set: the node is a route reflector with this cluster id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rr_cluster_id: Option<Ipv4Addr>,
    /// VXLAN: the MAC of the node's VXLAN device, its own choice, kept over restarts
    /// (Calico's `vxlanTunnelMACAddr`); the other nodes' neighbour and FDB entries for it
    /// carry it. Absent (a node of an earlier version, or whose MAC is that one): the
    /// MAC derived from `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mac: Option<Mac>,
    /// The same for the IPv6 VXLAN device (`vxlanTunnelMACAddrV6`); absent: derived
    /// from `address_v6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mac_v6: Option<Mac>,
}

fn default_port() -> u16 {
    179
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockState {
    /// Created by a claim that has not confirmed it yet: treated as absent by readers,
    /// never announced, but no other node may take it.
    Pending,
    Confirmed,
    /// The owner has stopped announcing it and is about to delete it.
    Releasing,
}

impl BlockState {
    pub fn name(self) -> &'static str {
        match self {
            BlockState::Pending => "pending",
            BlockState::Confirmed => "confirmed",
            BlockState::Releasing => "releasing",
        }
    }
}

/// `<prefix>/blocks/<a.b.c.d>-<len>`: who owns a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRecord {
    pub node: String,
    pub state: BlockState,
}

/// `<prefix>/affinity/<node>/<a.b.c.d>-<len>`: a node's claim on a block (Calico's
/// block affinity); `pending` until the block key is created and confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffinityRecord {
    pub state: BlockState,
}

/// How a pool is cut into blocks: what a claim walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolLayout {
    pub cidr: IpNet,
    /// Prefix length of the pool's blocks, at least the pool's own.
    pub block_size: u8,
}

/// `<prefix>/config/pools`: the pools every node must agree on. Only what shapes the
/// blocks is here; options a reload applies (`disabled`, `node_selector`, ...) are
/// each node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolsRecord {
    pub pools: Vec<IpNet>,
    pub block_size_v4: u8,
    pub block_size_v6: u8,
    /// Pools whose blocks are not of their family's size. Absent from the records of
    /// earlier versions, and written only when not empty: those versions refuse unknown
    /// fields, and still read the record of pools that all use the family sizes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub block_sizes: BTreeMap<IpNet, u8>,
}

impl PoolsRecord {
    /// The record of `pools`, with `v4` and `v6` as the families' block sizes.
    pub fn new(pools: &[PoolLayout], v4: u8, v6: u8) -> PoolsRecord {
        let mut record = PoolsRecord {
            pools: pools.iter().map(|p| p.cidr).collect(),
            block_size_v4: v4,
            block_size_v6: v6,
            block_sizes: BTreeMap::new(),
        };
        for p in pools {
            if record.block_size(&p.cidr) != p.block_size {
                record.block_sizes.insert(p.cidr, p.block_size);
            }
        }
        record
    }

    /// Each pool with its block length; a pool shorter than its family's blocks is one
    /// block, as it always was.
    pub fn layouts(&self) -> Vec<PoolLayout> {
        self.pools
            .iter()
            .map(|p| PoolLayout {
                cidr: *p,
                block_size: self.block_size(p),
            })
            .collect()
    }

    /// Whether both records cut the same pools into the same blocks, however written:
    /// what every node must agree on.
    pub fn same_layout(&self, other: &PoolsRecord) -> bool {
        let sorted = |r: &PoolsRecord| {
            let mut l = r.layouts();
            l.sort();
            l
        };
        sorted(self) == sorted(other)
    }

    fn block_size(&self, pool: &IpNet) -> u8 {
        let family = match pool {
            IpNet::V4(_) => self.block_size_v4,
            IpNet::V6(_) => self.block_size_v6,
        };
        self.block_sizes
            .get(pool)
            .copied()
            .unwrap_or(family)
            .max(pool.prefix_len())
    }
}

/// `<prefix>/live/<node>`: the handles a node reports live (their host interface
/// exists), with their addresses, as of `at`: what `ipam check` compares the
/// allocations against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveRecord {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub handles: BTreeMap<String, Vec<IpAddr>>,
}

/// One allocation `ipam check` found leaked: what `ipam release` frees.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Leak {
    pub address: IpAddr,
    pub handle: String,
    pub node: String,
    /// The allocation's sequence in its block: a release of an address taken again
    /// since is refused.
    pub sequence: u64,
}

/// `<prefix>/checks/last`: the last `ipam check`, which a release's report must be
/// older than and agree with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRecord {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    pub leaked: Vec<Leak>,
}

/// A block as read, with the revision a change must compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub net: IpNet,
    pub record: BlockRecord,
    pub mod_revision: i64,
}

/// The key layout under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// Longest node name accepted (a DNS name, as Kubernetes node names are).
const MAX_NAME: usize = 253;

/// Whether `name` can be a node name and a key segment.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// `10.0.0.64/26` → `10.0.0.64-26`.
pub fn block_id(net: &IpNet) -> String {
    format!("{}-{}", net.addr(), net.prefix_len())
}

/// `10.0.0.64-26` → `10.0.0.64/26`; only the network address of a valid prefix.
pub fn parse_block_id(id: &str) -> Option<IpNet> {
    let (addr, len) = id.rsplit_once('-')?;
    let addr: IpAddr = addr.parse().ok()?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let net = IpNet::new(addr, len.parse().ok()?).ok()?;
    // Only the spelling `block_id` writes: `10.64.0.0-026` or `fd00:0::-122` would be a
    // second key for the same block, outside the compare-and-swap on the real one.
    (net.trunc() == net && block_id(&net) == id).then_some(net)
}

impl Keys {
    /// `prefix` without a trailing slash, e.g. `/ipipd`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }
    pub fn node(&self, name: &str) -> String {
        format!("{}/nodes/{name}", self.prefix)
    }
    pub fn blocks(&self) -> String {
        format!("{}/blocks/", self.prefix)
    }
    pub fn block(&self, net: &IpNet) -> String {
        format!("{}/blocks/{}", self.prefix, block_id(net))
    }
    pub fn affinities(&self, node: &str) -> String {
        format!("{}/affinity/{node}/", self.prefix)
    }
    pub fn affinity(&self, node: &str, net: &IpNet) -> String {
        format!("{}/affinity/{node}/{}", self.prefix, block_id(net))
    }
    pub fn pools(&self) -> String {
        format!("{}/config/pools", self.prefix)
    }
    pub fn allocations(&self) -> String {
        format!("{}/ipam/", self.prefix)
    }
    /// The allocations of one block ([`AllocationBlock`]).
    pub fn allocation(&self, net: &IpNet) -> String {
        format!("{}/ipam/{}", self.prefix, block_id(net))
    }
    pub fn live_all(&self) -> String {
        format!("{}/live/", self.prefix)
    }
    /// The handles a node reports live ([`LiveRecord`]).
    pub fn live(&self, node: &str) -> String {
        format!("{}/live/{node}", self.prefix)
    }
    /// The last `ipam check` ([`CheckRecord`]).
    pub fn last_check(&self) -> String {
        format!("{}/checks/last", self.prefix)
    }
}

/// Everything under the prefix at one revision, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub revision: i64,
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Every block key, whatever its state.
    pub blocks: BTreeMap<IpNet, Block>,
    /// (node, block) → affinity state.
    pub affinities: BTreeMap<(String, IpNet), BlockState>,
    pub pools: Option<PoolsRecord>,
    /// Each block's allocations, with the record's mod_revision.
    pub allocations: BTreeMap<IpNet, (AllocationBlock, i64)>,
    /// What each node reports live.
    pub live: BTreeMap<String, LiveRecord>,
    pub last_check: Option<CheckRecord>,
    /// Keys that did not decode, with why: skipped.
    pub invalid: Vec<String>,
    /// How many keys the range held, foreign and undecodable ones included (kept by
    /// [`Snapshot::apply`]): with the revision, what tells a view still matches the
    /// store ([`crate::Datastore::is_current`]).
    pub keys: u64,
}

impl Snapshot {
    /// Decodes a range read of `keys.root()`.
    pub fn decode(keys: &Keys, range: &Range) -> Snapshot {
        let mut s = Snapshot {
            revision: range.revision,
            keys: range.kvs.len() as u64,
            ..Snapshot::default()
        };
        for kv in &range.kvs {
            s.put(keys, kv);
        }
        s
    }

    /// Applies what a watch reported after this snapshot was read: only the keys that
    /// changed are decoded, the rest is kept as it was.
    pub fn apply(&mut self, keys: &Keys, revision: i64, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Put(kv) => {
                    // Version 1: created by this change.
                    if kv.version == 1 {
                        self.keys += 1;
                    }
                    self.forget(keys, &kv.key);
                    self.put(keys, kv);
                }
                Change::Delete(key) => {
                    self.keys = self.keys.saturating_sub(1);
                    self.forget(keys, key);
                }
            }
        }
        self.revision = self.revision.max(revision);
    }

    /// Takes one key in (over what was there).
    fn put(&mut self, keys: &Keys, kv: &KeyValue) {
        let r = match kind_of(keys, &kv.key) {
            Some(KeyKind::Node(name)) => decode_node(name, kv).map(|n| {
                self.nodes.insert(name.to_owned(), n);
            }),
            Some(KeyKind::Block(id)) => decode_block(id, kv).map(|b| {
                self.blocks.insert(b.net, b);
            }),
            Some(KeyKind::Affinity(rest)) => decode_affinity(rest, kv).map(|(node, net, state)| {
                self.affinities.insert((node, net), state);
            }),
            Some(KeyKind::Allocations(id)) => decode_allocations(id, kv).map(|a| {
                self.allocations.insert(a.cidr, (a, kv.mod_revision));
            }),
            Some(KeyKind::Live(name)) => decode_live(name, kv).map(|l| {
                self.live.insert(name.to_owned(), l);
            }),
            Some(KeyKind::Check) => serde_json::from_slice::<CheckRecord>(&kv.value)
                .map_err(|e| e.to_string())
                .map(|c| self.last_check = Some(c)),
            Some(KeyKind::Pools) => serde_json::from_slice::<PoolsRecord>(&kv.value)
                .map_err(|e| e.to_string())
                .map(|p| self.pools = Some(p)),
            // Keys of later versions: not ours to judge.
            None => Ok(()),
        };
        if let Err(why) = r {
            self.invalid
                .push(format!("{}: {why}", kv.key.escape_debug()));
        }
    }

    /// Drops what one key said (deleted, or about to be replaced).
    fn forget(&mut self, keys: &Keys, key: &str) {
        let named = format!("{}: ", key.escape_debug());
        self.invalid.retain(|i| !i.starts_with(&named));
        match kind_of(keys, key) {
            Some(KeyKind::Node(name)) => {
                self.nodes.remove(name);
            }
            Some(KeyKind::Block(id)) => {
                if let Some(net) = parse_block_id(id) {
                    self.blocks.remove(&net);
                }
            }
            Some(KeyKind::Affinity(rest)) => {
                let parsed = rest
                    .split_once('/')
                    .and_then(|(node, id)| Some((node.to_owned(), parse_block_id(id)?)));
                if let Some(k) = parsed {
                    self.affinities.remove(&k);
                }
            }
            Some(KeyKind::Allocations(id)) => {
                if let Some(net) = parse_block_id(id) {
                    self.allocations.remove(&net);
                }
            }
            Some(KeyKind::Live(name)) => {
                self.live.remove(name);
            }
            Some(KeyKind::Check) => self.last_check = None,
            Some(KeyKind::Pools) => self.pools = None,
            None => {}
        }
    }

    /// Blocks a node owns and announces: confirmed ones only.
    pub fn confirmed_blocks_of(&self, node: &str) -> Vec<IpNet> {
        self.blocks
            .values()
            .filter(|b| b.record.node == node && b.record.state == BlockState::Confirmed)
            .map(|b| b.net)
            .collect()
    }

    /// Every block key of a node, whatever its state.
    pub fn blocks_of(&self, node: &str) -> Vec<&Block> {
        self.blocks
            .values()
            .filter(|b| b.record.node == node)
            .collect()
    }
}

/// Which record a key under the prefix is.
enum KeyKind<'a> {
    Node(&'a str),
    Block(&'a str),
    Affinity(&'a str),
    Allocations(&'a str),
    Live(&'a str),
    Check,
    Pools,
}

fn kind_of<'a>(keys: &Keys, key: &'a str) -> Option<KeyKind<'a>> {
    let aff = format!("{}/affinity/", keys.prefix);
    if let Some(name) = key.strip_prefix(&keys.nodes()) {
        Some(KeyKind::Node(name))
    } else if let Some(id) = key.strip_prefix(&keys.blocks()) {
        Some(KeyKind::Block(id))
    } else if let Some(rest) = key.strip_prefix(&aff) {
        Some(KeyKind::Affinity(rest))
    } else if let Some(id) = key.strip_prefix(&keys.allocations()) {
        Some(KeyKind::Allocations(id))
    } else if let Some(name) = key.strip_prefix(&keys.live_all()) {
        Some(KeyKind::Live(name))
    } else if key == keys.last_check() {
        Some(KeyKind::Check)
    } else if key == keys.pools() {
        Some(KeyKind::Pools)
    } else {
        None
    }
}

fn decode_node(name: &str, kv: &KeyValue) -> Result<NodeRecord, String> {
    if !valid_name(name) {
        return Err("not a node name".into());
    }
    let n: NodeRecord = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
    if n.name != name {
        return Err(format!("record names node {:?}", n.name.escape_debug()));
    }
    if n.address.is_unspecified() || n.address.is_broadcast() || n.address.is_multicast() {
        return Err(format!("address {} is no unicast address", n.address));
    }
    Ok(n)
}

fn decode_block(id: &str, kv: &KeyValue) -> Result<Block, String> {
    let net = parse_block_id(id).ok_or("not a block id (a.b.c.d-len)")?;
    let record: BlockRecord = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
    if !valid_name(&record.node) {
        return Err("owner is no node name".into());
    }
    Ok(Block {
        net,
        record,
        mod_revision: kv.mod_revision,
    })
}

fn decode_allocations(id: &str, kv: &KeyValue) -> Result<AllocationBlock, String> {
    let net = parse_block_id(id).ok_or("not a block id (a.b.c.d-len)")?;
    let a: AllocationBlock = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
    if a.cidr != net {
        return Err(format!("record is of block {}", a.cidr));
    }
    a.validate()?;
    Ok(a)
}

fn decode_live(name: &str, kv: &KeyValue) -> Result<LiveRecord, String> {
    if !valid_name(name) {
        return Err("not a node name".into());
    }
    serde_json::from_slice(&kv.value).map_err(|e| e.to_string())
}

fn decode_affinity(rest: &str, kv: &KeyValue) -> Result<(String, IpNet, BlockState), String> {
    let (node, id) = rest.split_once('/').ok_or("no node/block")?;
    if !valid_name(node) {
        return Err("not a node name".into());
    }
    let net = parse_block_id(id).ok_or("not a block id (a.b.c.d-len)")?;
    let a: AffinityRecord = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
    Ok((node.to_owned(), net, a.state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            mod_revision: 7,
            version: 1,
        }
    }

    #[test]
    fn block_ids_round_trip_and_refuse_host_bits() {
        let net: IpNet = "10.1.2.64/26".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(block_id(&net), "10.1.2.64-26");
        assert_eq!(parse_block_id("10.1.2.64-26"), Some(net));
        assert_eq!(parse_block_id("10.1.2.65-26"), None);
        assert_eq!(parse_block_id("10.1.2.64-33"), None);
        assert_eq!(parse_block_id("10.1.2.64-+6"), None);
        assert_eq!(parse_block_id("10.1.2.64-026"), None);
        assert_eq!(parse_block_id("fd00:0::-122"), None);
        assert!(parse_block_id("fd00::-122").is_some());
    }

    #[test]
    fn a_full_read_decodes_and_names_what_it_skips() {
        let keys = Keys::new("/ipipd/");
        let range = Range {
            revision: 9,
            kvs: vec![
                kv(
                    "/ipipd/nodes/a",
                    r#"{"name":"a","address":"10.0.0.1","asn":64512}"#,
                ),
                kv(
                    "/ipipd/nodes/b",
                    r#"{"name":"c","address":"10.0.0.2","asn":64512}"#,
                ),
                kv(
                    "/ipipd/blocks/10.64.0.0-26",
                    r#"{"node":"a","state":"confirmed"}"#,
                ),
                kv(
                    "/ipipd/blocks/10.64.0.1-26",
                    r#"{"node":"a","state":"confirmed"}"#,
                ),
                kv("/ipipd/affinity/a/10.64.0.0-26", r#"{"state":"confirmed"}"#),
                kv(
                    "/ipipd/config/pools",
                    r#"{"pools":["10.64.0.0/16"],"block_size_v4":26,"block_size_v6":122}"#,
                ),
            ],
        };
        let s = Snapshot::decode(&keys, &range);
        assert_eq!(s.revision, 9);
        assert_eq!(s.nodes.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(s.confirmed_blocks_of("a").len(), 1);
        assert_eq!(s.affinities.len(), 1);
        assert!(s.pools.is_some());
        assert_eq!(s.invalid.len(), 2, "{:?}", s.invalid);
    }

    fn nodes_of(values: &[&str]) -> Snapshot {
        let kvs = values
            .iter()
            .enumerate()
            .map(|(i, v)| kv(&format!("/ipipd/nodes/n{i}"), v))
            .collect();
        Snapshot::decode(&Keys::new("/ipipd"), &Range { revision: 3, kvs })
    }

    #[test]
    fn a_record_without_vxlan_macs_decodes_and_one_with_them_round_trips() {
        // As earlier versions wrote it.
        let old = nodes_of(&[r#"{"name":"n0","address":"10.0.0.1","asn":64512,"port":179}"#]);
        let n = old.nodes.get("n0").expect("decoded");
        assert_eq!((n.vxlan_mac, n.vxlan_mac_v6), (None, None));
        assert!(old.invalid.is_empty(), "{:?}", old.invalid);
        let json = serde_json::to_string(n).expect("json");
        assert!(
            !json.contains("vxlan"),
            "nothing written for no MAC: {json}"
        );

        let mut with = n.clone();
        with.vxlan_mac = Some(Mac([0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
        with.vxlan_mac_v6 = Some(Mac([0x0e, 1, 2, 3, 4, 5]));
        let json = serde_json::to_string(&with).expect("json");
        assert!(
            json.contains(r#""vxlan_mac":"0a:bb:cc:dd:ee:ff""#)
                && json.contains(r#""vxlan_mac_v6":"0e:01:02:03:04:05""#),
            "{json}"
        );
        let back = nodes_of(&[&json]);
        assert_eq!(back.nodes.get("n0"), Some(&with));
    }

    #[test]
    fn a_later_versions_fields_are_ignored_a_bad_mac_is_not() {
        let s = nodes_of(&[
            r#"{"name":"n0","address":"10.0.0.1","asn":64512,"vxlan_mac":"0a:00:00:00:00:01","later":[1]}"#,
            r#"{"name":"n1","address":"10.0.0.2","asn":64512,"vxlan_mac":"01:00:5e:00:00:01"}"#,
        ]);
        assert_eq!(s.nodes.keys().collect::<Vec<_>>(), ["n0"]);
        assert_eq!(s.invalid.len(), 1, "{:?}", s.invalid);
        assert!(s.invalid[0].contains("no unicast MAC"), "{:?}", s.invalid);
    }
}
