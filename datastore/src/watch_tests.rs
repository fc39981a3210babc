//! A view kept current from a watch's changes is the view a full read gives: whatever
//! the protocol writes (registrations, claims, allocations, releases, removals, live
//! records, a key of a later version, an undecodable one), applying what the watch
//! reported to the first read gives exactly a fresh read.

use std::collections::BTreeMap;

use ipnet::IpNet;
use proptest::prelude::*;

use crate::allocation::{Attribute, Held};
use crate::kv::{Kv, Op};
use crate::model::LiveRecord;
use crate::test_support::{node, pools, runtime};
use crate::{Datastore, MemoryKv, WatchEvent};

#[derive(Debug, Clone)]
enum Step {
    Register(usize),
    Claim(usize),
    Allocate(usize, u8),
    Free(usize),
    Release(usize),
    Remove(usize),
    Live(usize, u8),
    Foreign(u8),
    Garbage(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4usize).prop_map(Step::Register),
        (0..4usize).prop_map(Step::Claim),
        (0..4usize, any::<u8>()).prop_map(|(n, h)| Step::Allocate(n, h)),
        (0..64usize).prop_map(Step::Free),
        (0..4usize).prop_map(Step::Release),
        (0..4usize).prop_map(Step::Remove),
        (0..4usize, any::<u8>()).prop_map(|(n, h)| Step::Live(n, h)),
        any::<u8>().prop_map(Step::Foreign),
        (0..4usize).prop_map(Step::Garbage),
    ]
}

fn attr(n: usize, h: u8) -> Attribute {
    Attribute {
        handle: format!("pod-{h}"),
        node: format!("node-{n}"),
        namespace: None,
        pod: None,
        interface: None,
        network: None,
        time: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn applied_changes_equal_a_fresh_read(steps in proptest::collection::vec(step(), 1..40)) {
        let (applied, fresh) = runtime().block_on(async {
            let kv = MemoryKv::new();
            let ds = Datastore::new(kv.clone(), "/w");
            let p = pools("10.20.0.0/24", 28);
            ds.ensure_pools(&p).await.unwrap_or_else(|e| panic!("{e}"));
            let mut view = ds.snapshot().await.unwrap_or_else(|e| panic!("{e}"));
            let mut watch = ds.watch(view.revision + 1).await.unwrap_or_else(|e| panic!("{e}"));
            let pool: IpNet = "10.20.0.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
            let mut held: Vec<(IpNet, Held, String)> = Vec::new();
            let mut own: BTreeMap<usize, Vec<IpNet>> = BTreeMap::new();
            let drain = |view: &mut crate::Snapshot, watch: &mut crate::kv::Watch| {
                loop {
                    match watch.try_recv() {
                        Ok(WatchEvent::Changed { revision, changes }) => {
                            view.apply(ds.keys(), revision, &changes)
                        }
                        Ok(WatchEvent::Compacted { .. }) => panic!("the memory store never compacts"),
                        Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return,
                        Err(e) => panic!("the watch broke: {e}"),
                    }
                }
            };
            for s in steps {
                // Outcomes (refusals included) do not matter here: only that every
                // write reaches the view.
                match s {
                    Step::Register(n) => {
                        let _ = ds.register(&node(n)).await;
                    }
                    Step::Claim(n) => {
                        if let Ok(b) = ds.claim(&format!("node-{n}"), &p.layouts(), &pool).await {
                            own.entry(n).or_default().push(b);
                        }
                    }
                    Step::Allocate(n, h) => {
                        if let Some(b) = own.get(&n).and_then(|v| v.first()).copied() {
                            if let Ok(Some(x)) = ds.allocate(&b, &attr(n, h), |_| false).await {
                                held.push((b, x, format!("pod-{h}")));
                            }
                        }
                    }
                    Step::Free(i) => {
                        if !held.is_empty() {
                            let (b, x, h) = held.remove(i % held.len());
                            let _ = ds.free(&b, &x, &h).await;
                        }
                    }
                    Step::Release(n) => {
                        if let Some(b) = own.get_mut(&n).and_then(|v| v.pop()) {
                            let _ = ds.delete_empty_record(&b).await;
                            let _ = ds.release(&format!("node-{n}"), &b).await;
                        }
                    }
                    Step::Remove(n) => {
                        let _ = ds.remove_node(&format!("node-{n}")).await;
                        own.remove(&n);
                    }
                    Step::Live(n, h) => {
                        let mut handles = BTreeMap::new();
                        handles.insert(format!("pod-{h}"), Vec::new());
                        let _ = ds.put_live(&format!("node-{n}"), &LiveRecord { at: 1, handles }).await;
                    }
                    Step::Foreign(v) => {
                        // A key a later version writes: kept out of the view both ways.
                        let _ = kv.txn(vec![], vec![Op::Put("/w/later/x".into(), vec![v])], vec![]).await;
                    }
                    Step::Garbage(n) => {
                        // Undecodable, then maybe fixed by a later registration.
                        let _ = kv.txn(vec![], vec![Op::Put(format!("/w/nodes/node-{n}"), b"{".to_vec())], vec![]).await;
                    }
                }
                drain(&mut view, &mut watch);
            }
            assert!(
                ds.is_current(&view).await.unwrap_or_else(|e| panic!("{e}")),
                "a view with every change applied counts as current"
            );
            let mut fresh = ds.snapshot().await.unwrap_or_else(|e| panic!("{e}"));
            // Which keys did not decode matters, not in which order they were met.
            view.invalid.sort();
            fresh.invalid.sort();
            (view, fresh)
        });
        prop_assert_eq!(applied, fresh);
    }
}

/// A view that missed a write, a creation or a deletion is told apart from the store by
/// the key count and the latest write, with no value read.
#[test]
fn a_view_that_missed_a_change_is_not_current() {
    runtime().block_on(async {
        let kv = MemoryKv::new();
        let ds = Datastore::new(kv.clone(), "/w");
        ds.ensure_pools(&pools("10.20.0.0/24", 28))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ds.register(&node(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let current = |view: crate::Snapshot| {
            let ds = &ds;
            async move { ds.is_current(&view).await.unwrap_or_else(|e| panic!("{e}")) }
        };
        let read = ds.snapshot().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(current(read.clone()).await);
        // Another node's registration: a key created.
        ds.register(&node(2))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!current(read).await, "a missed creation");
        let read = ds.snapshot().await.unwrap_or_else(|e| panic!("{e}"));
        // A rewrite of a key the view has: as many keys, one changed.
        ds.register(&node(2))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!current(read).await, "a missed rewrite");
        let read = ds.snapshot().await.unwrap_or_else(|e| panic!("{e}"));
        // A deletion: no key written after the view, one key fewer.
        kv.txn(vec![], vec![Op::Delete("/w/nodes/node-2".into())], vec![])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!current(read).await, "a missed deletion");
        assert!(current(ds.snapshot().await.unwrap_or_else(|e| panic!("{e}"))).await);
    });
}
