//! Outbound NAT for ipipd: pod traffic from a pool with `nat_outgoing` to a destination
//! in no pool leaves with the node's address.
//!
//! ipipd owns one nftables table, `ipipd`, in family `ip` (and `ip6` when IPv6 pools
//! NAT) and touches nothing else of the ruleset. [`desired`] computes that table from
//! the pools without I/O; [`Nft`] writes it over netfilter netlink, each change one
//! batch (the kernel applies a batch whole or not at all), and reads it back;
//! [`Keeper`] is the task that keeps the kernel so, putting back what another actor
//! deletes.

#![forbid(unsafe_code)]

pub mod desired;
mod error;
mod keeper;
mod messages;
mod monitor;
mod nft;
mod wire;

pub use desired::{desired, Desired, Element, Family, Table};
pub use error::NatError;
pub use keeper::{Keeper, Status};
pub use nft::{Change, Found, Nft};
