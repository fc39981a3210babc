//! Test support for ipipd's integration, interop and hostile-peer tests:
//! network namespaces and processes that clean up after themselves, and a
//! handle on a running ipipd driven through its real command line.

pub mod bench;
pub mod bird;
pub mod capture;
pub mod cni;
pub mod config;
pub mod etcd;
pub mod frr;
pub mod gobgp;
pub mod harness;
pub mod ipipd;
pub mod loadgen;
pub mod podman;
pub mod rawpeer;
pub mod soak;
