//! Path attributes (RFC 4271 §4.3, §5) and their encoding. Decoding, with the RFC 7606
//! rules, is in `attr_decode`.
//!
//! Every attribute is a type-length-value:
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +---------------+---------------+
//! |  Attr. Flags  |Attr. Type Code|
//! +---------------+---------------+
//!
//!  0 1 2 3 4 5 6 7
//! +-+-+-+-+-+-+-+-+
//! |O|T|P|E|0|0|0|0|   Optional, Transitive, Partial, Extended Length
//! +-+-+-+-+-+-+-+-+
//! ```
//!
//! followed by a one-octet length, or a two-octet one when E is set. The encoder writes
//! MP_REACH_NLRI and MP_UNREACH_NLRI first (RFC 7606 §5.1), then the others in type code
//! order (RFC 4271 §5), and sets E only when the value is longer than 255 octets.

use std::net::{IpAddr, Ipv4Addr};

use bytes::{BufMut, Bytes, BytesMut};

use super::aspath::{AsPath, AS_TRANS};
use super::nlri::{self, Ip};
use super::{AfiSafi, Context, Nlri};

pub(super) const OPTIONAL: u8 = 0x80;
pub(super) const TRANSITIVE: u8 = 0x40;
pub(super) const PARTIAL: u8 = 0x20;
pub(super) const EXTENDED_LENGTH: u8 = 0x10;

pub(super) const WELL_KNOWN: u8 = TRANSITIVE;
pub(super) const OPTIONAL_NON_TRANSITIVE: u8 = OPTIONAL;
pub(super) const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;

pub(super) const ORIGIN: u8 = 1;
pub(super) const AS_PATH: u8 = 2;
pub(super) const NEXT_HOP: u8 = 3;
pub(super) const MULTI_EXIT_DISC: u8 = 4;
pub(super) const LOCAL_PREF: u8 = 5;
pub(super) const ATOMIC_AGGREGATE: u8 = 6;
pub(super) const AGGREGATOR: u8 = 7;
pub(super) const COMMUNITIES: u8 = 8;
pub(super) const ORIGINATOR_ID: u8 = 9;
pub(super) const CLUSTER_LIST: u8 = 10;
pub(super) const MP_REACH_NLRI: u8 = 14;
pub(super) const MP_UNREACH_NLRI: u8 = 15;
pub(super) const EXTENDED_COMMUNITIES: u8 = 16;
pub(super) const AS4_PATH: u8 = 17;
pub(super) const AS4_AGGREGATOR: u8 = 18;
pub(super) const LARGE_COMMUNITY: u8 = 32;

/// The Optional and Transitive bits a known attribute must carry, `None` if unknown.
pub(super) fn expected_flags(type_code: u8) -> Option<u8> {
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => WELL_KNOWN,
        MULTI_EXIT_DISC | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => {
            OPTIONAL_NON_TRANSITIVE
        }
        AGGREGATOR | COMMUNITIES | EXTENDED_COMMUNITIES | AS4_PATH | AS4_AGGREGATOR
        | LARGE_COMMUNITY => OPTIONAL_TRANSITIVE,
        _ => return None,
    })
}

/// ORIGIN (type 1, RFC 4271 §4.3 a): one octet, well-known mandatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

impl Origin {
    pub(super) fn from_u8(v: u8) -> Option<Origin> {
        match v {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }
}

/// AGGREGATOR (type 7, RFC 4271 §4.3 g; 4-octet form RFC 6793 §3) and AS4_AGGREGATOR
/// (type 18, RFC 6793 §3):
///
/// ```text
/// +---------------------------------+---------------------------------+
/// | AS (2 octets, 4 between 4-octet | IP address of the aggregating   |
/// | speakers and in AS4_AGGREGATOR) | speaker (4 octets)              |
/// +---------------------------------+---------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// One LARGE_COMMUNITY (type 32, RFC 8092):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Global Administrator                     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Local Data Part 1                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Local Data Part 2                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

/// An optional transitive attribute ipipd does not know, passed on as it came.
///
/// `flags` holds only the Optional, Transitive and Partial bits. Decoding sets Partial
/// (RFC 4271 §5: a speaker that passes on an unrecognized optional transitive attribute
/// sets it), so what was received is exactly what will be sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Bytes,
}

/// MP_REACH_NLRI (type 14, RFC 4760 §3):
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Length of Next Hop Network Address (1 octet)            |
/// +---------------------------------------------------------+
/// | Network Address of Next Hop (variable)                  |
/// +---------------------------------------------------------+
/// | Reserved (1 octet)                                      |
/// +---------------------------------------------------------+
/// | Network Layer Reachability Information (variable)       |
/// +---------------------------------------------------------+
/// ```
///
/// Next hop lengths accepted: IPv6 unicast 16 (global) or 32 (global then link-local,
/// RFC 2545 §3); IPv4 unicast 4, or 16/32 for an IPv6 next hop (RFC 8950 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub afi_safi: AfiSafi,
    /// global, then link-local if 32 bytes
    pub next_hops: Vec<IpAddr>,
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI (type 15, RFC 4760 §4):
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Withdrawn Routes (variable)                             |
/// +---------------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub afi_safi: AfiSafi,
    pub withdrawn: Vec<Nlri>,
}

/// The path attributes of an UPDATE, after the RFC 6793 merge (all ASNs 4 octets).
///
/// Value diagrams of the simple attributes (RFC 4271 §4.3, RFC 1997, RFC 4456, RFC 4360):
///
/// ```text
/// NEXT_HOP (3), MULTI_EXIT_DISC (4), LOCAL_PREF (5), ORIGINATOR_ID (9):
/// +-------------------------------+
/// |       4 octets                |
/// +-------------------------------+
/// ATOMIC_AGGREGATE (6): no value
/// COMMUNITIES (8):          4-octet communities, repeated
/// CLUSTER_LIST (10):        4-octet CLUSTER_IDs, repeated
/// EXTENDED_COMMUNITIES (16): 8-octet communities, repeated
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub origin: Option<Origin>,
    /// after RFC 6793 merge: 4-octet ASNs
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<u32>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub extended_communities: Vec<u64>,
    pub large_communities: Vec<LargeCommunity>,
    /// Unknown optional transitive attributes, in type code order once decoded.
    pub unknown: Vec<RawAttribute>,
}

/// Writes one attribute; the value is written in place and moved one octet back when it
/// turns out to fit a one-octet length, so no scratch buffer is needed.
pub(super) fn put_attr(out: &mut BytesMut, flags: u8, code: u8, value: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u8(flags | EXTENDED_LENGTH);
    out.put_u8(code);
    out.put_u16(0);
    value(out);
    let len = out.len().saturating_sub(start + 4);
    if let Ok(short) = u8::try_from(len) {
        if let Some(head) = out.get_mut(start..start + 3) {
            head.copy_from_slice(&[flags & !EXTENDED_LENGTH, code, short]);
        }
        let end = out.len();
        if end > start + 4 {
            out.copy_within(start + 4..end, start + 3);
        }
        out.truncate(end.saturating_sub(1));
    } else if let Some(head) = out.get_mut(start + 2..start + 4) {
        head.copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    }
}

fn put_next_hops(out: &mut BytesMut, hops: &[IpAddr]) {
    let len: usize = hops.iter().map(|h| if h.is_ipv4() { 4 } else { 16 }).sum();
    out.put_u8(u8::try_from(len).unwrap_or(u8::MAX));
    for h in hops {
        match h {
            IpAddr::V4(a) => out.put_slice(&a.octets()),
            IpAddr::V6(a) => out.put_slice(&a.octets()),
        }
    }
}

impl MpReach {
    /// NLRI of families ipipd cannot encode are left out.
    pub(super) fn encode_value(&self, ctx: &Context, out: &mut BytesMut) {
        out.put_u16(self.afi_safi.afi);
        out.put_u8(self.afi_safi.safi);
        put_next_hops(out, &self.next_hops);
        out.put_u8(0);
        if let Some(ip) = Ip::of(self.afi_safi) {
            nlri::encode_list(&self.nlri, ip, ctx.add_path_tx.get(self.afi_safi), out);
        }
    }
}

impl MpUnreach {
    pub(super) fn encode_value(&self, ctx: &Context, out: &mut BytesMut) {
        out.put_u16(self.afi_safi.afi);
        out.put_u8(self.afi_safi.safi);
        if let Some(ip) = Ip::of(self.afi_safi) {
            nlri::encode_list(&self.withdrawn, ip, ctx.add_path_tx.get(self.afi_safi), out);
        }
    }
}

impl Attributes {
    /// Encodes all attributes, MP ones first. For a peer without 4-octet AS support,
    /// ASNs that do not fit become AS_TRANS and AS4_PATH / AS4_AGGREGATOR carry the real
    /// ones (RFC 6793 §4.2.2).
    pub(super) fn encode(&self, ctx: &Context, out: &mut BytesMut) {
        let four = ctx.four_octet_as;
        let mut unknown: Vec<&RawAttribute> = self.unknown.iter().collect();
        unknown.sort_by_key(|a| a.type_code);
        let mut unknown = unknown.into_iter().peekable();
        let mut put_unknown_below = |code: u16, out: &mut BytesMut| {
            while let Some(a) = unknown.next_if(|a| u16::from(a.type_code) < code) {
                put_attr(
                    out,
                    a.flags & (OPTIONAL | TRANSITIVE | PARTIAL),
                    a.type_code,
                    |o| o.put_slice(&a.value),
                );
            }
        };

        // RFC 7606 §5.1: MP_REACH_NLRI / MP_UNREACH_NLRI go first, so that a receiver can
        // find every NLRI even if a later attribute is malformed.
        if let Some(mp) = &self.mp_reach {
            put_attr(out, OPTIONAL_NON_TRANSITIVE, MP_REACH_NLRI, |o| {
                mp.encode_value(ctx, o)
            });
        }
        if let Some(mp) = &self.mp_unreach {
            put_attr(out, OPTIONAL_NON_TRANSITIVE, MP_UNREACH_NLRI, |o| {
                mp.encode_value(ctx, o)
            });
        }
        put_unknown_below(ORIGIN.into(), out);
        if let Some(o) = self.origin {
            put_attr(out, WELL_KNOWN, ORIGIN, |o2| o2.put_u8(o as u8));
        }
        put_unknown_below(AS_PATH.into(), out);
        if let Some(p) = &self.as_path {
            put_attr(out, WELL_KNOWN, AS_PATH, |o| p.encode(four, o));
        }
        put_unknown_below(NEXT_HOP.into(), out);
        if let Some(nh) = self.next_hop {
            put_attr(out, WELL_KNOWN, NEXT_HOP, |o| o.put_slice(&nh.octets()));
        }
        put_unknown_below(MULTI_EXIT_DISC.into(), out);
        if let Some(med) = self.med {
            put_attr(out, OPTIONAL_NON_TRANSITIVE, MULTI_EXIT_DISC, |o| {
                o.put_u32(med)
            });
        }
        put_unknown_below(LOCAL_PREF.into(), out);
        if let Some(lp) = self.local_pref {
            put_attr(out, WELL_KNOWN, LOCAL_PREF, |o| o.put_u32(lp));
        }
        put_unknown_below(ATOMIC_AGGREGATE.into(), out);
        if self.atomic_aggregate {
            put_attr(out, WELL_KNOWN, ATOMIC_AGGREGATE, |_| {});
        }
        put_unknown_below(AGGREGATOR.into(), out);
        if let Some(a) = self.aggregator {
            put_attr(out, OPTIONAL_TRANSITIVE, AGGREGATOR, |o| {
                if four {
                    o.put_u32(a.asn);
                } else {
                    o.put_u16(u16::try_from(a.asn).unwrap_or(AS_TRANS));
                }
                o.put_slice(&a.address.octets());
            });
        }
        put_unknown_below(COMMUNITIES.into(), out);
        if !self.communities.is_empty() {
            put_attr(out, OPTIONAL_TRANSITIVE, COMMUNITIES, |o| {
                self.communities.iter().for_each(|c| o.put_u32(*c))
            });
        }
        put_unknown_below(ORIGINATOR_ID.into(), out);
        if let Some(id) = self.originator_id {
            put_attr(out, OPTIONAL_NON_TRANSITIVE, ORIGINATOR_ID, |o| {
                o.put_slice(&id.octets())
            });
        }
        put_unknown_below(CLUSTER_LIST.into(), out);
        if !self.cluster_list.is_empty() {
            put_attr(out, OPTIONAL_NON_TRANSITIVE, CLUSTER_LIST, |o| {
                self.cluster_list
                    .iter()
                    .for_each(|c| o.put_slice(&c.octets()))
            });
        }
        put_unknown_below(EXTENDED_COMMUNITIES.into(), out);
        if !self.extended_communities.is_empty() {
            put_attr(out, OPTIONAL_TRANSITIVE, EXTENDED_COMMUNITIES, |o| {
                self.extended_communities.iter().for_each(|c| o.put_u64(*c))
            });
        }
        put_unknown_below(AS4_PATH.into(), out);
        if !four {
            if let Some(as4) = self.as_path.as_ref().and_then(AsPath::as4_path) {
                put_attr(out, OPTIONAL_TRANSITIVE, AS4_PATH, |o| as4.encode(true, o));
            }
        }
        put_unknown_below(AS4_AGGREGATOR.into(), out);
        if let Some(a) = self
            .aggregator
            .filter(|a| !four && a.asn > u32::from(u16::MAX))
        {
            put_attr(out, OPTIONAL_TRANSITIVE, AS4_AGGREGATOR, |o| {
                o.put_u32(a.asn);
                o.put_slice(&a.address.octets());
            });
        }
        put_unknown_below(LARGE_COMMUNITY.into(), out);
        if !self.large_communities.is_empty() {
            put_attr(out, OPTIONAL_TRANSITIVE, LARGE_COMMUNITY, |o| {
                for c in &self.large_communities {
                    o.put_u32(c.global);
                    o.put_u32(c.local1);
                    o.put_u32(c.local2);
                }
            });
        }
        put_unknown_below(256, out);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn put_attr_short_and_extended() {
        let mut b = BytesMut::new();
        put_attr(&mut b, OPTIONAL_TRANSITIVE, COMMUNITIES, |o| {
            o.put_u32(0x0001_0002)
        });
        assert_eq!(&b[..], &[0xc0, 8, 4, 0, 1, 0, 2]);
        let mut b = BytesMut::new();
        put_attr(&mut b, WELL_KNOWN, ATOMIC_AGGREGATE, |_| {});
        assert_eq!(&b[..], &[0x40, 6, 0]);
        let mut b = BytesMut::new();
        put_attr(&mut b, OPTIONAL_TRANSITIVE, COMMUNITIES, |o| {
            o.put_slice(&[7; 256])
        });
        assert_eq!(&b[..4], &[0xd0, 8, 1, 0]);
        assert_eq!(b.len(), 260);
    }
}
