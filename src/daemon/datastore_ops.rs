//! The daemon's side of `datastore.kind = "etcd"`: applying each read of the
//! datastore, claiming a block when a pod needs one, giving back empty blocks,
//! `show nodes`, `show blocks` and `node remove`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::protocol::{BlockJson, NodeJson, Response};
use datastore::Snapshot;
use ipnet::IpNet;

use super::cluster::{Apply, Cluster};
use super::Daemon;

/// How often empty blocks are looked for.
const RELEASE_TICK: Duration = Duration::from_secs(5);

impl Apply for Daemon {
    async fn apply(self: &Arc<Self>, snap: Arc<Snapshot>, read_at: Instant) {
        let Some(c) = &self.cluster else { return };
        for why in &snap.invalid {
            tracing::warn!(key = %why, "datastore: undecodable key skipped");
        }
        let cfg = self.config.load_full();
        let mut blocks = cfg.node.blocks.clone();
        if !c.registered(&snap) {
            if !blocks.is_empty() || !cfg.cluster.nodes.is_empty() {
                tracing::error!(node = %c.name, "this node was removed from the datastore (`ipipd node remove`): its blocks are withdrawn and its sessions closed; restart ipipd to register it again");
            }
            blocks.clear();
        } else if let Ok(_guard) = c.claim_lock.try_lock() {
            // Own blocks deleted or taken over behind this node's back stop being
            // announced at once: two announcers of one block must never be.
            if let Some(owned) = c.still_owned(&blocks, &snap, read_at) {
                if owned != blocks {
                    tracing::error!(before = ?blocks, after = ?owned, "own blocks no longer this node's in the datastore: withdrawn");
                    blocks = owned;
                }
            }
        }
        let mut new = c.effective((*cfg).clone(), blocks.clone(), &snap);
        if !c.registered(&snap) {
            new.cluster.nodes.clear();
        }
        if new == *cfg {
            // Reflector topologies read the view itself.
            if !cfg.cluster.mesh {
                self.speaker.set_neighbors(c.neighbors(&cfg)).await;
            }
            return;
        }
        let blocks_changed = new.node.blocks != cfg.node.blocks;
        let neighbors = if c.registered(&snap) {
            c.neighbors(&new)
        } else {
            Vec::new()
        };
        self.config.store(Arc::new(new.clone()));
        self.speaker.set_neighbors(neighbors).await;
        if blocks_changed {
            self.speaker.set_own_blocks(new.node.blocks.clone()).await;
            self.pods.lock().await.reconfigure(&new);
        }
        self.inputs_changed.notify_one();
    }
}

impl Daemon {
    /// Replaces own blocks everywhere: configuration, speaker, IPAM, FIB.
    async fn set_own_blocks(&self, c: &Cluster, blocks: Vec<IpNet>) {
        c.own_changed_now();
        let mut new = (*self.config.load_full()).clone();
        new.node.blocks = blocks;
        self.config.store(Arc::new(new.clone()));
        self.speaker.set_own_blocks(new.node.blocks.clone()).await;
        self.pods.lock().await.reconfigure(&new);
        self.inputs_changed.notify_one();
    }

    /// Before a CNI ADD: claims a block for every pool family the node has no free
    /// address of (unless the handle has its addresses already). Err: why not,
    /// for the plugin's "try again later".
    pub(super) async fn ensure_room(&self, c: &Cluster, handle: &str) -> Result<(), String> {
        let _guard = c.claim_lock.lock().await;
        let cfg = self.config.load_full();
        let full = self.pods.lock().await.full_families(&cfg, handle);
        for family_of in full {
            let block = c.claim(&family_of).await?;
            let mut blocks = self.config.load().node.blocks.clone();
            blocks.push(block);
            self.set_own_blocks(c, blocks).await;
        }
        Ok(())
    }

    /// `show nodes`: every registered node, with the session state to it.
    pub(super) fn show_nodes(&self) -> Response {
        let Some(c) = &self.cluster else {
            let cfg = self.config.load();
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
    pub(super) async fn cluster_blocks(&self, c: &Cluster) -> Vec<BlockJson> {
        let snap = c.view.load();
        let pods = self.pods.lock().await;
        snap.blocks
            .values()
            .map(|b| {
                let local = b.record.node == c.name;
                BlockJson {
                    block: b.net.to_string(),
                    node: Some(b.record.node.clone()),
                    local,
                    allocated: local.then(|| pods.allocated_in(&b.net) as u64),
                    capacity: local
                        .then(|| u64::try_from(pods.capacity(&b.net)).unwrap_or(u64::MAX)),
                    state: b.record.state.name().to_owned(),
                    next_hop: if local {
                        None
                    } else {
                        snap.nodes
                            .get(&b.record.node)
                            .map(|n| std::net::IpAddr::V4(n.address))
                    },
                }
            })
            .collect()
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

/// Gives back own blocks that held no pod for `datastore.block_release_grace`:
/// marked `releasing`, withdrawn here, then deleted.
pub async fn release_empty_blocks(daemon: Arc<Daemon>) {
    let Some(c) = daemon.cluster.clone() else {
        return;
    };
    loop {
        tokio::time::sleep(RELEASE_TICK).await;
        let _guard = c.claim_lock.lock().await;
        let cfg = daemon.config.load_full();
        let grace = Duration::from_secs(cfg.datastore.block_release_grace);
        let candidates = {
            let pods = daemon.pods.lock().await;
            c.empty_for_long(&cfg.node.blocks, |b| pods.allocated_in(b), grace)
        };
        for block in candidates {
            let rev = match c.ds.mark_releasing(&c.name, &block).await {
                Ok(Some(rev)) => rev,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%block, error = %e, "cannot release an empty block now; trying later");
                    continue;
                }
            };
            let mut blocks = daemon.config.load().node.blocks.clone();
            blocks.retain(|b| *b != block);
            daemon.set_own_blocks(&c, blocks).await;
            match c.ds.finish_release(&c.name, &block, rev).await {
                Ok(_) => tracing::info!(%block, "empty block released"),
                Err(e) => {
                    tracing::warn!(%block, error = %e, "block withdrawn but still marked releasing in the datastore")
                }
            }
        }
        // Releases a crash or an outage interrupted: withdrawn here, still in etcd.
        let snap = c.view.load();
        let own = daemon.config.load().node.blocks.clone();
        for b in snap.blocks_of(&c.name) {
            if b.record.state == datastore::BlockState::Releasing && !own.contains(&b.net) {
                if let Err(e) = c.ds.finish_release(&c.name, &b.net, b.mod_revision).await {
                    tracing::warn!(block = %b.net, error = %e, "finishing a release");
                }
            }
        }
    }
}
