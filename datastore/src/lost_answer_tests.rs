//! Claims and releases when etcd applies a transaction but its answer is lost (a
//! timeout after the commit, the connection dropped on the way back): the outcome is
//! unknown to the caller, who must find it out by reading, not guess. A block that
//! etcd records as this node's and that no claim returned is leaked.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;
use proptest::prelude::*;

use crate::kv::{Compare, Kv, Op, Range, TxnResult, Watch};
use crate::model::{BlockState, Keys, PoolsRecord, Snapshot};
use crate::test_support::{self, node, runtime};
use crate::{Datastore, Error, Interleaved, MemoryKv};

/// What happens to one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Answered,
    /// Applied, then the answer is lost.
    Lost,
}

/// A [`MemoryKv`] whose transactions meet the fates of a plan, in order (then
/// [`Fate::Answered`]), and that yields to the scheduler a planned number of times
/// before each call, so concurrent claims interleave.
#[derive(Clone)]
struct LosesAnswers {
    inner: MemoryKv,
    fates: Arc<Mutex<VecDeque<Fate>>>,
    paced: Interleaved,
}

impl LosesAnswers {
    fn new(fates: Vec<Fate>, yields: Vec<u8>) -> LosesAnswers {
        let inner = MemoryKv::new();
        LosesAnswers {
            paced: Interleaved::new(inner.clone(), yields),
            inner,
            fates: Arc::new(Mutex::new(fates.into())),
        }
    }
}

impl Kv for LosesAnswers {
    async fn range(&self, prefix: &str) -> Result<Range, Error> {
        self.paced.range(prefix).await
    }
    async fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<Op>,
        failure: Vec<Op>,
    ) -> Result<TxnResult, Error> {
        self.paced.pause().await;
        let fate = self
            .fates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or(Fate::Answered);
        let r = self.inner.txn(compare, success, failure).await?;
        match fate {
            Fate::Answered => Ok(r),
            Fate::Lost => Err(Error::OutcomeUnknown {
                endpoints: "memory".into(),
                reason: "timed out waiting for the answer".into(),
            }),
        }
    }
    async fn watch(&self, prefix: &str, start: i64) -> Result<Watch, Error> {
        self.inner.watch(prefix, start).await
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// The pool these tests claim from, in /28s.
fn pools(pool: &str) -> PoolsRecord {
    test_support::pools(pool, 28)
}

fn snapshot(kv: &MemoryKv) -> Snapshot {
    let range = runtime()
        .block_on(kv.range("/t/"))
        .unwrap_or_else(|e| panic!("{e}"));
    Snapshot::decode(&Keys::new("/t"), &range)
}

/// The store holds exactly `owned` (block → owner), confirmed, each with its
/// confirmed affinity and nothing else.
fn assert_owned_exactly(kv: &MemoryKv, owned: &BTreeMap<IpNet, String>) {
    let snap = snapshot(kv);
    assert!(snap.invalid.is_empty(), "{:?}", snap.invalid);
    let blocks: BTreeMap<IpNet, String> = snap
        .blocks
        .values()
        .map(|b| {
            assert_eq!(b.record.state, BlockState::Confirmed, "{b:?}");
            (b.net, b.record.node.clone())
        })
        .collect();
    assert_eq!(&blocks, owned, "leaked or lost blocks");
    let affinities: BTreeMap<IpNet, String> = snap
        .affinities
        .iter()
        .map(|((n, net), state)| {
            assert_eq!(*state, BlockState::Confirmed, "{n} {net}");
            (*net, n.clone())
        })
        .collect();
    assert_eq!(&affinities, owned);
}

/// A claim is three transactions (pending affinity, block create, confirm); whichever
/// answer is lost, the claim returns the block etcd records as the node's.
#[test]
fn a_claim_whose_answer_is_lost_returns_the_block_it_took() {
    for lost in 0..3 {
        let mut fates = vec![Fate::Answered; lost];
        fates.push(Fate::Lost);
        let kv = LosesAnswers::new(fates, Vec::new());
        let ds = Datastore::new(kv.clone(), "/t");
        let p = pools("10.64.0.0/27");
        let got = runtime().block_on(ds.claim("node-0", &p.layouts(), &p.pools[0]));
        assert_eq!(
            got.as_ref().ok(),
            Some(&net("10.64.0.0/28")),
            "answer of step {lost} lost: {got:?}"
        );
        let owned = BTreeMap::from([(net("10.64.0.0/28"), "node-0".to_owned())]);
        assert_owned_exactly(&kv.inner, &owned);
    }
}

/// Every answer lost: each step is found out by reading back.
#[test]
fn a_claim_with_every_answer_lost_still_returns_its_block() {
    let kv = LosesAnswers::new(vec![Fate::Lost; 16], Vec::new());
    let ds = Datastore::new(kv.clone(), "/t");
    let p = pools("10.64.0.0/27");
    let rt = runtime();
    let a = rt.block_on(ds.claim("node-0", &p.layouts(), &p.pools[0]));
    let b = rt.block_on(ds.claim("node-1", &p.layouts(), &p.pools[0]));
    assert_eq!(a.ok(), Some(net("10.64.0.0/28")));
    assert_eq!(b.ok(), Some(net("10.64.0.16/28")));
    let owned = BTreeMap::from([
        (net("10.64.0.0/28"), "node-0".to_owned()),
        (net("10.64.0.16/28"), "node-1".to_owned()),
    ]);
    assert_owned_exactly(&kv.inner, &owned);
}

/// A claim that failed with the block created but not confirmed (etcd unreachable
/// before the read back could tell) leaves a pending block of the node: the next claim
/// returns it rather than leaking it until a restart.
#[test]
fn the_next_claim_adopts_a_block_an_earlier_claim_left_pending() {
    let kv = LosesAnswers::new(Vec::new(), Vec::new());
    let ds = Datastore::new(kv.clone(), "/t");
    let p = pools("10.64.0.0/27");
    let rt = runtime();
    let block = ds.keys().block(&net("10.64.0.16/28"));
    let pending = br#"{"node":"node-0","state":"pending"}"#.to_vec();
    rt.block_on(kv.inner.txn(vec![], vec![Op::Put(block, pending)], vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    let got = rt.block_on(ds.claim("node-0", &p.layouts(), &p.pools[0]));
    assert_eq!(got.ok(), Some(net("10.64.0.16/28")));
    let owned = BTreeMap::from([(net("10.64.0.16/28"), "node-0".to_owned())]);
    assert_owned_exactly(&kv.inner, &owned);
}

#[test]
fn a_release_whose_answers_are_lost_is_done_and_idempotent() {
    for lost in [
        vec![Fate::Lost],
        vec![Fate::Answered, Fate::Lost],
        vec![Fate::Lost; 2],
    ] {
        let kv = LosesAnswers::new(Vec::new(), Vec::new());
        let ds = Datastore::new(kv.clone(), "/t");
        let p = pools("10.64.0.0/27");
        let rt = runtime();
        let b = rt
            .block_on(ds.claim("node-0", &p.layouts(), &p.pools[0]))
            .unwrap_or_else(|e| panic!("{e}"));
        kv.fates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(lost.iter().copied());
        let released = rt.block_on(ds.release("node-0", &b));
        assert_eq!(released.ok(), Some(true), "{lost:?}");
        assert_owned_exactly(&kv.inner, &BTreeMap::new());
        // Again, as a caller that did not see the answer would: done already.
        let again = rt.block_on(ds.release("node-0", &b));
        assert!(again.is_ok(), "{again:?}");
        let finish = rt.block_on(ds.finish_release("node-0", &b, 1));
        assert_eq!(finish.ok(), Some(true));
        assert_owned_exactly(&kv.inner, &BTreeMap::new());
    }
}

#[test]
fn a_registration_whose_answer_is_lost_is_done() {
    let kv = LosesAnswers::new(vec![Fate::Lost; 2], Vec::new());
    let ds = Datastore::new(kv.clone(), "/t");
    let rt = runtime();
    assert!(rt.block_on(ds.ensure_pools(&pools("10.64.0.0/27"))).is_ok());
    let r = rt.block_on(ds.register(&node(3)));
    assert!(r.is_ok(), "{r:?}");
    assert!(snapshot(&kv.inner).nodes.contains_key("node-3"));
}

/// Nodes claim concurrently, steps interleaved, answers lost at random: every claim
/// succeeds, no block is returned twice, and every block etcd records is one a claim
/// of its owner returned.
fn race(nodes: usize, claims: usize, fates: Vec<Fate>, yields: Vec<u8>) {
    let kv = LosesAnswers::new(fates, yields);
    let p = pools("10.64.0.0/26");
    let results = runtime().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..nodes {
            let ds = Datastore::new(kv.clone(), "/t");
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..claims {
                    match ds.claim(&node(i).name, &p.layouts(), &p.pools[0]).await {
                        Ok(b) => got.push(b),
                        Err(Error::NoFreeBlock { .. }) => break,
                        Err(e) => panic!("node-{i}: {e}"),
                    }
                }
                got
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| panic!("{e}")));
        }
        out
    });
    let mut owned = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (i, got) in results.iter().enumerate() {
        for b in got {
            assert!(seen.insert(*b), "{b} returned twice: {results:?}");
            owned.insert(*b, node(i).name);
        }
    }
    assert_eq!(owned.len(), 4.min(nodes * claims), "{results:?}");
    assert_owned_exactly(&kv.inner, &owned);
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![3 => Just(Fate::Answered), 1 => Just(Fate::Lost)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn no_block_leaks_whatever_answers_are_lost(
        nodes in 1usize..6,
        claims in 1usize..4,
        fates in proptest::collection::vec(fate(), 0..60),
        yields in proptest::collection::vec(0u8..4, 0..400),
    ) {
        race(nodes, claims, fates, yields);
    }
}
