//! The RIB's changes for the FIB, handed over without a queue.
//!
//! The RIB task adds each round's changes; the consumer takes all that wait at once.
//! Changes not taken yet coalesce per prefix (the latest wins), so however slow the
//! consumer (a kernel takes routes some ten times slower than the RIB learns them), what
//! waits is bounded by the number of prefixes, never by the number of rounds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use tokio::sync::Notify;

use super::lock;

/// A remote prefix and its equal-cost next hops now, or `None` when it has no remote
/// route any more.
pub type FibChange = (IpNet, Option<Vec<IpAddr>>);

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<IpNet, Option<Vec<IpAddr>>>>,
    ready: Notify,
}

/// Both ends of the hand-over: the RIB task pushes, one consumer takes.
#[derive(Debug, Clone, Default)]
pub struct FibFeed {
    shared: Arc<Shared>,
}

impl FibFeed {
    pub(crate) fn push(&self, changes: Vec<FibChange>) {
        if changes.is_empty() {
            return;
        }
        lock(&self.shared.pending).extend(changes);
        self.shared.ready.notify_one();
    }

    /// Every change waiting, in prefix order; empty when none waits.
    pub fn take(&self) -> Vec<FibChange> {
        let pending = std::mem::take(&mut *lock(&self.shared.pending));
        let mut changes: Vec<FibChange> = pending.into_iter().collect();
        changes.sort_unstable_by_key(|c| c.0);
        changes
    }

    /// Completes when some change may wait (now, or after the next push).
    pub async fn ready(&self) {
        if !lock(&self.shared.pending).is_empty() {
            return;
        }
        self.shared.ready.notified().await;
    }

    /// Waits until some change waits, then takes them all.
    pub async fn next(&self) -> Vec<FibChange> {
        loop {
            let changes = self.take();
            if !changes.is_empty() {
                return changes;
            }
            self.shared.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[tokio::test]
    async fn changes_not_taken_coalesce_per_prefix() {
        let feed = FibFeed::default();
        feed.push(vec![
            (net("10.0.0.0/26"), Some(vec![ip("192.168.0.1")])),
            (net("10.0.0.64/26"), Some(vec![ip("192.168.0.1")])),
        ]);
        feed.push(vec![
            (net("10.0.0.0/26"), None),
            (net("10.0.0.64/26"), Some(vec![ip("192.168.0.2")])),
        ]);
        assert_eq!(
            feed.next().await,
            vec![
                (net("10.0.0.0/26"), None),
                (net("10.0.0.64/26"), Some(vec![ip("192.168.0.2")])),
            ]
        );
        assert!(feed.take().is_empty());
    }

    #[tokio::test]
    async fn next_waits_for_a_push() {
        let feed = FibFeed::default();
        let consumer = feed.clone();
        let waiter = tokio::spawn(async move { consumer.next().await });
        tokio::task::yield_now().await;
        feed.push(vec![(net("10.0.0.0/26"), None)]);
        let got = waiter.await.expect("join");
        assert_eq!(got, vec![(net("10.0.0.0/26"), None)]);
    }
}
