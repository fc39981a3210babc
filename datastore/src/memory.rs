//! An in-memory [`Kv`] with etcd's semantics (one revision counter, per-key version
//! and mod_revision, atomic transactions, watches), for tests of the claim protocol.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use crate::kv::{Compare, KeyValue, Kv, Op, Range, TxnResult, Watch, WatchEvent};
use crate::Error;

#[derive(Default)]
struct State {
    revision: i64,
    keys: BTreeMap<String, KeyValue>,
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

fn apply(s: &mut State, ops: &[Op]) -> Vec<String> {
    let mut changed = Vec::new();
    let rev = s.revision + 1;
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let version = s.keys.get(k).map_or(0, |kv| kv.version) + 1;
                s.keys.insert(
                    k.clone(),
                    KeyValue {
                        key: k.clone(),
                        value: v.clone(),
                        mod_revision: rev,
                        version,
                    },
                );
                changed.push(k.clone());
            }
            Op::Delete(k) => {
                if s.keys.remove(k).is_some() {
                    changed.push(k.clone());
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
                    changed.push(k);
                }
            }
        }
    }
    if !changed.is_empty() {
        s.revision = rev;
        s.watchers.retain(|(prefix, tx)| {
            if changed.iter().any(|k| k.starts_with(prefix.as_str())) {
                // A full channel drops the event; the watcher re-reads on the next one.
                !matches!(
                    tx.try_send(WatchEvent::Changed { revision: rev }),
                    Err(mpsc::error::TrySendError::Closed(_))
                )
            } else {
                !tx.is_closed()
            }
        });
    }
    changed
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
        if start_revision <= s.revision {
            // Something may have changed between the caller's read and this watch.
            let _ = tx.try_send(WatchEvent::Changed {
                revision: s.revision,
            });
        }
        s.watchers.push((prefix.to_owned(), tx));
        Ok(rx)
    }
}
