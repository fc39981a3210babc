//! rtnetlink: the kernel FIB of the daemon ([`NetlinkFib`], on tokio) and the pod's
//! interfaces of the CNI plugin ([`pod::PodNetlink`], blocking). Both speak through the
//! same framing (`frame`) and the same message codec (`codec`); without the `tokio`
//! feature only the plugin's side is built.

mod blocking;
// Without tokio, what only the daemon uses (route and tunnel messages, batched acks) is
// left unused.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
mod codec;
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
mod frame;
pub mod pod;

#[cfg(feature = "tokio")]
mod kernel;
#[cfg(feature = "tokio")]
mod neigh;
#[cfg(feature = "tokio")]
mod socket;
#[cfg(feature = "tokio")]
mod tunnel;

#[cfg(feature = "tokio")]
pub use kernel::NetlinkFib;
#[cfg(feature = "tokio")]
pub use tunnel::{ensure_tunnel, vxlan_mac};
