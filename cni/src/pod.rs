//! ADD: the daemon's answer plus netlink work on both ends of the veth.
//!
//! The pod's wiring is Calico's: inside, the interface holds the pod address as /32
//! (/128), `169.254.1.1 dev eth0 scope link` and `default via 169.254.1.1 dev eth0`; on
//! the host, the `cali…` end (MAC ee:ee:ee:ee:ee:ee) answers ARP for 169.254.1.1 by proxy
//! and carries `<pod ip> dev cali… scope link`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use api::protocol::{AssignedJson, Request, Response};
use fib::{Link, LinkRoute, PodNetlink};
use ipnet::IpNet;
use sha1::{Digest, Sha1};

use crate::conf::{Env, NetConf};
use crate::daemon::{call, ipam_error, unexpected};
use crate::error::{CniError, Code};
use crate::ns::{host_end, inside, sockets, HostEnd, Sockets};
use crate::result::{self, CniResult, Ours};
use crate::spool;

const HOST_MAC: [u8; 6] = [0xee; 6];
pub const HOST_MAC_TEXT: &str = "ee:ee:ee:ee:ee:ee";
/// The pod's IPv4 gateway: answered by proxy ARP on the host end.
const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pod's IPv6 gateway: the host end's link-local address (EUI-64 of ee:ee:ee:ee:ee:ee).
const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// Routes inside the pod are written as `ip route add` writes them.
const PROTO_BOOT: u8 = 3;

/// The host end's name: `cali` + the first 11 hex digits of the SHA-1 of
/// `<namespace>.<pod>` (Calico's rule) or of the container id (`.<ifname>` appended when
/// the interface is not `eth0`).
pub fn host_veth(env: &Env) -> String {
    let key = match &env.pod {
        Some((ns, name)) => format!("{ns}.{name}"),
        None if env.ifname == "eth0" => env.container_id.clone(),
        None => format!("{}.{}", env.container_id, env.ifname),
    };
    let digest = Sha1::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

fn sysctl(path: &str, value: &str) -> Result<(), CniError> {
    std::fs::write(path, value)
        .map_err(|e| CniError::new(Code::Kernel, format!("writing {value} to {path}: {e}")))
}

fn prefix(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The routes inside the pod, for its families.
pub fn pod_routes(addresses: &[IpAddr]) -> Vec<LinkRoute> {
    let mut routes = Vec::new();
    if addresses.iter().any(IpAddr::is_ipv4) {
        routes.push(LinkRoute {
            destination: prefix(IpAddr::V4(GATEWAY_V4)),
            gateway: None,
        });
        routes.push(LinkRoute {
            destination: IpNet::V4(Default::default()),
            gateway: Some(IpAddr::V4(GATEWAY_V4)),
        });
    }
    if addresses.iter().any(IpAddr::is_ipv6) {
        routes.push(LinkRoute {
            destination: IpNet::V6(Default::default()),
            gateway: Some(IpAddr::V6(GATEWAY_V6)),
        });
    }
    routes
}

/// `runtimeConfig.ips` (the `ips` capability), else CNI_ARGS `IP`: each `address` or
/// `address/prefix`.
fn requested_ips(ips: &[String]) -> Result<Vec<IpAddr>, CniError> {
    ips.iter()
        .map(|s| {
            let addr = s.split_once('/').map_or(s.as_str(), |(a, _)| a);
            addr.parse::<IpAddr>().map_err(|_| {
                CniError::new(
                    Code::InvalidConfig,
                    format!("runtimeConfig.ips: {s:?} is not an address"),
                )
            })
        })
        .collect()
}

pub fn add(env: &Env, conf: &NetConf) -> Result<serde_json::Value, CniError> {
    // Checked before anything is made: a pod must not run with another address than
    // the one its runtime asked for.
    let requested = if conf.runtime_config.ips.is_empty() {
        requested_ips(&env.requested)?
    } else {
        requested_ips(&conf.runtime_config.ips)?
    };
    // Read before anything is made, so that a bad one leaves nothing behind.
    let prev = match &conf.prev_result {
        Some(v) => CniResult::parse(&conf.cni_version, v)?,
        None => CniResult::empty(&conf.cni_version),
    };
    let (netns_path, mut s) = sockets(env)?;
    let host_name = host_veth(env);
    let pod_link = s.pod.link(&env.ifname)?;
    let found = host_end(
        &mut s.host,
        &host_name,
        &s.netns,
        pod_link.as_ref().map(|l| l.index),
    )?;
    // A DEL spooled while the daemon was away must not release what this ADD gets.
    spool::forget(conf, env)?;
    let assigned = match call(
        conf,
        &Request::IpamAssign {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            interface: host_name.clone(),
            pod_namespace: env.pod.as_ref().map(|p| p.0.clone()),
            pod_name: env.pod.as_ref().map(|p| p.1.clone()),
            network: Some(conf.name.clone()),
            ips: requested,
        },
    )? {
        Response::Assigned(a) => a,
        Response::IpamError { kind, message } => return Err(ipam_error(kind, message)),
        other => return Err(unexpected(other)),
    };
    // From here on, every failure goes through `undo`: nothing may return early.
    //
    // A repeated ADD finds its own veth and only makes sure of its settings; anything
    // else holding the pod's interface name is someone else's.
    let ours = assigned.existing && matches!(found, HostEnd::Ours(_));
    let (outcome, created) = if pod_link.is_some() && !ours {
        let e = CniError::new(
            Code::InterfaceTaken,
            format!(
                "interface {} already exists in {}",
                env.ifname,
                netns_path.display()
            ),
        );
        (Err(e), None)
    } else if matches!(found, HostEnd::Theirs { same_sandbox: true }) {
        // Another interface of this pod has the host end's name (the name comes from the
        // pod's name alone): replacing it would cut that interface off.
        let e = CniError::new(
            Code::InterfaceTaken,
            format!(
                "the host end {host_name} belongs to another interface of the pod in {}",
                netns_path.display()
            ),
        );
        (Err(e), None)
    } else {
        let wired = wire(env, conf, &assigned, &mut s, &host_name, ours);
        (wired, (!ours).then_some(host_name.as_str()))
    };
    match outcome {
        Ok(mine) => Ok(prev.add(&mine).to_json()),
        // A pod wired before (a repeated ADD) keeps its addresses; anything else gives
        // back what the daemon assigned, held before this ADD or not: no pod uses it.
        Err(e) => Err(undo(conf, env, !ours, created, &mut s.host, e)),
    }
}

/// After a failed ADD: remove what this ADD made, release what it was given.
fn undo(
    conf: &NetConf,
    env: &Env,
    release: bool,
    created: Option<&str>,
    host: &mut PodNetlink,
    error: CniError,
) -> CniError {
    let mut error = error;
    if let Some(name) = created {
        if let Err(e) = host.delete_link(name) {
            error = error.details(format!("removing {name} failed: {e}"));
        }
    }
    if release {
        let request = Request::IpamRelease {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
        };
        match call(conf, &request) {
            Ok(Response::Released { .. }) => {}
            Ok(other) => {
                error = error.details(format!("releasing the address failed: {other:?}"));
            }
            Err(e) => {
                error = error.details(format!("releasing the address failed: {}", e.msg));
            }
        }
    }
    error
}

/// The MTU of both ends of the pod's veth: the configuration's, else the daemon's
/// `ipip.mtu`, else the tunnel device's.
pub fn pod_mtu(
    conf: &NetConf,
    assigned: &AssignedJson,
    host: &mut PodNetlink,
) -> Result<u32, CniError> {
    Ok(match (conf.mtu, assigned.mtu, &assigned.tunnel) {
        (Some(m), _, _) | (None, Some(m), _) => m,
        (None, None, Some(tunnel)) => match host.link(tunnel)? {
            Some(l) if l.mtu > 0 => l.mtu,
            _ => 1480,
        },
        (None, None, None) => 1500,
    })
}

fn wire(
    env: &Env,
    conf: &NetConf,
    assigned: &AssignedJson,
    s: &mut Sockets,
    host_name: &str,
    ours: bool,
) -> Result<Ours, CniError> {
    let mtu = pod_mtu(conf, assigned, &mut s.host)?;
    if !ours {
        // A host end under this name that is not this pod's: left by an ADD that died
        // half-way, or the end of an earlier sandbox of a pod of the same name, which
        // this one replaces (as Calico does).
        s.host.delete_link(host_name)?;
        s.host
            .create_veth(host_name, HOST_MAC, &env.ifname, &s.netns, mtu)?;
    }
    let host = s.host.link(host_name)?.ok_or_else(|| {
        CniError::new(Code::Kernel, format!("{host_name} vanished after creation"))
    })?;
    sysctl(
        &format!("/proc/sys/net/ipv4/conf/{host_name}/proxy_arp"),
        "1",
    )?;
    sysctl(
        &format!("/proc/sys/net/ipv4/neigh/{host_name}/proxy_delay"),
        "0",
    )?;
    sysctl(
        &format!("/proc/sys/net/ipv4/conf/{host_name}/forwarding"),
        "1",
    )?;
    let ipv6 = assigned.addresses.iter().any(IpAddr::is_ipv6);
    if ipv6 {
        sysctl(
            &format!("/proc/sys/net/ipv6/conf/{host_name}/forwarding"),
            "1",
        )?;
        // The host end's link-local address is the pod's IPv6 gateway: usable at once,
        // not after a second of duplicate address detection on a link with one peer.
        sysctl(
            &format!("/proc/sys/net/ipv6/conf/{host_name}/accept_dad"),
            "0",
        )?;
    }
    s.host.set_up(&host, Some(mtu))?;
    let pod = s.pod.link(&env.ifname)?.ok_or_else(|| {
        CniError::new(
            Code::Kernel,
            format!("{} not found in the pod after creation", env.ifname),
        )
    })?;
    if ipv6 {
        let knob = format!("/proc/sys/net/ipv6/conf/{}/accept_dad", env.ifname);
        inside(&s.netns, &s.home, || sysctl(&knob, "0"))??;
    }
    s.pod.set_up(&pod, Some(mtu))?;
    for ip in &assigned.addresses {
        s.pod.add_host_address(&pod, *ip)?;
    }
    for route in pod_routes(&assigned.addresses) {
        s.pod.add_route(&pod, &route, PROTO_BOOT)?;
    }
    // The daemon writes the same routes as soon as it sees the device; writing them here
    // too means the pod is reachable when ADD returns.
    for ip in &assigned.addresses {
        s.host
            .add_route(&host, &host_route(*ip), assigned.route_protocol)?;
    }
    let pod_mac = s.pod.mac(&env.ifname)?.unwrap_or_default();
    Ok(ours_in_result(env, assigned, &host, &pod, &pod_mac))
}

/// The host's route to a pod address: `<ip> dev cali… scope link`.
pub fn host_route(ip: IpAddr) -> LinkRoute {
    LinkRoute {
        destination: prefix(ip),
        gateway: None,
    }
}

/// What this plugin adds to the CNI result.
fn ours_in_result(env: &Env, a: &AssignedJson, host: &Link, pod: &Link, pod_mac: &str) -> Ours {
    let mut routes = Vec::new();
    if a.addresses.iter().any(IpAddr::is_ipv4) {
        routes.push(result::route(IpNet::V4(Default::default())));
    }
    if a.addresses.iter().any(IpAddr::is_ipv6) {
        routes.push(result::route(IpNet::V6(Default::default())));
    }
    Ours {
        host: result::interface(&host.name, HOST_MAC_TEXT, None),
        pod: result::interface(&pod.name, pod_mac, sandbox(env)),
        addresses: a.addresses.clone(),
        routes,
    }
}

/// The pod's namespace as results name it.
pub fn sandbox(env: &Env) -> Option<String> {
    env.netns.as_ref().map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(id: &str, ifname: &str, pod: Option<(&str, &str)>) -> Env {
        Env {
            command: crate::conf::Command::Add,
            container_id: id.into(),
            netns: None,
            ifname: ifname.into(),
            pod: pod.map(|(a, b)| (a.into(), b.into())),
            requested: Vec::new(),
        }
    }

    #[test]
    fn host_veth_names_follow_calico() {
        // sha1("default.web-0") = 8a9b2e2c2f...: Calico names that pod's veth cali8a9b2e2c2f0.
        let name = host_veth(&env("x", "eth0", Some(("default", "web-0"))));
        let digest = Sha1::digest(b"default.web-0");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(name, format!("cali{}", &hex[..11]));
        assert_eq!(name.len(), 15);
        assert_ne!(
            host_veth(&env("abc", "eth0", None)),
            host_veth(&env("abc", "net1", None))
        );
        assert_eq!(
            host_veth(&env("abc", "eth0", None)),
            host_veth(&env("abc", "eth0", None))
        );
    }

    #[test]
    fn gateway_v6_is_the_eui64_of_the_host_mac() {
        assert_eq!(GATEWAY_V6.to_string(), "fe80::ecee:eeff:feee:eeee");
    }
}
