//! The key-value operations the cluster protocol needs: etcd v3's model (revisions,
//! per-key version and mod_revision, transactions comparing them, watches), so the
//! in-memory store and etcd behave alike.

use std::future::Future;

use tokio::sync::mpsc;

use crate::Error;

/// One key as stored, with etcd's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the last change of this key.
    pub mod_revision: i64,
    /// Number of changes since creation (0: absent).
    pub version: i64,
}

/// A range read: every key under a prefix, and the store's revision at that moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
}

/// What a transaction compares (always for equality).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// `version == 0` means "the key does not exist".
    Version(String, i64),
    ModRevision(String, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    /// Every key starting with this prefix.
    DeletePrefix(String),
}

/// The outcome of a transaction: whether the comparisons held, and the revision after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    pub revision: i64,
}

/// One key's change, as a watch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key as written (its value, mod_revision and version).
    Put(KeyValue),
    /// The key was deleted.
    Delete(String),
}

/// What a watch reports: the changes themselves, so a watcher applies them to what it
/// read instead of reading everything again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Keys under the prefix changed; `revision` is the store's after them (no changes:
    /// a progress notice).
    Changed { revision: i64, changes: Vec<Change> },
    /// Events before `compact_revision` are gone: read everything again.
    Compacted { compact_revision: i64 },
}

/// Events of one watch, in order and none left out; the channel closes when the watch
/// breaks (the store is unreachable, the stream ended, the watcher fell behind): the
/// caller reads again and watches anew.
pub type Watch = mpsc::Receiver<WatchEvent>;

/// How many keys are under a prefix, and the latest revision at which one of them was
/// written, at one revision of the store: what a watcher compares with its view to know
/// it missed nothing, without reading the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub revision: i64,
    pub keys: u64,
    /// The largest mod_revision under the prefix (0: no key).
    pub last_written: i64,
}

/// etcd v3's operations, as far as ipipd uses them.
pub trait Kv: Send + Sync + 'static {
    fn range(&self, prefix: &str) -> impl Future<Output = Result<Range, Error>> + Send;
    /// Counts the keys under `prefix` and finds the latest write among them (a
    /// linearizable read, so a member that lost its quorum answers with an error). The
    /// default reads every key; etcd sends one key and the count.
    fn count(&self, prefix: &str) -> impl Future<Output = Result<Counted, Error>> + Send {
        async move {
            let r = self.range(prefix).await?;
            Ok(Counted {
                revision: r.revision,
                keys: r.kvs.len() as u64,
                last_written: r.kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0),
            })
        }
    }
    /// Applies `success` if every comparison holds, else `failure`. An error for which
    /// [`Error::outcome_unknown`] holds may come after etcd applied the transaction
    /// (the answer was lost): the caller reads back to know; other errors mean it was
    /// not applied.
    fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<Op>,
        failure: Vec<Op>,
    ) -> impl Future<Output = Result<TxnResult, Error>> + Send;
    /// Watches every key under `prefix` from `start_revision` on.
    fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> impl Future<Output = Result<Watch, Error>> + Send;
}

/// The end of etcd's `[key, range_end)` range covering every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): to the end of the key space.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/ipipd/"), b"/ipipd0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
