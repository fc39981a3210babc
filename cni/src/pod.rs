//! ADD, DEL and CHECK: the daemon's answer plus netlink work on both ends of the veth.
//!
//! The pod's wiring is Calico's: inside, the interface holds the pod address as /32
//! (/128), `169.254.1.1 dev eth0 scope link` and `default via 169.254.1.1 dev eth0`; on
//! the host, the `cali…` end (MAC ee:ee:ee:ee:ee:ee) answers ARP for 169.254.1.1 by proxy
//! and carries `<pod ip> dev cali… scope link`.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use api::protocol::{AssignedJson, IpamErrorKind, Request, Response};
use fib::{Link, LinkRoute, PodNetlink};
use ipnet::IpNet;
use sha1::{Digest, Sha1};

use crate::conf::{Env, NetConf};
use crate::error::{CniError, Code};

const HOST_MAC: [u8; 6] = [0xee; 6];
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

fn call(conf: &NetConf, request: &Request) -> Result<Response, CniError> {
    let socket = conf.socket();
    match api::call(&socket, request) {
        Ok(Response::Error { message }) => Err(CniError::new(Code::Refused, message)),
        Ok(r) => Ok(r),
        Err(e) => Err(CniError::new(
            Code::TryAgain,
            format!("ipipd is not answering: {e}"),
        )),
    }
}

fn ipam_error(kind: IpamErrorKind, message: String) -> CniError {
    let code = match kind {
        IpamErrorKind::Exhausted | IpamErrorKind::Storage => Code::TryAgain,
        IpamErrorKind::Invalid => Code::Refused,
        IpamErrorKind::Unknown => Code::CheckFailed,
    };
    CniError::new(code, message)
}

fn unexpected(r: Response) -> CniError {
    CniError::new(
        Code::Refused,
        format!("unexpected answer from ipipd: {r:?}"),
    )
}

/// Runs `f` with the thread inside `netns`, then brings the thread back to `home`.
fn inside<T>(netns: &File, home: &File, f: impl FnOnce() -> T) -> Result<T, CniError> {
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
fn socket_in(netns: &File, home: &File) -> Result<PodNetlink, CniError> {
    Ok(inside(netns, home, PodNetlink::open)??)
}

struct Sockets {
    host: PodNetlink,
    pod: PodNetlink,
    netns: File,
    home: File,
}

fn open_netns(path: &Path) -> Result<File, CniError> {
    File::open(path)
        .map_err(|e| CniError::new(Code::BadEnv, format!("CNI_NETNS {}: {e}", path.display())))
}

/// The pod's namespace (CNI_NETNS) and sockets on both sides of its veth.
fn sockets(env: &Env) -> Result<(&Path, Sockets), CniError> {
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

fn sysctl(path: &str, value: &str) -> Result<(), CniError> {
    std::fs::write(path, value)
        .map_err(|e| CniError::new(Code::Kernel, format!("writing {value} to {path}: {e}")))
}

fn prefix(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The routes inside the pod, for its families.
fn pod_routes(addresses: &[IpAddr]) -> Vec<LinkRoute> {
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

pub async fn add(env: &Env, conf: &NetConf) -> Result<serde_json::Value, CniError> {
    let (netns_path, mut s) = sockets(env)?;
    let host_name = host_veth(env);
    let pod_link = s.pod.link(&env.ifname).await?;
    let assigned = match call(
        conf,
        &Request::IpamAssign {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            interface: host_name.clone(),
            pod_namespace: env.pod.as_ref().map(|p| p.0.clone()),
            pod_name: env.pod.as_ref().map(|p| p.1.clone()),
        },
    )? {
        Response::Assigned(a) => a,
        Response::IpamError { kind, message } => return Err(ipam_error(kind, message)),
        other => return Err(unexpected(other)),
    };
    let host_link = s.host.link(&host_name).await?;
    // A repeated ADD finds its own veth and only makes sure of its settings; anything
    // else holding the pod's interface name is someone else's.
    let ours = assigned.existing && pod_link.is_some() && host_link.is_some();
    if pod_link.is_some() && !ours {
        let e = CniError::new(
            Code::InterfaceTaken,
            format!(
                "interface {} already exists in {}",
                env.ifname,
                netns_path.display()
            ),
        );
        return Err(undo(conf, env, &assigned, None, &mut s.host, e).await);
    }
    match wire(env, conf, &assigned, &mut s, &host_name, ours).await {
        Ok(result) => Ok(result),
        Err(e) => {
            let created = (!ours).then_some(host_name.as_str());
            Err(undo(conf, env, &assigned, created, &mut s.host, e).await)
        }
    }
}

/// After a failed ADD: remove what this ADD made, release what it allocated.
async fn undo(
    conf: &NetConf,
    env: &Env,
    assigned: &AssignedJson,
    created: Option<&str>,
    host: &mut PodNetlink,
    error: CniError,
) -> CniError {
    let mut error = error;
    if let Some(name) = created {
        if let Err(e) = host.delete_link(name).await {
            error = error.details(format!("and removing {name} failed: {e}"));
        }
    }
    if !assigned.existing {
        if let Err(e) = call(
            conf,
            &Request::IpamRelease {
                container_id: env.container_id.clone(),
                ifname: env.ifname.clone(),
            },
        ) {
            error = error.details(format!("and releasing the address failed: {}", e.msg));
        }
    }
    error
}

async fn wire(
    env: &Env,
    conf: &NetConf,
    assigned: &AssignedJson,
    s: &mut Sockets,
    host_name: &str,
    ours: bool,
) -> Result<serde_json::Value, CniError> {
    let mtu = match (conf.mtu, assigned.mtu, &assigned.tunnel) {
        (Some(m), _, _) | (None, Some(m), _) => m,
        (None, None, Some(tunnel)) => match s.host.link(tunnel).await? {
            Some(l) if l.mtu > 0 => l.mtu,
            _ => 1480,
        },
        (None, None, None) => 1500,
    };
    if !ours {
        // A host end left by an ADD that died half-way (same pod, same name) goes first.
        s.host.delete_link(host_name).await?;
        s.host
            .create_veth(host_name, HOST_MAC, &env.ifname, &s.netns, mtu)
            .await?;
    }
    let host = s.host.link(host_name).await?.ok_or_else(|| {
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
    s.host.set_up(&host, Some(mtu)).await?;
    let pod = s.pod.link(&env.ifname).await?.ok_or_else(|| {
        CniError::new(
            Code::Kernel,
            format!("{} not found in the pod after creation", env.ifname),
        )
    })?;
    if ipv6 {
        let knob = format!("/proc/sys/net/ipv6/conf/{}/accept_dad", env.ifname);
        inside(&s.netns, &s.home, || sysctl(&knob, "0"))??;
    }
    s.pod.set_up(&pod, Some(mtu)).await?;
    for ip in &assigned.addresses {
        s.pod.add_host_address(&pod, *ip).await?;
    }
    for route in pod_routes(&assigned.addresses) {
        s.pod.add_route(&pod, &route, PROTO_BOOT).await?;
    }
    // The daemon writes the same routes as soon as it sees the device; writing them here
    // too means the pod is reachable when ADD returns.
    for ip in &assigned.addresses {
        let route = LinkRoute {
            destination: prefix(*ip),
            gateway: None,
        };
        s.host
            .add_route(&host, &route, assigned.route_protocol)
            .await?;
    }
    let pod_mac = s.pod.mac(&env.ifname).await?.unwrap_or_default();
    Ok(result(conf, env, assigned, &host, &pod, &pod_mac))
}

fn result(
    conf: &NetConf,
    env: &Env,
    a: &AssignedJson,
    host: &Link,
    pod: &Link,
    pod_mac: &str,
) -> serde_json::Value {
    let old = conf.cni_version != "1.0.0";
    let ips: Vec<serde_json::Value> = a
        .addresses
        .iter()
        .map(|ip| {
            let mut v = serde_json::json!({
                "address": prefix(*ip).to_string(),
                "interface": 1,
            });
            if let (true, Some(map)) = (old, v.as_object_mut()) {
                map.insert(
                    "version".into(),
                    if ip.is_ipv4() { "4" } else { "6" }.into(),
                );
            }
            v
        })
        .collect();
    let mut routes = Vec::new();
    if a.addresses.iter().any(IpAddr::is_ipv4) {
        routes.push(serde_json::json!({"dst": "0.0.0.0/0"}));
    }
    if a.addresses.iter().any(IpAddr::is_ipv6) {
        routes.push(serde_json::json!({"dst": "::/0"}));
    }
    serde_json::json!({
        "cniVersion": conf.cni_version,
        "interfaces": [
            {"name": host.name, "mac": "ee:ee:ee:ee:ee:ee"},
            {"name": pod.name, "mac": pod_mac, "sandbox": env.netns.as_ref().map(|p| p.display().to_string())},
        ],
        "ips": ips,
        "routes": routes,
        "dns": {},
    })
}

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

/// CNI GC: the daemon releases every allocation no valid attachment holds; their host
/// ends go too (a pod whose runtime died without DEL leaves its veth behind).
pub async fn gc(conf: &NetConf) -> Result<(), CniError> {
    let keep: Vec<String> = conf
        .valid_attachments
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| format!("{}.{}", a.container_id, a.ifname))
        .collect();
    let released = match call(conf, &Request::IpamGc { keep })? {
        Response::Collected { released } => released,
        Response::IpamError { kind, message } => return Err(ipam_error(kind, message)),
        other => return Err(unexpected(other)),
    };
    let mut host = PodNetlink::open()?;
    let mut seen = std::collections::BTreeSet::new();
    for w in released {
        if seen.insert(w.interface.clone()) {
            host.delete_link(&w.interface).await?;
        }
    }
    Ok(())
}

/// CNI STATUS: ready when the daemon answers.
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    match api::call(&conf.socket(), &Request::ShowBlocks) {
        Ok(Response::Blocks { .. }) => Ok(()),
        Ok(other) => Err(CniError::new(
            Code::Unavailable,
            format!("ipipd answered oddly: {other:?}"),
        )),
        Err(e) => Err(CniError::new(
            Code::Unavailable,
            format!("ipipd is not answering: {e}"),
        )),
    }
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
