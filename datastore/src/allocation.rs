//! `<prefix>/ipam/<a.b.c.d>-<len>`: the allocations of one block, modelled on Calico's
//! AllocationBlock. Pure data and pure functions; the compare-and-swap that writes a
//! changed record is [`crate::Datastore`]'s.
//!
//! - `allocations[ordinal]` is the index of the ordinal's attributes, or none when free;
//! - `unallocated` is a FIFO of free ordinals: a new allocation takes the front, a freed
//!   ordinal goes to the back, so an address just given up is the last one reused (a
//!   late packet or a stale ARP entry for it meets no new pod soon);
//! - `sequence` counts allocations in the block; `sequence_of[ordinal]` is the count when
//!   the ordinal was taken. A release names the sequence it was given: one that differs
//!   is stale (the address was freed and taken again since) and is refused.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Most addresses a block record holds: larger blocks would make a record too large for
/// one etcd value (1.5 MiB by default).
pub const MAX_ORDINALS: u128 = 1 << 14;

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// `CNI_CONTAINERID.CNI_IFNAME`, or `ipip-tunnel-addr-<node>`.
    pub handle: String,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The host side of the pod's veth, so a node whose record was lost can route to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// When it was allocated, in seconds since the Unix epoch.
    pub time: u64,
}

/// One block's allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationBlock {
    pub cidr: IpNet,
    pub allocations: Vec<Option<u32>>,
    pub unallocated: VecDeque<u32>,
    pub attributes: Vec<Attribute>,
    pub sequence: u64,
    #[serde(default)]
    pub sequence_of: BTreeMap<u32, u64>,
}

/// An address as the datastore gave it: what its release must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Held {
    pub address: IpAddr,
    pub sequence: u64,
}

/// Why a change to a block record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("{address} is outside the block {block}")]
    Outside { address: IpAddr, block: IpNet },
    #[error("{address} is in use by {handle} (node {node})")]
    InUse {
        address: IpAddr,
        handle: String,
        node: String,
    },
    #[error("{address} is not held by {handle} at sequence {sequence}: a stale release, refused")]
    Stale {
        address: IpAddr,
        handle: String,
        sequence: u64,
    },
    #[error("the block record of {block} is inconsistent: {why}")]
    Corrupt { block: IpNet, why: String },
}

impl AllocationBlock {
    /// A record with every address of `cidr` free, in address order. None for a block
    /// larger than [`MAX_ORDINALS`].
    pub fn new(cidr: IpNet) -> Option<AllocationBlock> {
        let cidr = cidr.trunc();
        let size = size(&cidr)?;
        Some(AllocationBlock {
            cidr,
            allocations: vec![None; size as usize],
            unallocated: (0..size).collect(),
            attributes: Vec::new(),
            sequence: 0,
            sequence_of: BTreeMap::new(),
        })
    }

    /// Whether the record holds together: what a record read from the store must pass
    /// before it is used (it is input).
    pub fn validate(&self) -> Result<(), String> {
        let size = size(&self.cidr).ok_or("block too large")?;
        if self.allocations.len() as u32 != size {
            return Err(format!(
                "{} ordinals for {} addresses",
                self.allocations.len(),
                size
            ));
        }
        let mut free = vec![false; size as usize];
        for o in &self.unallocated {
            let slot = free
                .get_mut(*o as usize)
                .ok_or("free ordinal out of range")?;
            if *slot {
                return Err(format!("ordinal {o} free twice"));
            }
            *slot = true;
        }
        for (o, a) in self.allocations.iter().enumerate() {
            match a {
                Some(i) if *i as usize >= self.attributes.len() => {
                    return Err(format!("ordinal {o}: no attributes {i}"));
                }
                Some(_) if free[o] => return Err(format!("ordinal {o} both held and free")),
                None if !free[o] => return Err(format!("ordinal {o} neither held nor free")),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn address(&self, ordinal: u32) -> Option<IpAddr> {
        let offset = u128::from(ordinal);
        match self.cidr {
            IpNet::V4(n) => {
                let base = u32::from(n.network());
                let o = u32::try_from(offset).ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(base.checked_add(o)?)))
            }
            IpNet::V6(n) => {
                let base = u128::from(n.network());
                Some(IpAddr::V6(Ipv6Addr::from(base.checked_add(offset)?)))
            }
        }
    }

    pub fn ordinal(&self, ip: &IpAddr) -> Option<u32> {
        if !self.cidr.contains(ip) {
            return None;
        }
        let o = match (self.cidr, ip) {
            (IpNet::V4(n), IpAddr::V4(a)) => u128::from(u32::from(*a) - u32::from(n.network())),
            (IpNet::V6(n), IpAddr::V6(a)) => u128::from(*a) - u128::from(n.network()),
            _ => return None,
        };
        u32::try_from(o).ok()
    }

    /// Who holds `ip`, if anyone.
    pub fn holder(&self, ip: &IpAddr) -> Option<&Attribute> {
        let o = self.ordinal(ip)?;
        let i = (*self.allocations.get(o as usize)?)?;
        self.attributes.get(i as usize)
    }

    /// Every held address with its holder and sequence.
    pub fn held(&self) -> impl Iterator<Item = (Held, &Attribute)> + '_ {
        self.allocations
            .iter()
            .enumerate()
            .filter_map(move |(o, a)| {
                let o = o as u32;
                let attr = self.attributes.get((*a)? as usize)?;
                let held = Held {
                    address: self.address(o)?,
                    sequence: self.sequence_of.get(&o).copied().unwrap_or(0),
                };
                Some((held, attr))
            })
    }

    pub fn free_count(&self) -> usize {
        self.unallocated.len()
    }

    /// Takes the first free ordinal, in FIFO order, whose address `skip` does not refuse.
    pub fn assign(&mut self, attr: Attribute, skip: impl Fn(&IpAddr) -> bool) -> Option<Held> {
        let pos = self
            .unallocated
            .iter()
            .position(|o| self.address(*o).is_some_and(|ip| !skip(&ip)))?;
        let o = self.unallocated.remove(pos)?;
        Some(self.take(o, attr))
    }

    /// Takes `ip` for `attr`; refused when it is held (by anyone: a repeated request
    /// by the same handle is the caller's to recognise).
    pub fn assign_at(&mut self, ip: &IpAddr, attr: Attribute) -> Result<Held, AllocError> {
        let o = self.ordinal(ip).ok_or(AllocError::Outside {
            address: *ip,
            block: self.cidr,
        })?;
        if let Some(h) = self.holder(ip) {
            return Err(AllocError::InUse {
                address: *ip,
                handle: h.handle.clone(),
                node: h.node.clone(),
            });
        }
        let pos = self
            .unallocated
            .iter()
            .position(|x| *x == o)
            .ok_or_else(|| AllocError::Corrupt {
                block: self.cidr,
                why: format!("ordinal {o} neither held nor free"),
            })?;
        self.unallocated.remove(pos);
        Ok(self.take(o, attr))
    }

    fn take(&mut self, o: u32, attr: Attribute) -> Held {
        self.sequence += 1;
        let i = self.attributes.len() as u32;
        self.attributes.push(attr);
        if let Some(slot) = self.allocations.get_mut(o as usize) {
            *slot = Some(i);
        }
        self.sequence_of.insert(o, self.sequence);
        Held {
            address: self.address(o).unwrap_or(self.cidr.addr()),
            sequence: self.sequence,
        }
    }

    /// Frees `held` if `handle` holds it at that sequence; Ok(false) when it is free
    /// already (a release repeated after a lost answer).
    pub fn release(&mut self, held: &Held, handle: &str) -> Result<bool, AllocError> {
        let o = self.ordinal(&held.address).ok_or(AllocError::Outside {
            address: held.address,
            block: self.cidr,
        })?;
        let Some(i) = self.allocations.get(o as usize).copied().flatten() else {
            return Ok(false);
        };
        let ours = self
            .attributes
            .get(i as usize)
            .is_some_and(|a| a.handle == handle)
            && self.sequence_of.get(&o).copied().unwrap_or(0) == held.sequence;
        if !ours {
            return Err(AllocError::Stale {
                address: held.address,
                handle: handle.to_owned(),
                sequence: held.sequence,
            });
        }
        if let Some(slot) = self.allocations.get_mut(o as usize) {
            *slot = None;
        }
        self.sequence_of.remove(&o);
        self.unallocated.push_back(o);
        // Attributes no ordinal refers to any more go; later indices move down.
        self.attributes.remove(i as usize);
        for a in self.allocations.iter_mut().flatten() {
            if *a > i {
                *a -= 1;
            }
        }
        Ok(true)
    }

    /// Whether no address is held.
    pub fn is_empty(&self) -> bool {
        self.allocations.iter().all(Option::is_none)
    }
}

fn size(cidr: &IpNet) -> Option<u32> {
    let bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
    let n = 1u128.checked_shl(bits)?;
    (n <= MAX_ORDINALS).then_some(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(handle: &str) -> Attribute {
        Attribute {
            handle: handle.into(),
            node: "a".into(),
            namespace: None,
            pod: None,
            interface: None,
            network: None,
            time: 0,
        }
    }

    fn block() -> AllocationBlock {
        AllocationBlock::new("10.0.0.0/30".parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|| panic!("small block"))
    }

    #[test]
    fn a_freed_address_is_reused_last() {
        let mut b = block();
        let first = b
            .assign(attr("p1"), |_| false)
            .unwrap_or_else(|| panic!("free"));
        assert_eq!(first.address.to_string(), "10.0.0.0");
        assert_eq!(b.release(&first, "p1"), Ok(true));
        let next: Vec<String> = (2..6)
            .map(|i| {
                b.assign(attr(&format!("p{i}")), |_| false)
                    .map(|h| h.address.to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(next, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.0"]);
        assert!(b.validate().is_ok());
    }

    #[test]
    fn a_stale_release_is_refused_by_its_sequence() {
        let mut b = block();
        let ip: IpAddr = "10.0.0.2".parse().unwrap_or_else(|e| panic!("{e}"));
        let old = b
            .assign_at(&ip, attr("p1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.release(&old, "p1"), Ok(true));
        // The same handle takes the address again (a repeated ADD after a DEL).
        let new = b
            .assign_at(&ip, attr("p1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(old.sequence, new.sequence);
        assert!(matches!(
            b.release(&old, "p1"),
            Err(AllocError::Stale { .. })
        ));
        assert_eq!(b.holder(&ip).map(|a| a.handle.as_str()), Some("p1"));
        assert_eq!(b.release(&new, "p1"), Ok(true));
        assert_eq!(b.release(&new, "p1"), Ok(false), "released twice is fine");
    }

    #[test]
    fn an_address_in_use_is_not_given_twice() {
        let mut b = block();
        let ip: IpAddr = "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(b.assign_at(&ip, attr("p1")).is_ok());
        assert!(matches!(
            b.assign_at(&ip, attr("p2")),
            Err(AllocError::InUse { .. })
        ));
        let all: Vec<_> = (0..4)
            .filter_map(|i| b.assign(attr(&format!("q{i}")), |_| false))
            .collect();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|h| h.address != ip));
        assert!(b.validate().is_ok());
    }

    #[test]
    fn attributes_follow_releases() {
        let mut b = block();
        let h: Vec<Held> = (0..3)
            .filter_map(|i| b.assign(attr(&format!("p{i}")), |_| false))
            .collect();
        assert_eq!(b.release(&h[0], "p0"), Ok(true));
        assert_eq!(
            b.holder(&h[2].address).map(|a| a.handle.as_str()),
            Some("p2")
        );
        assert_eq!(b.attributes.len(), 2);
        assert!(b.validate().is_ok());
    }

    #[test]
    fn a_record_that_does_not_hold_together_is_refused() {
        let mut b = block();
        b.unallocated.push_back(1);
        assert!(b.validate().is_err());
        let mut b = block();
        b.allocations[0] = Some(3);
        b.unallocated.retain(|o| *o != 0);
        assert!(b.validate().is_err());
    }
}
