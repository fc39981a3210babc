//! Transactions whose answer is lost. etcd may apply a transaction and the answer
//! never arrive (a timeout after the commit, a connection dropped on the way back, a
//! re-send to another member failing its comparisons because the first attempt
//! succeeded). Guessing "not applied" abandons a block etcd records as this node's;
//! guessing "applied" announces one it does not. So the key is read back instead.

use super::Datastore;
use crate::kv::{Compare, Kv, Op, Range, TxnResult};
use crate::model::Snapshot;
use crate::Error;

/// What a read back tells of a transaction with an unknown outcome.
pub(super) enum Settled<T> {
    /// The key shows the outcome.
    Known(T),
    /// The key is as the transaction found it: not applied.
    NotApplied,
}

impl<K: Kv> Datastore<K> {
    /// Runs a transaction (no failure ops). Answered: `answered` makes the result of
    /// it. Outcome unknown: `key` is read back and `judge` tells, from its decoded
    /// value (None: the key is absent). Not applied, or the read fails: an error
    /// (etcd out of reach), and the caller tries again later.
    pub(super) async fn txn_settled<T>(
        &self,
        compare: Vec<Compare>,
        success: Vec<Op>,
        key: &str,
        answered: impl FnOnce(TxnResult) -> T,
        judge: impl FnOnce(Option<&Snapshot>) -> Settled<T>,
    ) -> Result<T, Error> {
        let err = match self.kv.txn(compare, success, vec![]).await {
            Ok(r) => {
                self.saw(r.revision);
                return Ok(answered(r));
            }
            Err(e) if e.outcome_unknown() => e,
            Err(e) => return Err(e),
        };
        let read = match self.read_key(key).await {
            Ok(read) => read,
            Err(read_error) => {
                tracing::warn!(%key, error = %err, %read_error, "transaction outcome unknown, and etcd cannot be read to find it out");
                return Err(read_error);
            }
        };
        match judge(read.as_ref()) {
            Settled::Known(t) => {
                tracing::info!(%key, error = %err, "transaction outcome unknown; read back");
                Ok(t)
            }
            Settled::NotApplied => Err(err.not_applied()),
        }
    }

    /// One key, decoded; None if it is absent.
    pub(super) async fn read_key(&self, key: &str) -> Result<Option<Snapshot>, Error> {
        let range = self.kv.range(key).await?;
        self.saw(range.revision);
        // The range is a prefix: `…/10.64.0.0-2` also covers `…/10.64.0.0-28`.
        let kvs: Vec<_> = range.kvs.into_iter().filter(|kv| kv.key == key).collect();
        if kvs.is_empty() {
            return Ok(None);
        }
        let only = Range {
            revision: range.revision,
            kvs,
        };
        Ok(Some(Snapshot::decode(&self.keys, &only)))
    }
}
