//! The pod's network namespace and netlink sockets on both sides of its veth.

use std::fs::File;
use std::path::Path;

use fib::{Link, PodNetlink};

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

/// The host's network namespace: the calling thread's, before it enters any other.
pub fn home() -> Result<File, CniError> {
    File::open("/proc/thread-self/ns/net").map_err(|e| {
        CniError::new(
            Code::Kernel,
            format!("opening the host's network namespace: {e}"),
        )
    })
}

/// The pod's namespace as DEL finds it.
pub enum PodNs {
    /// No network namespace at that path any more (removed, or only its mount point
    /// left): the kernel took the pod's veth, both ends, with it.
    Gone,
    Here {
        netns: File,
        pod: PodNetlink,
    },
}

/// Opens the namespace at `path` and a socket inside it.
pub fn pod_ns(path: &Path, home: &File) -> Result<PodNs, CniError> {
    let netns = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PodNs::Gone),
        Err(e) => {
            return Err(CniError::new(
                Code::Kernel,
                format!("CNI_NETNS {}: {e}", path.display()),
            ))
        }
    };
    match fib::netns::enter_file(&netns) {
        Ok(()) => {}
        // setns(2) says EINVAL for a file that is not a network namespace.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Ok(PodNs::Gone),
        Err(e) => {
            return Err(CniError::new(
                Code::Kernel,
                format!(
                    "entering the pod's network namespace {}: {e}",
                    path.display()
                ),
            ))
        }
    }
    let pod = PodNetlink::open();
    fib::netns::enter_file(home).map_err(|e| {
        CniError::new(
            Code::Kernel,
            format!("returning to the host's network namespace: {e}"),
        )
    })?;
    Ok(PodNs::Here { netns, pod: pod? })
}

/// Whose the host device with the pod's host-end name is. The name alone says nothing:
/// a pod recreated under the same name (a StatefulSet's) gets the same name in another
/// sandbox, and so does a second interface of one pod.
#[derive(Debug)]
pub enum HostEnd {
    Missing,
    /// The peer of the pod's interface: this attachment's.
    Ours(Link),
    /// Someone else's; `same_sandbox` when its peer is in the pod's namespace (another
    /// interface of this pod).
    Theirs {
        same_sandbox: bool,
    },
}

/// Finds `host_name` on the host and tells whether its peer is the device `pod_index`
/// in `netns`.
pub fn host_end(
    host: &mut PodNetlink,
    host_name: &str,
    netns: &File,
    pod_index: Option<u32>,
) -> Result<HostEnd, CniError> {
    let Some((link, peer)) = host.link_peer(host_name)? else {
        return Ok(HostEnd::Missing);
    };
    // A device without a peer in another namespace is no pod's veth end.
    let Some((peer, peer_ns)) = peer.and_then(|p| p.netnsid.map(|id| (p, id))) else {
        return Ok(HostEnd::Theirs {
            same_sandbox: false,
        });
    };
    // Asked after reading the device: reporting its peer gave the namespace an id.
    let same_sandbox = host.netns_id(netns)? == Some(peer_ns);
    Ok(if same_sandbox && Some(peer.index) == pod_index {
        HostEnd::Ours(link)
    } else {
        HostEnd::Theirs { same_sandbox }
    })
}
