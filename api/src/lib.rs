//! The control protocol of ipipd: newline-delimited JSON over a Unix socket, one
//! [`protocol::Request`] per line to the daemon, one [`protocol::Response`] per line back.
//!
//! One crate so that every side speaks the same types: the daemon, the `ipipd` CLI, the
//! `ipipd-cni` plugin, the fuzz targets and the test harness.

pub mod client;
pub mod durable;
pub mod ipam_report;
pub mod protocol;
pub mod spool;
pub mod status;

pub use client::{call, ClientError};
pub use protocol::{Request, Response};
