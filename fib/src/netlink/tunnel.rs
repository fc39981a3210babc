//! The tunnel device: exists, is up, has the MTU and the one /32 it should.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlag, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::codec;
use super::socket::NlSocket;
use crate::fib::{Link, TunnelSpec, VxlanDevice};
use crate::FibError;

/// Make the tunnel device right, on a socket of its own, in the calling thread's network
/// namespace: create `spec.name` as kind `ipip` if missing, bring it up, set its MTU and
/// make `spec.address` its only /32.
///
/// A device of that name that exists already is accepted whatever its kind: on a kernel
/// with the ipip driver `tunl0` is created by the driver itself, and test setups bring a
/// stand-in.
pub async fn ensure_tunnel(spec: &TunnelSpec) -> Result<(), FibError> {
    let mut socket = NlSocket::open(&[], 1 << 20)?;
    ensure(&mut socket, spec).await
}

/// The MAC of the VXLAN device called `name` in the calling thread's network
/// namespace; `None`: no such device, or no VXLAN device.
pub async fn vxlan_mac(name: &str) -> Result<Option<[u8; 6]>, FibError> {
    let mut socket = NlSocket::open(&[], 1 << 20)?;
    Ok(find(&mut socket, name)
        .await?
        .and_then(|(_, body)| codec::parse_vxlan(&body)?.mac))
}

/// The device called `name`, with its `RTM_NEWLINK` body.
async fn find(socket: &mut NlSocket, name: &str) -> Result<Option<(Link, Vec<u8>)>, FibError> {
    let mut found = None;
    socket
        .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), |f| {
            if let Some(f) = f {
                if let Some(link) = codec::parse_link(f.payload) {
                    if link.name == name {
                        found = Some((link, f.payload.to_vec()));
                    }
                }
            }
        })
        .await?;
    Ok(found)
}

pub(crate) async fn ensure(socket: &mut NlSocket, spec: &TunnelSpec) -> Result<(), FibError> {
    let mut found = find(socket, &spec.name).await?;
    if let (Some(want), Some((link, body))) = (&spec.vxlan, &found) {
        let have = codec::parse_vxlan(body);
        if !have.is_some_and(|h| h.same_tunnel(want)) {
            // Another kind of device, or a VXLAN one with another VNI, port or local
            // address: it cannot carry this node's tunnel, and changing those needs a new
            // device.
            tracing::warn!(device = %spec.name, found = ?have, want = ?want, "replacing a device that is not the VXLAN tunnel asked for");
            delete(socket, link.index, &spec.name).await?;
            found = None;
        }
    }
    let (link, body) = match found {
        Some(found) => found,
        None => {
            match &spec.vxlan {
                Some(v) => create_vxlan(socket, &spec.name, v, spec.mtu).await?,
                None => create(socket, &spec.name).await?,
            }
            find(socket, &spec.name)
                .await?
                .ok_or_else(|| FibError::NoSuchDevice(spec.name.clone()))?
        }
    };
    let mtu = spec.mtu.filter(|m| *m != link.mtu);
    let mac = spec
        .vxlan
        .map(|v| v.mac)
        .filter(|m| codec::parse_vxlan(&body).and_then(|h| h.mac) != Some(*m));
    if !link.up || mtu.is_some() || mac.is_some() {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        msg.header.flags = vec![LinkFlag::Up];
        msg.header.change_mask = vec![LinkFlag::Up];
        msg.attributes.extend(mtu.map(LinkAttribute::Mtu));
        msg.attributes
            .extend(mac.map(|m| LinkAttribute::Address(m.to_vec())));
        socket
            .request(RouteNetlinkMessage::SetLink(msg), 0)
            .await
            .map_err(|source| FibError::Kernel {
                what: format!("set {} up with MTU {:?}", spec.name, spec.mtu),
                source,
            })?;
    }
    if let Some(address) = spec.address {
        set_address(socket, &spec.name, link.index, address).await?;
    }
    Ok(())
}

async fn create(socket: &mut NlSocket, name: &str) -> Result<(), FibError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::IpTun,
        )]));
    match socket
        .request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        // "Unknown device type": no ipip driver, and none could be loaded.
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(FibError::TunnelUnsupported {
            device: name.to_string(),
        }),
        Err(source) => Err(FibError::Kernel {
            what: format!("create {name} (ipip)"),
            source,
        }),
    }
}

/// A VXLAN device as Calico makes it: `id <vni> dstport <port> local <node> nolearning`,
/// with the node's VTEP MAC.
async fn create_vxlan(
    socket: &mut NlSocket,
    name: &str,
    v: &VxlanDevice,
    mtu: Option<u32>,
) -> Result<(), FibError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes.push(LinkAttribute::Address(v.mac.to_vec()));
    msg.attributes.extend(mtu.map(LinkAttribute::Mtu));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(vec![
            InfoVxlan::Id(v.vni),
            match v.local {
                std::net::IpAddr::V4(a) => InfoVxlan::Local(a.octets().to_vec()),
                std::net::IpAddr::V6(a) => InfoVxlan::Local6(a.octets().to_vec()),
            },
            InfoVxlan::Port(v.port),
            InfoVxlan::Learning(false),
        ])),
    ]));
    match socket
        .request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(FibError::TunnelUnsupported {
            device: name.to_string(),
        }),
        Err(source) => Err(FibError::Kernel {
            what: format!("create {name} (vxlan id {} dstport {})", v.vni, v.port),
            source,
        }),
    }
}

async fn delete(socket: &mut NlSocket, index: u32, name: &str) -> Result<(), FibError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    match socket.request(RouteNetlinkMessage::DelLink(msg), 0).await {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        Err(source) => Err(FibError::Kernel {
            what: format!("delete {name}"),
            source,
        }),
    }
}

fn address_message(index: u32, address: Ipv4Addr) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = 32;
    msg.header.index = index;
    msg.attributes
        .push(AddressAttribute::Local(IpAddr::V4(address)));
    msg.attributes
        .push(AddressAttribute::Address(IpAddr::V4(address)));
    msg
}

/// `address`/32 on the device, and no other /32 (an earlier tunnel address).
///
/// The new address goes on before the old ones go: when a device loses its last IPv4
/// address the kernel flushes every route through it, without a notification, so the
/// tunnel must never be without one while routes go through it.
async fn set_address(
    socket: &mut NlSocket,
    name: &str,
    index: u32,
    address: Ipv4Addr,
) -> Result<(), FibError> {
    let present: Vec<(Ipv4Addr, u8)> = super::kernel::ipv4_addresses(socket)
        .await?
        .into_iter()
        .filter(|(i, _, _)| *i == index)
        .map(|(_, a, len)| (a, len))
        .collect();
    if !present.contains(&(address, 32)) {
        let msg = RouteNetlinkMessage::NewAddress(address_message(index, address));
        socket
            .request(msg, NLM_F_CREATE | NLM_F_REPLACE)
            .await
            .map_err(|source| FibError::Kernel {
                what: format!("add {address}/32 to {name}"),
                source,
            })?;
    }
    for (stale, _) in present
        .iter()
        .filter(|(a, len)| *len == 32 && *a != address)
    {
        let msg = RouteNetlinkMessage::DelAddress(address_message(index, *stale));
        match socket.request(msg, 0).await {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
            Err(source) => {
                return Err(FibError::Kernel {
                    what: format!("remove {stale}/32 from {name}"),
                    source,
                })
            }
        }
    }
    Ok(())
}
