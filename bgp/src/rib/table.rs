//! The table of prefixes: one ordered map per family, so an IPv4 key takes
//! five octets instead of the eighteen of an `IpNet` (a third of a tree node
//! at a million routes).

use std::collections::btree_map::{BTreeMap, Entry};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::path::Paths;

#[derive(Debug, Default)]
pub struct Table {
    v4: BTreeMap<Ipv4Net, Paths>,
    v6: BTreeMap<Ipv6Net, Paths>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Paths> {
        match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }
    }

    /// Runs `f` on the prefix's paths (empty if it has none) in one tree walk;
    /// the prefix is dropped from the table if `f` leaves it empty.
    pub fn update<R>(&mut self, prefix: IpNet, f: impl FnOnce(&mut Paths) -> R) -> R {
        match prefix {
            IpNet::V4(p) => update_in(&mut self.v4, p, f),
            IpNet::V6(p) => update_in(&mut self.v6, p, f),
        }
    }

    /// Every prefix in order (IPv4 first, as `IpNet` orders them).
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &Paths)> {
        let v4 = self.v4.iter().map(|(p, x)| (IpNet::V4(*p), x));
        let v6 = self.v6.iter().map(|(p, x)| (IpNet::V6(*p), x));
        v4.chain(v6)
    }

    /// Runs `f` on every prefix; those it leaves empty are dropped.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(IpNet, &mut Paths)) {
        self.v4.retain(|p, x| {
            f(IpNet::V4(*p), x);
            !x.is_empty()
        });
        self.v6.retain(|p, x| {
            f(IpNet::V6(*p), x);
            !x.is_empty()
        });
    }
}

fn update_in<K: Ord, R>(
    map: &mut BTreeMap<K, Paths>,
    key: K,
    f: impl FnOnce(&mut Paths) -> R,
) -> R {
    match map.entry(key) {
        Entry::Vacant(v) => {
            let mut paths = Paths::Empty;
            let r = f(&mut paths);
            if !paths.is_empty() {
                v.insert(paths);
            }
            r
        }
        Entry::Occupied(mut o) => {
            let r = f(o.get_mut());
            if o.get().is_empty() {
                o.remove();
            }
            r
        }
    }
}
