//! The daemon's side of `datastore.kind = "etcd"` that reads: `show nodes`,
//! `show blocks`, and `node remove` (the node-state owner applies the datastore's
//! reads and makes the claims and releases).

use api::protocol::{BlockJson, NodeJson, Response};

use super::cluster::Cluster;
use super::Daemon;

impl Daemon {
    /// `show nodes`: every registered node, with the session state to it.
    pub(super) fn show_nodes(&self) -> Response {
        let Some(c) = &self.cluster else {
            let state = self.state.load();
            let cfg = &state.config;
            let peers = self.speaker.peers();
            let mut nodes = vec![NodeJson {
                name: cfg.node.name.clone(),
                address: cfg.node.address.into(),
                asn: cfg.node.asn,
                blocks: cfg.node.blocks.iter().map(|b| b.to_string()).collect(),
                state: "self".into(),
                route_reflector: cfg.bgp.route_reflector_cluster_id.is_some(),
            }];
            for a in &cfg.cluster.nodes {
                let p = peers.iter().find(|p| p.address == *a);
                nodes.push(NodeJson {
                    name: p
                        .and_then(|p| p.hostname.clone())
                        .unwrap_or_else(|| a.to_string()),
                    address: *a,
                    asn: p.map_or(cfg.node.asn, |p| p.asn),
                    blocks: Vec::new(),
                    state: p.map_or("none", |p| p.state.name()).to_owned(),
                    route_reflector: false,
                });
            }
            return Response::Nodes { nodes };
        };
        let snap = c.view.load();
        let peers = self.speaker.peers();
        let nodes = snap
            .nodes
            .values()
            .map(|n| NodeJson {
                name: n.name.clone(),
                address: n.address.into(),
                asn: n.asn,
                blocks: snap
                    .confirmed_blocks_of(&n.name)
                    .iter()
                    .map(|b| b.to_string())
                    .collect(),
                state: if n.name == c.name {
                    "self".into()
                } else {
                    peers
                        .iter()
                        .find(|p| p.address == std::net::IpAddr::V4(n.address))
                        .map_or("none", |p| p.state.name())
                        .to_owned()
                },
                route_reflector: n.rr_cluster_id.is_some(),
            })
            .collect();
        Response::Nodes { nodes }
    }

    /// `show blocks` from the datastore: every block key, with its owner and state.
    pub(super) fn cluster_blocks(&self, c: &Cluster) -> Vec<BlockJson> {
        let snap = c.view.load();
        let state = self.state.load();
        let borrowed = state.borrowed.iter().filter_map(|ip| {
            let b = snap.blocks.values().find(|b| b.net.contains(ip))?;
            Some(BlockJson {
                block: ipnet::IpNet::from(*ip).to_string(),
                node: Some(b.record.node.clone()),
                local: true,
                allocated: Some(1),
                capacity: Some(1),
                state: b.record.state.name().to_owned(),
                next_hop: None,
                borrowed: true,
            })
        });
        let blocks: Vec<BlockJson> = snap
            .blocks
            .values()
            .map(|b| {
                let local = b.record.node == c.name;
                let used = state.block_use.get(&b.net);
                BlockJson {
                    block: b.net.to_string(),
                    node: Some(b.record.node.clone()),
                    local,
                    allocated: local.then(|| used.map_or(0, |u| u.0)),
                    capacity: local.then(|| used.map_or(0, |u| u.1)),
                    state: b.record.state.name().to_owned(),
                    next_hop: if local {
                        None
                    } else {
                        snap.nodes
                            .get(&b.record.node)
                            .map(|n| std::net::IpAddr::V4(n.address))
                    },
                    borrowed: false,
                }
            })
            .collect();
        blocks.into_iter().chain(borrowed).collect()
    }

    pub(super) async fn node_remove(&self, name: &str) -> Response {
        let Some(c) = &self.cluster else {
            return Response::Error {
                message: "node remove needs datastore.kind = \"etcd\"; with the file datastore, edit cluster.nodes".into(),
            };
        };
        match c.ds.remove_node(name).await {
            Ok(blocks) => {
                let list: Vec<String> = blocks.iter().map(|b| b.to_string()).collect();
                tracing::info!(node = %name, blocks = ?list, "node removed from the datastore");
                Response::Ok {
                    message: format!(
                        "node {name} removed; blocks released: {}",
                        if list.is_empty() {
                            "none".to_owned()
                        } else {
                            list.join(", ")
                        }
                    ),
                }
            }
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        }
    }
}
