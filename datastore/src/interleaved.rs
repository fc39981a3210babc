//! A [`MemoryKv`] that yields to the scheduler a chosen number of times before each
//! operation, so that concurrent users of the store (the claims of several nodes, a
//! node's reads beside its claims) interleave at every store operation in an order a
//! test picks. For tests of code over the store, in this crate and in the daemon's.

use std::sync::{Arc, Mutex, PoisonError};

use crate::kv::{Compare, Kv, Op, Range, TxnResult, Watch};
use crate::{Error, MemoryKv};

#[derive(Clone)]
pub struct Interleaved {
    inner: MemoryKv,
    /// Yields before each operation, taken from the end; none once used up.
    yields: Arc<Mutex<Vec<u8>>>,
}

impl Interleaved {
    pub fn new(inner: MemoryKv, yields: Vec<u8>) -> Interleaved {
        Interleaved {
            inner,
            yields: Arc::new(Mutex::new(yields)),
        }
    }

    /// The store itself, to read or change behind every user's back.
    pub fn inner(&self) -> &MemoryKv {
        &self.inner
    }

    /// The planned pause before an operation.
    pub async fn pause(&self) {
        let n = self
            .yields
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or(0);
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    }
}

impl Kv for Interleaved {
    async fn range(&self, prefix: &str) -> Result<Range, Error> {
        self.pause().await;
        self.inner.range(prefix).await
    }

    async fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<Op>,
        failure: Vec<Op>,
    ) -> Result<TxnResult, Error> {
        self.pause().await;
        self.inner.txn(compare, success, failure).await
    }

    async fn watch(&self, prefix: &str, start: i64) -> Result<Watch, Error> {
        self.inner.watch(prefix, start).await
    }
}
