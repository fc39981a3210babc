//! DEL: the pod's veth, then its addresses.

use std::fs::File;

use api::protocol::{Request, Response};
use fib::PodNetlink;

use crate::conf::{Env, NetConf};
use crate::daemon::{call, ipam_error, unexpected};
use crate::error::{CniError, Code};
use crate::ns::socket_in;
use crate::pod::host_veth;

pub async fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let host_name = host_veth(env);
    let mut host = PodNetlink::open()?;
    // The veth goes first (its peer and the workload route go with it), so the address is
    // free only once nothing uses it.
    let removed = host.delete_link(&host_name).await?;
    if !removed {
        if let Some(path) = &env.netns {
            // No host end under the name this pod would have: clear the pod's interface
            // in case it was made under another name. Nothing to do when the runtime
            // deleted the namespace first.
            if let Ok(netns) = File::open(path) {
                let home = File::open("/proc/thread-self/ns/net").map_err(|e| {
                    CniError::new(
                        Code::Kernel,
                        format!("opening the host's network namespace: {e}"),
                    )
                })?;
                let mut pod = socket_in(&netns, &home)?;
                pod.delete_link(&env.ifname).await?;
            }
        }
    }
    match call(
        conf,
        &Request::IpamRelease {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
        },
    )? {
        Response::Released { .. } => Ok(()),
        Response::IpamError { kind, message } => Err(ipam_error(kind, message)),
        other => Err(unexpected(other)),
    }
}
