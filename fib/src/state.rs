//! The installer's per-prefix state, small enough to keep for a million routes: what the
//! RIB wants at a prefix and what the kernel has there, in a few bytes each. The common
//! shapes (one IPv4 gateway; a blackhole; a workload route) fit inline; anything else
//! (ECMP, IPv6 gateways) is kept whole in a side map the slot points to.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{NextHop, RouteKind};

/// A device name, interned; 0 is "none" (the kernel picks the device).
pub(crate) type Dev = u16;

#[derive(Debug, Default)]
pub(crate) struct Devices {
    names: Vec<String>,
    ids: HashMap<String, Dev>,
}

impl Devices {
    /// The id of `name`; `None` once 65,535 names are known (the route then goes whole
    /// into the side map).
    pub fn id(&mut self, name: &str) -> Option<Dev> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = Dev::try_from(self.names.len() + 1).ok()?;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        Some(id)
    }

    /// The id of a name already interned.
    pub fn known(&self, name: &str) -> Option<Dev> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: Dev) -> Option<&str> {
        let i = usize::from(id).checked_sub(1)?;
        self.names.get(i).map(String::as_str)
    }
}

/// The remote next hops the RIB asked for at a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Want {
    #[default]
    None,
    V4(Ipv4Addr),
    /// Several gateways, or IPv6 ones: in the side map.
    Side,
}

/// A route of ours as the kernel has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Have {
    #[default]
    Absent,
    /// A route of our protocol in a shape ipipd never writes.
    Foreign,
    Blackhole,
    Link(Dev),
    V4 {
        gateway: Ipv4Addr,
        device: Dev,
        onlink: bool,
    },
    /// Any other shape: in the side map.
    Side,
}

/// Found in the kernel when the installer started and not wanted since: a previous run's
/// route, kept until initial convergence.
pub(crate) const PREVIOUS_RUN: u8 = 1;
/// Someone else changed or removed it: rewriting it counts as a drift repair.
pub(crate) const DRIFTED: u8 = 2;
/// In the queue of prefixes to look at.
pub(crate) const QUEUED: u8 = 4;
/// Seen in the kernel dump being read.
pub(crate) const SEEN: u8 = 8;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    pub want: Want,
    pub have: Have,
    pub flags: u8,
}

impl Slot {
    /// Nothing worth keeping: no remote route wanted, none in the kernel, nothing pending.
    pub fn is_empty(&self) -> bool {
        self.want == Want::None && self.have == Have::Absent && self.flags & QUEUED == 0
    }
}

/// Slots by prefix, IPv4 ones keyed by their 5 octets rather than an 18-octet `IpNet`:
/// 20 octets an entry instead of 32, the difference between 44 and 69 MB of buckets at
/// a million routes.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    v4: HashMap<Ipv4Net, Slot>,
    v6: HashMap<Ipv6Net, Slot>,
}

impl Slots {
    pub fn get(&self, prefix: &IpNet) -> Option<&Slot> {
        match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }
    }

    pub fn get_mut(&mut self, prefix: &IpNet) -> Option<&mut Slot> {
        match prefix {
            IpNet::V4(p) => self.v4.get_mut(p),
            IpNet::V6(p) => self.v6.get_mut(p),
        }
    }

    /// The slot of `prefix`, made empty if there is none.
    pub fn entry(&mut self, prefix: IpNet) -> &mut Slot {
        match prefix {
            IpNet::V4(p) => self.v4.entry(p).or_default(),
            IpNet::V6(p) => self.v6.entry(p).or_default(),
        }
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<Slot> {
        match prefix {
            IpNet::V4(p) => self.v4.remove(p),
            IpNet::V6(p) => self.v6.remove(p),
        }
    }

    pub fn contains_key(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &Slot)> {
        let v4 = self.v4.iter().map(|(p, s)| (IpNet::V4(*p), s));
        v4.chain(self.v6.iter().map(|(p, s)| (IpNet::V6(*p), s)))
    }

    pub fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(p, _)| p)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.v4.values_mut().chain(self.v6.values_mut())
    }
}

/// The compact form of a route shape, or `None` when it goes whole into the side map.
pub(crate) fn compact(kind: &RouteKind, devices: &mut Devices) -> Option<Have> {
    match kind {
        RouteKind::Blackhole => Some(Have::Blackhole),
        RouteKind::Link { device } => devices.id(device).map(Have::Link),
        RouteKind::Via(hops) => match hops.as_slice() {
            [NextHop {
                gateway: IpAddr::V4(gateway),
                device,
                onlink,
            }] => {
                let device = match device {
                    None => 0,
                    Some(d) => devices.id(d)?,
                };
                Some(Have::V4 {
                    gateway: *gateway,
                    device,
                    onlink: *onlink,
                })
            }
            _ => None,
        },
    }
}

/// The full form of a compact shape (not `Absent`, `Foreign` or `Side`).
pub(crate) fn expand(have: Have, devices: &Devices) -> Option<RouteKind> {
    let name = |d: Dev| devices.name(d).map(str::to_string);
    match have {
        Have::Blackhole => Some(RouteKind::Blackhole),
        Have::Link(d) => Some(RouteKind::Link { device: name(d)? }),
        Have::V4 {
            gateway,
            device,
            onlink,
        } => Some(RouteKind::Via(vec![NextHop {
            gateway: IpAddr::V4(gateway),
            device: if device == 0 {
                None
            } else {
                Some(name(device)?)
            },
            onlink,
        }])),
        Have::Absent | Have::Foreign | Have::Side => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_small() {
        // The point of the compact form: a million routes in a few dozen MB.
        assert!(
            std::mem::size_of::<Slot>() <= 14,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn compact_and_expand_round_trip() {
        let mut d = Devices::default();
        let kinds = [
            RouteKind::Blackhole,
            RouteKind::Link {
                device: "cali1".into(),
            },
            RouteKind::Via(vec![NextHop {
                gateway: "10.0.0.1".parse().expect("addr"),
                device: Some("tunl0".into()),
                onlink: true,
            }]),
            RouteKind::Via(vec![NextHop {
                gateway: "10.0.0.1".parse().expect("addr"),
                device: None,
                onlink: false,
            }]),
        ];
        for k in kinds {
            let c = compact(&k, &mut d).expect("compact");
            assert_eq!(expand(c, &d), Some(k));
        }
        let ecmp = RouteKind::Via(vec![
            NextHop {
                gateway: "10.0.0.1".parse().expect("addr"),
                device: None,
                onlink: false,
            },
            NextHop {
                gateway: "10.0.0.2".parse().expect("addr"),
                device: None,
                onlink: false,
            },
        ]);
        assert_eq!(compact(&ecmp, &mut d), None);
    }
}
