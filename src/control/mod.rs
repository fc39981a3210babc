//! The control socket: a Unix socket speaking [`protocol`], served by the
//! daemon and used by the `show` and `workload` commands.

pub mod client;
pub mod protocol;
pub mod server;
