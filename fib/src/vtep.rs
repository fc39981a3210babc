//! VXLAN tunnel endpoints: the MAC each node's VXLAN device carries, and the neighbour
//! and FDB entries that send a remote node's traffic to it, as a pure plan.
//!
//! A node's VTEP MAC is derived from its IPv4 address (`66:78:` and the address's four
//! octets): every node computes the same MAC for a BGP next hop, in file mode and in
//! datastore mode alike, with nothing to exchange, and a node's MAC stays the same over
//! restarts. `0x66` is a locally administered unicast first octet, so the MAC cannot be
//! a vendor's.
//!
//! For every known remote VTEP (a node of the cluster) the device needs
//! `neigh <node> lladdr <its MAC> PERMANENT` and `fdb <its MAC> dst <node> self permanent`.
//! [`plan`] compares that with what the kernel has and returns the writes: missing or
//! different entries are written, and permanent entries nobody wants any more are deleted
//! only when `remove_stale` (after initial convergence, so a restart deletes nothing that
//! is about to be wanted again).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The VTEP MAC of the node with this address.
pub fn vtep_mac(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x66, 0x78, a, b, c, d]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One neighbour entry on the VXLAN device, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighEntry {
    pub ip: Ipv4Addr,
    /// `None`: no link-layer address (an unresolved entry).
    pub mac: Option<[u8; 6]>,
    pub permanent: bool,
}

/// One FDB entry on the VXLAN device, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// The remote VTEP the MAC is sent to (`None`: a local entry).
    pub dst: Option<Ipv4Addr>,
    pub permanent: bool,
}

/// The VXLAN device's neighbour and FDB entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VtepTable {
    pub neigh: Vec<NeighEntry>,
    pub fdb: Vec<FdbEntry>,
}

/// One write to the VXLAN device's neighbour or FDB table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VtepOp {
    /// `fdb replace <mac> dst <dst> self permanent`.
    SetFdb {
        mac: [u8; 6],
        dst: Ipv4Addr,
    },
    /// `neigh replace <ip> lladdr <mac> nud permanent`.
    SetNeigh {
        ip: Ipv4Addr,
        mac: [u8; 6],
    },
    DelNeigh {
        ip: Ipv4Addr,
    },
    DelFdb {
        mac: [u8; 6],
        dst: Ipv4Addr,
    },
}

impl VtepOp {
    /// Whether this op puts an entry in place (rather than removing one).
    pub fn is_write(&self) -> bool {
        matches!(self, VtepOp::SetFdb { .. } | VtepOp::SetNeigh { .. })
    }
}

/// The writes that make `have` hold exactly an entry pair per VTEP in `want`: FDB entries
/// before neighbour entries when adding (a resolved neighbour is usable at once), and
/// neighbour entries before FDB entries when removing.
pub fn plan(want: &BTreeSet<Ipv4Addr>, have: &VtepTable, remove_stale: bool) -> Vec<VtepOp> {
    let mut ops = Vec::new();
    for ip in want {
        let mac = vtep_mac(*ip);
        let present = have
            .fdb
            .iter()
            .any(|f| f.mac == mac && f.dst == Some(*ip) && f.permanent);
        if !present {
            ops.push(VtepOp::SetFdb { mac, dst: *ip });
        }
    }
    for ip in want {
        let mac = vtep_mac(*ip);
        let present = have
            .neigh
            .iter()
            .any(|n| n.ip == *ip && n.mac == Some(mac) && n.permanent);
        if !present {
            ops.push(VtepOp::SetNeigh { ip: *ip, mac });
        }
    }
    if remove_stale {
        for n in have.neigh.iter().filter(|n| n.permanent) {
            if !want.contains(&n.ip) {
                ops.push(VtepOp::DelNeigh { ip: n.ip });
            }
        }
        for f in have.fdb.iter().filter(|f| f.permanent) {
            let Some(dst) = f.dst else { continue };
            if !(want.contains(&dst) && vtep_mac(dst) == f.mac) {
                ops.push(VtepOp::DelFdb { mac: f.mac, dst });
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    fn set(list: &[&str]) -> BTreeSet<Ipv4Addr> {
        list.iter().map(|s| ip(s)).collect()
    }

    /// What the kernel has after `ops` are applied to nothing.
    fn table_for(want: &[&str]) -> VtepTable {
        VtepTable {
            neigh: want
                .iter()
                .map(|s| NeighEntry {
                    ip: ip(s),
                    mac: Some(vtep_mac(ip(s))),
                    permanent: true,
                })
                .collect(),
            fdb: want
                .iter()
                .map(|s| FdbEntry {
                    mac: vtep_mac(ip(s)),
                    dst: Some(ip(s)),
                    permanent: true,
                })
                .collect(),
        }
    }

    #[test]
    fn the_mac_is_the_address_behind_a_local_unicast_prefix() {
        let mac = vtep_mac(ip("172.29.235.130"));
        assert_eq!(format_mac(&mac), "66:78:ac:1d:eb:82");
        assert_eq!(mac[0] & 1, 0, "unicast");
        assert_eq!(mac[0] & 2, 2, "locally administered");
    }

    #[test]
    fn an_empty_device_gets_fdb_then_neighbour_entries() {
        let ops = plan(&set(&["10.0.0.2"]), &VtepTable::default(), true);
        let mac = vtep_mac(ip("10.0.0.2"));
        assert_eq!(
            ops,
            [
                VtepOp::SetFdb {
                    mac,
                    dst: ip("10.0.0.2")
                },
                VtepOp::SetNeigh {
                    ip: ip("10.0.0.2"),
                    mac
                },
            ]
        );
    }

    #[test]
    fn entries_in_place_are_adopted_untouched() {
        let have = table_for(&["10.0.0.2", "10.0.0.3"]);
        assert!(plan(&set(&["10.0.0.2", "10.0.0.3"]), &have, true).is_empty());
    }

    #[test]
    fn stale_entries_wait_for_convergence() {
        let have = table_for(&["10.0.0.2", "10.0.0.3"]);
        assert!(plan(&set(&["10.0.0.2"]), &have, false).is_empty());
        assert_eq!(
            plan(&set(&["10.0.0.2"]), &have, true),
            [
                VtepOp::DelNeigh { ip: ip("10.0.0.3") },
                VtepOp::DelFdb {
                    mac: vtep_mac(ip("10.0.0.3")),
                    dst: ip("10.0.0.3")
                },
            ]
        );
    }

    #[test]
    fn a_wrong_or_unresolved_entry_is_rewritten() {
        let mut have = table_for(&["10.0.0.2"]);
        if let Some(n) = have.neigh.first_mut() {
            n.permanent = false;
        }
        if let Some(f) = have.fdb.first_mut() {
            f.dst = Some(ip("10.0.0.9"));
        }
        let ops = plan(&set(&["10.0.0.2"]), &have, true);
        assert!(ops.contains(&VtepOp::SetNeigh {
            ip: ip("10.0.0.2"),
            mac: vtep_mac(ip("10.0.0.2"))
        }));
        assert!(ops.contains(&VtepOp::SetFdb {
            mac: vtep_mac(ip("10.0.0.2")),
            dst: ip("10.0.0.2")
        }));
        // The wrong remote of that MAC goes.
        assert!(ops.contains(&VtepOp::DelFdb {
            mac: vtep_mac(ip("10.0.0.2")),
            dst: ip("10.0.0.9")
        }));
    }

    #[test]
    fn entries_others_learned_are_left_alone() {
        let have = VtepTable {
            neigh: vec![NeighEntry {
                ip: ip("10.0.0.7"),
                mac: None,
                permanent: false,
            }],
            fdb: vec![FdbEntry {
                mac: [0x66, 0x78, 1, 2, 3, 4],
                dst: None,
                permanent: true,
            }],
        };
        assert!(plan(&BTreeSet::new(), &have, true).is_empty());
    }
}
