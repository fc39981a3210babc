//! CHECK: the pod as the previous result describes it, against the kernel on both sides
//! of its veth and the daemon's record. The first difference found is the error.

use std::net::IpAddr;

use api::protocol::{Request, Response};

use crate::conf::{Env, NetConf};
use crate::daemon::{call, ipam_error, unexpected};
use crate::error::{CniError, Code};
use crate::ns::{host_end, sockets, HostEnd};
use crate::pod::{host_route, host_veth, pod_mtu, pod_routes, sandbox, HOST_MAC_TEXT};
use crate::result::{CniResult, Interface};

fn check_failed(msg: String) -> CniError {
    CniError::new(Code::CheckFailed, msg)
}

/// Whether a result's interface has the MAC `actual` (a result may leave it out).
fn same_mac(listed: &Interface, actual: &str) -> bool {
    match listed.mac.as_deref() {
        Some(m) => m.eq_ignore_ascii_case(actual),
        None => true,
    }
}

pub fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "CHECK needs prevResult in the configuration",
        )
    })?;
    let prev = CniResult::parse(&conf.cni_version, prev)?;
    let host_name = host_veth(env);
    let sandbox = sandbox(env);
    // Other plugins of a chain may list interfaces too; ours are found by name and side.
    let listed = |name: &str, sandbox: &Option<String>| {
        prev.interfaces()
            .iter()
            .position(|i| i.name == name && &i.sandbox == sandbox)
            .ok_or_else(|| check_failed(format!("prevResult does not list {name}")))
    };
    let host_at = listed(&host_name, &None)?;
    let pod_at = listed(&env.ifname, &sandbox)?;
    let mut wanted: Vec<IpAddr> = prev.addresses_of(pod_at).iter().map(|n| n.addr()).collect();
    if wanted.is_empty() {
        return Err(check_failed(format!(
            "prevResult gives {} no address",
            env.ifname
        )));
    }
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
    wanted.sort();
    if held_sorted != wanted {
        return Err(check_failed(format!(
            "ipipd holds {:?} for this pod, prevResult says {:?}",
            held.addresses, wanted
        )));
    }

    let (_, mut s) = sockets(env)?;
    let pod = match s.pod.link(&env.ifname)? {
        Some(l) if l.up => l,
        Some(_) => return Err(check_failed(format!("{} is down in the pod", env.ifname))),
        None => {
            return Err(check_failed(format!(
                "{} is missing in the pod",
                env.ifname
            )))
        }
    };
    let host = match host_end(&mut s.host, &host_name, &s.netns, Some(pod.index))? {
        HostEnd::Ours(l) if l.up => l,
        HostEnd::Ours(_) => return Err(check_failed(format!("{host_name} is down"))),
        HostEnd::Missing => {
            return Err(check_failed(format!("{host_name} is missing on the host")))
        }
        HostEnd::Theirs { .. } => {
            return Err(check_failed(format!(
                "{host_name} on the host is not the peer of {} in the pod",
                env.ifname
            )))
        }
    };
    let mtu = pod_mtu(conf, &held, &mut s.host)?;
    for (link, side) in [(&host, "on the host"), (&pod, "in the pod")] {
        if link.mtu != mtu {
            return Err(check_failed(format!(
                "mtu of {} {side} is {}, should be {mtu}",
                link.name, link.mtu
            )));
        }
    }
    let host_mac = s.host.mac(&host_name)?.unwrap_or_default();
    if !host_mac.eq_ignore_ascii_case(HOST_MAC_TEXT) {
        return Err(check_failed(format!(
            "mac of {host_name} is {host_mac}, should be {HOST_MAC_TEXT}"
        )));
    }
    let pod_mac = s.pod.mac(&env.ifname)?.unwrap_or_default();
    for (at, actual, name) in [
        (host_at, &host_mac, &host_name),
        (pod_at, &pod_mac, &env.ifname),
    ] {
        if let Some(listed) = prev.interfaces().get(at) {
            if !same_mac(listed, actual) {
                return Err(check_failed(format!(
                    "mac of {name} is {actual}, prevResult says {}",
                    listed.mac.as_deref().unwrap_or_default()
                )));
            }
        }
    }
    let addresses = s.pod.host_addresses(&pod)?;
    for ip in &wanted {
        if !addresses.contains(ip) {
            return Err(check_failed(format!(
                "{} lacks {ip} in the pod",
                env.ifname
            )));
        }
    }
    let routes = s.pod.routes(&pod)?;
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
    let host_routes = s.host.routes(&host)?;
    for ip in &wanted {
        if !host_routes.contains(&host_route(*ip)) {
            return Err(check_failed(format!(
                "route {ip} dev {host_name} missing on the host"
            )));
        }
    }
    Ok(())
}
