//! The control socket: a Unix socket speaking the protocol of the `api` crate, served by
//! the daemon and used by the `show`, `workload` and `ipam` commands and by `ipipd-cni`.

pub use api::{client, protocol};
pub mod server;
