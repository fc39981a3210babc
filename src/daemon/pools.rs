//! `pool list`: each pool with its options and what is in use, from the state the
//! node-state owner last published (in datastore mode, with the datastore read it
//! applied, so the cluster's block counts and this node's agree).

use api::protocol::{PoolJson, Response};
use config::Pool;
use ipnet::IpNet;

use super::node::NodeState;
use super::Daemon;

impl Daemon {
    pub(super) fn pool_list(&self) -> Response {
        Response::Pools {
            pools: pools(&self.state.load()),
        }
    }
}

fn pools(state: &NodeState) -> Vec<PoolJson> {
    let cfg = &state.config;
    cfg.pools
        .iter()
        .map(|p| {
            let inside = |b: &&IpNet| p.cidr.contains(*b);
            PoolJson {
                cidr: p.cidr.to_string(),
                block_size: p.block_size,
                nat_outgoing: p.nat_outgoing,
                disabled: p.disabled,
                node_selector: p.node_selector.to_string(),
                selected: p.node_selector.matches(&cfg.node.labels),
                blocks: count(state.own_blocks().iter().filter(inside)),
                cluster_blocks: state
                    .datastore
                    .as_ref()
                    .map(|s| count(s.blocks.keys().filter(inside))),
                total_blocks: total_blocks(p),
                // Pods only: hand-made workloads (`workload add`) are no allocations.
                allocated: count(
                    state
                        .workload_list
                        .iter()
                        .filter(|w| w.handle.is_some() && p.cidr.contains(&w.ip)),
                ),
            }
        })
        .collect()
}

fn count<T>(items: impl Iterator<Item = T>) -> u64 {
    u64::try_from(items.count()).unwrap_or(u64::MAX)
}

/// 2^(block_size - prefix): an IPv6 pool can hold more blocks than a u64 counts.
fn total_blocks(p: &Pool) -> u64 {
    let bits = u32::from(p.block_size.saturating_sub(p.cidr.prefix_len()));
    1u64.checked_shl(bits).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use api::protocol::WorkloadJson;
    use datastore::{Block, BlockRecord, BlockState, Snapshot};

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn state(snapshot: Option<Snapshot>) -> NodeState {
        let text = "[node]\nname = \"a\"\naddress = \"10.0.0.1\"\nlabels = { rack = \"r1\" }\n\
             blocks = [\"10.244.0.0/26\", \"10.244.0.64/26\"]\n\
             [[pool]]\ncidr = \"10.244.0.0/16\"\nnat_outgoing = true\n\
             [[pool]]\ncidr = \"10.245.0.0/16\"\nblock_size = 24\ndisabled = true\n\
             node_selector = \"rack == 'r2'\"\n\
             [[pool]]\ncidr = \"fd00::/48\"\nblock_size = 122\n";
        let config = match config::Config::parse(text, "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let pod = |ip: &str, handle: Option<&str>| WorkloadJson {
            ip: ip.parse().unwrap_or_else(|e| panic!("{e}")),
            interface: "cali1".into(),
            handle: handle.map(str::to_owned),
        };
        NodeState {
            config: Arc::new(config),
            tunnel: None,
            neighbors: Vec::new(),
            bfd: Vec::new(),
            workloads: Vec::new(),
            workload_list: vec![
                pod("10.244.0.1", Some("c1.eth0")),
                pod("10.244.0.65", Some("c2.eth0")),
                pod("10.244.0.2", None),
            ],
            block_use: BTreeMap::new(),
            allocated: 2,
            borrowed: Vec::new(),
            datastore: snapshot.map(Arc::new),
        }
    }

    #[test]
    fn options_and_use_per_pool() {
        let rows = pools(&state(None));
        let cidrs: Vec<&str> = rows.iter().map(|r| r.cidr.as_str()).collect();
        assert_eq!(cidrs, ["10.244.0.0/16", "10.245.0.0/16", "fd00::/48"]);
        let [a, b, c] = &rows[..] else {
            panic!("{rows:?}")
        };
        assert_eq!(
            (a.block_size, a.nat_outgoing, a.disabled, a.selected),
            (26, true, false, true)
        );
        assert_eq!((a.blocks, a.allocated, a.total_blocks), (2, 2, 1024));
        assert_eq!(a.cluster_blocks, None, "file datastore");
        assert_eq!(a.node_selector, "all()");
        assert_eq!(
            (b.block_size, b.disabled, b.selected, b.total_blocks),
            (24, true, false, 256)
        );
        assert_eq!(b.node_selector, "rack == 'r2'");
        assert_eq!((b.blocks, b.allocated), (0, 0));
        assert_eq!(c.total_blocks, u64::MAX, "2^74 blocks");
    }

    #[test]
    fn cluster_blocks_come_from_the_datastore_read() {
        let mut snap = Snapshot::default();
        for (b, node) in [
            ("10.244.0.0/26", "a"),
            ("10.244.1.0/26", "b"),
            ("10.245.3.0/24", "c"),
        ] {
            let block = Block {
                net: net(b),
                record: BlockRecord {
                    node: node.into(),
                    state: BlockState::Confirmed,
                },
                mod_revision: 1,
            };
            snap.blocks.insert(block.net, block);
        }
        let rows = pools(&state(Some(snap)));
        let counts: Vec<Option<u64>> = rows.iter().map(|r| r.cluster_blocks).collect();
        assert_eq!(counts, [Some(2), Some(1), Some(0)]);
    }
}
