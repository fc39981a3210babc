//! Path attribute decoding with the RFC 7606 error handling; the rules are tabulated in
//! the documentation of [`super::Update`]'s module (`update.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;

use super::aspath::{AsPath, AS_TRANS};
use super::attribute::*;
use super::error::UpdateError;
use super::nlri::{self, Ip};
use super::update::AttrError;
use super::{AfiSafi, Context};

/// What RFC 7606 handling found while decoding one UPDATE.
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub errors: Vec<AttrError>,
    pub withdraw: bool,
}

impl Findings {
    pub fn withdraw(&mut self, type_code: u8, reason: &'static str) {
        self.withdraw = true;
        self.errors.push(AttrError { type_code, reason });
    }

    pub fn discard(&mut self, type_code: u8, reason: &'static str) {
        self.errors.push(AttrError { type_code, reason });
    }
}

/// Type codes met in one UPDATE.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Seen {
    codes: [u64; 4],
    /// The type code of an unknown optional non-transitive attribute that was
    /// quietly ignored (RFC 4271 §5), if any.
    pub ignored: Option<u8>,
}

impl Seen {
    pub fn has(&self, code: u8) -> bool {
        let (word, bit) = (usize::from(code / 64), code % 64);
        self.codes.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn set(&mut self, code: u8) {
        let (word, bit) = (usize::from(code / 64), code % 64);
        if let Some(w) = self.codes.get_mut(word) {
            *w |= 1 << bit;
        }
    }
}

struct Header {
    flags: u8,
    code: u8,
}

fn header(i: &[u8]) -> IResult<&[u8], (Header, u16)> {
    let (i, flags) = be_u8(i)?;
    let (i, code) = be_u8(i)?;
    let (i, len) = if flags & EXTENDED_LENGTH != 0 {
        be_u16(i)?
    } else {
        let (i, l) = be_u8(i)?;
        (i, u16::from(l))
    };
    Ok((i, (Header { flags, code }, len)))
}

fn u32_of(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

fn ipv4_of(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

/// Non-empty and a whole number of `size`-octet items (RFC 7606 §7.8, §7.10, §7.14, and
/// RFC 8092 for large communities).
fn items(v: &[u8], size: usize) -> Option<std::slice::ChunksExact<'_, u8>> {
    let chunks = v.chunks_exact(size);
    (!v.is_empty() && chunks.remainder().is_empty()).then_some(chunks)
}

fn aggregator(v: &[u8], four_octet: bool) -> Option<Aggregator> {
    let (asn, addr) = if four_octet {
        let (a, b) = v.split_at_checked(4)?;
        (u32_of(a)?, b)
    } else {
        let (a, b) = v.split_at_checked(2)?;
        (
            u32::from(u16::from_be_bytes(<[u8; 2]>::try_from(a).ok()?)),
            b,
        )
    };
    Some(Aggregator {
        asn,
        address: ipv4_of(addr)?,
    })
}

fn afi_safi(i: &[u8]) -> IResult<&[u8], AfiSafi> {
    let (i, afi) = be_u16(i)?;
    let (i, safi) = be_u8(i)?;
    Ok((i, AfiSafi { afi, safi }))
}

fn mp_reach_fixed(i: &[u8]) -> IResult<&[u8], (AfiSafi, &[u8])> {
    let (i, f) = afi_safi(i)?;
    let (i, nh_len) = be_u8(i)?;
    let (i, nh) = take(nh_len)(i)?;
    let (i, _reserved) = be_u8(i)?;
    Ok((i, (f, nh)))
}

fn next_hops(ip: Ip, nh: &[u8]) -> Option<Vec<IpAddr>> {
    let v6 = |b: &[u8]| {
        <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
    };
    match (ip, nh.len()) {
        (Ip::V4, 4) => Some(vec![IpAddr::V4(ipv4_of(nh)?)]),
        (_, 16) => Some(vec![v6(nh)?]),
        (_, 32) => {
            let (g, ll) = nh.split_at_checked(16)?;
            Some(vec![v6(g)?, v6(ll)?])
        }
        _ => None,
    }
}

/// `Ok(None)`: a family ipipd does not handle.
fn mp_reach(v: &[u8], raw: &[u8], ctx: &Context) -> Result<Option<MpReach>, UpdateError> {
    let bad = || UpdateError::OptionalAttribute(Bytes::copy_from_slice(raw));
    let (rest, (afi_safi, nh)) = mp_reach_fixed(v).map_err(|_| bad())?;
    let Some(ip) = Ip::of(afi_safi) else {
        return Ok(None);
    };
    let next_hops = next_hops(ip, nh).ok_or_else(bad)?;
    let nlri = nlri::decode_list(rest, ip, ctx.add_path_rx.get(afi_safi))
        .map_err(|_| UpdateError::InvalidNetworkField)?;
    Ok(Some(MpReach {
        afi_safi,
        next_hops,
        nlri,
    }))
}

fn mp_unreach(v: &[u8], raw: &[u8], ctx: &Context) -> Result<Option<MpUnreach>, UpdateError> {
    let (rest, afi_safi) =
        afi_safi(v).map_err(|_| UpdateError::OptionalAttribute(Bytes::copy_from_slice(raw)))?;
    let Some(ip) = Ip::of(afi_safi) else {
        return Ok(None);
    };
    let withdrawn = nlri::decode_list(rest, ip, ctx.add_path_rx.get(afi_safi))
        .map_err(|_| UpdateError::InvalidNetworkField)?;
    Ok(Some(MpUnreach {
        afi_safi,
        withdrawn,
    }))
}

/// Decodes the Path Attributes field. `Err` is a session reset; everything milder is
/// recorded in `f`.
pub(super) fn decode_all(
    mut i: &[u8],
    ctx: &Context,
    f: &mut Findings,
) -> Result<(Attributes, Seen), UpdateError> {
    let mut a = Attributes::default();
    let mut seen = Seen::default();
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator: Option<Aggregator> = None;

    while !i.is_empty() {
        let Ok((r, (h, len))) = header(i) else {
            let code = i.get(1).copied().unwrap_or(0);
            f.withdraw(
                code,
                "attribute header cut short by the total attribute length",
            );
            break;
        };
        let Ok((rest, v)) = take::<_, _, ()>(len)(r) else {
            f.withdraw(
                h.code,
                "attribute length runs past the total attribute length",
            );
            break;
        };
        let raw = i.get(..i.len() - rest.len()).unwrap_or_default();
        i = rest;
        let code = h.code;

        let Some(expected) = expected_flags(code) else {
            if h.flags & OPTIONAL == 0 {
                return Err(UpdateError::UnrecognizedWellKnown(Bytes::copy_from_slice(
                    raw,
                )));
            }
            if h.flags & TRANSITIVE == 0 {
                // Unknown optional non-transitive: ignored quietly (RFC 4271 §5).
                seen.ignored = Some(code);
                continue;
            }
            if seen.has(code) {
                f.discard(code, "repeated attribute");
                continue;
            }
            seen.set(code);
            a.unknown.push(RawAttribute {
                flags: (h.flags & (OPTIONAL | TRANSITIVE)) | PARTIAL,
                type_code: code,
                value: Bytes::copy_from_slice(v),
            });
            continue;
        };

        if seen.has(code) {
            if code == MP_REACH_NLRI || code == MP_UNREACH_NLRI {
                return Err(UpdateError::MalformedAttributeList(
                    "repeated MP_REACH_NLRI or MP_UNREACH_NLRI",
                ));
            }
            f.discard(code, "repeated attribute");
            continue;
        }
        seen.set(code);

        if h.flags & (OPTIONAL | TRANSITIVE) != expected {
            const REASON: &str = "attribute flags conflict with the attribute type";
            match code {
                // RFC 6793 §6: malformed AS4 attributes are discarded.
                AS4_PATH | AS4_AGGREGATOR => {
                    f.discard(code, REASON);
                    continue;
                }
                // Still parsed: their NLRI are what treat-as-withdraw must withdraw.
                MP_REACH_NLRI | MP_UNREACH_NLRI => f.withdraw(code, REASON),
                _ => {
                    f.withdraw(code, REASON);
                    continue;
                }
            }
        }

        match code {
            ORIGIN => match v {
                [o] => match Origin::from_u8(*o) {
                    Some(o) => a.origin = Some(o),
                    None => f.withdraw(code, "undefined ORIGIN value"),
                },
                _ => f.withdraw(code, "ORIGIN length is not 1"),
            },
            AS_PATH => match AsPath::decode(v, ctx.four_octet_as) {
                Ok(p) if ctx.ebgp && p.has_confed() => {
                    f.withdraw(code, "confederation segment from an external peer")
                }
                Ok(p) => a.as_path = Some(p),
                Err(reason) => f.withdraw(code, reason),
            },
            NEXT_HOP => match ipv4_of(v) {
                Some(nh) => a.next_hop = Some(nh),
                None => f.withdraw(code, "NEXT_HOP length is not 4"),
            },
            MULTI_EXIT_DISC => match u32_of(v) {
                Some(m) => a.med = Some(m),
                None => f.withdraw(code, "MULTI_EXIT_DISC length is not 4"),
            },
            LOCAL_PREF if ctx.ebgp => f.discard(code, "LOCAL_PREF from an external peer"),
            LOCAL_PREF => match u32_of(v) {
                Some(lp) => a.local_pref = Some(lp),
                None => f.withdraw(code, "LOCAL_PREF length is not 4"),
            },
            ATOMIC_AGGREGATE if v.is_empty() => a.atomic_aggregate = true,
            ATOMIC_AGGREGATE => f.discard(code, "ATOMIC_AGGREGATE length is not 0"),
            AGGREGATOR => match aggregator(v, ctx.four_octet_as) {
                Some(agg) => a.aggregator = Some(agg),
                None => f.discard(code, "AGGREGATOR length is wrong"),
            },
            COMMUNITIES => match items(v, 4) {
                Some(c) => a.communities = c.filter_map(u32_of).collect(),
                None => f.withdraw(code, "COMMUNITIES length is not a non-zero multiple of 4"),
            },
            ORIGINATOR_ID if ctx.ebgp => f.discard(code, "ORIGINATOR_ID from an external peer"),
            ORIGINATOR_ID => match ipv4_of(v) {
                Some(id) => a.originator_id = Some(id),
                None => f.withdraw(code, "ORIGINATOR_ID length is not 4"),
            },
            CLUSTER_LIST if ctx.ebgp => f.discard(code, "CLUSTER_LIST from an external peer"),
            CLUSTER_LIST => match items(v, 4) {
                Some(c) => a.cluster_list = c.filter_map(ipv4_of).collect(),
                None => f.withdraw(code, "CLUSTER_LIST length is not a non-zero multiple of 4"),
            },
            MP_REACH_NLRI => match mp_reach(v, raw, ctx)? {
                Some(mp) => a.mp_reach = Some(mp),
                None => f.discard(code, "MP_REACH_NLRI of an unsupported AFI/SAFI"),
            },
            MP_UNREACH_NLRI => match mp_unreach(v, raw, ctx)? {
                Some(mp) => a.mp_unreach = Some(mp),
                None => f.discard(code, "MP_UNREACH_NLRI of an unsupported AFI/SAFI"),
            },
            EXTENDED_COMMUNITIES => match items(v, 8) {
                Some(c) => {
                    a.extended_communities = c
                        .filter_map(|b| <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes))
                        .collect()
                }
                None => f.withdraw(
                    code,
                    "EXTENDED_COMMUNITIES length is not a non-zero multiple of 8",
                ),
            },
            AS4_PATH | AS4_AGGREGATOR if ctx.four_octet_as => {
                f.discard(code, "AS4 attribute from a 4-octet AS speaker")
            }
            AS4_PATH => match AsPath::decode(v, true) {
                Ok(p) if p.segments.is_empty() => f.discard(code, "empty AS4_PATH"),
                Ok(p) if p.has_confed() => f.discard(code, "confederation segment in AS4_PATH"),
                Ok(p) => as4_path = Some(p),
                Err(reason) => f.discard(code, reason),
            },
            AS4_AGGREGATOR => match aggregator(v, true) {
                Some(agg) => as4_aggregator = Some(agg),
                None => f.discard(code, "AS4_AGGREGATOR length is not 8"),
            },
            LARGE_COMMUNITY => match items(v, 12) {
                Some(c) => {
                    a.large_communities = c
                        .filter_map(|b| {
                            let (g, rest) = b.split_at_checked(4)?;
                            let (l1, l2) = rest.split_at_checked(4)?;
                            Some(LargeCommunity {
                                global: u32_of(g)?,
                                local1: u32_of(l1)?,
                                local2: u32_of(l2)?,
                            })
                        })
                        .collect()
                }
                None => f.withdraw(
                    code,
                    "LARGE_COMMUNITY length is not a non-zero multiple of 12",
                ),
            },
            _ => {}
        }
    }

    if !ctx.four_octet_as {
        merge_as4(&mut a, as4_path, as4_aggregator);
    }
    // The order the encoder writes them in, so that equal attribute sets compare equal.
    a.unknown.sort_by_key(|r| r.type_code);
    Ok((a, seen))
}

/// RFC 6793 §4.2.3: an AGGREGATOR with a real 2-octet AS means the AS4 attributes were
/// added by someone else before an aggregation: both are ignored. Otherwise AS4_AGGREGATOR
/// replaces an AS_TRANS aggregator and AS4_PATH is merged into AS_PATH.
fn merge_as4(a: &mut Attributes, as4_path: Option<AsPath>, as4_aggregator: Option<Aggregator>) {
    if let (Some(agg), Some(agg4)) = (a.aggregator, as4_aggregator) {
        if agg.asn != u32::from(AS_TRANS) {
            return;
        }
        a.aggregator = Some(agg4);
    }
    if let (Some(p), Some(p4)) = (&a.as_path, as4_path) {
        a.as_path = Some(p.merge_as4(&p4));
    }
}
