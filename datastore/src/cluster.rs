//! Nodes, pools and block claims over a [`Kv`]: Calico's block-claim protocol.
//!
//! A claim writes a `pending` affinity (node → block), then creates the block key only
//! if it does not exist (`version == 0`), then confirms block and affinity in one
//! transaction comparing the block's `mod_revision`. A node that loses the create
//! deletes its affinity and tries the next block. Only confirmed blocks are announced,
//! and a block key has one owner from creation to deletion, so no two nodes ever
//! announce the same block.
//!
//! A transaction whose answer is lost is settled by reading back ([`settle`]), and a
//! claim first finishes any pending block the node left (a claim whose outcome could
//! not be read back): no block etcd records as the node's is left unused.
//!
//! The guarantee is per node: claims of one node are serialized by the caller.

mod allocations;
mod borrow;
mod settle;
mod spread;

use std::collections::BTreeSet;

use ipnet::IpNet;

use crate::kv::{Compare, Kv, Op, Watch};
use crate::model::{
    AffinityRecord, BlockRecord, BlockState, Keys, NodeRecord, PoolLayout, PoolsRecord, Snapshot,
};
use crate::Error;
use settle::Settled;
use spread::Spread;

/// How many taken blocks a claim may skip before it gives up (IPv6 pools hold more
/// blocks than can be walked).
const MAX_CANDIDATES: usize = 1 << 20;

/// One cluster's datastore.
pub struct Datastore<K: Kv> {
    kv: K,
    keys: Keys,
    /// Block records as this client last wrote them, with their mod_revision: the next
    /// change tries its compare-and-swap on them without reading first (one round trip
    /// instead of two); a stale one fails the comparison and is read again.
    written: std::sync::Mutex<std::collections::BTreeMap<IpNet, (crate::AllocationBlock, i64)>>,
    /// The highest store revision an answer to this client carried: a read (or a
    /// watch-applied view) at a lower revision may lack this client's last write.
    seen: std::sync::atomic::AtomicI64,
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
            written: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            seen: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// The highest revision this client's answers carried (see the field).
    pub fn revision_seen(&self) -> i64 {
        self.seen.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn saw(&self, revision: i64) {
        self.seen
            .fetch_max(revision, std::sync::atomic::Ordering::Relaxed);
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
        self.saw(range.revision);
        Ok(Snapshot::decode(&self.keys, &range))
    }

    /// The keys under one part of the prefix (e.g. [`Keys::blocks`]), decoded: what a
    /// claim or a release needs to know, without reading every node's allocations.
    async fn snapshot_under(&self, part: &str) -> Result<Snapshot, Error> {
        let range = self.kv.range(part).await?;
        self.saw(range.revision);
        Ok(Snapshot::decode(&self.keys, &range))
    }

    /// Whether `view` (a full read with the watch's changes applied) still matches the
    /// store: no key under the prefix written after its revision, and as many keys as it
    /// counts (a deletion it missed would leave one fewer). One read that sends a single
    /// key and no value: what a quiet watch costs to check at a thousand nodes, instead
    /// of a full read each.
    pub async fn is_current(&self, view: &Snapshot) -> Result<bool, Error> {
        let c = self.kv.count(&self.keys.root()).await?;
        self.saw(c.revision);
        Ok(c.last_written <= view.revision && c.keys == view.keys)
    }

    /// The record of the node called `name` as the store has it (`None`: none, or one
    /// that does not decode): one key read, not the whole prefix.
    pub async fn node(&self, name: &str) -> Result<Option<NodeRecord>, Error> {
        Ok(self
            .read_key(&self.keys.node(name))
            .await?
            .and_then(|mut s| s.nodes.remove(name)))
    }

    /// Watches every key under the prefix from `revision` on.
    pub async fn watch(&self, revision: i64) -> Result<Watch, Error> {
        self.kv.watch(&self.keys.root(), revision).await
    }

    /// Records the pools if none are, else checks they cut the same blocks.
    pub async fn ensure_pools(&self, pools: &PoolsRecord) -> Result<(), Error> {
        let key = self.keys.pools();
        let written = self
            .txn_settled(
                vec![Compare::Version(key.clone(), 0)],
                vec![Op::Put(key.clone(), json(pools))],
                &key,
                |r| r.succeeded,
                // Present: compared below, whoever wrote it.
                |read| match read {
                    None => Settled::NotApplied,
                    Some(_) => Settled::Known(false),
                },
            )
            .await?;
        if written {
            return Ok(());
        }
        let theirs = self.read_key(&key).await?.and_then(|s| s.pools);
        match theirs {
            Some(t) if t.same_layout(pools) => Ok(()),
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
        let key = self.keys.node(&node.name);
        self.txn_settled(
            vec![],
            vec![Op::Put(key.clone(), json(node))],
            &key,
            |_| (),
            |read| match read.and_then(|s| s.nodes.get(&node.name)) {
                Some(n) if n == node => Settled::Known(()),
                _ => Settled::NotApplied,
            },
        )
        .await
    }

    /// Finishes what a crash interrupted: the node's pending blocks are confirmed
    /// (the create succeeded, so they are its own), pending affinities without a
    /// block of the node are deleted.
    pub async fn recover(&self, node: &str) -> Result<(), Error> {
        let mut snap = self.snapshot_under(&self.keys.blocks()).await?;
        snap.affinities = self
            .snapshot_under(&self.keys.affinities(node))
            .await?
            .affinities;
        for b in snap.blocks_of(node) {
            if b.record.state == BlockState::Pending {
                self.confirm(node, &b.net, b.mod_revision).await?;
            }
        }
        for ((n, net), _) in snap.affinities.iter().filter(|((n, _), _)| n == node) {
            let owned = snap.blocks.get(net).is_some_and(|b| b.record.node == *n);
            if !owned {
                self.delete_affinity(n, net).await?;
            }
        }
        Ok(())
    }

    /// Confirms a pending block of the node created at `mod_revision`; false: it has
    /// changed since (removed by `node remove`, finished by another claim).
    async fn confirm(&self, node: &str, net: &IpNet, mod_revision: i64) -> Result<bool, Error> {
        let block = self.keys.block(net);
        self.txn_settled(
            vec![Compare::ModRevision(block.clone(), mod_revision)],
            vec![
                Op::Put(
                    block.clone(),
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
            &block,
            |r| r.succeeded,
            |read| match read.and_then(|s| s.blocks.get(net)) {
                Some(b) if b.mod_revision == mod_revision => Settled::NotApplied,
                // The affinity went in the same transaction.
                Some(b) => {
                    Settled::Known(b.record.node == node && b.record.state == BlockState::Confirmed)
                }
                None => Settled::Known(false),
            },
        )
        .await
    }

    /// Deletes the node's affinity to a block (absent already is fine).
    async fn delete_affinity(&self, node: &str, net: &IpNet) -> Result<(), Error> {
        let key = self.keys.affinity(node, net);
        self.txn_settled(
            vec![],
            vec![Op::Delete(key.clone())],
            &key,
            |_| (),
            |read| match read {
                None => Settled::Known(()),
                Some(_) => Settled::NotApplied,
            },
        )
        .await
    }

    /// Claims one free block of the family of `family_of` from `pools`, each cut into
    /// blocks of its own size; returns it confirmed. [`Error::NoFreeBlock`] when every
    /// block is taken. Which pools a node may use is the caller's decision.
    pub async fn claim(
        &self,
        node: &str,
        pools: &[PoolLayout],
        family_of: &IpNet,
    ) -> Result<IpNet, Error> {
        let snap = self.snapshot_under(&self.keys.blocks()).await?;
        for b in snap.blocks_of(node) {
            let family = b.net.addr().is_ipv4() == family_of.addr().is_ipv4();
            if b.record.state == BlockState::Pending
                && family
                && self.confirm(node, &b.net, b.mod_revision).await?
            {
                tracing::info!(block = %b.net, "finished an earlier claim of this node");
                return Ok(b.net);
            }
        }
        let mut taken: BTreeSet<IpNet> = snap.blocks.into_keys().collect();
        let mut spread = Spread::new(node);
        // A second round takes every free block in order: the first may have passed
        // over the last free ones.
        for round in 0..2 {
            let mut skipped = 0usize;
            for pool in pools
                .iter()
                .filter(|p| p.cidr.addr().is_ipv4() == family_of.addr().is_ipv4())
            {
                let size = pool.block_size.max(pool.cidr.prefix_len());
                let Ok(subnets) = pool.cidr.subnets(size) else {
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
                    if round == 0 && spread.passes() {
                        continue;
                    }
                    if self.try_claim(node, &net).await? {
                        return Ok(net);
                    }
                    taken.insert(net);
                    spread.lost();
                }
            }
            if !spread.passed_any {
                break;
            }
        }
        Err(Error::NoFreeBlock {
            pools: describe_layouts(pools),
        })
    }

    /// Claims the one block `net` (the block holding a requested address); false:
    /// another node has it.
    pub async fn claim_block(&self, node: &str, net: &IpNet) -> Result<bool, Error> {
        let snap = self
            .read_key(&self.keys.block(net))
            .await?
            .unwrap_or_default();
        match snap.blocks.get(net) {
            Some(b) if b.record.node == node && b.record.state == BlockState::Confirmed => Ok(true),
            Some(b) if b.record.node == node && b.record.state == BlockState::Pending => {
                self.confirm(node, net, b.mod_revision).await
            }
            Some(_) => Ok(false),
            None => self.try_claim(node, net).await,
        }
    }

    /// One attempt of the protocol on one block; false: another node has it.
    async fn try_claim(&self, node: &str, net: &IpNet) -> Result<bool, Error> {
        let affinity = self.keys.affinity(node, net);
        let block = self.keys.block(net);
        let ours = (node.to_owned(), *net);
        // Written now or there already, the claim goes on (confirm writes it again).
        self.txn_settled(
            vec![Compare::Version(affinity.clone(), 0)],
            vec![Op::Put(
                affinity.clone(),
                json(&AffinityRecord {
                    state: BlockState::Pending,
                }),
            )],
            &affinity,
            |_| (),
            |read| {
                if read.is_some_and(|s| s.affinities.contains_key(&ours)) {
                    Settled::Known(())
                } else {
                    Settled::NotApplied
                }
            },
        )
        .await?;
        let created = self
            .txn_settled(
                vec![Compare::Version(block.clone(), 0)],
                vec![Op::Put(
                    block.clone(),
                    json(&BlockRecord {
                        node: node.to_owned(),
                        state: BlockState::Pending,
                    }),
                )],
                &block,
                // A one-put transaction's revision is the put's mod_revision.
                |r| {
                    if r.succeeded {
                        Create::Ours(r.revision)
                    } else {
                        Create::Taken
                    }
                },
                |read| match read.and_then(|s| s.blocks.get(net)) {
                    None => Settled::NotApplied,
                    Some(b) if b.record.node != node => Settled::Known(Create::Taken),
                    Some(b) if b.record.state == BlockState::Pending => {
                        Settled::Known(Create::Ours(b.mod_revision))
                    }
                    Some(_) => Settled::Known(Create::Finished),
                },
            )
            .await?;
        match created {
            // false: removed meanwhile (`node remove`), not ours.
            Create::Ours(rev) => self.confirm(node, net, rev).await,
            Create::Finished => Ok(false),
            Create::Taken => {
                tracing::debug!(block = %net, "block taken by another node; trying the next");
                self.delete_affinity(node, net).await?;
                Ok(false)
            }
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
        let snap = self
            .read_key(&self.keys.block(net))
            .await?
            .unwrap_or_default();
        let Some(b) = snap.blocks.get(net).filter(|b| b.record.node == node) else {
            return Ok(None);
        };
        // A block whose record still holds an address (a pod the node has forgotten, a
        // leak `ipam check` reports) stays: its address must not go to another node.
        if !self.allocations(net).await?.0.is_empty() {
            return Ok(None);
        }
        if b.record.state == BlockState::Releasing {
            return Ok(Some(b.mod_revision));
        }
        let key = self.keys.block(net);
        let before = b.mod_revision;
        self.txn_settled(
            vec![Compare::ModRevision(key.clone(), before)],
            vec![Op::Put(
                key.clone(),
                json(&BlockRecord {
                    node: node.to_owned(),
                    state: BlockState::Releasing,
                }),
            )],
            &key,
            |r| r.succeeded.then_some(r.revision),
            |read| match read.and_then(|s| s.blocks.get(net)) {
                Some(b) if b.mod_revision == before => Settled::NotApplied,
                Some(b) if b.record.node == node && b.record.state == BlockState::Releasing => {
                    Settled::Known(Some(b.mod_revision))
                }
                _ => Settled::Known(None),
            },
        )
        .await
    }

    /// Step two: block and affinity deleted, if the block is as step one left it.
    /// A block gone already counts as released (an earlier call whose answer was
    /// lost, `node remove`): every deletion of a block deletes its affinity with it.
    /// A record that holds an address (one borrowed by another node after step one
    /// read it) keeps the block: the release waits, it never takes a live pod's address.
    pub async fn finish_release(&self, node: &str, net: &IpNet, rev: i64) -> Result<bool, Error> {
        let key = self.keys.block(net);
        let (record, alloc_rev) = self.allocations(net).await?;
        if !record.is_empty() {
            return Ok(false);
        }
        let alloc_key = self.keys.allocation(net);
        let unchanged = if alloc_rev == 0 {
            Compare::Version(alloc_key, 0)
        } else {
            Compare::ModRevision(alloc_key, alloc_rev)
        };
        let deleted = self
            .txn_settled(
                vec![Compare::ModRevision(key.clone(), rev), unchanged],
                vec![
                    Op::Delete(key.clone()),
                    Op::Delete(self.keys.affinity(node, net)),
                    Op::Delete(self.keys.allocation(net)),
                ],
                &key,
                |r| r.succeeded,
                |read| match read.and_then(|s| s.blocks.get(net)) {
                    Some(b) if b.mod_revision == rev => Settled::NotApplied,
                    _ => Settled::Known(read.is_none()),
                },
            )
            .await?;
        Ok(deleted || self.read_key(&key).await?.is_none())
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
                // Its report of live pods goes too; its allocations stay for `ipam
                // check` to report and `ipam release` to free.
                Op::Delete(self.keys.live(name)),
            ];
            for b in &blocks {
                let key = self.keys.block(&b.net);
                compare.push(Compare::ModRevision(key.clone(), b.mod_revision));
                ops.push(Op::Delete(key));
            }
            let node_key = self.keys.node(name);
            let removed = self
                .txn_settled(
                    compare,
                    ops,
                    &node_key,
                    |r| r.succeeded,
                    |read| match read {
                        None => Settled::Known(true),
                        Some(_) => Settled::NotApplied,
                    },
                )
                .await?;
            if removed {
                return Ok(blocks.iter().map(|b| b.net).collect());
            }
        }
        Err(Error::Conflict(format!(
            "node {name}'s blocks kept changing during its removal"
        )))
    }
}

/// What became of a block create.
enum Create {
    /// Created by this claim, at this revision.
    Ours(i64),
    /// Another node's.
    Taken,
    /// This node's and confirmed already: another claim finished it (and returned it).
    Finished,
}

fn describe_pools(p: Option<&PoolsRecord>) -> String {
    match p {
        None => "none".into(),
        Some(p) => {
            let list: Vec<String> = p.pools.iter().map(|n| n.to_string()).collect();
            let own: Vec<String> = p
                .block_sizes
                .iter()
                .map(|(n, s)| format!("{n} in /{s}"))
                .collect();
            let own = if own.is_empty() {
                String::new()
            } else {
                format!(" ({})", own.join(", "))
            };
            format!(
                "[{}] with /{} (IPv4) and /{} (IPv6) blocks{own}",
                list.join(", "),
                p.block_size_v4,
                p.block_size_v6
            )
        }
    }
}

fn describe_layouts(pools: &[PoolLayout]) -> String {
    let list: Vec<String> = pools
        .iter()
        .map(|p| format!("{} in /{}", p.cidr, p.block_size))
        .collect();
    if list.is_empty() {
        "(none given)".into()
    } else {
        list.join(", ")
    }
}
