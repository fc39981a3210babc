//! The claim protocol against the in-memory store, with the nodes' steps interleaved
//! in every order proptest picks: each block ends with exactly one owner, no claim
//! returns a block another claim returned, and nothing is left pending.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use proptest::prelude::*;

use crate::kv::{Kv, Op, Range};
use crate::model::{BlockState, PoolLayout, PoolsRecord};
use crate::test_support::{node, pools, runtime};
use crate::{Datastore, Error, Interleaved, MemoryKv};

/// `nodes` nodes each claim `claims` times from a pool of `blocks` blocks; steps interleave.
fn race(nodes: usize, claims: usize, blocks: u32, yields: Vec<u8>) -> (Vec<Vec<IpNet>>, MemoryKv) {
    let inner = MemoryKv::new();
    let kv = Interleaved::new(inner.clone(), yields);
    // blocks of /28 in a pool just big enough.
    let pool_len = 28 - blocks.next_power_of_two().trailing_zeros() as u8;
    let p = pools(&format!("10.64.0.0/{pool_len}"), 28);
    let usable = 1usize << (28 - pool_len);
    let results = runtime().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..nodes {
            let ds = Datastore::new(kv.clone(), "/t");
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                let _ = ds.ensure_pools(&p).await;
                let _ = ds.register(&node(i)).await;
                let mut got = Vec::new();
                for _ in 0..claims {
                    let any: IpNet = "10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"));
                    match ds.claim(&node(i).name, &p.layouts(), &any).await {
                        Ok(b) => got.push(b),
                        Err(Error::NoFreeBlock { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                got
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    });
    assert!(usable >= blocks as usize);
    (results, inner)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_block_has_one_owner_whatever_the_interleaving(
        nodes in 2usize..9,
        claims in 1usize..4,
        blocks in 1u32..5,
        yields in proptest::collection::vec(0u8..4, 0..400),
    ) {
        let (results, kv) = race(nodes, claims, blocks, yields);
        let blocks = 1usize << blocks.next_power_of_two().trailing_zeros();
        let mut seen = BTreeSet::new();
        for got in &results {
            for b in got {
                prop_assert!(seen.insert(*b), "block {b} returned to two claims: {results:?}");
            }
        }
        prop_assert_eq!(seen.len(), blocks.min(nodes * claims));
        let snap = Snapshot::decode(&Keys::new("/t"), &futures_range(&kv));
        prop_assert!(snap.invalid.is_empty());
        let mut owners: BTreeMap<IpNet, String> = BTreeMap::new();
        for b in snap.blocks.values() {
            prop_assert_eq!(b.record.state, BlockState::Confirmed);
            owners.insert(b.net, b.record.node.clone());
        }
        for (i, got) in results.iter().enumerate() {
            for b in got {
                prop_assert_eq!(owners.get(b), Some(&node(i).name));
            }
        }
        // Affinities: exactly the confirmed blocks, none pending.
        for ((n, net), state) in &snap.affinities {
            prop_assert_eq!(*state, BlockState::Confirmed);
            prop_assert_eq!(owners.get(net), Some(n));
        }
        prop_assert_eq!(snap.affinities.len(), owners.len());
    }
}

use crate::model::{Keys, Snapshot};

fn futures_range(kv: &MemoryKv) -> Range {
    runtime()
        .block_on(kv.range("/t/"))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn release_then_claim_again_and_remove_node() {
    runtime().block_on(async {
        let kv = MemoryKv::new();
        let ds = Datastore::new(kv.clone(), "/t");
        let p = pools("10.64.0.0/27", 28);
        let any = p.pools[0];
        ds.ensure_pools(&p).await.unwrap_or_else(|e| panic!("{e}"));
        ds.register(&node(0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ds.register(&node(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let a = ds
            .claim("node-0", &p.layouts(), &any)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let b = ds
            .claim("node-1", &p.layouts(), &any)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a, b);
        assert!(matches!(
            ds.claim("node-1", &p.layouts(), &any).await,
            Err(Error::NoFreeBlock { .. })
        ));
        assert!(ds.release("node-0", &a).await.unwrap_or(false));
        // Not the owner: nothing happens.
        assert!(!ds.release("node-0", &b).await.unwrap_or(true));
        assert_eq!(ds.claim("node-1", &p.layouts(), &any).await.ok(), Some(a));
        let gone = ds.remove_node("node-1").await.unwrap_or_default();
        assert_eq!(gone.len(), 2);
        let snap = ds.snapshot().await.unwrap_or_default();
        assert!(snap.blocks.is_empty() && snap.affinities.is_empty());
        assert_eq!(snap.nodes.keys().collect::<Vec<_>>(), ["node-0"]);
        assert!(matches!(
            ds.remove_node("node-1").await,
            Err(Error::NoSuchNode(_))
        ));
    });
}

#[test]
fn one_node_record_is_read_by_its_exact_name() {
    runtime().block_on(async {
        let ds = Datastore::new(MemoryKv::new(), "/t");
        let mut ten = node(10);
        ten.vxlan_mac = Some(crate::Mac([0x0a, 0, 0, 0, 0, 10]));
        ds.register(&ten).await.unwrap_or_else(|e| panic!("{e}"));
        let got = |name: &'static str| {
            let ds = &ds;
            async move { ds.node(name).await.unwrap_or_else(|e| panic!("{e}")) }
        };
        assert_eq!(got("node-1").await, None, "node-10 is not node-1");
        assert_eq!(got("node-10").await, Some(ten));
    });
}

#[test]
fn different_pools_are_refused_naming_both() {
    runtime().block_on(async {
        let ds = Datastore::new(MemoryKv::new(), "/t");
        ds.ensure_pools(&pools("10.64.0.0/16", 26))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ds.ensure_pools(&pools("10.64.0.0/16", 26))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let e = ds
            .ensure_pools(&pools("10.65.0.0/16", 26))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("10.65.0.0/16") && e.contains("10.64.0.0/16"),
            "{e}"
        );
    });
}

#[test]
fn an_interrupted_claim_is_finished_at_restart() {
    runtime().block_on(async {
        let kv = MemoryKv::new();
        let ds = Datastore::new(kv.clone(), "/t");
        let net: IpNet = "10.64.0.0/28".parse().unwrap_or_else(|e| panic!("{e}"));
        let block = ds.keys().block(&net);
        let value = br#"{"node":"node-0","state":"pending"}"#.to_vec();
        let stray: IpNet = "10.64.0.16/28".parse().unwrap_or_else(|e| panic!("{e}"));
        let aff = ds.keys().affinity("node-0", &stray);
        let _ = kv
            .txn(
                vec![],
                vec![
                    Op::Put(block, value),
                    Op::Put(aff, br#"{"state":"pending"}"#.to_vec()),
                ],
                vec![],
            )
            .await;
        ds.recover("node-0").await.unwrap_or_else(|e| panic!("{e}"));
        let snap = ds.snapshot().await.unwrap_or_default();
        assert_eq!(snap.confirmed_blocks_of("node-0"), vec![net]);
        assert_eq!(snap.affinities.len(), 1);
    });
}

#[test]
fn an_outage_is_an_error_not_a_claim() {
    runtime().block_on(async {
        let kv = MemoryKv::new();
        let ds = Datastore::new(kv.clone(), "/t");
        let p = pools("10.64.0.0/27", 28);
        kv.set_down(true);
        let e = ds.claim("node-0", &p.layouts(), &p.pools[0]).await;
        assert!(matches!(e, Err(Error::Unreachable { .. })), "{e:?}");
        kv.set_down(false);
        assert!(ds.claim("node-0", &p.layouts(), &p.pools[0]).await.is_ok());
    });
}

fn layout(cidr: &str, block_size: u8) -> PoolLayout {
    PoolLayout {
        cidr: cidr.parse().unwrap_or_else(|e| panic!("{e}")),
        block_size,
    }
}

#[test]
fn each_pool_is_cut_in_blocks_of_its_own_size() {
    runtime().block_on(async {
        let ds = Datastore::new(MemoryKv::new(), "/t");
        let small = layout("10.64.0.0/24", 28);
        let large = layout("10.65.0.0/24", 26);
        let any = small.cidr;
        let b = ds.claim("node-0", &[large], &any).await;
        assert_eq!(b.ok(), "10.65.0.0/26".parse().ok());
        let b = ds.claim("node-0", &[small, large], &any).await;
        assert_eq!(b.ok(), "10.64.0.0/28".parse().ok());
        // Only the pools given are walked: a caller leaves out those a node may not use.
        let e = ds.claim("node-0", &[], &any).await;
        assert!(matches!(e, Err(Error::NoFreeBlock { .. })), "{e:?}");
        let v6 = "fd00::/120".parse().unwrap_or_else(|e| panic!("{e}"));
        let e = ds.claim("node-0", &[small, large], &v6).await;
        assert!(matches!(e, Err(Error::NoFreeBlock { .. })), "{e:?}");
    });
}

/// Nodes of the previous version wrote (and read) the record without per-pool sizes and
/// refuse unknown fields: pools at the family sizes are written exactly as they were.
#[test]
fn the_pools_record_stays_readable_both_ways() {
    let old = r#"{"pools":["10.64.0.0/16","10.9.0.0/28"],"block_size_v4":26,"block_size_v6":122}"#;
    let read: PoolsRecord = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
    let ours = PoolsRecord::new(
        &[layout("10.64.0.0/16", 26), layout("10.9.0.0/28", 28)],
        26,
        122,
    );
    assert!(read.same_layout(&ours));
    assert_eq!(serde_json::to_string(&ours).ok().as_deref(), Some(old));

    let sized = PoolsRecord::new(
        &[layout("10.64.0.0/16", 24), layout("10.9.0.0/28", 28)],
        26,
        122,
    );
    let text = serde_json::to_string(&sized).unwrap_or_default();
    assert!(
        text.contains(r#""block_sizes":{"10.64.0.0/16":24}"#),
        "{text}"
    );
    let back: PoolsRecord = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, sized);
    assert!(!sized.same_layout(&ours));
    // The order pools are listed in is no difference.
    let reordered = PoolsRecord::new(
        &[layout("10.9.0.0/28", 28), layout("10.64.0.0/16", 24)],
        26,
        122,
    );
    assert!(reordered.same_layout(&sized));
}

#[test]
fn nodes_with_other_block_sizes_are_refused() {
    runtime().block_on(async {
        let kv = MemoryKv::new();
        let ds = Datastore::new(kv.clone(), "/t");
        let old = br#"{"pools":["10.64.0.0/16"],"block_size_v4":26,"block_size_v6":122}"#;
        let _ = kv
            .txn(
                vec![],
                vec![Op::Put(ds.keys().pools(), old.to_vec())],
                vec![],
            )
            .await;
        let same = PoolsRecord::new(&[layout("10.64.0.0/16", 26)], 26, 122);
        assert!(ds.ensure_pools(&same).await.is_ok());
        let other = PoolsRecord::new(&[layout("10.64.0.0/16", 24)], 26, 122);
        let e = ds.ensure_pools(&other).await.err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("10.64.0.0/16 in /24")),
            "{e:?}"
        );
    });
}

/// `nodes` nodes register and then each claim up to `each` blocks of `size` from `pool`,
/// all at once: one yield before every store operation makes them take turns, so each
/// reads the blocks before any of them has claimed one. Every block claimed, and the
/// store.
fn claim_at_once(nodes: usize, pool: &str, size: u8, each: usize) -> (BTreeSet<IpNet>, MemoryKv) {
    let inner = MemoryKv::new();
    let kv = Interleaved::new(inner.clone(), vec![1; 100_000]);
    let p = pools(pool, size);
    let claimed = runtime().block_on(async {
        let admin = Datastore::new(kv.clone(), "/t");
        admin
            .ensure_pools(&p)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tasks = Vec::new();
        for i in 0..nodes {
            let ds = Datastore::new(kv.clone(), "/t");
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                ds.register(&node(i))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let any: IpNet = "10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"));
                let mut got = Vec::new();
                while got.len() < each {
                    match ds.claim(&node(i).name, &p.layouts(), &any).await {
                        Ok(b) => got.push(b),
                        Err(Error::NoFreeBlock { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                got
            }));
        }
        let mut out = BTreeSet::new();
        for t in tasks {
            for b in t.await.unwrap_or_else(|e| panic!("{e}")) {
                assert!(out.insert(b), "block {b} claimed twice");
            }
        }
        out
    });
    (claimed, inner)
}

/// Nodes that claim at once all read the same first free block. The losers must not
/// race again block after block: 64 nodes in order would lose about 64²/2 = 2,016
/// claims; spread out, a few per node.
#[test]
fn nodes_claiming_at_once_spread_out_instead_of_racing_block_after_block() {
    const NODES: usize = 64;
    let (claimed, store) = claim_at_once(NODES, "10.64.0.0/16", 26, 1);
    assert_eq!(claimed.len(), NODES);
    // Every write bumps the revision: the pools, a registration and three writes per
    // won claim (affinity, block, confirmation), two per lost one (affinity put and
    // deleted again).
    let revision = futures_range(&store).revision;
    let lost = (revision - 1 - 4 * NODES as i64) / 2;
    assert!(
        lost <= 4 * NODES as i64,
        "{lost} claims lost by {NODES} nodes claiming at once"
    );
}

/// Passing over free blocks never makes a claim fail while a free block is left.
#[test]
fn the_last_free_blocks_are_found_after_losses() {
    // 16 blocks: fewer than one loser's window of free blocks to pass over.
    let (claimed, _) = claim_at_once(12, "10.64.0.0/24", 28, usize::MAX);
    assert_eq!(claimed.len(), 16, "every block claimed: {claimed:?}");
}
