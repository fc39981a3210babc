//! Hand-built BGP bytes, including the malformed kinds the codec would never write.
//!
//! Every function returns plain bytes so a test can cut, pad or corrupt them before
//! sending. Lengths that do not fit their field are cut to the field's width on purpose:
//! such messages are what the hostile tests are about.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Attribute flags.
pub const OPTIONAL: u8 = 0x80;
pub const TRANSITIVE: u8 = 0x40;
pub const PARTIAL: u8 = 0x20;
pub const EXTENDED: u8 = 0x10;
/// Well-known (transitive, not optional).
pub const WK: u8 = TRANSITIVE;
/// Optional non-transitive.
pub const ONT: u8 = OPTIONAL;
/// Optional transitive.
pub const OT: u8 = OPTIONAL | TRANSITIVE;

/// Attribute type codes.
pub const ORIGIN: u8 = 1;
pub const AS_PATH: u8 = 2;
pub const NEXT_HOP: u8 = 3;
pub const MED: u8 = 4;
pub const LOCAL_PREF: u8 = 5;
pub const ATOMIC_AGGREGATE: u8 = 6;
pub const AGGREGATOR: u8 = 7;
pub const COMMUNITIES: u8 = 8;
pub const ORIGINATOR_ID: u8 = 9;
pub const CLUSTER_LIST: u8 = 10;
pub const MP_REACH: u8 = 14;
pub const MP_UNREACH: u8 = 15;
pub const EXT_COMMUNITIES: u8 = 16;
pub const AS4_PATH: u8 = 17;
pub const AS4_AGGREGATOR: u8 = 18;
pub const LARGE_COMMUNITY: u8 = 32;

/// Message types.
pub const OPEN: u8 = 1;
pub const UPDATE: u8 = 2;
pub const NOTIFICATION: u8 = 3;
pub const KEEPALIVE: u8 = 4;
pub const ROUTE_REFRESH: u8 = 5;

fn be16(v: usize) -> [u8; 2] {
    u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes()
}

/// A whole message: marker, length (header included), type, body.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    message_with_len(kind, body, 19 + body.len())
}

/// A message whose length field says `len`, whatever the body is.
pub fn message_with_len(kind: u8, body: &[u8], len: usize) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&be16(len));
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// An UPDATE from its three fields; the two length fields are computed.
pub fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + withdrawn.len() + attrs.len() + nlri.len());
    b.extend_from_slice(&be16(withdrawn.len()));
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&be16(attrs.len()));
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    message(UPDATE, &b)
}

/// One path attribute; the two-octet length is used when `flags` has E or the value
/// is longer than 255 octets.
pub fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let ext = flags & EXTENDED != 0 || value.len() > 255;
    let mut a = vec![if ext { flags | EXTENDED } else { flags }, code];
    if ext {
        a.extend_from_slice(&be16(value.len()));
    } else {
        a.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
    }
    a.extend_from_slice(value);
    a
}

/// One prefix as it travels in the NLRI and Withdrawn Routes fields.
pub fn prefix(p: Ipv4Net) -> Vec<u8> {
    let len = p.prefix_len();
    let bytes = usize::from(len).div_ceil(8);
    let mut v = vec![len];
    v.extend_from_slice(p.network().octets().get(..bytes).unwrap_or_default());
    v
}

/// Several prefixes back to back.
pub fn prefixes(ps: &[Ipv4Net]) -> Vec<u8> {
    ps.iter().flat_map(|p| prefix(*p)).collect()
}

pub fn origin(v: u8) -> Vec<u8> {
    attr(WK, ORIGIN, &[v])
}

/// AS_PATH value: one segment of `kind` (2 = AS_SEQUENCE) with 4- or 2-octet ASNs.
pub fn segment(kind: u8, asns: &[u32], four: bool) -> Vec<u8> {
    let mut v = vec![kind, u8::try_from(asns.len()).unwrap_or(u8::MAX)];
    for a in asns {
        if four {
            v.extend_from_slice(&a.to_be_bytes());
        } else {
            v.extend_from_slice(&u16::try_from(*a).unwrap_or(23456).to_be_bytes());
        }
    }
    v
}

/// AS_PATH attribute of one AS_SEQUENCE (none when `asns` is empty).
pub fn as_path(asns: &[u32], four: bool) -> Vec<u8> {
    let value = if asns.is_empty() {
        Vec::new()
    } else {
        segment(2, asns, four)
    };
    attr(WK, AS_PATH, &value)
}

pub fn next_hop(nh: Ipv4Addr) -> Vec<u8> {
    attr(WK, NEXT_HOP, &nh.octets())
}

pub fn local_pref(v: u32) -> Vec<u8> {
    attr(WK, LOCAL_PREF, &v.to_be_bytes())
}

pub fn med(v: u32) -> Vec<u8> {
    attr(ONT, MED, &v.to_be_bytes())
}

/// ORIGIN IGP, AS_PATH of `asns`, NEXT_HOP: the minimum a route needs.
pub fn base(asns: &[u32], nh: Ipv4Addr, four: bool) -> Vec<u8> {
    [origin(0), as_path(asns, four), next_hop(nh)].concat()
}

/// MP_REACH_NLRI value for IPv4 unicast (or any family) with a raw next hop field.
pub fn mp_reach_value(afi: u16, safi: u8, nh: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(safi);
    v.push(u8::try_from(nh.len()).unwrap_or(u8::MAX));
    v.extend_from_slice(nh);
    v.push(0);
    v.extend_from_slice(nlri);
    v
}

pub fn mp_unreach_value(afi: u16, safi: u8, withdrawn: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(safi);
    v.extend_from_slice(withdrawn);
    v
}

/// OPEN body fields with raw optional parameters; `opt_len` is written as given.
pub fn open_body(
    version: u8,
    my_as: u16,
    hold: u16,
    id: Ipv4Addr,
    opt_len: u8,
    params: &[u8],
) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id.octets());
    b.push(opt_len);
    b.extend_from_slice(params);
    b
}

/// A whole OPEN whose Opt Parm Len matches `params`.
pub fn open(version: u8, my_as: u16, hold: u16, id: Ipv4Addr, params: &[u8]) -> Vec<u8> {
    let len = u8::try_from(params.len()).unwrap_or(u8::MAX);
    message(OPEN, &open_body(version, my_as, hold, id, len, params))
}

/// One capability TLV.
pub fn capability(code: u8, value: &[u8]) -> Vec<u8> {
    let mut c = vec![code, u8::try_from(value.len()).unwrap_or(u8::MAX)];
    c.extend_from_slice(value);
    c
}

/// A Capabilities optional parameter (type 2) holding `caps`.
pub fn caps_param(caps: &[u8]) -> Vec<u8> {
    let mut p = vec![2, u8::try_from(caps.len()).unwrap_or(u8::MAX)];
    p.extend_from_slice(caps);
    p
}

/// Multiprotocol IPv4 unicast and 4-octet AS `asn`: the usual capabilities.
pub fn usual_caps(asn: u32) -> Vec<u8> {
    [
        capability(1, &[0, 1, 0, 1]),
        capability(65, &asn.to_be_bytes()),
    ]
    .concat()
}

/// /32 NLRI (5 octets each) per UPDATE so that one UPDATE stays within 4096 octets.
pub const HOSTS_PER_UPDATE: usize = 800;

/// Host route `i` of the test pool: 100.80.0.0/32 and up, inside the pool the
/// testbed's ipipd accepts and clear of its own block.
pub fn pool_host(i: u32) -> Ipv4Net {
    Ipv4Net::new(
        Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 80, 0, 0)).wrapping_add(i)),
        32,
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_match_the_codec() {
        let p: Ipv4Net = "100.66.1.0/24".parse().unwrap_or_default();
        let msg = update(
            &[],
            &base(&[65001], Ipv4Addr::new(172, 30, 0, 2), true),
            &prefix(p),
        );
        let ctx = bgp::wire::Context {
            four_octet_as: true,
            ..Default::default()
        };
        match bgp::wire::decode(&msg, &ctx) {
            Ok(bgp::wire::Message::Update(u)) => {
                assert_eq!(u.outcome, bgp::wire::Outcome::Accepted);
                assert_eq!(u.nlri.len(), 1);
            }
            other => panic!("not an accepted UPDATE: {other:?}"),
        }
        assert_eq!(
            prefix("10.0.0.0/8".parse().unwrap_or_default()),
            vec![8, 10]
        );
        assert_eq!(
            attr(OT, 99, &[0; 300]).get(..4),
            Some(&[OT | EXTENDED, 99, 1, 44][..])
        );
    }
}
