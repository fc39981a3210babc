//! Borrowing (datastore mode, `ipam.strict_affinity = false`): a node whose blocks are
//! full and that can claim no block (none free, or `ipam.max_blocks_per_node` reached)
//! takes a free address from another node's block, recorded in that block's
//! allocation record by compare-and-swap under this node's name. The address is the
//! pod's like any other here (routed to its veth); the published state lists it as
//! borrowed, so the speaker announces its /32 in the same event that took it. Every
//! other node, the block's owner included, routes the /32 to this node past the
//! owner's blackhole for the block.
//!
//! A block that lends an address is not empty: its owner keeps it (and its blackhole,
//! which the /32 overrides) until the borrowed address is freed.

use std::net::IpAddr;

use api::protocol::{IpamErrorKind, Response};
use datastore::{Attribute, BlockState, Held, Kv, Snapshot};
use ipam::Family;
use ipnet::IpNet;

use super::super::cluster::Cluster;
use super::super::pods::Pods;
use super::ipam_ds::{refused, unrecorded};
use super::{Outputs, Owner};

impl<K: Kv, O: Outputs> Owner<K, O> {
    /// Whether the node holds as many blocks as `ipam.max_blocks_per_node` allows.
    pub(super) fn at_block_limit(&self) -> bool {
        let max = self.file.ipam.max_blocks_per_node;
        max != 0 && self.own.len() >= max as usize
    }

    /// Datastore mode, for CNI STATUS: why a new pod would get no address although
    /// etcd answers, judged as ADD would on the last read: for each family the node's
    /// open blocks have no free address of, no block to claim (`max_blocks_per_node`
    /// reached, or every block of the open pools taken) and none to borrow from
    /// (`strict_affinity`, or no other node's block with a free address).
    pub(super) fn unservable(&self, me: &str) -> Option<String> {
        let cfg = &self.file;
        if Pods::families(cfg).is_empty() {
            return Some("no pool is open to this node".into());
        }
        let snap = self.snap.as_ref()?;
        for pool in self.pods.full_families(cfg, "") {
            let family = Family::of_net(&pool);
            let no_block = if self.at_block_limit() {
                format!(
                    "no free {family} address in the node's {} blocks, and ipam.max_blocks_per_node = {} allows no more",
                    self.own.len(),
                    cfg.ipam.max_blocks_per_node
                )
            } else if !free_block(cfg, snap, family) {
                format!("no free {family} address in the node's blocks, and every block of the open {family} pools is taken")
            } else {
                continue;
            };
            if cfg.ipam.strict_affinity {
                return Some(format!(
                    "{no_block}; ipam.strict_affinity = true: no address is borrowed from another node's block"
                ));
            }
            if self.lenders(snap, family, me).is_empty() {
                return Some(format!(
                    "{no_block}; no other node's block has a free {family} address to borrow"
                ));
            }
        }
        None
    }

    /// The node can claim no block (`why`): an address borrowed from another node's
    /// block, or the refusal, when borrowing is off or finds nothing.
    pub(super) async fn borrow_or(
        &mut self,
        c: &Cluster<K>,
        family: Family,
        attr: &Attribute,
        why: String,
    ) -> Result<Held, Response> {
        if self.file.ipam.strict_affinity {
            return Err(refused(
                IpamErrorKind::Exhausted,
                format!("{why}; ipam.strict_affinity = true: no address is borrowed from another node's block"),
            ));
        }
        // A fresh read: the last one applied may predate the other nodes' claims and
        // pods (borrowing is rare; one more read of the store is cheap next to a failure).
        let snap = match c.ds.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                c.note_error(&e);
                return Err(unrecorded(&e));
            }
        };
        for (block, owner) in self.lenders(&snap, family, &c.name) {
            let pods = &self.pods;
            match c
                .ds
                .borrow(&block, &owner, attr, |ip| pods.is_held(ip))
                .await
            {
                Ok(Some(h)) => {
                    tracing::info!(address = %h.address, %block, %owner, handle = %attr.handle, "address borrowed from another node's block");
                    return Ok(h);
                }
                Ok(None) => {}
                Err(e) => {
                    c.note_error(&e);
                    return Err(unrecorded(&e));
                }
            }
        }
        Err(refused(
            IpamErrorKind::Exhausted,
            format!("{why}; no other node's block has a free {family} address to borrow"),
        ))
    }

    /// Other nodes' confirmed blocks in pools open to this node that have a free
    /// address, as of `snap`, the freest first.
    fn lenders(&self, snap: &Snapshot, family: Family, me: &str) -> Vec<(IpNet, String)> {
        let open: Vec<IpNet> = self.file.open_pools().map(|p| p.cidr).collect();
        let mut found: Vec<(usize, IpNet, String)> = snap
            .blocks
            .values()
            .filter(|b| b.record.node != me && b.record.state == BlockState::Confirmed)
            .filter(|b| Family::of_net(&b.net) == family)
            .filter(|b| open.iter().any(|p| p.contains(&b.net)))
            .filter_map(|b| {
                let free = snap
                    .allocations
                    .get(&b.net)
                    .map_or(usize::MAX, |(r, _)| r.free_count());
                (free > 0).then(|| (free, b.net, b.record.node.clone()))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        found.into_iter().map(|(_, n, o)| (n, o)).collect()
    }

    /// This node's pod addresses outside its own blocks: borrowed (datastore mode).
    pub(super) fn borrowed(&self) -> Vec<IpAddr> {
        if self.cluster.is_none() {
            return Vec::new();
        }
        let mut out: Vec<IpAddr> = self
            .pods
            .allocations()
            .flat_map(|a| a.addresses.iter().copied())
            .filter(|ip| !self.own.iter().any(|b| b.contains(ip)))
            .collect();
        out.sort();
        out
    }

    /// Whether `block`, an own one, lends an address to another node (as of the last
    /// read): then it is not empty.
    pub(super) fn lent(&self, block: &IpNet) -> bool {
        let (Some(c), Some(snap)) = (&self.cluster, &self.snap) else {
            return false;
        };
        snap.allocations
            .get(block)
            .is_some_and(|(r, _)| r.held().any(|(_, a)| a.node != c.name))
    }
}

/// Whether an open pool of `family` has a block no node holds, as of `snap` (blocks of a
/// pool all have its block size: sizes are restart keys the cluster agrees on).
fn free_block(cfg: &config::Config, snap: &Snapshot, family: Family) -> bool {
    cfg.open_pools()
        .filter(|p| Family::of_net(&p.cidr) == family)
        .any(|p| {
            let bits = u32::from(p.block_size.saturating_sub(p.cidr.prefix_len()));
            let total = 1u128.checked_shl(bits).unwrap_or(u128::MAX);
            let taken = snap.blocks.keys().filter(|b| p.cidr.contains(*b)).count();
            (taken as u128) < total
        })
}
