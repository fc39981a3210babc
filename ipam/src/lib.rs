//! Pod address management for ipipd.
//!
//! [`Ipam`] hands out pod addresses from the node's blocks, one per address family, keyed
//! by a handle (CNI container id + interface name). It is pure: no I/O, no clock. The
//! daemon pairs it with a [`Store`], which writes the [`Record`] durably before an
//! allocation is answered, so a restart (or a crash) never hands an address out twice.
//!
//! Every address of a block is usable — blocks are routed, not subnets, so the first and
//! the last address are ordinary pod addresses — except the tunnel device's address, an
//! allocation of its own ([`TunnelAllocation`]) that stays put while its block stays.

mod allocator;
mod record;

pub use allocator::{
    handle, Allocation, Assigned, Family, Ipam, IpamError, PodRef, Request, TunnelAllocation,
};
pub use record::{Record, Store, StoreError, RECORD_VERSION};
