//! CNI 1.1's GC and STATUS.

use std::collections::BTreeSet;

use api::protocol::{Request, Response};
use fib::PodNetlink;

use crate::conf::NetConf;
use crate::daemon::{call, ipam_error, unexpected};
use crate::error::{CniError, Code};

/// CNI GC: the daemon releases every allocation of this network that no valid attachment
/// holds; their host ends go too (a pod whose runtime died without DEL leaves its veth
/// behind), unless a live allocation names the same device (a pod recreated under the same
/// name has the same host end).
pub fn gc(conf: &NetConf) -> Result<(), CniError> {
    // Without the list every attachment would look stale: releasing nothing is the only
    // safe reading.
    let valid = conf.valid_attachments.as_deref().ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "GC without cni.dev/valid-attachments: nothing released",
        )
    })?;
    // The runtime lists this network's attachments (the spec's entries name no network);
    // the daemon keeps to the network named here.
    let keep: Vec<String> = valid
        .iter()
        .map(|a| format!("{}.{}", a.container_id, a.ifname))
        .collect();
    let request = Request::IpamGc {
        keep,
        network: Some(conf.name.clone()),
    };
    let released = match call(conf, &request)? {
        Response::Collected { released } => released,
        Response::IpamError { kind, message } => return Err(ipam_error(kind, message)),
        other => return Err(unexpected(other)),
    };
    if released.is_empty() {
        return Ok(());
    }
    let in_use: BTreeSet<String> = match call(conf, &Request::WorkloadList)? {
        Response::Workloads { workloads } => workloads.into_iter().map(|w| w.interface).collect(),
        other => return Err(unexpected(other)),
    };
    let mut host = PodNetlink::open()?;
    let mut seen = BTreeSet::new();
    for w in released {
        if !in_use.contains(&w.interface) && seen.insert(w.interface.clone()) {
            host.delete_link(&w.interface)?;
        }
    }
    Ok(())
}

/// CNI STATUS: whether an ADD could be served now, as the daemon says.
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    let unavailable = |msg: String| CniError::new(Code::Unavailable, msg);
    match api::call(&conf.socket(), &Request::IpamStatus) {
        Ok(Response::Ok { .. }) => Ok(()),
        Ok(Response::IpamError { message, .. }) => Err(unavailable(format!(
            "ipipd cannot give an address now: {message}"
        ))),
        // A daemon that does not know the request cannot say that ADD would work.
        Ok(Response::Error { message }) => Err(unavailable(format!(
            "ipipd cannot answer STATUS: {message}"
        ))),
        Ok(other) => Err(unavailable(format!("ipipd answered oddly: {other:?}"))),
        Err(e) => Err(unavailable(format!("ipipd is not answering: {e}"))),
    }
}
