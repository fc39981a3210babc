//! Allocations over the store: concurrent writers of one block record never take the
//! same address, whatever the interleaving; a stale release is refused by the store.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use proptest::prelude::*;

use crate::allocation::{AllocError, Attribute, Held};
use crate::test_support::runtime;
use crate::{Datastore, Interleaved, MemoryKv};

fn attr(handle: &str) -> Attribute {
    Attribute {
        handle: handle.into(),
        node: "node-0".into(),
        namespace: None,
        pod: None,
        interface: None,
        network: None,
        time: 0,
    }
}

fn block() -> IpNet {
    "10.9.0.0/29".parse().unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Ten writers race for a block of eight: eight win, each a different address, and
    /// the record agrees with the winners.
    #[test]
    fn racing_writers_never_share_an_address(yields in proptest::collection::vec(0u8..5, 0..300)) {
        let held: Vec<Option<Held>> = runtime().block_on(async {
            let ds = Arc::new(Datastore::new(Interleaved::new(MemoryKv::new(), yields), "/t"));
            let tasks: Vec<_> = (0..10)
                .map(|i| {
                    let ds = ds.clone();
                    tokio::spawn(async move {
                        ds.allocate(&block(), &attr(&format!("p{i}")), |_| false).await
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.ok().and_then(Result::ok).flatten());
            }
            out
        });
        let won: Vec<IpAddr> = held.iter().flatten().map(|h| h.address).collect();
        let distinct: BTreeSet<IpAddr> = won.iter().copied().collect();
        prop_assert_eq!(won.len(), 8, "{:?}", held);
        prop_assert_eq!(distinct.len(), 8);
    }
}

#[test]
fn the_store_refuses_a_stale_release() {
    runtime().block_on(async {
        let ds = Datastore::new(MemoryKv::new(), "/t");
        let ip: IpAddr = "10.9.0.3".parse().unwrap_or_else(|e| panic!("{e}"));
        let take = |h: &'static str| {
            let ds = &ds;
            async move {
                match ds.allocate_at(&block(), &ip, &attr(h)).await {
                    Ok(Ok(held)) => held,
                    other => panic!("{other:?}"),
                }
            }
        };
        let old = take("p1").await;
        assert!(matches!(ds.free(&block(), &old, "p1").await, Ok(Ok(true))));
        let new = take("p1").await;
        assert!(matches!(
            ds.free(&block(), &old, "p1").await,
            Ok(Err(AllocError::Stale { .. }))
        ));
        let (record, _) = ds
            .allocations(&block())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(record.holder(&ip).map(|a| a.handle.as_str()), Some("p1"));
        assert!(matches!(ds.free(&block(), &new, "p1").await, Ok(Ok(true))));
    });
}

/// A borrowed address keeps its block: the owner's release stops short of deleting a
/// record that lends an address, and a block its owner is releasing lends nothing.
#[test]
fn a_lent_address_keeps_its_block_and_a_releasing_block_lends_nothing() {
    runtime().block_on(async {
        let ds = Datastore::new(MemoryKv::new(), "/t");
        let b = block();
        assert_eq!(ds.claim_block("node-0", &b).await.ok(), Some(true));
        let mut borrower = attr("p1");
        borrower.node = "node-1".into();
        let lent = ds
            .borrow(&b, "node-0", &borrower, |_| false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a confirmed block with room lends"));
        assert_eq!(
            ds.borrow(&b, "node-1", &borrower, |_| false).await.ok(),
            Some(None),
            "only the block's owner's block lends"
        );
        // The owner's release: step one refuses, and step two refuses too when it
        // was reached before the address was lent.
        assert_eq!(ds.mark_releasing("node-0", &b).await.ok(), Some(None));
        let snap = ds.snapshot().await.unwrap_or_else(|e| panic!("{e}"));
        let rev = snap.blocks[&b].mod_revision;
        assert_eq!(ds.finish_release("node-0", &b, rev).await.ok(), Some(false));
        let (record, _) = ds.allocations(&b).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            record.holder(&lent.address).map(|a| a.node.as_str()),
            Some("node-1")
        );
        // Freed: the block is empty, releasing, and lends nothing any more.
        assert_eq!(ds.free(&b, &lent, "p1").await.ok(), Some(Ok(true)));
        let rev = ds
            .mark_releasing("node-0", &b)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("an empty block can be released"));
        assert_eq!(
            ds.borrow(&b, "node-0", &borrower, |_| false).await.ok(),
            Some(None),
            "a releasing block lends nothing"
        );
        assert_eq!(ds.finish_release("node-0", &b, rev).await.ok(), Some(true));
    });
}
