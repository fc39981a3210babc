//! DEL: the pod's veth, then its addresses. The spec asks DEL to clean up what it can
//! and succeed when things are already gone; the address is released whatever became of
//! the interface, and a release the daemon cannot take now is spooled for it.

use api::protocol::{Request, Response};
use fib::PodNetlink;

use crate::conf::{Env, NetConf};
use crate::daemon::{ipam_error, not_answering, unexpected};
use crate::error::{CniError, Code};
use crate::ns::{home, host_end, pod_ns, HostEnd, PodNs};
use crate::pod::host_veth;
use crate::spool;

pub fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    // The veth goes first (its peer and the workload route go with it), so the address
    // is free only once nothing uses it, unless the veth cannot be removed.
    let interface = remove_interface(env);
    let release = release(env, conf);
    match (interface, release) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) => Err(e.details("the address was released")),
        (Ok(()), Err(e)) => Err(e),
        (Err(i), Err(r)) => Err(r.details(format!("and the interface: {}", i.msg))),
    }
}

/// Removes this attachment's veth: the host end when its peer is the pod's interface,
/// else the pod's interface (its peer goes with it). A host device of the same name whose
/// peer is elsewhere belongs to another sandbox and stays; without a namespace there is
/// nothing of this attachment left (the kernel removes a veth with its namespace).
fn remove_interface(env: &Env) -> Result<(), CniError> {
    let Some(path) = &env.netns else {
        return Ok(());
    };
    let home = home()?;
    let PodNs::Here { netns, mut pod } = pod_ns(path, &home)? else {
        return Ok(());
    };
    let pod_link = pod.link(&env.ifname)?;
    let mut host = PodNetlink::open()?;
    let host_name = host_veth(env);
    match host_end(
        &mut host,
        &host_name,
        &netns,
        pod_link.as_ref().map(|l| l.index),
    )? {
        HostEnd::Ours(link) => {
            host.delete_link(&link.name)?;
        }
        HostEnd::Missing | HostEnd::Theirs { .. } => {
            if pod_link.is_some() {
                pod.delete_link(&env.ifname)?;
            }
        }
    }
    Ok(())
}

/// Releases the handle; when the daemon is not answering, records the release for it.
fn release(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let request = Request::IpamRelease {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
    };
    match api::call(&conf.socket(), &request) {
        Ok(Response::Released { .. }) => Ok(()),
        Ok(Response::IpamError { kind, message }) => Err(ipam_error(kind, message)),
        Ok(Response::Error { message }) => Err(CniError::new(Code::Refused, message)),
        Ok(other) => Err(unexpected(other)),
        Err(e) if not_answering(&e) => spool::record(conf, env).map(|_| ()),
        Err(e) => Err(CniError::new(Code::TryAgain, format!("ipipd: {e}"))),
    }
}
