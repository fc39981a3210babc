//! Prefixes as they travel in the NLRI and Withdrawn Routes fields (RFC 4271 §4.3) and in
//! MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760 §5), with the ADD-PATH path identifier
//! (RFC 7911 §3) when negotiated for the family.
//!
//! ```text
//! +--------------------------------+
//! | Path Identifier (4 octets)     |   (only with ADD-PATH)
//! +--------------------------------+
//! | Length (1 octet)               |
//! +--------------------------------+
//! | Prefix (variable)              |
//! +--------------------------------+
//! ```
//!
//! Bits past the prefix length are cleared on decode (RFC 4271 §4.3 says they are
//! irrelevant), so equal routes compare equal; the encoder clears them too.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use nom::bytes::complete::take;
use nom::number::complete::{be_u32, be_u8};
use nom::IResult;

use super::AfiSafi;

/// One route key: a prefix and, with ADD-PATH, its path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    pub path_id: Option<u32>,
    pub prefix: IpNet,
}

impl Nlri {
    /// A prefix without path identifier (host bits cleared).
    pub fn new(prefix: IpNet) -> Nlri {
        Nlri {
            path_id: None,
            prefix: prefix.trunc(),
        }
    }

    pub fn with_path_id(prefix: IpNet, path_id: u32) -> Nlri {
        Nlri {
            path_id: Some(path_id),
            prefix: prefix.trunc(),
        }
    }

    pub fn family(&self) -> AfiSafi {
        AfiSafi::of(&self.prefix)
    }

    /// Octets this NLRI takes on the wire.
    pub fn encoded_len(&self, add_path: bool) -> usize {
        let bytes = usize::from(self.prefix.prefix_len()).div_ceil(8);
        1 + bytes + if add_path { 4 } else { 0 }
    }

    pub(super) fn encode(&self, add_path: bool, out: &mut BytesMut) {
        if add_path {
            out.put_u32(self.path_id.unwrap_or(0));
        }
        let len = self.prefix.prefix_len();
        let bytes = usize::from(len).div_ceil(8);
        out.put_u8(len);
        match self.prefix.trunc() {
            IpNet::V4(n) => out.put_slice(n.addr().octets().get(..bytes).unwrap_or_default()),
            IpNet::V6(n) => out.put_slice(n.addr().octets().get(..bytes).unwrap_or_default()),
        }
    }
}

impl std::fmt::Display for Nlri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.path_id {
            Some(id) => write!(f, "{} path-id {id}", self.prefix),
            None => write!(f, "{}", self.prefix),
        }
    }
}

/// Address families whose prefixes ipipd can parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ip {
    V4,
    V6,
}

impl Ip {
    pub(super) fn of(f: AfiSafi) -> Option<Ip> {
        match f {
            AfiSafi::IPV4_UNICAST => Some(Ip::V4),
            AfiSafi::IPV6_UNICAST => Some(Ip::V6),
            _ => None,
        }
    }

    fn max_len(self) -> u8 {
        match self {
            Ip::V4 => 32,
            Ip::V6 => 128,
        }
    }

    fn matches(self, p: &IpNet) -> bool {
        matches!((self, p), (Ip::V4, IpNet::V4(_)) | (Ip::V6, IpNet::V6(_)))
    }
}

fn one(ip: Ip, add_path: bool) -> impl Fn(&[u8]) -> IResult<&[u8], Nlri> {
    move |i| {
        let (i, path_id) = if add_path {
            let (i, id) = be_u32(i)?;
            (i, Some(id))
        } else {
            (i, None)
        };
        let (i, len) = be_u8(i)?;
        if len > ip.max_len() {
            return Err(nom::Err::Failure(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Verify,
            )));
        }
        let (i, bytes) = take(usize::from(len).div_ceil(8))(i)?;
        let prefix = match ip {
            Ip::V4 => {
                let mut a = [0u8; 4];
                a.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
                Ipv4Net::new(Ipv4Addr::from(a), len).map(|n| IpNet::V4(n.trunc()))
            }
            Ip::V6 => {
                let mut a = [0u8; 16];
                a.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
                Ipv6Net::new(Ipv6Addr::from(a), len).map(|n| IpNet::V6(n.trunc()))
            }
        };
        let prefix = prefix.map_err(|_| {
            nom::Err::Failure(nom::error::Error::new(i, nom::error::ErrorKind::Verify))
        })?;
        Ok((i, Nlri { path_id, prefix }))
    }
}

/// Parses a whole field of prefixes. `Err(())` if a length is too large for the family or
/// the last prefix runs past the field (RFC 7606 §5.3 "syntactically incorrect").
pub(super) fn decode_list(mut i: &[u8], ip: Ip, add_path: bool) -> Result<Vec<Nlri>, ()> {
    let parse = one(ip, add_path);
    let mut out = Vec::new();
    while !i.is_empty() {
        let (rest, n) = parse(i).map_err(|_| ())?;
        out.push(n);
        i = rest;
    }
    Ok(out)
}

/// Encodes the prefixes of `ip`'s family; others are skipped (they cannot be represented
/// in this field).
pub(super) fn encode_list(list: &[Nlri], ip: Ip, add_path: bool, out: &mut BytesMut) {
    for n in list.iter().filter(|n| ip.matches(&n.prefix)) {
        n.encode(add_path, out);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_and_ipv6_round_trip() {
        let v4 = vec![
            Nlri::new(net("101.76.9.128/26")),
            Nlri::new(net("0.0.0.0/0")),
            Nlri::new(net("10.1.2.3/32")),
        ];
        let mut b = BytesMut::new();
        encode_list(&v4, Ip::V4, false, &mut b);
        assert_eq!(&b[..], &[26, 101, 76, 9, 128, 0, 32, 10, 1, 2, 3]);
        assert_eq!(decode_list(&b, Ip::V4, false), Ok(v4));

        let v6 = vec![
            Nlri::with_path_id(net("fd00:1::40/122"), 7),
            Nlri::with_path_id(net("::/0"), 0),
        ];
        let mut b = BytesMut::new();
        encode_list(&v6, Ip::V6, true, &mut b);
        assert_eq!(b.len(), 4 + 1 + 16 + 4 + 1);
        assert_eq!(decode_list(&b, Ip::V6, true), Ok(v6));
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(
            decode_list(&[26, 10, 0, 0, 0xff], Ip::V4, false),
            Ok(vec![Nlri::new(net("10.0.0.192/26"))])
        );
    }

    #[test]
    fn bad_fields() {
        assert_eq!(decode_list(&[33, 1, 2, 3, 4, 5], Ip::V4, false), Err(()));
        assert_eq!(decode_list(&[24, 1, 2], Ip::V4, false), Err(()));
        assert_eq!(decode_list(&[0, 0, 0], Ip::V4, true), Err(()));
        let mut v6 = vec![129];
        v6.extend_from_slice(&[0; 17]);
        assert_eq!(decode_list(&v6, Ip::V6, false), Err(()));
    }
}
