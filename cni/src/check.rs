//! CHECK: the pod as the previous result describes it, and the daemon's record of it.

use std::net::IpAddr;

use api::protocol::{Request, Response};
use ipnet::IpNet;

use crate::conf::{Env, NetConf};
use crate::daemon::{call, ipam_error, unexpected};
use crate::error::{CniError, Code};
use crate::ns::sockets;
use crate::pod::{host_veth, pod_routes};

fn check_failed(msg: String) -> CniError {
    CniError::new(Code::CheckFailed, msg)
}

/// The addresses a previous result gave the pod.
fn previous_addresses(conf: &NetConf) -> Result<Vec<IpAddr>, CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            crate::error::Code::InvalidConfig,
            "CHECK needs prevResult in the configuration",
        )
    })?;
    let ips = prev
        .get("ips")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    ips.iter()
        .map(|ip| {
            ip.get("address")
                .and_then(|a| a.as_str())
                .and_then(|a| a.parse::<IpNet>().ok())
                .map(|n| n.addr())
                .ok_or_else(|| {
                    CniError::new(
                        Code::InvalidConfig,
                        format!("prevResult: bad ips entry {ip}"),
                    )
                })
        })
        .collect()
}

pub async fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let wanted = previous_addresses(conf)?;
    let held = match call(
        conf,
        &Request::IpamGet {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
        },
    )? {
        Response::Assigned(a) => a,
        Response::IpamError { kind, message } => return Err(ipam_error(kind, message)),
        other => return Err(unexpected(other)),
    };
    let mut held_sorted = held.addresses.clone();
    held_sorted.sort();
    let mut wanted_sorted = wanted.clone();
    wanted_sorted.sort();
    if held_sorted != wanted_sorted {
        return Err(check_failed(format!(
            "ipipd holds {:?} for this pod, prevResult says {:?}",
            held.addresses, wanted
        )));
    }
    let (_, mut s) = sockets(env)?;
    let host_name = host_veth(env);
    match s.host.link(&host_name).await? {
        Some(l) if l.up => {}
        Some(_) => return Err(check_failed(format!("{host_name} is down"))),
        None => return Err(check_failed(format!("{host_name} is missing on the host"))),
    }
    let pod = match s.pod.link(&env.ifname).await? {
        Some(l) if l.up => l,
        Some(_) => return Err(check_failed(format!("{} is down in the pod", env.ifname))),
        None => {
            return Err(check_failed(format!(
                "{} is missing in the pod",
                env.ifname
            )))
        }
    };
    let addresses = s.pod.host_addresses(&pod).await?;
    for ip in &wanted {
        if !addresses.contains(ip) {
            return Err(check_failed(format!(
                "{} lacks {ip} in the pod",
                env.ifname
            )));
        }
    }
    let routes = s.pod.routes(&pod).await?;
    for r in pod_routes(&wanted) {
        if !routes.contains(&r) {
            let what = match r.gateway {
                Some(g) => format!("{} via {g}", r.destination),
                None => format!("{} scope link", r.destination),
            };
            return Err(check_failed(format!(
                "route {what} dev {} missing in the pod",
                env.ifname
            )));
        }
    }
    Ok(())
}
