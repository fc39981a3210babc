//! A pod's network interface, as the CNI plugin makes it: a veth pair whose host end is
//! `cali…` and whose other end is the pod's interface inside its network namespace.
//!
//! [`PodNetlink`] is one blocking rtnetlink socket bound to the network namespace of the
//! thread that opened it; the plugin opens one on the host and one in the pod's namespace
//! and then works with both from the same thread. Blocking: the plugin is one process per
//! call with nothing else to wait for, and so needs no runtime (the crate builds without
//! tokio for it).

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlag, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlag, LinkInfo, LinkMessage,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::blocking::BlockingSocket;
use super::codec;
use crate::fib::Link;
use crate::FibError;

/// One route of a pod's interface as the plugin writes and checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRoute {
    pub destination: IpNet,
    /// `None`: `scope link` (directly on the device).
    pub gateway: Option<IpAddr>,
}

pub struct PodNetlink {
    socket: BlockingSocket,
}

/// The other end of a veth (or the lower device of a tunnel), as its own device sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its index, in its own namespace.
    pub index: u32,
    /// Its namespace's id in the asking socket's namespace; `None` when it is the same
    /// namespace.
    pub netnsid: Option<i32>,
}

fn kernel(what: String) -> impl FnOnce(std::io::Error) -> FibError {
    move |source| FibError::Kernel { what, source }
}

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

impl PodNetlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<PodNetlink, FibError> {
        Ok(PodNetlink {
            socket: BlockingSocket::open(1 << 20)?,
        })
    }

    /// The device called `name`, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, FibError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let reply = self.socket.get(RouteNetlinkMessage::GetLink(msg));
        match reply {
            Ok(payload) => Ok(payload.as_deref().and_then(codec::parse_link)),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(kernel(format!("look up {name}"))(e)),
        }
    }

    /// The hardware address of the device called `name`, as `aa:bb:cc:dd:ee:ff`.
    pub fn mac(&mut self, name: &str) -> Result<Option<String>, FibError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.socket.get(RouteNetlinkMessage::GetLink(msg)) {
            Ok(payload) => Ok(payload.as_deref().and_then(codec::parse_link_mac)),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(kernel(format!("look up {name}"))(e)),
        }
    }

    /// The device called `name` and where its peer is (`None` for a device without one).
    pub fn link_peer(&mut self, name: &str) -> Result<Option<(Link, Option<Peer>)>, FibError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.socket.get(RouteNetlinkMessage::GetLink(msg)) {
            Ok(payload) => Ok(payload
                .as_deref()
                .and_then(|p| codec::parse_link(p).map(|link| (link, codec::parse_link_peer(p))))),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(kernel(format!("look up {name}"))(e)),
        }
    }

    /// The id this socket's namespace gives the namespace `ns` (what a device's
    /// [`Peer::netnsid`] holds when its peer is there); `None` when it has none yet: the
    /// kernel gives one when a device's peer is first reported, so read the device first.
    pub fn netns_id(&mut self, ns: &File) -> Result<Option<i32>, FibError> {
        let mut msg = NsidMessage::default();
        msg.attributes
            .push(NsidAttribute::Fd(ns.as_raw_fd() as u32));
        match self.socket.get(RouteNetlinkMessage::GetNsId(msg)) {
            Ok(payload) => Ok(payload.as_deref().and_then(codec::parse_nsid)),
            Err(e) => Err(kernel("look up a namespace's id".to_string())(e)),
        }
    }

    /// Creates the veth pair `host` ↔ `peer`, with `peer` made directly inside the network
    /// namespace `peer_netns`, both ends with `mtu`, the host end with `host_mac`.
    /// Fails with EEXIST (as a [`FibError::Kernel`]) when either name is taken.
    pub fn create_veth(
        &mut self,
        host: &str,
        host_mac: [u8; 6],
        peer: &str,
        peer_netns: &File,
        mtu: u32,
    ) -> Result<(), FibError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes
            .push(LinkAttribute::Address(host_mac.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.socket
            .request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(kernel(format!("create veth {host} / {peer}")))
    }

    /// Sets a device up (and its MTU, if given).
    pub fn set_up(&mut self, link: &Link, mtu: Option<u32>) -> Result<(), FibError> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        msg.header.flags = vec![LinkFlag::Up];
        msg.header.change_mask = vec![LinkFlag::Up];
        msg.attributes.extend(mtu.map(LinkAttribute::Mtu));
        self.socket
            .request(RouteNetlinkMessage::SetLink(msg), 0)
            .map_err(kernel(format!("set {} up", link.name)))
    }

    /// Deletes a device (a veth takes its peer with it); `false` when there was none.
    pub fn delete_link(&mut self, name: &str) -> Result<bool, FibError> {
        let Some(link) = self.link(name)? else {
            return Ok(false);
        };
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        match self.socket.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(kernel(format!("delete {name}"))(e)),
        }
    }

    /// Gives the device `address` as a host address (/32 or /128).
    pub fn add_host_address(&mut self, link: &Link, address: IpAddr) -> Result<(), FibError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(&address);
        msg.header.prefix_len = if address.is_ipv4() { 32 } else { 128 };
        msg.header.index = link.index;
        msg.attributes.push(AddressAttribute::Local(address));
        msg.attributes.push(AddressAttribute::Address(address));
        if address.is_ipv6() {
            // The address is the pod's alone (the daemon allocated it): duplicate address
            // detection would only hold the pod's first packets back for a second or two.
            msg.attributes
                .push(AddressAttribute::Flags(vec![AddressFlag::Nodad]));
        }
        match self.socket.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(kernel(format!("add {address} to {}", link.name))(e)),
        }
    }

    /// The host addresses (/32, /128) of a device.
    pub fn host_addresses(&mut self, link: &Link) -> Result<Vec<IpAddr>, FibError> {
        let mut out = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = AddressMessage::default();
            msg.header.family = fam;
            self.socket
                .dump(RouteNetlinkMessage::GetAddress(msg), |f| match f {
                    Some(f) => out.extend(
                        codec::parse_address(f.payload)
                            .filter(|(i, a, len)| {
                                *i == link.index
                                    && (*len == 32 && a.is_ipv4() || *len == 128 && a.is_ipv6())
                            })
                            .map(|(_, a, _)| a),
                    ),
                    None => out.clear(),
                })?;
        }
        Ok(out)
    }

    /// Writes a route on `link` (create or replace), in the main table, with `protocol`.
    pub fn add_route(
        &mut self,
        link: &Link,
        route: &LinkRoute,
        protocol: u8,
    ) -> Result<(), FibError> {
        let dst = route.destination;
        let mut header = RouteHeader {
            address_family: family(&dst.addr()),
            destination_prefix_length: dst.prefix_len(),
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::from(protocol),
            scope: if route.gateway.is_some() {
                RouteScope::Universe
            } else {
                RouteScope::Link
            },
            kind: RouteType::Unicast,
            ..RouteHeader::default()
        };
        if dst.prefix_len() == 0 {
            header.destination_prefix_length = 0;
        }
        let mut msg = RouteMessage::default();
        msg.header = header;
        if dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(route_address(dst.network())));
        }
        msg.attributes.extend(
            route
                .gateway
                .map(|g| RouteAttribute::Gateway(route_address(g))),
        );
        msg.attributes.push(RouteAttribute::Oif(link.index));
        self.socket
            .request(
                RouteNetlinkMessage::NewRoute(msg),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map_err(kernel(format!("add route {dst} on {}", link.name)))
    }

    /// The main table's routes through `link`.
    pub fn routes(&mut self, link: &Link) -> Result<Vec<LinkRoute>, FibError> {
        let mut out = Vec::new();
        for ipv6 in [false, true] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = if ipv6 {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            };
            self.socket
                .dump(RouteNetlinkMessage::GetRoute(msg), |f| match f {
                    Some(f) => {
                        if let Ok(r) = codec::decode_route(f) {
                            out.extend(codec::link_route(&r, link.index));
                        }
                    }
                    None => out.clear(),
                })?;
        }
        Ok(out)
    }
}
