//! Borrowing: a node whose blocks are full and that can claim no block takes a free
//! address from another node's block. The write compares the block's own key too, so
//! an address is borrowed only from a block still confirmed as its owner's: a block
//! its owner has started to release (or another node has taken over) lends nothing.

use std::net::IpAddr;

use ipnet::IpNet;

use super::allocations::{held_by, ATTEMPTS};
use super::settle::Settled;
use super::{json, Datastore};
use crate::allocation::{Attribute, Held};
use crate::kv::{Compare, Kv, Op};
use crate::model::BlockState;
use crate::Error;

impl<K: Kv> Datastore<K> {
    /// Takes the first free address of `block` (FIFO order) that `skip` does not refuse
    /// for `attr`, while the block is confirmed as `owner`'s. None: the block has no
    /// free address, or is not `owner`'s confirmed block (any more).
    pub async fn borrow(
        &self,
        block: &IpNet,
        owner: &str,
        attr: &Attribute,
        skip: impl Fn(&IpAddr) -> bool,
    ) -> Result<Option<Held>, Error> {
        let block_key = self.keys.block(block);
        let key = self.keys.allocation(block);
        for _ in 0..ATTEMPTS {
            let found = self
                .read_key(&block_key)
                .await?
                .and_then(|s| s.blocks.get(block).cloned());
            let Some(b) =
                found.filter(|b| b.record.node == owner && b.record.state == BlockState::Confirmed)
            else {
                return Ok(None);
            };
            let (mut record, rev) = self.allocations(block).await?;
            let Some(held) = record.assign(attr.clone(), &skip) else {
                return Ok(None);
            };
            let unchanged = if rev == 0 {
                Compare::Version(key.clone(), 0)
            } else {
                Compare::ModRevision(key.clone(), rev)
            };
            let written = self
                .txn_settled(
                    vec![
                        Compare::ModRevision(block_key.clone(), b.mod_revision),
                        unchanged,
                    ],
                    vec![Op::Put(key.clone(), json(&record))],
                    &key,
                    |r| r.succeeded,
                    |read| match read.and_then(|s| s.allocations.get(block)) {
                        Some((_, now)) if *now == rev => Settled::NotApplied,
                        None if rev == 0 => Settled::NotApplied,
                        Some((r, _)) => Settled::Known(held_by(r, Some(&held), &attr.handle)),
                        None => Settled::Known(false),
                    },
                )
                .await;
            // The owner's client may remember this record as it wrote it: it is not
            // current any more, whatever the outcome.
            self.remember(block, None);
            if written? {
                return Ok(Some(held));
            }
        }
        Err(Error::Conflict(format!(
            "the allocations of {block} kept changing"
        )))
    }
}
