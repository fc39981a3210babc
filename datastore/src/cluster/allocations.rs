//! Allocations in the datastore: every change of a block's [`AllocationBlock`] is a
//! compare-and-swap on its key (created with `version == 0`, changed comparing its
//! `mod_revision`), retried on a conflict with a fresh read. etcd is the arbiter: a node
//! takes an address only by winning the swap that records it.

use ipnet::IpNet;

use super::settle::Settled;
use super::{json, Datastore};
use crate::allocation::{AllocError, AllocationBlock, Attribute, Held};
use crate::kv::{Compare, Kv, Op};
use crate::model::{CheckRecord, Leak, LiveRecord};
use crate::Error;

/// How often one change is tried against concurrent writers before giving up.
pub(super) const ATTEMPTS: usize = 32;

/// What one change of a record decided.
enum Step<T> {
    /// Write the changed record, then answer this.
    Write(T),
    /// Nothing to write; answer this.
    Done(T),
}

impl<K: Kv> Datastore<K> {
    /// A block's allocations and the record's mod_revision (0: no record yet).
    pub async fn allocations(&self, block: &IpNet) -> Result<(AllocationBlock, i64), Error> {
        let key = self.keys.allocation(block);
        let read = self.read_key(&key).await?;
        if let Some(s) = &read {
            if let Some(why) = s.invalid.first() {
                return Err(Error::Conflict(format!("unreadable allocations: {why}")));
            }
        }
        match read.and_then(|s| s.allocations.get(block).cloned()) {
            Some(found) => Ok(found),
            None => AllocationBlock::new(*block)
                .map(|b| (b, 0))
                .ok_or_else(|| Error::Conflict(format!("block {block} is too large for a record"))),
        }
    }

    fn remembered(&self, block: &IpNet) -> Option<(AllocationBlock, i64)> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(block)
            .cloned()
    }

    pub(super) fn remember(&self, block: &IpNet, written: Option<(AllocationBlock, i64)>) {
        let mut m = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match written {
            Some(w) => m.insert(*block, w),
            None => m.remove(block),
        };
    }

    /// Applies `change` to the block's record and writes it by compare-and-swap,
    /// reading again after a conflict. The first attempt may start from the record as
    /// this client last wrote it: only a write is tried on it (the swap checks it is
    /// current); a decision not to write is taken on a fresh read. `applied` tells,
    /// from the record read back after a lost answer, whether the write went in.
    async fn change_block<T: Clone>(
        &self,
        block: &IpNet,
        mut change: impl FnMut(&mut AllocationBlock) -> Result<Step<T>, AllocError>,
        applied: impl Fn(&AllocationBlock, &T) -> bool,
    ) -> Result<Result<T, AllocError>, Error> {
        let key = self.keys.allocation(block);
        let mut remembered = self.remembered(block);
        for _ in 0..ATTEMPTS {
            let (mut record, rev) = match remembered.take() {
                Some(r) => {
                    let mut probe = r.0.clone();
                    match change(&mut probe) {
                        Ok(Step::Write(_)) => r,
                        _ => self.allocations(block).await?,
                    }
                }
                None => self.allocations(block).await?,
            };
            let out = match change(&mut record) {
                Err(e) => return Ok(Err(e)),
                Ok(Step::Done(t)) => return Ok(Ok(t)),
                Ok(Step::Write(t)) => t,
            };
            let compare = if rev == 0 {
                Compare::Version(key.clone(), 0)
            } else {
                Compare::ModRevision(key.clone(), rev)
            };
            let value = json(&record);
            // Some(revision of the write; 0: unknown), None: not written.
            let written = self
                .txn_settled(
                    vec![compare],
                    vec![Op::Put(key.clone(), value)],
                    &key,
                    |r| r.succeeded.then_some(r.revision),
                    |read| match read.and_then(|s| s.allocations.get(block)) {
                        Some((_, now)) if *now == rev => Settled::NotApplied,
                        None if rev == 0 => Settled::NotApplied,
                        Some((b, _)) => Settled::Known(applied(b, &out).then_some(0)),
                        None => Settled::Known(None),
                    },
                )
                .await;
            match written {
                // A one-put transaction's revision is the put's mod_revision.
                Ok(Some(new_rev)) => {
                    self.remember(block, (new_rev > 0).then_some((record, new_rev)));
                    return Ok(Ok(out));
                }
                Ok(None) => self.remember(block, None),
                Err(e) => {
                    self.remember(block, None);
                    return Err(e);
                }
            }
        }
        Err(Error::Conflict(format!(
            "the allocations of {block} kept changing"
        )))
    }

    /// Takes the first free address of `block` (FIFO order) that `skip` does not refuse,
    /// for `attr`; None when the block has none.
    pub async fn allocate(
        &self,
        block: &IpNet,
        attr: &Attribute,
        skip: impl Fn(&std::net::IpAddr) -> bool,
    ) -> Result<Option<Held>, Error> {
        let r = self
            .change_block(
                block,
                |b| {
                    Ok(match b.assign(attr.clone(), &skip) {
                        Some(h) => Step::Write(Some(h)),
                        None => Step::Done(None),
                    })
                },
                |b, h| held_by(b, h.as_ref(), &attr.handle),
            )
            .await?;
        // `assign` refuses nothing.
        Ok(r.unwrap_or(None))
    }

    /// Takes `ip` for `attr`; Err inside when it is held by anyone, or outside `block`.
    pub async fn allocate_at(
        &self,
        block: &IpNet,
        ip: &std::net::IpAddr,
        attr: &Attribute,
    ) -> Result<Result<Held, AllocError>, Error> {
        self.change_block(
            block,
            |b| b.assign_at(ip, attr.clone()).map(Step::Write),
            |b, h| held_by(b, Some(h), &attr.handle),
        )
        .await
    }

    /// Frees `held` if `handle` still holds it at its sequence; Ok(false) inside when it
    /// was free already, Err inside for a stale release (refused, nothing changed).
    pub async fn free(
        &self,
        block: &IpNet,
        held: &Held,
        handle: &str,
    ) -> Result<Result<bool, AllocError>, Error> {
        self.change_block(
            block,
            |b| {
                let mut probe = b.clone();
                match probe.release(held, handle)? {
                    true => {
                        *b = probe;
                        Ok(Step::Write(true))
                    }
                    false => Ok(Step::Done(false)),
                }
            },
            |b, _| !held_by(b, Some(held), handle),
        )
        .await
    }

    /// Writes what a node reports live (only the node itself writes its key).
    pub async fn put_live(&self, node: &str, live: &LiveRecord) -> Result<(), Error> {
        let key = self.keys.live(node);
        self.kv
            .txn(vec![], vec![Op::Put(key, json(live))], vec![])
            .await
            .map(|_| ())
    }

    /// Records a check as the last one.
    pub async fn put_check(&self, check: &CheckRecord) -> Result<(), Error> {
        let key = self.keys.last_check();
        self.kv
            .txn(vec![], vec![Op::Put(key, json(check))], vec![])
            .await
            .map(|_| ())
    }

    /// Frees one leaked allocation found by a check.
    pub async fn free_leak(&self, leak: &Leak) -> Result<Result<bool, AllocError>, Error> {
        let snap = self.snapshot().await?;
        let Some(block) = snap
            .allocations
            .keys()
            .find(|b| b.contains(&leak.address))
            .copied()
        else {
            return Ok(Ok(false));
        };
        let held = Held {
            address: leak.address,
            sequence: leak.sequence,
        };
        self.free(&block, &held, &leak.handle).await
    }

    /// Deletes a block's allocation record if it holds nothing (a block no node owns).
    pub async fn delete_empty_record(&self, block: &IpNet) -> Result<bool, Error> {
        let key = self.keys.allocation(block);
        let (record, rev) = self.allocations(block).await?;
        if rev == 0 {
            return Ok(true);
        }
        if !record.is_empty() {
            return Ok(false);
        }
        self.txn_settled(
            vec![Compare::ModRevision(key.clone(), rev)],
            vec![Op::Delete(key.clone())],
            &key,
            |r| r.succeeded,
            |read| match read {
                None => Settled::Known(true),
                Some(_) => Settled::NotApplied,
            },
        )
        .await
    }
}

pub(super) fn held_by(b: &AllocationBlock, h: Option<&Held>, handle: &str) -> bool {
    h.is_some_and(|h| {
        b.holder(&h.address).is_some_and(|a| a.handle == handle)
            && b.held()
                .any(|(x, _)| x.address == h.address && x.sequence == h.sequence)
    })
}
