//! An in-memory [`Kv`] with etcd's semantics (one revision counter, per-key version
//! and mod_revision, atomic transactions, watches), for tests of the claim protocol.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use crate::kv::{Change, Compare, KeyValue, Kv, Op, Range, TxnResult, Watch, WatchEvent};
use crate::Error;

#[derive(Default)]
struct State {
    revision: i64,
    keys: BTreeMap<String, KeyValue>,
    /// Every change so far, by revision, for watches that start in the past (a test
    /// store: never compacted).
    history: Vec<(i64, Vec<Change>)>,
    watchers: Vec<(String, mpsc::Sender<WatchEvent>)>,
    /// While set, every call fails as if etcd were unreachable.
    down: bool,
}

/// Cheap to clone: clones share the store.
#[derive(Clone, Default)]
pub struct MemoryKv {
    state: Arc<Mutex<State>>,
}

impl MemoryKv {
    pub fn new() -> MemoryKv {
        MemoryKv::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Simulates an outage: calls fail and watches close until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        let mut s = self.lock();
        s.down = down;
        if down {
            s.watchers.clear();
        }
    }

    /// Every key and value, for assertions.
    pub fn dump(&self) -> Vec<KeyValue> {
        self.lock().keys.values().cloned().collect()
    }

    fn check(s: &State) -> Result<(), Error> {
        if s.down {
            return Err(Error::Unreachable {
                endpoints: "memory".into(),
                reason: "simulated outage".into(),
            });
        }
        Ok(())
    }
}

fn holds(s: &State, c: &Compare) -> bool {
    match c {
        Compare::Version(k, v) => s.keys.get(k).map_or(0, |kv| kv.version) == *v,
        Compare::ModRevision(k, r) => s.keys.get(k).map_or(0, |kv| kv.mod_revision) == *r,
    }
}

fn apply(s: &mut State, ops: &[Op]) -> Vec<Change> {
    let mut changed: Vec<Change> = Vec::new();
    let rev = s.revision + 1;
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let version = s.keys.get(k).map_or(0, |kv| kv.version) + 1;
                let kv = KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                    mod_revision: rev,
                    version,
                };
                s.keys.insert(k.clone(), kv.clone());
                changed.push(Change::Put(kv));
            }
            Op::Delete(k) => {
                if s.keys.remove(k).is_some() {
                    changed.push(Change::Delete(k.clone()));
                }
            }
            Op::DeletePrefix(p) => {
                let gone: Vec<String> = s
                    .keys
                    .keys()
                    .filter(|k| k.starts_with(p.as_str()))
                    .cloned()
                    .collect();
                for k in gone {
                    s.keys.remove(&k);
                    changed.push(Change::Delete(k));
                }
            }
        }
    }
    if !changed.is_empty() {
        s.revision = rev;
        s.history.push((rev, changed.clone()));
        s.watchers.retain(|(prefix, tx)| {
            let mine = under(&changed, prefix);
            if mine.is_empty() {
                return !tx.is_closed();
            }
            // A watcher too far behind loses its watch (it reads again), as etcd
            // cancels a slow one: an event is never dropped from a live watch.
            tx.try_send(WatchEvent::Changed {
                revision: rev,
                changes: mine,
            })
            .is_ok()
        });
    }
    changed
}

fn key_of(c: &Change) -> &str {
    match c {
        Change::Put(kv) => &kv.key,
        Change::Delete(k) => k,
    }
}

fn under(changes: &[Change], prefix: &str) -> Vec<Change> {
    changes
        .iter()
        .filter(|c| key_of(c).starts_with(prefix))
        .cloned()
        .collect()
}

impl Kv for MemoryKv {
    async fn range(&self, prefix: &str) -> Result<Range, Error> {
        let s = self.lock();
        Self::check(&s)?;
        Ok(Range {
            revision: s.revision,
            kvs: s
                .keys
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect(),
        })
    }

    async fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<Op>,
        failure: Vec<Op>,
    ) -> Result<TxnResult, Error> {
        let mut s = self.lock();
        Self::check(&s)?;
        let succeeded = compare.iter().all(|c| holds(&s, c));
        apply(&mut s, if succeeded { &success } else { &failure });
        Ok(TxnResult {
            succeeded,
            revision: s.revision,
        })
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watch, Error> {
        let mut s = self.lock();
        Self::check(&s)?;
        let (tx, rx) = mpsc::channel(64);
        // What changed between the caller's read and this watch, as etcd replays it.
        for (rev, changes) in s.history.iter().filter(|(r, _)| *r >= start_revision) {
            let mine = under(changes, prefix);
            if mine.is_empty() {
                continue;
            }
            let e = WatchEvent::Changed {
                revision: *rev,
                changes: mine,
            };
            if tx.try_send(e).is_err() {
                // Too much to replay: no watch; the caller reads again.
                drop(tx);
                return Ok(rx);
            }
        }
        s.watchers.push((prefix.to_owned(), tx));
        Ok(rx)
    }
}
