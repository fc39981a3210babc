//! What a reload changes in the set of sessions, keyed by neighbor address.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::model::Config;
use crate::neighbors::Neighbor;

/// Sessions to start, stop, and restart with new settings, each in the new config's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NeighborChanges {
    pub added: Vec<Neighbor>,
    pub removed: Vec<Neighbor>,
    /// (old, new) for an address kept with any setting changed.
    pub changed: Vec<(Neighbor, Neighbor)>,
}

impl NeighborChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl Config {
    /// How the sessions of `self` (the running config) differ from those of `new`.
    pub fn neighbor_changes(&self, new: &Config) -> NeighborChanges {
        let old = self.neighbors();
        let next = new.neighbors();
        let by_addr: HashMap<IpAddr, &Neighbor> = old.iter().map(|n| (n.address, n)).collect();
        let kept: HashMap<IpAddr, &Neighbor> = next.iter().map(|n| (n.address, n)).collect();
        let mut changes = NeighborChanges::default();
        for n in &next {
            match by_addr.get(&n.address) {
                None => changes.added.push(n.clone()),
                Some(o) if *o != n => changes.changed.push(((*o).clone(), n.clone())),
                Some(_) => {}
            }
        }
        changes.removed = old
            .iter()
            .filter(|o| !kept.contains_key(&o.address))
            .cloned()
            .collect();
        changes
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn parse(text: &str) -> Config {
        match Config::parse(text, "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn diff_by_address() {
        let old = parse(
            "[node]\naddress = \"10.0.0.1\"\n[cluster]\nnodes = [\"10.0.0.2\", \"10.0.0.3\"]\n\
             [[peer]]\naddress = \"10.0.0.9\"\n",
        );
        let new = parse(
            "[node]\naddress = \"10.0.0.1\"\n[cluster]\nnodes = [\"10.0.0.2\", \"10.0.0.4\"]\n\
             [[peer]]\naddress = \"10.0.0.9\"\nshutdown = true\n",
        );
        let c = old.neighbor_changes(&new);
        let addrs =
            |v: &[crate::Neighbor]| v.iter().map(|n| n.address.to_string()).collect::<Vec<_>>();
        assert_eq!(addrs(&c.added), ["10.0.0.4"]);
        assert_eq!(addrs(&c.removed), ["10.0.0.3"]);
        assert_eq!(c.changed.len(), 1);
        assert!(c.changed.iter().all(|(o, n)| !o.shutdown && n.shutdown));
        assert!(old.neighbor_changes(&old).is_empty());
    }
}
