//! The prefixes a load run announces, and the set a monitor keeps of what it holds.
//!
//! Prefixes are numbered: prefix `i` of a pool is the `i`-th subnet of length `len`
//! inside it (`64.0.0.0/4` with `len = 26` holds 2^22 = 4,194,304 of them). Sender `s`
//! of a run announces indexes `s * P .. (s + 1) * P`, so the prefixes of different senders
//! never overlap and a monitor can keep what it holds as one bit per index.

use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use bgp::wire::Nlri;
use ipnet::{IpNet, Ipv4Net};

/// Subnets of one length inside one IPv4 pool, addressed by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub net: Ipv4Net,
    pub len: u8,
}

impl Pool {
    /// Fails when `len` is shorter than the pool itself or longer than 32.
    pub fn new(net: Ipv4Net, len: u8) -> Result<Pool> {
        if len < net.prefix_len() || len > 32 {
            bail!("prefix length /{len} does not fit inside {net}");
        }
        Ok(Pool {
            net: net.trunc(),
            len,
        })
    }

    /// How many subnets of length `len` the pool holds.
    pub fn capacity(&self) -> u64 {
        1u64 << (self.len - self.net.prefix_len())
    }

    /// The `i`-th subnet, or None past the end.
    pub fn prefix(&self, i: u64) -> Option<Ipv4Net> {
        if i >= self.capacity() {
            return None;
        }
        let step = 1u64 << (32 - u32::from(self.len));
        let addr = u64::from(u32::from(self.net.network())) + i * step;
        let addr = u32::try_from(addr).ok()?;
        Ipv4Net::new(Ipv4Addr::from(addr), self.len).ok()
    }

    /// The index of `prefix`, when it is one of the pool's subnets.
    pub fn index(&self, prefix: &IpNet) -> Option<usize> {
        let IpNet::V4(p) = prefix else { return None };
        if p.prefix_len() != self.len || !self.net.contains(p) {
            return None;
        }
        let offset = u32::from(p.network()) - u32::from(self.net.network());
        usize::try_from(offset >> (32 - u32::from(self.len))).ok()
    }

    /// NLRI for indexes `start .. start + count`; fails when they run past the pool.
    pub fn nlri(&self, start: u64, count: u64) -> Result<Vec<Nlri>> {
        if start + count > self.capacity() {
            bail!(
                "{} /{} prefixes from index {start} do not fit in {} (it holds {})",
                count,
                self.len,
                self.net,
                self.capacity()
            );
        }
        Ok((start..start + count)
            .filter_map(|i| self.prefix(i))
            .map(|p| Nlri::new(IpNet::V4(p)))
            .collect())
    }
}

/// One bit per prefix index of a pool, with a running count of the bits set.
#[derive(Debug, Clone)]
pub struct PrefixSet {
    pool: Pool,
    bits: Vec<u64>,
    size: usize,
    count: usize,
    /// Announcements of prefixes outside the pool (or of another length).
    pub foreign: u64,
}

impl PrefixSet {
    /// Room for the first `size` indexes of `pool`; indexes past it count as foreign.
    pub fn new(pool: Pool, size: usize) -> PrefixSet {
        PrefixSet {
            pool,
            bits: vec![0; size.div_ceil(64)],
            size,
            count: 0,
            foreign: 0,
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether index `i` of the pool is held.
    pub fn contains_index(&self, i: usize) -> bool {
        i < self.size
            && self
                .bits
                .get(i / 64)
                .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    fn slot(&self, prefix: &IpNet) -> Option<(usize, u64)> {
        let i = self.pool.index(prefix).filter(|i| *i < self.size)?;
        Some((i / 64, 1u64 << (i % 64)))
    }

    pub fn insert(&mut self, prefix: &IpNet) {
        match self.slot(prefix) {
            Some((w, mask)) => {
                if let Some(word) = self.bits.get_mut(w) {
                    if *word & mask == 0 {
                        *word |= mask;
                        self.count += 1;
                    }
                }
            }
            None => self.foreign += 1,
        }
    }

    pub fn remove(&mut self, prefix: &IpNet) {
        if let Some((w, mask)) = self.slot(prefix) {
            if let Some(word) = self.bits.get_mut(w) {
                if *word & mask != 0 {
                    *word &= !mask;
                    self.count -= 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool::new("64.0.0.0/4".parse().unwrap_or_default(), 26).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn numbering_round_trips() {
        let p = pool();
        assert_eq!(p.capacity(), 1 << 22);
        assert_eq!(
            p.prefix(0).map(|n| n.to_string()).as_deref(),
            Some("64.0.0.0/26")
        );
        assert_eq!(
            p.prefix(5).map(|n| n.to_string()).as_deref(),
            Some("64.0.1.64/26")
        );
        assert_eq!(
            p.prefix(p.capacity() - 1).map(|n| n.to_string()).as_deref(),
            Some("79.255.255.192/26")
        );
        assert_eq!(p.prefix(p.capacity()), None);
        for i in [0u64, 1, 63, 64, 1_000_000, p.capacity() - 1] {
            let n = p.prefix(i).map(IpNet::V4);
            assert_eq!(n.and_then(|n| p.index(&n)), Some(i as usize));
        }
        assert_eq!(p.index(&"80.0.0.0/26".parse().unwrap_or_default()), None);
        assert_eq!(p.index(&"64.0.0.0/25".parse().unwrap_or_default()), None);
    }

    #[test]
    fn slices_do_not_run_past_the_pool() {
        let p = Pool::new("10.0.0.0/24".parse().unwrap_or_default(), 26)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.nlri(0, 4).map(|v| v.len()).ok(), Some(4));
        assert!(p.nlri(2, 3).is_err());
        assert!(Pool::new("10.0.0.0/24".parse().unwrap_or_default(), 20).is_err());
    }

    #[test]
    fn set_counts_unique_prefixes() {
        let p = pool();
        let mut s = PrefixSet::new(p, 1000);
        let a = IpNet::V4(p.prefix(3).unwrap_or_default());
        s.insert(&a);
        s.insert(&a);
        assert_eq!(s.count(), 1);
        s.insert(&IpNet::V4(p.prefix(999).unwrap_or_default()));
        s.insert(&IpNet::V4(p.prefix(1000).unwrap_or_default()));
        s.insert(&"1.2.3.0/24".parse().unwrap_or_default());
        assert_eq!((s.count(), s.foreign), (2, 2));
        assert!(s.contains_index(3) && s.contains_index(999));
        assert!(!s.contains_index(4) && !s.contains_index(1000));
        s.remove(&a);
        s.remove(&a);
        assert_eq!(s.count(), 1);
        assert!(!s.contains_index(3));
    }
}
