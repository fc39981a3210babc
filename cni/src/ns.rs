//! The pod's network namespace and netlink sockets on both sides of its veth.

use std::fs::File;
use std::path::Path;

use fib::PodNetlink;

use crate::conf::Env;
use crate::error::{CniError, Code};

/// Runs `f` with the thread inside `netns`, then brings the thread back to `home`.
pub fn inside<T>(netns: &File, home: &File, f: impl FnOnce() -> T) -> Result<T, CniError> {
    fib::netns::enter_file(netns).map_err(|e| {
        CniError::new(
            Code::Kernel,
            format!("entering the pod's network namespace: {e}"),
        )
    })?;
    let out = f();
    fib::netns::enter_file(home).map_err(|e| {
        CniError::new(
            Code::Kernel,
            format!("returning to the host's network namespace: {e}"),
        )
    })?;
    Ok(out)
}

/// Opens a netlink socket inside `netns` (it stays bound to that namespace).
pub fn socket_in(netns: &File, home: &File) -> Result<PodNetlink, CniError> {
    Ok(inside(netns, home, PodNetlink::open)??)
}

pub struct Sockets {
    pub host: PodNetlink,
    pub pod: PodNetlink,
    pub netns: File,
    pub home: File,
}

pub fn open_netns(path: &Path) -> Result<File, CniError> {
    File::open(path)
        .map_err(|e| CniError::new(Code::BadEnv, format!("CNI_NETNS {}: {e}", path.display())))
}

/// The pod's namespace (CNI_NETNS) and sockets on both sides of its veth.
pub fn sockets(env: &Env) -> Result<(&Path, Sockets), CniError> {
    let netns_path = env
        .netns
        .as_deref()
        .ok_or_else(|| CniError::new(Code::BadEnv, "CNI_NETNS is not set"))?;
    let netns = open_netns(netns_path)?;
    let home = File::open("/proc/thread-self/ns/net").map_err(|e| {
        CniError::new(
            Code::Kernel,
            format!("opening the host's network namespace: {e}"),
        )
    })?;
    let host = PodNetlink::open()?;
    let pod = socket_in(&netns, &home)?;
    Ok((
        netns_path,
        Sockets {
            host,
            pod,
            netns,
            home,
        },
    ))
}
