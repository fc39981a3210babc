//! Our routes, links and addresses to and from rtnetlink messages.
//!
//! Routes go through netlink-packet-route in both directions. Links and addresses are read
//! by hand: we need three fields of each, and a newer kernel's unknown attribute must not
//! make a whole device invisible.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlag, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlag, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::frame::{u32_at, Frame};
use crate::fib::{Link, Op};
use crate::{FibError, NextHop, RouteKind};

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFF_UP: u32 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// `rtm_table` when the real table id only fits in `RTA_TABLE`.
const RT_TABLE_UNSPEC: u8 = 0;

/// The attributes of a netlink message body: (type, value).
pub(crate) fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(b.get(2..4)?.try_into().ok()?) & 0x3fff;
        let value = b.get(4..len)?;
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
        Some((kind, value))
    })
}

/// A device from an `RTM_NEWLINK`/`RTM_DELLINK` body.
pub(crate) fn parse_link(payload: &[u8]) -> Option<Link> {
    let index = u32_at(payload, 4)?;
    let flags = u32_at(payload, 8)?;
    let mut name = None;
    let mut mtu = 0;
    for (kind, value) in attributes(payload.get(16..)?) {
        match kind {
            IFLA_IFNAME => {
                let bytes = value.split(|b| *b == 0).next().unwrap_or(value);
                name = Some(String::from_utf8_lossy(bytes).into_owned());
            }
            IFLA_MTU => mtu = u32_at(value, 0).unwrap_or(0),
            _ => {}
        }
    }
    Some(Link {
        name: name?,
        index,
        up: flags & IFF_UP != 0,
        mtu,
    })
}

/// Where a device's other end is, from an `RTM_NEWLINK` body: `IFLA_LINK` (the peer's
/// index) and `IFLA_LINK_NETNSID` (the peer's namespace as the reading socket's namespace
/// numbers it; absent when the peer is in the same namespace).
pub(crate) fn parse_link_peer(payload: &[u8]) -> Option<super::pod::Peer> {
    const IFLA_LINK: u16 = 5;
    const IFLA_LINK_NETNSID: u16 = 37;
    let mut index = None;
    let mut netnsid = None;
    for (kind, value) in attributes(payload.get(16..)?) {
        match kind {
            IFLA_LINK => index = u32_at(value, 0),
            IFLA_LINK_NETNSID => netnsid = u32_at(value, 0).map(|v| v as i32),
            _ => {}
        }
    }
    Some(super::pod::Peer {
        index: index?,
        netnsid,
    })
}

/// The id an `RTM_NEWNSID` body gives a namespace (`NETNSA_NSID`), `None` when it has
/// none (-1: not assigned).
pub(crate) fn parse_nsid(payload: &[u8]) -> Option<i32> {
    const NETNSA_NSID: u16 = 1;
    // struct rtgenmsg, padded to 4 bytes, then the attributes.
    let (_, value) = attributes(payload.get(4..)?).find(|(kind, _)| *kind == NETNSA_NSID)?;
    Some(u32_at(value, 0)? as i32).filter(|id| *id >= 0)
}

/// A VXLAN device's parameters as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VxlanFound {
    pub vni: Option<u32>,
    pub port: Option<u16>,
    pub local: Option<IpAddr>,
    pub mac: Option<[u8; 6]>,
}

impl VxlanFound {
    /// Whether the device carries the tunnel asked for (the MAC can be changed in place).
    pub fn same_tunnel(&self, want: &crate::fib::VxlanDevice) -> bool {
        self.vni == Some(want.vni) && self.port == Some(want.port) && self.local == Some(want.local)
    }
}

/// The VXLAN parameters of an `RTM_NEWLINK` body, or `None` when the device is no VXLAN
/// device.
pub(crate) fn parse_vxlan(payload: &[u8]) -> Option<VxlanFound> {
    const IFLA_ADDRESS: u16 = 1;
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_INFO_KIND: u16 = 1;
    const IFLA_INFO_DATA: u16 = 2;
    const IFLA_VXLAN_ID: u16 = 1;
    const IFLA_VXLAN_LOCAL: u16 = 4;
    const IFLA_VXLAN_PORT: u16 = 15;
    const IFLA_VXLAN_LOCAL6: u16 = 17;
    let mut mac = None;
    let mut info = None;
    for (kind, value) in attributes(payload.get(16..)?) {
        match kind {
            IFLA_ADDRESS => mac = <[u8; 6]>::try_from(value).ok(),
            IFLA_LINKINFO => info = Some(value),
            _ => {}
        }
    }
    let mut is_vxlan = false;
    let mut found = VxlanFound {
        vni: None,
        port: None,
        local: None,
        mac,
    };
    for (kind, value) in attributes(info?) {
        match kind {
            IFLA_INFO_KIND => is_vxlan = value.split(|b| *b == 0).next() == Some(b"vxlan"),
            IFLA_INFO_DATA => {
                for (k, v) in attributes(value) {
                    match k {
                        IFLA_VXLAN_ID => found.vni = u32_at(v, 0),
                        IFLA_VXLAN_LOCAL => {
                            found.local = <[u8; 4]>::try_from(v)
                                .ok()
                                .map(|o| Ipv4Addr::from(o).into())
                        }
                        IFLA_VXLAN_LOCAL6 => {
                            found.local = <[u8; 16]>::try_from(v)
                                .ok()
                                .map(|o| Ipv6Addr::from(o).into())
                        }
                        // Network byte order on the wire.
                        IFLA_VXLAN_PORT => {
                            found.port = <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes)
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    is_vxlan.then_some(found)
}

/// The hardware address (`IFLA_ADDRESS`) of an `RTM_NEWLINK` body, as `aa:bb:…`.
pub(crate) fn parse_link_mac(payload: &[u8]) -> Option<String> {
    const IFLA_ADDRESS: u16 = 1;
    let (_, mac) = attributes(payload.get(16..)?).find(|(kind, _)| *kind == IFLA_ADDRESS)?;
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    Some(parts.join(":"))
}

/// An IPv4 address from an `RTM_NEWADDR` body: (interface index, address, prefix length).
pub(crate) fn parse_ipv4_address(payload: &[u8]) -> Option<(u32, Ipv4Addr, u8)> {
    if *payload.first()? != libc::AF_INET as u8 {
        return None;
    }
    let prefix_len = *payload.get(1)?;
    let index = u32_at(payload, 4)?;
    let mut address = None;
    for (kind, value) in attributes(payload.get(8..)?) {
        let octets: Option<[u8; 4]> = value.try_into().ok();
        match (kind, octets) {
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer's on
            // point-to-point links, and the same as IFA_LOCAL elsewhere.
            (IFA_LOCAL, Some(o)) => address = Some(Ipv4Addr::from(o)),
            (IFA_ADDRESS, Some(o)) if address.is_none() => address = Some(Ipv4Addr::from(o)),
            _ => {}
        }
    }
    Some((index, address?, prefix_len))
}

/// An address of either family from an `RTM_NEWADDR` body: (interface index, address,
/// prefix length).
pub(crate) fn parse_address(payload: &[u8]) -> Option<(u32, IpAddr, u8)> {
    let fam = *payload.first()?;
    let prefix_len = *payload.get(1)?;
    let index = u32_at(payload, 4)?;
    let mut local = None;
    let mut address = None;
    for (kind, value) in attributes(payload.get(8..)?) {
        let ip = if fam == libc::AF_INET as u8 {
            <[u8; 4]>::try_from(value).ok().map(IpAddr::from)
        } else if fam == libc::AF_INET6 as u8 {
            <[u8; 16]>::try_from(value).ok().map(IpAddr::from)
        } else {
            None
        };
        match kind {
            IFA_LOCAL => local = local.or(ip),
            IFA_ADDRESS => address = address.or(ip),
            _ => {}
        }
    }
    Some((index, local.or(address)?, prefix_len))
}

/// A route's table: `RTA_TABLE` when present (tables above 255 need it), else the header's.
fn table_of(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

/// A main-table route through device `index`, as the CNI plugin checks them.
pub(crate) fn link_route(msg: &RouteMessage, index: u32) -> Option<super::pod::LinkRoute> {
    let h = &msg.header;
    let table = table_of(msg);
    let oif = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })?;
    if table != 254 || oif != index || h.kind != RouteType::Unicast {
        return None;
    }
    let dst = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(d) => address(d),
            _ => None,
        })
        .unwrap_or(match h.address_family {
            AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
            _ => IpAddr::from([0u8; 4]),
        });
    let destination = IpNet::new(dst, h.destination_prefix_length).ok()?;
    Some(super::pod::LinkRoute {
        destination,
        gateway: gateway(&msg.attributes),
    })
}

/// A route message as the installer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedRoute {
    pub prefix: IpNet,
    pub table: u32,
    pub protocol: u8,
    /// `None`: a shape ipipd never writes.
    pub kind: Option<RouteKind>,
}

/// Decode a whole route message frame (header included).
pub(crate) fn decode_route(frame: &Frame<'_>) -> Result<RouteMessage, FibError> {
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(frame.whole)
        .map_err(|e| FibError::Decode(e.to_string()))?;
    match msg.payload {
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r),
        ) => Ok(r),
        other => Err(FibError::Decode(format!("expected a route, got {other:?}"))),
    }
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn gateway(attrs: &[RouteAttribute]) -> Option<IpAddr> {
    attrs.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => address(g),
        _ => None,
    })
}

/// What a route message says, in our terms; `None` for families we do not handle.
pub(crate) fn parse_route(msg: &RouteMessage, names: &HashMap<u32, String>) -> Option<ParsedRoute> {
    let h = &msg.header;
    let dst = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => address(d),
        _ => None,
    });
    let prefix = match (h.address_family, dst) {
        (AddressFamily::Inet, Some(IpAddr::V4(a))) => {
            IpNet::new(a.into(), h.destination_prefix_length)
        }
        (AddressFamily::Inet, None) => IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        (AddressFamily::Inet6, Some(IpAddr::V6(a))) => {
            IpNet::new(a.into(), h.destination_prefix_length)
        }
        (AddressFamily::Inet6, None) => IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        _ => return None,
    }
    .ok()?;
    let table = table_of(msg);
    let name = |index: u32| {
        names
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("if{index}"))
    };
    let plain = h.source_prefix_length == 0 && h.tos == 0;
    let kind = match h.kind {
        RouteType::BlackHole if plain => Some(RouteKind::Blackhole),
        RouteType::Unicast if plain => unicast_kind(msg, &name),
        _ => None,
    };
    Some(ParsedRoute {
        prefix,
        table,
        protocol: u8::from(h.protocol),
        kind,
    })
}

fn unicast_kind(msg: &RouteMessage, name: &dyn Fn(u32) -> String) -> Option<RouteKind> {
    let h = &msg.header;
    let oif = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    });
    let multipath = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::MultiPath(hops) => Some(hops),
        _ => None,
    });
    if let Some(hops) = multipath {
        let hops = hops
            .iter()
            .map(|nh| {
                Some(NextHop {
                    gateway: gateway(&nh.attributes)?,
                    device: (nh.interface_index != 0).then(|| name(nh.interface_index)),
                    onlink: nh.flags.contains(&RouteNextHopFlag::Onlink),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        return Some(RouteKind::Via(hops));
    }
    if let Some(gw) = gateway(&msg.attributes) {
        return Some(RouteKind::Via(vec![NextHop {
            gateway: gw,
            device: oif.map(name),
            onlink: h.flags.contains(&RouteFlag::Onlink),
        }]));
    }
    // IPv6 routes carry no meaningful scope; an IPv4 device route must be scope link.
    let link_scoped = h.address_family == AddressFamily::Inet6 || h.scope == RouteScope::Link;
    match oif {
        Some(i) if link_scoped => Some(RouteKind::Link { device: name(i) }),
        _ => None,
    }
}

fn family(prefix: &IpNet) -> AddressFamily {
    match prefix {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

fn route_address(a: IpAddr) -> RouteAddress {
    match a {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

fn header(prefix: &IpNet, protocol: u8, table: u32) -> RouteHeader {
    RouteHeader {
        address_family: family(prefix),
        destination_prefix_length: prefix.prefix_len(),
        table: u8::try_from(table).unwrap_or(RT_TABLE_UNSPEC),
        protocol: RouteProtocol::from(protocol),
        ..RouteHeader::default()
    }
}

fn route_message(header: RouteHeader, attributes: Vec<RouteAttribute>) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header = header;
    msg.attributes = attributes;
    msg
}

/// The request for one op: `RTM_NEWROUTE` (to be sent with create|replace) or
/// `RTM_DELROUTE`. Fails when a device the route names does not exist.
pub(crate) fn route_request(
    op: &Op,
    protocol: u8,
    table: u32,
    index_of: &dyn Fn(&str) -> Option<u32>,
) -> Result<RouteNetlinkMessage, FibError> {
    let index = |name: &str| index_of(name).ok_or_else(|| FibError::NoSuchDevice(name.to_string()));
    let prefix = op.prefix();
    let mut h = header(&prefix, protocol, table);
    let mut attrs = vec![
        RouteAttribute::Table(table),
        RouteAttribute::Destination(route_address(prefix.network())),
    ];
    let route = match op {
        Op::Delete(_) => {
            // Match any of our routes for the prefix, whatever its type and scope.
            h.scope = RouteScope::NoWhere;
            h.kind = RouteType::Unspec;
            return Ok(RouteNetlinkMessage::DelRoute(route_message(h, attrs)));
        }
        Op::Write(route) => route,
    };
    match &route.kind {
        RouteKind::Blackhole => {
            h.kind = RouteType::BlackHole;
        }
        RouteKind::Link { device } => {
            h.kind = RouteType::Unicast;
            h.scope = RouteScope::Link;
            attrs.push(RouteAttribute::Oif(index(device)?));
        }
        RouteKind::Via(hops) if hops.len() == 1 => {
            h.kind = RouteType::Unicast;
            for hop in hops {
                attrs.push(RouteAttribute::Gateway(route_address(hop.gateway)));
                if let Some(dev) = &hop.device {
                    attrs.push(RouteAttribute::Oif(index(dev)?));
                }
                if hop.onlink {
                    h.flags.push(RouteFlag::Onlink);
                }
            }
        }
        RouteKind::Via(hops) => {
            h.kind = RouteType::Unicast;
            let mut nexthops = Vec::with_capacity(hops.len());
            for hop in hops {
                let mut nh = RouteNextHop::default();
                if hop.onlink {
                    nh.flags.push(RouteNextHopFlag::Onlink);
                }
                if let Some(dev) = &hop.device {
                    nh.interface_index = index(dev)?;
                }
                nh.attributes
                    .push(RouteAttribute::Gateway(route_address(hop.gateway)));
                nexthops.push(nh);
            }
            attrs.push(RouteAttribute::MultiPath(nexthops));
        }
    }
    Ok(RouteNetlinkMessage::NewRoute(route_message(h, attrs)))
}

/// A dump request for our routes of one family: the kernel filters by protocol and table.
pub(crate) fn route_dump(ipv6: bool, protocol: u8, table: u32) -> RouteNetlinkMessage {
    let prefix = if ipv6 {
        IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0)
    } else {
        IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0)
    };
    let prefix = prefix.unwrap_or_default();
    let mut h = header(&prefix, protocol, table);
    h.destination_prefix_length = 0;
    let attributes = if table > u32::from(u8::MAX) {
        vec![RouteAttribute::Table(table)]
    } else {
        vec![]
    };
    RouteNetlinkMessage::GetRoute(route_message(h, attributes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Route;

    fn names() -> HashMap<u32, String> {
        [(7, "tunl0".to_string()), (9, "cali1".to_string())]
            .into_iter()
            .collect()
    }
    fn index_of(name: &str) -> Option<u32> {
        names().into_iter().find(|(_, n)| n == name).map(|(i, _)| i)
    }

    fn round_trip(route: Route) {
        let msg = route_request(&Op::Write(route.clone()), 186, 254, &index_of).expect("encodes");
        let RouteNetlinkMessage::NewRoute(rm) = msg else {
            panic!("not a new route: {msg:?}")
        };
        let parsed = parse_route(&rm, &names()).expect("parses");
        assert_eq!(parsed.prefix, route.prefix);
        assert_eq!((parsed.table, parsed.protocol), (254, 186));
        assert_eq!(parsed.kind, Some(route.kind));
    }

    #[test]
    fn every_kind_round_trips() {
        let tun = |gw: &str| NextHop {
            gateway: gw.parse().expect("addr"),
            device: Some("tunl0".into()),
            onlink: true,
        };
        round_trip(Route {
            prefix: "10.1.0.0/26".parse().expect("net"),
            kind: RouteKind::Via(vec![tun("192.168.0.2")]),
        });
        round_trip(Route {
            prefix: "10.1.0.0/26".parse().expect("net"),
            kind: RouteKind::Via(vec![tun("192.168.0.2"), tun("192.168.0.3")]),
        });
        round_trip(Route {
            prefix: "10.0.0.0/26".parse().expect("net"),
            kind: RouteKind::Blackhole,
        });
        round_trip(Route {
            prefix: "10.0.0.5/32".parse().expect("net"),
            kind: RouteKind::Link {
                device: "cali1".into(),
            },
        });
        round_trip(Route {
            prefix: "fd00:2::/122".parse().expect("net"),
            kind: RouteKind::Via(vec![NextHop {
                gateway: "fd00::2".parse().expect("addr"),
                device: None,
                onlink: false,
            }]),
        });
    }

    fn hop() -> impl proptest::strategy::Strategy<Value = NextHop> {
        use proptest::prelude::*;
        (
            any::<u32>(),
            prop_oneof![Just(None), Just(Some("tunl0")), Just(Some("cali1"))],
            any::<bool>(),
        )
            .prop_map(|(gw, dev, onlink)| NextHop {
                gateway: IpAddr::V4(Ipv4Addr::from(gw)),
                device: dev.map(str::to_string),
                onlink,
            })
    }

    proptest::proptest! {
        #[test]
        fn any_ipv4_route_round_trips(
            addr in proptest::prelude::any::<u32>(),
            len in 0u8..=32,
            hops in proptest::collection::vec(hop(), 1..4),
        ) {
            let prefix = IpNet::new(IpAddr::V4(Ipv4Addr::from(addr)), len).expect("valid").trunc();
            round_trip(Route { prefix, kind: RouteKind::Via(hops) });
        }
    }

    #[test]
    fn unknown_device_is_refused_before_sending() {
        let route = Route {
            prefix: "10.0.0.5/32".parse().expect("net"),
            kind: RouteKind::Link {
                device: "nope".into(),
            },
        };
        let err = route_request(&Op::Write(route), 186, 254, &index_of).expect_err("no device");
        assert!(matches!(err, FibError::NoSuchDevice(d) if d == "nope"));
    }

    #[test]
    fn big_table_ids_go_in_the_attribute() {
        let msg = route_request(
            &Op::Delete("10.0.0.0/26".parse().expect("net")),
            186,
            1000,
            &index_of,
        )
        .expect("encodes");
        let RouteNetlinkMessage::DelRoute(rm) = msg else {
            panic!("not a delete")
        };
        assert_eq!(rm.header.table, RT_TABLE_UNSPEC);
        assert_eq!(parse_route(&rm, &names()).map(|p| p.table), Some(1000));
    }

    #[test]
    fn link_bodies_parse_by_hand() {
        let mut body = vec![0u8; 16];
        body[4..8].copy_from_slice(&5u32.to_ne_bytes());
        body[8..12].copy_from_slice(&(IFF_UP | 0x40).to_ne_bytes());
        body.extend_from_slice(&10u16.to_ne_bytes());
        body.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        body.extend_from_slice(b"tunl0\0\0\0");
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&IFLA_MTU.to_ne_bytes());
        body.extend_from_slice(&1480u32.to_ne_bytes());
        assert_eq!(
            parse_link(&body),
            Some(Link {
                name: "tunl0".into(),
                index: 5,
                up: true,
                mtu: 1480
            })
        );
        assert_eq!(parse_link(&body[..10]), None);
    }

    #[test]
    fn a_veth_peer_and_a_namespace_id_parse_by_hand() {
        let attr = |body: &mut Vec<u8>, kind: u16, value: i32| {
            body.extend_from_slice(&8u16.to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(&value.to_ne_bytes());
        };
        let mut body = vec![0u8; 16];
        attr(&mut body, 5, 2); // IFLA_LINK
        attr(&mut body, 37, 0); // IFLA_LINK_NETNSID
        assert_eq!(
            parse_link_peer(&body),
            Some(super::super::pod::Peer {
                index: 2,
                netnsid: Some(0)
            })
        );
        // A device whose peer is in the same namespace, and one without a peer.
        assert_eq!(parse_link_peer(&body[..24]).map(|p| p.netnsid), Some(None));
        assert_eq!(parse_link_peer(&body[..16]), None);

        let mut nsid = vec![0u8; 4];
        attr(&mut nsid, 1, 3); // NETNSA_NSID
        assert_eq!(parse_nsid(&nsid), Some(3));
        let mut unassigned = vec![0u8; 4];
        attr(&mut unassigned, 1, -1);
        assert_eq!(parse_nsid(&unassigned), None);
        assert_eq!(parse_nsid(&[]), None);
    }
}
