//! Nodes, pools and block claims over a [`Kv`]: Calico's block-claim protocol.
//!
//! A claim writes a `pending` affinity (node → block), then creates the block key only
//! if it does not exist (`version == 0`), then confirms block and affinity in one
//! transaction comparing the block's `mod_revision`. A node that loses the create
//! deletes its affinity and tries the next block. Only confirmed blocks are announced,
//! and a block key has one owner from creation to deletion, so no two nodes ever
//! announce the same block.

use std::collections::BTreeSet;

use ipnet::IpNet;

use crate::kv::{Compare, Kv, Op, Watch};
use crate::model::{
    AffinityRecord, BlockRecord, BlockState, Keys, NodeRecord, PoolsRecord, Snapshot,
};
use crate::Error;

/// How many taken blocks a claim may skip before it gives up (IPv6 pools hold more
/// blocks than can be walked).
const MAX_CANDIDATES: usize = 1 << 20;

/// One cluster's datastore.
pub struct Datastore<K: Kv> {
    kv: K,
    keys: Keys,
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // These types are plain data: serializing them cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

impl<K: Kv> Datastore<K> {
    pub fn new(kv: K, prefix: &str) -> Datastore<K> {
        Datastore {
            kv,
            keys: Keys::new(prefix),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// Everything under the prefix, decoded.
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        let range = self.kv.range(&self.keys.root()).await?;
        Ok(Snapshot::decode(&self.keys, &range))
    }

    /// Watches every key under the prefix from `revision` on.
    pub async fn watch(&self, revision: i64) -> Result<Watch, Error> {
        self.kv.watch(&self.keys.root(), revision).await
    }

    /// Records the pools if none are, else checks they are these.
    pub async fn ensure_pools(&self, pools: &PoolsRecord) -> Result<(), Error> {
        let key = self.keys.pools();
        let r = self
            .kv
            .txn(
                vec![Compare::Version(key.clone(), 0)],
                vec![Op::Put(key.clone(), json(pools))],
                vec![],
            )
            .await?;
        if r.succeeded {
            return Ok(());
        }
        let theirs = self.snapshot().await?.pools;
        match theirs {
            Some(t) if t == *pools => Ok(()),
            other => Err(Error::PoolsDiffer {
                ours: describe_pools(Some(pools)),
                theirs: describe_pools(other.as_ref()),
                key,
            }),
        }
    }

    /// Writes (or rewrites) the node's registration.
    pub async fn register(&self, node: &NodeRecord) -> Result<(), Error> {
        if !crate::model::valid_name(&node.name) {
            return Err(Error::InvalidName(node.name.clone()));
        }
        self.kv
            .txn(
                vec![],
                vec![Op::Put(self.keys.node(&node.name), json(node))],
                vec![],
            )
            .await?;
        Ok(())
    }

    /// Finishes what a crash interrupted: the node's pending blocks are confirmed
    /// (the create succeeded, so they are its own), pending affinities without a
    /// block of the node are deleted.
    pub async fn recover(&self, node: &str) -> Result<(), Error> {
        let snap = self.snapshot().await?;
        for b in snap.blocks_of(node) {
            if b.record.state == BlockState::Pending {
                self.confirm(node, &b.net, b.mod_revision).await?;
            }
        }
        for ((n, net), _) in snap.affinities.iter().filter(|((n, _), _)| n == node) {
            let owned = snap.blocks.get(net).is_some_and(|b| b.record.node == *n);
            if !owned {
                self.kv
                    .txn(vec![], vec![Op::Delete(self.keys.affinity(n, net))], vec![])
                    .await?;
            }
        }
        Ok(())
    }

    async fn confirm(&self, node: &str, net: &IpNet, mod_revision: i64) -> Result<bool, Error> {
        let block = self.keys.block(net);
        let r = self
            .kv
            .txn(
                vec![Compare::ModRevision(block.clone(), mod_revision)],
                vec![
                    Op::Put(
                        block,
                        json(&BlockRecord {
                            node: node.to_owned(),
                            state: BlockState::Confirmed,
                        }),
                    ),
                    Op::Put(
                        self.keys.affinity(node, net),
                        json(&AffinityRecord {
                            state: BlockState::Confirmed,
                        }),
                    ),
                ],
                vec![],
            )
            .await?;
        Ok(r.succeeded)
    }

    /// Claims one free block of the family of `family_of` from the pools; returns it
    /// confirmed. [`Error::NoFreeBlock`] when every block is taken.
    pub async fn claim(
        &self,
        node: &str,
        pools: &PoolsRecord,
        family_of: &IpNet,
    ) -> Result<IpNet, Error> {
        let mut taken: BTreeSet<IpNet> = self.snapshot().await?.blocks.into_keys().collect();
        let mut skipped = 0usize;
        for pool in pools
            .pools
            .iter()
            .filter(|p| p.addr().is_ipv4() == family_of.addr().is_ipv4())
        {
            let size = pools.block_size(pool).max(pool.prefix_len());
            let Ok(subnets) = pool.subnets(size) else {
                continue;
            };
            for net in subnets {
                if taken.contains(&net) {
                    skipped += 1;
                    if skipped > MAX_CANDIDATES {
                        break;
                    }
                    continue;
                }
                if self.try_claim(node, &net).await? {
                    return Ok(net);
                }
                taken.insert(net);
            }
        }
        Err(Error::NoFreeBlock {
            pools: describe_pools(Some(pools)),
        })
    }

    /// One attempt of the protocol on one block; false: another node has it.
    async fn try_claim(&self, node: &str, net: &IpNet) -> Result<bool, Error> {
        let affinity = self.keys.affinity(node, net);
        let block = self.keys.block(net);
        self.kv
            .txn(
                vec![Compare::Version(affinity.clone(), 0)],
                vec![Op::Put(
                    affinity.clone(),
                    json(&AffinityRecord {
                        state: BlockState::Pending,
                    }),
                )],
                vec![],
            )
            .await?;
        let created = self
            .kv
            .txn(
                vec![Compare::Version(block.clone(), 0)],
                vec![Op::Put(
                    block,
                    json(&BlockRecord {
                        node: node.to_owned(),
                        state: BlockState::Pending,
                    }),
                )],
                vec![],
            )
            .await?;
        if !created.succeeded {
            tracing::debug!(block = %net, "block taken by another node; trying the next");
            self.kv
                .txn(vec![], vec![Op::Delete(affinity)], vec![])
                .await?;
            return Ok(false);
        }
        // A one-put transaction's revision is the put's mod_revision.
        if self.confirm(node, net, created.revision).await? {
            Ok(true)
        } else {
            // Removed meanwhile (`node remove`): not ours.
            Ok(false)
        }
    }

    /// Gives a block back: `releasing` first (so readers see the owner has let go),
    /// then block and affinity are deleted. Only the owner's block is touched.
    pub async fn release(&self, node: &str, net: &IpNet) -> Result<bool, Error> {
        match self.mark_releasing(node, net).await? {
            Some(rev) => self.finish_release(node, net, rev).await,
            None => Ok(false),
        }
    }

    /// Step one of a release: the block, still this node's, marked `releasing`.
    /// Returns the revision [`Datastore::finish_release`] compares; None if the block
    /// is not the node's.
    pub async fn mark_releasing(&self, node: &str, net: &IpNet) -> Result<Option<i64>, Error> {
        let snap = self.snapshot().await?;
        let Some(b) = snap.blocks.get(net).filter(|b| b.record.node == node) else {
            return Ok(None);
        };
        if b.record.state == BlockState::Releasing {
            return Ok(Some(b.mod_revision));
        }
        let key = self.keys.block(net);
        let marked = self
            .kv
            .txn(
                vec![Compare::ModRevision(key.clone(), b.mod_revision)],
                vec![Op::Put(
                    key,
                    json(&BlockRecord {
                        node: node.to_owned(),
                        state: BlockState::Releasing,
                    }),
                )],
                vec![],
            )
            .await?;
        Ok(marked.succeeded.then_some(marked.revision))
    }

    /// Step two: block and affinity deleted, if the block is as step one left it.
    pub async fn finish_release(&self, node: &str, net: &IpNet, rev: i64) -> Result<bool, Error> {
        let key = self.keys.block(net);
        let r = self
            .kv
            .txn(
                vec![Compare::ModRevision(key.clone(), rev)],
                vec![Op::Delete(key), Op::Delete(self.keys.affinity(node, net))],
                vec![],
            )
            .await?;
        Ok(r.succeeded)
    }

    /// Decommissions a node: its registration, blocks and affinities go in one
    /// transaction that compares every block's mod_revision (a claim racing with the
    /// removal makes it retry). Returns the released blocks.
    pub async fn remove_node(&self, name: &str) -> Result<Vec<IpNet>, Error> {
        for _ in 0..16 {
            let snap = self.snapshot().await?;
            if !snap.nodes.contains_key(name) {
                return Err(Error::NoSuchNode(name.to_owned()));
            }
            let blocks = snap.blocks_of(name);
            let mut compare = Vec::new();
            let mut ops = vec![
                Op::Delete(self.keys.node(name)),
                Op::DeletePrefix(self.keys.affinities(name)),
            ];
            for b in &blocks {
                let key = self.keys.block(&b.net);
                compare.push(Compare::ModRevision(key.clone(), b.mod_revision));
                ops.push(Op::Delete(key));
            }
            let r = self.kv.txn(compare, ops, vec![]).await?;
            if r.succeeded {
                return Ok(blocks.iter().map(|b| b.net).collect());
            }
        }
        Err(Error::Conflict(format!(
            "node {name}'s blocks kept changing during its removal"
        )))
    }
}

fn describe_pools(p: Option<&PoolsRecord>) -> String {
    match p {
        None => "none".into(),
        Some(p) => {
            let list: Vec<String> = p.pools.iter().map(|n| n.to_string()).collect();
            format!(
                "[{}] with /{} (IPv4) and /{} (IPv6) blocks",
                list.join(", "),
                p.block_size_v4,
                p.block_size_v6
            )
        }
    }
}
