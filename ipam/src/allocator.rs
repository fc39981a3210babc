//! The allocator: blocks, reservations and allocations by handle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::record::Record;

/// An address family of a pool, a block or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn of_net(net: &IpNet) -> Family {
        Family::of(&net.addr())
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The Kubernetes pod an allocation belongs to, when the runtime said (CNI_ARGS).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// One pod interface's addresses, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// `CNI_CONTAINERID.CNI_IFNAME`: the key of the allocation.
    pub handle: String,
    pub container_id: String,
    pub ifname: String,
    /// The host side of the pod's veth (`cali…`): the workload route's device.
    pub interface: String,
    /// One address per family, IPv4 first.
    pub addresses: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// The CNI network (its configuration's `name`) the allocation was made for; `None`
    /// in records written before networks were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// With the datastore: each address's sequence in its block record, which its
    /// release names (a release of an address taken again since is refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<u64>,
}

/// The tunnel device's address: allocated under its own handle
/// (`ipip-tunnel-addr-<node>`, as Calico names it), never a pod's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelAllocation {
    pub handle: String,
    pub address: IpAddr,
}

/// What an ADD asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub container_id: String,
    pub ifname: String,
    pub interface: String,
    pub pod: Option<PodRef>,
    pub network: Option<String>,
    /// Addresses the runtime asks for (the CNI `ips` capability); empty: any.
    pub requested: Vec<IpAddr>,
}

impl Request {
    /// The handle of the allocation this request makes: Calico's `<container id>.<ifname>`.
    pub fn handle(&self) -> String {
        handle(&self.container_id, &self.ifname)
    }

    /// Whether the names in it can be recorded (what `assign` checks first).
    pub fn validate(&self) -> Result<(), IpamError> {
        check_token("container id", &self.container_id, MAX_ID_LEN)?;
        check_token("interface name", &self.ifname, 15)?;
        check_token("host interface name", &self.interface, 15)
    }
}

/// The allocation key for a container's interface.
pub fn handle(container_id: &str, ifname: &str) -> String {
    format!("{container_id}.{ifname}")
}

/// The answer to an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub allocation: Allocation,
    /// The handle had its addresses already (a repeated ADD): nothing new was taken.
    pub existing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("no free {family} address: every address of {} is in use", list(.blocks))]
    Exhausted { family: Family, blocks: Vec<IpNet> },
    #[error("no {family} block to allocate from")]
    NoBlock { family: Family },
    #[error("nothing to allocate: no pool family has a block on this node")]
    NoFamily,
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

fn list(blocks: &[IpNet]) -> String {
    let names: Vec<String> = blocks.iter().map(|b| b.to_string()).collect();
    names.join(", ")
}

/// Longest container id accepted (runtimes use 64 hex digits; leave room).
const MAX_ID_LEN: usize = 256;

fn check_token(what: &'static str, value: &str, max: usize) -> Result<(), IpamError> {
    let why = if value.is_empty() {
        "empty"
    } else if value.len() > max {
        "too long"
    } else if value
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        "no spaces, control characters or '/'"
    } else {
        return Ok(());
    };
    Err(IpamError::Invalid {
        what,
        value: value.chars().take(80).collect(),
        why,
    })
}

/// The allocator of one node.
#[derive(Debug, Clone, Default)]
pub struct Ipam {
    blocks: Vec<IpNet>,
    /// Blocks that keep what they hold but give no new address (their pool is disabled,
    /// or no longer open to the node).
    closed: BTreeSet<IpNet>,
    reserved: BTreeSet<IpAddr>,
    tunnel: Option<TunnelAllocation>,
    families: Vec<Family>,
    by_handle: BTreeMap<String, Allocation>,
    by_address: BTreeMap<IpAddr, String>,
}

impl Ipam {
    /// An allocator over `blocks` (in the order addresses are taken from them) that never
    /// hands out `reserved`, allocating one address for each of `families` (the pools'
    /// families) that has a block.
    pub fn new(blocks: Vec<IpNet>, reserved: Vec<IpAddr>, families: Vec<Family>) -> Ipam {
        Ipam {
            blocks: blocks.into_iter().map(|b| b.trunc()).collect(),
            closed: BTreeSet::new(),
            reserved: reserved.into_iter().collect(),
            tunnel: None,
            families,
            by_handle: BTreeMap::new(),
            by_address: BTreeMap::new(),
        }
    }

    /// The allocator with the allocations of a record. An allocation whose address is
    /// held already by an earlier one, or whose handle is repeated, is not taken and is
    /// returned for the caller to report (a record written by ipipd has none). An address
    /// outside today's blocks is kept: the pod still uses it.
    ///
    /// The recorded tunnel address is taken back unless a pod holds it (a record edited by
    /// hand): pods keep what they use, the tunnel can take another address.
    pub fn restore(mut self, record: Record) -> (Ipam, Vec<Allocation>) {
        let mut refused = Vec::new();
        for a in record.allocations {
            if let Err(a) = self.restore_one(a) {
                refused.push(*a);
            }
        }
        self.tunnel = record
            .tunnel
            .filter(|t| !self.by_address.contains_key(&t.address));
        (self, refused)
    }

    /// The tunnel device's address, if one is allocated.
    pub fn tunnel(&self) -> Option<&TunnelAllocation> {
        self.tunnel.as_ref()
    }

    /// Sets (or clears) the tunnel allocation; refused when a pod holds the address.
    pub fn set_tunnel(&mut self, tunnel: Option<TunnelAllocation>) -> Result<(), IpAddr> {
        if let Some(t) = &tunnel {
            if self.by_address.contains_key(&t.address) {
                return Err(t.address);
            }
        }
        self.tunnel = tunnel;
        Ok(())
    }

    /// The address a new tunnel allocation would take: the lowest free IPv4 address of
    /// the open blocks, in order, outside `avoid` (a block about to be released).
    pub fn pick_tunnel(&self, avoid: Option<&IpNet>) -> Option<IpAddr> {
        self.pick_tunnel_except(avoid, None)
    }

    /// [`Ipam::pick_tunnel`], also passing over `not` (an address a pod asked for).
    pub fn pick_tunnel_except(&self, avoid: Option<&IpNet>, not: Option<IpAddr>) -> Option<IpAddr> {
        self.open_blocks()
            .filter(|b| Family::of_net(b) == Family::V4 && Some(*b) != avoid)
            .find_map(|b| {
                b.hosts_all()
                    .find(|ip| self.is_free(ip) && Some(*ip) != not)
            })
    }

    pub fn blocks(&self) -> &[IpNet] {
        &self.blocks
    }

    /// Replaces the blocks (a reload, a new claim). Existing allocations stay.
    pub fn set_blocks(&mut self, blocks: Vec<IpNet>, reserved: Vec<IpAddr>) {
        self.blocks = blocks.into_iter().map(|b| b.trunc()).collect();
        self.reserved = reserved.into_iter().collect();
    }

    pub fn set_families(&mut self, families: Vec<Family>) {
        self.families = families;
    }

    /// Closes these blocks: their allocations and the tunnel address stay, and new ones
    /// come from the other blocks only. Replaces the earlier set.
    pub fn set_closed(&mut self, closed: Vec<IpNet>) {
        self.closed = closed.into_iter().map(|b| b.trunc()).collect();
    }

    /// The blocks new addresses may come from, in order.
    pub fn open_blocks(&self) -> impl Iterator<Item = &IpNet> {
        self.blocks.iter().filter(|b| !self.closed.contains(*b))
    }

    /// The addresses of `request`'s handle: the ones it holds already, or new ones, one
    /// per family that the pools have and the node has an open block for.
    pub fn assign(&mut self, request: &Request) -> Result<Assigned, IpamError> {
        check_token("container id", &request.container_id, MAX_ID_LEN)?;
        check_token("interface name", &request.ifname, 15)?;
        check_token("host interface name", &request.interface, 15)?;
        let handle = request.handle();
        if let Some(existing) = self.by_handle.get_mut(&handle) {
            // A repeated ADD names the host end again; the newest name is the one in use.
            existing.interface.clone_from(&request.interface);
            return Ok(Assigned {
                allocation: existing.clone(),
                existing: true,
            });
        }
        let families: Vec<Family> = self
            .families
            .iter()
            .copied()
            .filter(|f| self.open_blocks().any(|b| Family::of_net(b) == *f))
            .collect();
        if families.is_empty() {
            return Err(match self.families.first() {
                Some(f) => IpamError::NoBlock { family: *f },
                None => IpamError::NoFamily,
            });
        }
        let mut addresses = Vec::with_capacity(families.len());
        for family in families {
            let ip = self.free(family).ok_or_else(|| IpamError::Exhausted {
                family,
                blocks: self
                    .open_blocks()
                    .filter(|b| Family::of_net(b) == family)
                    .copied()
                    .collect(),
            })?;
            addresses.push(ip);
        }
        let allocation = Allocation {
            handle,
            container_id: request.container_id.clone(),
            ifname: request.ifname.clone(),
            interface: request.interface.clone(),
            addresses,
            pod: request.pod.clone(),
            network: request.network.clone(),
            sequences: Vec::new(),
        };
        self.insert(allocation.clone());
        Ok(Assigned {
            allocation,
            existing: false,
        })
    }

    /// Records `request`'s handle with addresses chosen elsewhere (the datastore, or the
    /// runtime's request), each with its sequence. Refused when the handle holds
    /// addresses already or one of them is held here.
    pub fn assign_given(
        &mut self,
        request: &Request,
        addresses: Vec<IpAddr>,
        sequences: Vec<u64>,
    ) -> Result<Allocation, IpamError> {
        request.validate()?;
        let allocation = Allocation {
            handle: request.handle(),
            container_id: request.container_id.clone(),
            ifname: request.ifname.clone(),
            interface: request.interface.clone(),
            addresses,
            pod: request.pod.clone(),
            network: request.network.clone(),
            sequences,
        };
        self.restore_one(allocation.clone())
            .map_err(|a| IpamError::Invalid {
                what: "allocation",
                value: a.handle,
                why: "handle or address held already",
            })?;
        Ok(allocation)
    }

    /// Whether `ip` is held here (by a pod, the tunnel, or reserved).
    pub fn is_held(&self, ip: &IpAddr) -> bool {
        !self.is_free(ip)
    }

    /// Releases a handle's addresses; `None` when it held none (releasing is idempotent).
    pub fn release(&mut self, handle: &str) -> Option<Allocation> {
        let a = self.by_handle.remove(handle)?;
        for ip in &a.addresses {
            self.by_address.remove(ip);
        }
        Some(a)
    }

    /// Puts back an allocation taken out by [`Ipam::release`] (a release that could not be
    /// recorded); refused, and handed back, if its handle or an address is held meanwhile.
    pub fn restore_one(&mut self, a: Allocation) -> Result<(), Box<Allocation>> {
        if self.by_handle.contains_key(&a.handle)
            || a.addresses.iter().any(|ip| {
                self.by_address.contains_key(ip)
                    || self.tunnel.as_ref().is_some_and(|t| t.address == *ip)
            })
        {
            return Err(Box::new(a));
        }
        self.insert(a);
        Ok(())
    }

    pub fn get(&self, handle: &str) -> Option<&Allocation> {
        self.by_handle.get(handle)
    }

    /// CNI GC: the handles of `network` that `keep` does not hold. Another network's
    /// allocations are never stale here; those recorded without a network belong to a GC
    /// that names none.
    pub fn stale(&self, keep: &[String], network: Option<&str>) -> Vec<String> {
        self.by_handle
            .values()
            .filter(|a| a.network.as_deref() == network && !keep.contains(&a.handle))
            .map(|a| a.handle.clone())
            .collect()
    }

    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.by_handle.values()
    }

    /// Pod addresses in use inside `block`.
    pub fn allocated_in(&self, block: &IpNet) -> usize {
        self.by_address
            .range(block.network()..=block.broadcast())
            .count()
    }

    /// Pod addresses in use, all blocks.
    pub fn allocated(&self) -> usize {
        self.by_address.len()
    }

    /// Addresses a block can give to pods (all of it but the reserved ones and the tunnel's).
    pub fn capacity(&self, block: &IpNet) -> u128 {
        let size = match block {
            IpNet::V4(n) => 1u128 << (32 - u32::from(n.prefix_len())),
            IpNet::V6(n) => 1u128
                .checked_shl(128 - u32::from(n.prefix_len()))
                .unwrap_or(u128::MAX),
        };
        let reserved = self.reserved.iter().filter(|r| block.contains(*r)).count() as u128;
        let tunnel = self
            .tunnel
            .as_ref()
            .is_some_and(|t| !self.reserved.contains(&t.address) && block.contains(&t.address));
        size.saturating_sub(reserved + u128::from(tunnel))
    }

    /// What the store keeps.
    pub fn record(&self) -> Record {
        Record {
            version: crate::RECORD_VERSION,
            allocations: self.by_handle.values().cloned().collect(),
            tunnel: self.tunnel.clone(),
        }
    }

    fn insert(&mut self, a: Allocation) {
        for ip in &a.addresses {
            self.by_address.insert(*ip, a.handle.clone());
        }
        self.by_handle.insert(a.handle.clone(), a);
    }

    /// The lowest free address of `family`, open blocks in order.
    fn free(&self, family: Family) -> Option<IpAddr> {
        self.open_blocks()
            .filter(|b| Family::of_net(b) == family)
            .find_map(|b| b.hosts_all().find(|ip| self.is_free(ip)))
    }

    fn is_free(&self, ip: &IpAddr) -> bool {
        !self.reserved.contains(ip)
            && !self.by_address.contains_key(ip)
            && self.tunnel.as_ref().is_none_or(|t| t.address != *ip)
    }
}

/// Every address of a block, first and last included (`IpNet::hosts` skips them for
/// IPv4, which suits subnets, not routed blocks).
trait HostsAll {
    fn hosts_all(&self) -> Box<dyn Iterator<Item = IpAddr> + '_>;
}

impl HostsAll for IpNet {
    fn hosts_all(&self) -> Box<dyn Iterator<Item = IpAddr> + '_> {
        match self {
            IpNet::V4(n) => {
                Box::new(ipnet::Ipv4AddrRange::new(n.network(), n.broadcast()).map(IpAddr::V4))
            }
            IpNet::V6(n) => {
                Box::new(ipnet::Ipv6AddrRange::new(n.network(), n.broadcast()).map(IpAddr::V6))
            }
        }
    }
}

#[cfg(test)]
mod tests;
