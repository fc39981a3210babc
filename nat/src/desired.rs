//! What ipipd's nftables table should hold, computed from the pools alone (no I/O).
//!
//! Per address family with at least one pool asking for NAT: a set of the NATed pools, a
//! set of every pool (disabled ones and those without NAT included), and one rule in a
//! `nat` chain at `postrouting`: source in the first set, destination in neither →
//! masquerade. A family with no pool asking for NAT has no table at all.

use ipnet::IpNet;

/// The table ipipd owns, in family `ip` and, with IPv6 pools that NAT, `ip6`.
pub const TABLE: &str = "ipipd";
/// The chain at the postrouting hook, priority srcnat (100).
pub const CHAIN: &str = "postrouting";
/// Pools whose pods' traffic is masqueraded when it leaves the pools.
pub const NAT_SET: &str = "nat-pools";
/// Every pool: traffic to these keeps its source address.
pub const ALL_SET: &str = "all-pools";
/// The rule's comment (what `nft list table ip ipipd` shows); the check for drift looks
/// for exactly one rule carrying it.
pub const RULE_COMMENT: &str = "ipipd: masquerade pod traffic leaving the pools";

/// An nftables address family ipipd writes a table in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `ip`
    V4,
    /// `ip6`
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family as `nft` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// Bytes in one address.
    pub(crate) fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One family's table as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    /// The pools that NAT, as configured.
    pub nat: Vec<IpNet>,
    /// Every pool of the family, as configured.
    pub all: Vec<IpNet>,
}

/// One element of an interval set as the kernel stores it: the first address of a
/// range, or (`end`) the first address after it. A range that runs to the top of the
/// address space has no end element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    pub key: Vec<u8>,
    pub end: bool,
}

impl Table {
    /// The elements of the set of the NATed pools.
    pub fn nat_elements(&self) -> Vec<Element> {
        elements(self.family, &self.nat)
    }

    /// The elements of the set of all pools.
    pub fn all_elements(&self) -> Vec<Element> {
        elements(self.family, &self.all)
    }
}

/// The whole desired state: a table per family that needs one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub tables: Vec<Table>,
}

impl Desired {
    pub fn table(&self, family: Family) -> Option<&Table> {
        self.tables.iter().find(|t| t.family == family)
    }

    /// Every pool that NATs, all families.
    pub fn nat_pools(&self) -> impl Iterator<Item = &IpNet> {
        self.tables.iter().flat_map(|t| t.nat.iter())
    }
}

/// The desired state for pools given as (CIDR, `nat_outgoing`).
pub fn desired(pools: impl IntoIterator<Item = (IpNet, bool)>) -> Desired {
    let pools: Vec<(IpNet, bool)> = pools.into_iter().collect();
    let tables = Family::ALL
        .into_iter()
        .filter_map(|family| {
            let of_family = || pools.iter().filter(move |(n, _)| Family::of(n) == family);
            let nat: Vec<IpNet> = of_family().filter(|(_, nat)| *nat).map(|p| p.0).collect();
            (!nat.is_empty()).then(|| Table {
                family,
                nat,
                all: of_family().map(|p| p.0).collect(),
            })
        })
        .collect();
    Desired { tables }
}

/// A CIDR as a range of integers: first address, last address.
fn bounds(net: &IpNet) -> (u128, u128) {
    match net.trunc() {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// The interval-set elements for `nets` (of `family`): overlapping and adjacent ranges
/// merged, since the kernel keeps one element per key and an end meeting the next
/// start would be two.
fn elements(family: Family, nets: &[IpNet]) -> Vec<Element> {
    let mut ranges: Vec<(u128, u128)> = nets
        .iter()
        .filter(|n| Family::of(n) == family)
        .map(bounds)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    let top = match family {
        Family::V4 => u128::from(u32::MAX),
        Family::V6 => u128::MAX,
    };
    let key = |v: u128| -> Vec<u8> {
        let bytes = v.to_be_bytes();
        bytes
            .get(bytes.len() - family.addr_len()..)
            .unwrap_or(&bytes)
            .to_vec()
    };
    let mut out = Vec::with_capacity(merged.len() * 2);
    for (first, last) in merged {
        out.push(Element {
            key: key(first),
            end: false,
        });
        if last < top {
            out.push(Element {
                key: key(last + 1),
                end: true,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    fn el(key: &[u8], end: bool) -> Element {
        Element {
            key: key.to_vec(),
            end,
        }
    }

    #[test]
    fn no_pool_asking_for_nat_means_no_table() {
        let d = desired([(net("10.244.0.0/16"), false), (net("fd00::/48"), false)]);
        assert_eq!(d, Desired::default());
    }

    #[test]
    fn all_pools_of_the_family_count_as_inside() {
        let d = desired([
            (net("10.244.0.0/16"), true),
            (net("10.96.0.0/16"), false),
            (net("fd00::/48"), false),
        ]);
        assert_eq!(
            d.tables,
            vec![Table {
                family: Family::V4,
                nat: vec![net("10.244.0.0/16")],
                all: vec![net("10.244.0.0/16"), net("10.96.0.0/16")],
            }]
        );
        assert!(d.table(Family::V6).is_none());
    }

    #[test]
    fn ipv6_pools_that_nat_get_an_ip6_table() {
        let d = desired([(net("10.244.0.0/16"), false), (net("fd00::/48"), true)]);
        assert_eq!(d.tables.len(), 1);
        let t = d.table(Family::V6).expect("ip6 table");
        let mut end = [0u8; 16];
        end[0] = 0xfd;
        end[5] = 1;
        let mut start = [0u8; 16];
        start[0] = 0xfd;
        assert_eq!(t.nat_elements(), vec![el(&start, false), el(&end, true)]);
    }

    #[test]
    fn elements_are_start_and_first_address_after() {
        let t = desired([(net("10.244.0.0/16"), true)]);
        let t = t.table(Family::V4).expect("ip table");
        assert_eq!(
            t.nat_elements(),
            vec![el(&[10, 244, 0, 0], false), el(&[10, 245, 0, 0], true)]
        );
    }

    #[test]
    fn adjacent_and_nested_ranges_merge() {
        let d = desired([
            (net("10.1.0.0/24"), true),
            (net("10.1.1.0/24"), true),
            (net("10.1.0.128/25"), true),
            (net("10.9.0.0/16"), true),
        ]);
        let t = d.table(Family::V4).expect("ip table");
        assert_eq!(
            t.nat_elements(),
            vec![
                el(&[10, 1, 0, 0], false),
                el(&[10, 1, 2, 0], true),
                el(&[10, 9, 0, 0], false),
                el(&[10, 10, 0, 0], true),
            ]
        );
    }

    #[test]
    fn a_range_to_the_top_has_no_end() {
        let d = desired([(net("255.255.255.0/24"), true), (net("0.0.0.0/0"), false)]);
        let t = d.table(Family::V4).expect("ip table");
        assert_eq!(t.nat_elements(), vec![el(&[255, 255, 255, 0], false)]);
        assert_eq!(t.all_elements(), vec![el(&[0, 0, 0, 0], false)]);
    }

    #[test]
    fn host_bits_are_ignored() {
        let d = desired([(net("10.1.0.7/24"), true)]);
        let t = d.table(Family::V4).expect("ip table");
        assert_eq!(t.nat_elements().first(), Some(&el(&[10, 1, 0, 0], false)));
    }
}
