//! Running in a network namespace other than the process's own: tests, benchmarks and the
//! demo lab start an [`crate::Installer`] on a thread that has entered the namespace.
//!
//! The namespace is per thread: enter it first, then build a current-thread tokio runtime on
//! that same thread. Sockets opened there stay bound to the namespace.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Where `ip netns add NAME` puts its namespaces.
pub fn path(name: &str) -> PathBuf {
    Path::new("/var/run/netns").join(name)
}

/// Move the calling thread into the namespace `ip netns` calls `name`.
pub fn enter(name: &str) -> io::Result<()> {
    enter_path(&path(name))
}

/// Move the calling thread into the namespace the file at `path` refers to (a bind mount
/// under /var/run/netns, or `/proc/PID/ns/net`).
pub fn enter_path(path: &Path) -> io::Result<()> {
    let ns = File::open(path)?;
    crate::sys::setns_net(&ns)
}

/// Move the calling thread into the namespace an open file refers to.
pub fn enter_file(ns: &File) -> io::Result<()> {
    crate::sys::setns_net(ns)
}
