//! The RIB's changes for the FIB, handed over without a queue.
//!
//! The RIB task adds each round's changes; the consumer takes all that wait at once.
//! Changes not taken yet coalesce per prefix (the latest wins), so however slow the
//! consumer (a kernel takes routes some ten times slower than the RIB learns them), what
//! waits is bounded by the number of prefixes, never by the number of rounds.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use tokio::sync::Notify;

use super::lock;

/// A remote prefix and its equal-cost next hops now, or `None` when it has no remote
/// route any more.
pub type FibChange = (IpNet, Option<Vec<IpAddr>>);

/// Next hops as they wait: one IPv4 gateway inline (the common case, 23 octets with the
/// prefix), anything else in a side map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hops {
    Gone,
    V4(Ipv4Addr),
    Side,
}

/// Changes in the order pushed; compacted (one per prefix, the latest) whenever the
/// list has doubled since the last compaction, so it stays within twice the number of
/// prefixes.
#[derive(Debug, Default)]
struct Pending {
    list: Vec<(IpNet, Hops)>,
    side: HashMap<IpNet, Vec<IpAddr>>,
    compacted: usize,
}

/// Sort by prefix and keep each prefix's last change.
fn compact(list: &mut Vec<(IpNet, Hops)>) {
    // Stable: a prefix's changes stay in the order pushed.
    list.sort_by_key(|c| c.0);
    let mut out = 0;
    for i in 0..list.len() {
        let last_of_run = list.get(i + 1).is_none_or(|n| n.0 != list[i].0);
        if last_of_run {
            list[out] = list[i];
            out += 1;
        }
    }
    list.truncate(out);
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    ready: Notify,
}

/// Both ends of the hand-over: the RIB task pushes, one consumer takes.
#[derive(Debug, Clone, Default)]
pub struct FibFeed {
    shared: Arc<Shared>,
}

/// Changes taken from the feed, one per prefix in prefix order; iterate to get them.
#[derive(Debug, Default)]
pub struct FibBatch {
    list: std::vec::IntoIter<(IpNet, Hops)>,
    side: HashMap<IpNet, Vec<IpAddr>>,
}

impl FibBatch {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.len() == 0
    }
}

impl Iterator for FibBatch {
    type Item = FibChange;

    fn next(&mut self) -> Option<FibChange> {
        let (prefix, hops) = self.list.next()?;
        let hops = match hops {
            Hops::Gone => None,
            Hops::V4(gw) => Some(vec![IpAddr::V4(gw)]),
            Hops::Side => Some(self.side.remove(&prefix).unwrap_or_default()),
        };
        Some((prefix, hops))
    }
}

impl FibFeed {
    pub(crate) fn push(&self, changes: Vec<FibChange>) {
        if changes.is_empty() {
            return;
        }
        let mut p = lock(&self.shared.pending);
        for (prefix, hops) in changes {
            let compact = match hops.as_deref() {
                None => Hops::Gone,
                Some([IpAddr::V4(gw)]) => Hops::V4(*gw),
                Some(_) => Hops::Side,
            };
            if compact == Hops::Side {
                p.side.insert(prefix, hops.unwrap_or_default());
            }
            p.list.push((prefix, compact));
        }
        if p.list.len() > 2 * p.compacted + 4096 {
            compact(&mut p.list);
            p.compacted = p.list.len();
        }
        drop(p);
        self.shared.ready.notify_one();
    }

    /// Every change waiting, one per prefix (the latest) in prefix order; empty when none
    /// waits.
    pub fn take(&self) -> FibBatch {
        let Pending { mut list, side, .. } = std::mem::take(&mut *lock(&self.shared.pending));
        compact(&mut list);
        FibBatch {
            list: list.into_iter(),
            side,
        }
    }

    /// Completes when some change may wait (now, or after the next push).
    pub async fn ready(&self) {
        if !lock(&self.shared.pending).list.is_empty() {
            return;
        }
        self.shared.ready.notified().await;
    }

    /// Waits until some change waits, then takes them all.
    pub async fn next(&self) -> FibBatch {
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
            feed.next().await.collect::<Vec<_>>(),
            vec![
                (net("10.0.0.0/26"), None),
                (net("10.0.0.64/26"), Some(vec![ip("192.168.0.2")])),
            ]
        );
        assert!(feed.take().is_empty());
    }

    #[test]
    fn many_rounds_stay_within_twice_the_prefixes_and_keep_the_latest() {
        let feed = FibFeed::default();
        let ecmp = Some(vec![ip("192.168.0.1"), ip("192.168.0.2")]);
        for round in 0..50u8 {
            let changes: Vec<FibChange> = (0..1000u32)
                .map(|i| {
                    let prefix = IpNet::V4(
                        ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 6)), 26)
                            .expect("prefix"),
                    );
                    let hops = match (round, i % 3) {
                        (49, 0) => ecmp.clone(),
                        (49, 1) => None,
                        _ => Some(vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, round))]),
                    };
                    (prefix, hops)
                })
                .collect();
            feed.push(changes);
            assert!(lock(&feed.shared.pending).list.len() <= 2 * 1000 + 4096 + 1000);
        }
        let batch: Vec<FibChange> = feed.take().collect();
        assert_eq!(batch.len(), 1000);
        assert_eq!(batch[0].1, ecmp);
        assert_eq!(batch[1].1, None);
        assert_eq!(batch[2].1, Some(vec![ip("192.168.1.49")]));
    }

    #[tokio::test]
    async fn next_waits_for_a_push() {
        let feed = FibFeed::default();
        let consumer = feed.clone();
        let waiter = tokio::spawn(async move { consumer.next().await });
        tokio::task::yield_now().await;
        feed.push(vec![(net("10.0.0.0/26"), None)]);
        let got: Vec<FibChange> = waiter.await.expect("join").collect();
        assert_eq!(got, vec![(net("10.0.0.0/26"), None)]);
    }
}
