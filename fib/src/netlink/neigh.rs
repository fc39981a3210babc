//! The VXLAN devices' neighbour (IPv4 or IPv6) and FDB (`AF_BRIDGE`) entries over rtnetlink.
//!
//! Read by hand, like links: four fields of each entry are needed. Written with
//! netlink-packet-route's neighbour message.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlag, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::codec::attributes;
use super::frame::u32_at;
use super::socket::NlSocket;
use crate::vtep::{FdbEntry, NeighEntry, VtepOp, VtepTable};
use crate::FibError;

pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_PERMANENT: u16 = 0x80;
const AF_BRIDGE: u8 = 7;

/// One entry from an `RTM_NEWNEIGH` body: (family, interface index, state, destination,
/// link-layer address).
struct Parsed {
    family: u8,
    index: u32,
    state: u16,
    dst: Option<IpAddr>,
    mac: Option<[u8; 6]>,
}

fn parse(payload: &[u8]) -> Option<Parsed> {
    let family = *payload.first()?;
    let index = u32_at(payload, 4)?;
    let state = u16::from_ne_bytes(payload.get(8..10)?.try_into().ok()?);
    let mut dst = None;
    let mut mac = None;
    for (kind, value) in attributes(payload.get(12..)?) {
        match kind {
            NDA_DST => {
                dst = match value.len() {
                    4 => <[u8; 4]>::try_from(value)
                        .ok()
                        .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
                    16 => <[u8; 16]>::try_from(value)
                        .ok()
                        .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
                    _ => None,
                }
            }
            NDA_LLADDR => mac = <[u8; 6]>::try_from(value).ok(),
            _ => {}
        }
    }
    Some(Parsed {
        family,
        index,
        state,
        dst,
        mac,
    })
}

/// The interface index of a neighbour notification, whatever its family.
pub(crate) fn notified_index(payload: &[u8]) -> Option<u32> {
    u32_at(payload, 4)
}

/// The neighbour and FDB entries of the device with this index.
pub(crate) async fn read(socket: &mut NlSocket, index: u32) -> Result<VtepTable, FibError> {
    let mut table = VtepTable::default();
    for family in [
        AddressFamily::Inet,
        AddressFamily::Inet6,
        AddressFamily::Bridge,
    ] {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family;
        let mut found = Vec::new();
        socket
            .dump(RouteNetlinkMessage::GetNeighbour(msg), |f| match f {
                Some(f) => found.extend(parse(f.payload).filter(|p| p.index == index)),
                None => found.clear(),
            })
            .await?;
        for p in found {
            let permanent = p.state & NUD_PERMANENT != 0;
            if p.family == AF_BRIDGE {
                if let Some(mac) = p.mac {
                    table.fdb.push(FdbEntry {
                        mac,
                        dst: p.dst,
                        permanent,
                    });
                }
            } else if let Some(ip) = p.dst {
                table.neigh.push(NeighEntry {
                    ip,
                    mac: p.mac,
                    permanent,
                });
            }
        }
    }
    Ok(table)
}

fn message(family: AddressFamily, index: u32) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.kind = RouteType::Unspec;
    msg
}

fn dst(ip: IpAddr) -> NeighbourAttribute {
    NeighbourAttribute::Destination(match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    })
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn request(op: &VtepOp, index: u32) -> (RouteNetlinkMessage, u16) {
    let replace = NLM_F_CREATE | NLM_F_REPLACE;
    match *op {
        VtepOp::SetNeigh { ip, mac } => {
            let mut msg = message(family_of(ip), index);
            msg.attributes.push(dst(ip));
            msg.attributes
                .push(NeighbourAttribute::LinkLocalAddress(mac.to_vec()));
            (RouteNetlinkMessage::NewNeighbour(msg), replace)
        }
        VtepOp::DelNeigh { ip } => {
            let mut msg = message(family_of(ip), index);
            msg.attributes.push(dst(ip));
            (RouteNetlinkMessage::DelNeighbour(msg), 0)
        }
        VtepOp::SetFdb { mac, dst: remote } => {
            let mut msg = message(AddressFamily::Bridge, index);
            // NTF_SELF: the entry goes in the VXLAN device's own table.
            msg.header.flags = vec![NeighbourFlag::Own];
            msg.attributes
                .push(NeighbourAttribute::LinkLocalAddress(mac.to_vec()));
            msg.attributes.push(dst(remote));
            (RouteNetlinkMessage::NewNeighbour(msg), replace)
        }
        VtepOp::DelFdb { mac, dst: remote } => {
            let mut msg = message(AddressFamily::Bridge, index);
            msg.header.flags = vec![NeighbourFlag::Own];
            msg.attributes
                .push(NeighbourAttribute::LinkLocalAddress(mac.to_vec()));
            msg.attributes.push(dst(remote));
            (RouteNetlinkMessage::DelNeighbour(msg), 0)
        }
    }
}

/// Apply the ops one by one (a handful per node: no batching needed).
pub(crate) async fn apply(
    socket: &mut NlSocket,
    index: u32,
    ops: &[VtepOp],
) -> Vec<Result<(), FibError>> {
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let (msg, flags) = request(op, index);
        let result = match socket.request(msg, flags).await {
            Ok(()) => Ok(()),
            Err(e) if !op.is_write() && gone(&e) => Ok(()),
            Err(source) => Err(FibError::Kernel {
                what: format!("{op:?}"),
                source,
            }),
        };
        results.push(result);
    }
    results
}

fn gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_fdb_entry_body_parses_by_hand() {
        // ndmsg: family 7, ifindex 5, state 0x80, flags NTF_SELF, type 0; then NDA_LLADDR
        // and NDA_DST.
        let mut body = vec![7, 0, 0, 0];
        body.extend(5u32.to_ne_bytes());
        body.extend(0x80u16.to_ne_bytes());
        body.extend([2, 0]);
        body.extend(10u16.to_ne_bytes());
        body.extend(NDA_LLADDR.to_ne_bytes());
        body.extend([0x66, 0x78, 10, 0, 0, 2, 0, 0]);
        body.extend(8u16.to_ne_bytes());
        body.extend(NDA_DST.to_ne_bytes());
        body.extend([10, 0, 0, 2]);
        let p = parse(&body).expect("parses");
        assert_eq!((p.family, p.index, p.state), (7, 5, 0x80));
        assert_eq!(p.mac, Some([0x66, 0x78, 10, 0, 0, 2]));
        assert_eq!(p.dst, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        assert!(parse(&body[..6]).is_none());
    }
}
