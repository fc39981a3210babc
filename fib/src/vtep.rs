//! VXLAN tunnel endpoints: the MAC each node's VXLAN device carries, and the neighbour
//! and FDB entries that send a remote node's traffic to it, as a pure plan.
//!
//! With the file datastore a node's VTEP MAC is derived from its IPv4 address (`66:78:`
//! and the address's four octets): every node computes the same MAC for a BGP next hop,
//! with nothing to exchange, and a node's MAC stays the same over restarts. `0x66` is a
//! locally administered unicast first octet, so the MAC cannot be a vendor's. The IPv6
//! device (`vxlan-v6.calico`) has a MAC of its own, derived the same way from the node's
//! IPv6 address, the next hop of its IPv6 blocks: `66:76:` and the address's last four
//! octets ([`vtep_mac_v6`]). With etcd, a node chooses its MACs and records them in its
//! node record, and the others take them from there (the daemon's business: here every
//! known VTEP comes with its MAC, [`Macs`]).
//!
//! For every known remote VTEP (a node of the cluster) the device needs
//! `neigh <node> lladdr <its MAC> PERMANENT` and `fdb <its MAC> dst <node> self permanent`
//! (IPv4 entries on the IPv4 device, IPv6 ones on the IPv6 device).
//! [`plan`] compares that with what the kernel has and returns the writes: missing or
//! different entries are written, and permanent entries nobody wants any more are deleted
//! only when `remove_stale` (after initial convergence, so a restart deletes nothing that
//! is about to be wanted again).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The known remote VTEPs of one family: each node's underlay address with the MAC of
/// its VXLAN device.
pub type Macs<A> = BTreeMap<A, [u8; 6]>;

/// The known VTEPs of `nodes`, with their derived MACs (the file datastore's).
pub fn derived<A: Copy + Ord + Into<IpAddr>>(nodes: impl IntoIterator<Item = A>) -> Macs<A> {
    nodes
        .into_iter()
        .map(|a| (a, derived_mac(a.into())))
        .collect()
}

/// The VTEP MAC of the node with this address.
pub fn vtep_mac(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x66, 0x78, a, b, c, d]
}

/// The IPv6 VTEP MAC of the node with this IPv6 address: `66:76:` and its last four
/// octets (distinct from every IPv4 VTEP MAC by its second octet). Two nodes whose IPv6
/// addresses end in the same four octets would share it: a cluster's node addresses
/// normally come from one prefix and differ there.
pub fn vtep_mac_v6(address: Ipv6Addr) -> [u8; 6] {
    let o = address.octets();
    [0x66, 0x76, o[12], o[13], o[14], o[15]]
}

/// The derived VTEP MAC of a node address of either family.
pub fn derived_mac(address: IpAddr) -> [u8; 6] {
    match address {
        IpAddr::V4(a) => vtep_mac(a),
        IpAddr::V6(a) => vtep_mac_v6(a),
    }
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
    pub ip: IpAddr,
    /// `None`: no link-layer address (an unresolved entry).
    pub mac: Option<[u8; 6]>,
    pub permanent: bool,
}

/// One FDB entry on the VXLAN device, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// The remote VTEP the MAC is sent to (`None`: a local entry).
    pub dst: Option<IpAddr>,
    pub permanent: bool,
}

/// The VXLAN device's neighbour and FDB entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VtepTable {
    pub neigh: Vec<NeighEntry>,
    pub fdb: Vec<FdbEntry>,
}

impl VtepTable {
    /// The entries of one family: IPv6 (`v6`) or IPv4 neighbours, and FDB entries whose
    /// remote is of that family (local FDB entries, with none, go with either).
    pub fn of_family(self, v6: bool) -> VtepTable {
        VtepTable {
            neigh: self
                .neigh
                .into_iter()
                .filter(|n| n.ip.is_ipv6() == v6)
                .collect(),
            fdb: self
                .fdb
                .into_iter()
                .filter(|f| f.dst.is_none_or(|d| d.is_ipv6() == v6))
                .collect(),
        }
    }
}

/// One write to the VXLAN device's neighbour or FDB table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VtepOp {
    /// `fdb replace <mac> dst <dst> self permanent`.
    SetFdb {
        mac: [u8; 6],
        dst: IpAddr,
    },
    /// `neigh replace <ip> lladdr <mac> nud permanent`.
    SetNeigh {
        ip: IpAddr,
        mac: [u8; 6],
    },
    DelNeigh {
        ip: IpAddr,
    },
    DelFdb {
        mac: [u8; 6],
        dst: IpAddr,
    },
}

impl VtepOp {
    /// Whether this op puts an entry in place (rather than removing one).
    pub fn is_write(&self) -> bool {
        matches!(self, VtepOp::SetFdb { .. } | VtepOp::SetNeigh { .. })
    }
}

/// One remote VTEP as the device needs it: the next hop its routes use (the neighbour
/// entry's address), its MAC, and the underlay address its frames go to (the FDB entry's
/// remote). For IPv4 the next hop is the remote node's address; for IPv6 it is the
/// link-local address of the remote VTEP MAC ([`link_local`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vtep {
    pub next_hop: IpAddr,
    pub mac: [u8; 6],
    pub remote: IpAddr,
}

impl Vtep {
    /// The IPv4 VTEP of the node with this address and VTEP MAC.
    pub fn v4(node: Ipv4Addr, mac: [u8; 6]) -> Vtep {
        Vtep {
            next_hop: IpAddr::V4(node),
            mac,
            remote: IpAddr::V4(node),
        }
    }

    /// The IPv6 VTEP of the node with this IPv6 address and IPv6 VTEP MAC.
    pub fn v6(node: Ipv6Addr, mac: [u8; 6]) -> Vtep {
        Vtep {
            next_hop: IpAddr::V6(link_local(mac)),
            mac,
            remote: IpAddr::V6(node),
        }
    }
}

/// The EUI-64 link-local address of a MAC (`fe80::`, the MAC with `ff:fe` in the middle
/// and the universal/local bit flipped): the address the kernel gives the remote VXLAN
/// device itself. IPv6 routes through the IPv6 device use it as their next hop: the
/// kernel refuses an `onlink` IPv6 gateway that a route on another device (the
/// underlay's subnet) covers, and a link-local gateway is on the device by definition.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 2,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

/// The writes that make `have` hold exactly an entry pair per VTEP in `want`: FDB entries
/// before neighbour entries when adding (a resolved neighbour is usable at once), and
/// neighbour entries before FDB entries when removing.
pub fn plan(want: &[Vtep], have: &VtepTable, remove_stale: bool) -> Vec<VtepOp> {
    let mut ops = Vec::new();
    for v in want {
        let present = have
            .fdb
            .iter()
            .any(|f| f.mac == v.mac && f.dst == Some(v.remote) && f.permanent);
        if !present {
            ops.push(VtepOp::SetFdb {
                mac: v.mac,
                dst: v.remote,
            });
        }
    }
    for v in want {
        let present = have
            .neigh
            .iter()
            .any(|n| n.ip == v.next_hop && n.mac == Some(v.mac) && n.permanent);
        if !present {
            ops.push(VtepOp::SetNeigh {
                ip: v.next_hop,
                mac: v.mac,
            });
        }
    }
    if remove_stale {
        for n in have.neigh.iter().filter(|n| n.permanent) {
            if !want.iter().any(|v| v.next_hop == n.ip) {
                ops.push(VtepOp::DelNeigh { ip: n.ip });
            }
        }
        for f in have.fdb.iter().filter(|f| f.permanent) {
            let Some(dst) = f.dst else { continue };
            if !want.iter().any(|v| v.remote == dst && v.mac == f.mac) {
                ops.push(VtepOp::DelFdb { mac: f.mac, dst });
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn mac_of(a: IpAddr) -> [u8; 6] {
        derived_mac(a)
    }

    fn set(list: &[&str]) -> Vec<Vtep> {
        list.iter()
            .map(|s| match ip(s) {
                IpAddr::V4(a) => Vtep::v4(a, vtep_mac(a)),
                IpAddr::V6(a) => Vtep::v6(a, vtep_mac_v6(a)),
            })
            .collect()
    }

    /// What the kernel has after `ops` are applied to nothing.
    fn table_for(want: &[&str]) -> VtepTable {
        VtepTable {
            neigh: want
                .iter()
                .map(|s| NeighEntry {
                    ip: ip(s),
                    mac: Some(mac_of(ip(s))),
                    permanent: true,
                })
                .collect(),
            fdb: want
                .iter()
                .map(|s| FdbEntry {
                    mac: mac_of(ip(s)),
                    dst: Some(ip(s)),
                    permanent: true,
                })
                .collect(),
        }
    }

    #[test]
    fn the_mac_is_the_address_behind_a_local_unicast_prefix() {
        let mac = mac_of(ip("172.29.235.130"));
        assert_eq!(format_mac(&mac), "66:78:ac:1d:eb:82");
        let v6 = mac_of(ip("fd00:29::1:82"));
        assert_eq!(format_mac(&v6), "66:76:00:01:00:82");
        assert_eq!(v6[0] & 3, 2, "local unicast");
        assert_eq!(
            link_local(v6),
            "fe80::6476:ff:fe01:82".parse::<Ipv6Addr>().expect("v6")
        );
        assert_eq!(mac[0] & 1, 0, "unicast");
        assert_eq!(mac[0] & 2, 2, "locally administered");
    }

    #[test]
    fn an_empty_device_gets_fdb_then_neighbour_entries() {
        let ops = plan(&set(&["10.0.0.2"]), &VtepTable::default(), true);
        let mac = mac_of(ip("10.0.0.2"));
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
                    mac: mac_of(ip("10.0.0.3")),
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
            mac: mac_of(ip("10.0.0.2"))
        }));
        assert!(ops.contains(&VtepOp::SetFdb {
            mac: mac_of(ip("10.0.0.2")),
            dst: ip("10.0.0.2")
        }));
        // The wrong remote of that MAC goes.
        assert!(ops.contains(&VtepOp::DelFdb {
            mac: mac_of(ip("10.0.0.2")),
            dst: ip("10.0.0.9")
        }));
    }

    #[test]
    fn a_new_mac_rewrites_the_pair_and_the_old_fdb_entry_goes() {
        let have = table_for(&["10.0.0.2"]);
        let (node, new) = (ip("10.0.0.2"), [0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0x01]);
        let want = [Vtep::v4("10.0.0.2".parse().expect("v4"), new)];
        assert_eq!(
            plan(&want, &have, true),
            [
                VtepOp::SetFdb {
                    mac: new,
                    dst: node
                },
                VtepOp::SetNeigh { ip: node, mac: new },
                VtepOp::DelFdb {
                    mac: mac_of(node),
                    dst: node
                },
            ]
        );
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
        assert!(plan(&[], &have, true).is_empty());
    }
}
