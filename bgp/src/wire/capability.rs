//! Capabilities advertisement (RFC 5492 §4) and the capabilities ipipd understands.
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! ~                              ~
//! +------------------------------+
//! ```
//!
//! A known capability whose value has the wrong size is a malformed optional parameter
//! (2/0, RFC 4271 §6.2 "recognized, but malformed"): guessing what the peer meant would
//! negotiate something it did not offer. Unknown capabilities are kept opaque so that the
//! session can log them. When encoding, values that cannot fit the one-octet length are
//! cut (whole list entries, or strings on a character boundary).

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::take;
use nom::multi::many0;
use nom::number::complete::{be_u16, be_u32, be_u8};
use nom::IResult;

use super::error::OpenError;
use super::AfiSafi;

pub const MULTIPROTOCOL: u8 = 1;
pub const ROUTE_REFRESH: u8 = 2;
pub const EXTENDED_MESSAGE: u8 = 6;
pub const GRACEFUL_RESTART: u8 = 64;
pub const FOUR_OCTET_AS: u8 = 65;
pub const ADD_PATH: u8 = 69;
pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
pub const FQDN: u8 = 73;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760 §8, code 1:
    /// ```text
    /// 0       7      15      23      31
    /// +-------+-------+-------+-------+
    /// |      AFI      | Res.  | SAFI  |
    /// +-------+-------+-------+-------+
    /// ```
    Multiprotocol(AfiSafi),
    /// RFC 2918 §2, code 2, no value.
    RouteRefresh,
    /// RFC 7313 §3.1, code 70, no value.
    EnhancedRouteRefresh,
    /// RFC 6793 §3, code 65: the 4-octet AS number as the value.
    FourOctetAs(u32),
    /// RFC 4724 §3, code 64.
    GracefulRestart(GracefulRestart),
    /// RFC 7911 §4, code 69:
    /// ```text
    /// +------------------------------------------------+
    /// | Address Family Identifier (2 octets)           |
    /// +------------------------------------------------+
    /// | Subsequent Address Family Identifier (1 octet) |
    /// +------------------------------------------------+
    /// | Send/Receive (1 octet)                         |
    /// +------------------------------------------------+
    /// ```
    /// repeated. Entries with a Send/Receive value other than 1, 2, 3 are ignored.
    AddPath(Vec<(AfiSafi, AddPathMode)>),
    /// RFC 8654 §3, code 6, no value.
    ExtendedMessage,
    /// draft-walton-bgp-hostname-capability, code 73:
    /// ```text
    /// +--------------------------------+
    /// | Hostname Length (1 octet)      |
    /// +--------------------------------+
    /// | Hostname (variable)            |
    /// +--------------------------------+
    /// | Domain Name Length (1 octet)   |
    /// +--------------------------------+
    /// | Domain Name (variable)         |
    /// +--------------------------------+
    /// ```
    /// A value that does not parse this way or is not UTF-8 is kept as
    /// [`Capability::Unknown`]: the capability only informs, so it is no reason to refuse
    /// the session.
    Fqdn {
        hostname: String,
        domain: String,
    },
    Unknown {
        code: u8,
        value: Bytes,
    },
}

/// RFC 4724 §3 (N bit: RFC 8538 §2):
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits)                           |
/// +--------------------------------------------------+
/// | Restart Time in seconds (12 bits)                |
/// +--------------------------------------------------+
/// | Address Family Identifier (16 bits)              |
/// +--------------------------------------------------+
/// | Subsequent Address Family Identifier (8 bits)    |
/// +--------------------------------------------------+
/// | Flags for Address Family (8 bits)                |
/// +--------------------------------------------------+
/// | ...                                              |
/// +--------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// R: the sender has restarted.
    pub restart: bool,
    /// N: the sender does graceful restart for NOTIFICATIONs too (RFC 8538).
    pub notification: bool,
    /// Restart time in seconds; 12 bits on the wire (larger values are cut to 4095).
    pub time: u16,
    /// Each family with its F bit (forwarding state preserved).
    pub families: Vec<(AfiSafi, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddPathMode {
    Receive,
    Send,
    Both,
}

impl AddPathMode {
    fn from_u8(v: u8) -> Option<AddPathMode> {
        match v {
            1 => Some(AddPathMode::Receive),
            2 => Some(AddPathMode::Send),
            3 => Some(AddPathMode::Both),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            AddPathMode::Receive => 1,
            AddPathMode::Send => 2,
            AddPathMode::Both => 3,
        }
    }

    /// The sender of this mode will send path identifiers.
    pub fn sends(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }

    /// The sender of this mode is willing to receive path identifiers.
    pub fn receives(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }
}

const GR_RESTART: u16 = 0x8000;
const GR_NOTIFICATION: u16 = 0x4000;
const GR_TIME_MASK: u16 = 0x0fff;
const GR_FORWARDING: u8 = 0x80;

fn tlv(i: &[u8]) -> IResult<&[u8], (u8, &[u8])> {
    let (i, code) = be_u8(i)?;
    let (i, len) = be_u8(i)?;
    let (i, value) = take(len)(i)?;
    Ok((i, (code, value)))
}

fn afi_safi(i: &[u8]) -> IResult<&[u8], AfiSafi> {
    let (i, afi) = be_u16(i)?;
    let (i, safi) = be_u8(i)?;
    Ok((i, AfiSafi { afi, safi }))
}

fn exact<T>(r: IResult<&[u8], T>) -> Option<T> {
    match r {
        Ok(([], v)) => Some(v),
        _ => None,
    }
}

fn multiprotocol(i: &[u8]) -> IResult<&[u8], AfiSafi> {
    let (i, afi) = be_u16(i)?;
    let (i, _reserved) = be_u8(i)?;
    let (i, safi) = be_u8(i)?;
    Ok((i, AfiSafi { afi, safi }))
}

fn graceful_restart(i: &[u8]) -> IResult<&[u8], GracefulRestart> {
    let (i, word) = be_u16(i)?;
    let (i, families) = many0(|i| {
        let (i, f) = afi_safi(i)?;
        let (i, flags) = be_u8(i)?;
        Ok((i, (f, flags & GR_FORWARDING != 0)))
    })(i)?;
    Ok((
        i,
        GracefulRestart {
            restart: word & GR_RESTART != 0,
            notification: word & GR_NOTIFICATION != 0,
            time: word & GR_TIME_MASK,
            families,
        },
    ))
}

fn add_path(i: &[u8]) -> IResult<&[u8], Vec<(AfiSafi, AddPathMode)>> {
    let (i, entries) = many0(|i| {
        let (i, f) = afi_safi(i)?;
        let (i, mode) = be_u8(i)?;
        Ok((i, (f, AddPathMode::from_u8(mode))))
    })(i)?;
    Ok((
        i,
        entries
            .into_iter()
            .filter_map(|(f, m)| m.map(|m| (f, m)))
            .collect(),
    ))
}

fn fqdn(i: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (i, hlen) = be_u8(i)?;
    let (i, host) = take(hlen)(i)?;
    let (i, dlen) = be_u8(i)?;
    let (i, domain) = take(dlen)(i)?;
    Ok((i, (host, domain)))
}

fn fqdn_strings(v: &[u8]) -> Option<(String, String)> {
    let (host, domain) = exact(fqdn(v))?;
    Some((
        String::from_utf8(host.to_vec()).ok()?,
        String::from_utf8(domain.to_vec()).ok()?,
    ))
}

impl Capability {
    /// The capability code on the wire.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => MULTIPROTOCOL,
            Capability::RouteRefresh => ROUTE_REFRESH,
            Capability::EnhancedRouteRefresh => ENHANCED_ROUTE_REFRESH,
            Capability::FourOctetAs(_) => FOUR_OCTET_AS,
            Capability::GracefulRestart(_) => GRACEFUL_RESTART,
            Capability::AddPath(_) => ADD_PATH,
            Capability::ExtendedMessage => EXTENDED_MESSAGE,
            Capability::Fqdn { .. } => FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    fn from_tlv(code: u8, v: &[u8]) -> Result<Capability, OpenError> {
        let malformed = || OpenError::Malformed("capability value has the wrong length");
        Ok(match code {
            MULTIPROTOCOL => {
                Capability::Multiprotocol(exact(multiprotocol(v)).ok_or_else(malformed)?)
            }
            ROUTE_REFRESH | ENHANCED_ROUTE_REFRESH | EXTENDED_MESSAGE => {
                if !v.is_empty() {
                    return Err(malformed());
                }
                match code {
                    ROUTE_REFRESH => Capability::RouteRefresh,
                    ENHANCED_ROUTE_REFRESH => Capability::EnhancedRouteRefresh,
                    _ => Capability::ExtendedMessage,
                }
            }
            FOUR_OCTET_AS => Capability::FourOctetAs(exact(be_u32(v)).ok_or_else(malformed)?),
            GRACEFUL_RESTART => {
                Capability::GracefulRestart(exact(graceful_restart(v)).ok_or_else(malformed)?)
            }
            ADD_PATH => Capability::AddPath(exact(add_path(v)).ok_or_else(malformed)?),
            FQDN => match fqdn_strings(v) {
                Some((hostname, domain)) => Capability::Fqdn { hostname, domain },
                // Informational only: an FQDN we cannot read is kept as it came.
                None => Capability::Unknown {
                    code,
                    value: Bytes::copy_from_slice(v),
                },
            },
            _ => Capability::Unknown {
                code,
                value: Bytes::copy_from_slice(v),
            },
        })
    }

    fn encode_value(&self, out: &mut BytesMut) {
        match self {
            Capability::Multiprotocol(f) => {
                out.put_u16(f.afi);
                out.put_u8(0);
                out.put_u8(f.safi);
            }
            Capability::RouteRefresh
            | Capability::EnhancedRouteRefresh
            | Capability::ExtendedMessage => {}
            Capability::FourOctetAs(asn) => out.put_u32(*asn),
            Capability::GracefulRestart(gr) => {
                let mut word = gr.time.min(GR_TIME_MASK);
                if gr.restart {
                    word |= GR_RESTART;
                }
                if gr.notification {
                    word |= GR_NOTIFICATION;
                }
                out.put_u16(word);
                for (f, fwd) in gr.families.iter().take(MAX_VALUE / 4) {
                    out.put_u16(f.afi);
                    out.put_u8(f.safi);
                    out.put_u8(if *fwd { GR_FORWARDING } else { 0 });
                }
            }
            Capability::AddPath(entries) => {
                for (f, mode) in entries.iter().take(MAX_VALUE / 4) {
                    out.put_u16(f.afi);
                    out.put_u8(f.safi);
                    out.put_u8(mode.to_u8());
                }
            }
            Capability::Fqdn { hostname, domain } => {
                let host = truncate(hostname, MAX_VALUE - 2);
                let domain = truncate(domain, MAX_VALUE - 2 - host.len());
                for s in [host, domain] {
                    out.put_u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
                    out.put_slice(s.as_bytes());
                }
            }
            Capability::Unknown { value, .. } => {
                out.put_slice(value.get(..value.len().min(MAX_VALUE)).unwrap_or_default());
            }
        }
    }

    /// Appends code, length and value.
    pub(super) fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.code());
        let len_at = out.len();
        out.put_u8(0);
        self.encode_value(out);
        let len = out.len().saturating_sub(len_at + 1);
        if let Some(b) = out.get_mut(len_at) {
            *b = u8::try_from(len).unwrap_or(u8::MAX);
        }
    }
}

const MAX_VALUE: usize = 255;

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Decodes the value of a Capabilities optional parameter: any number of capabilities.
pub(super) fn decode_list(mut i: &[u8], out: &mut Vec<Capability>) -> Result<(), OpenError> {
    while !i.is_empty() {
        let (rest, (code, value)) =
            tlv(i).map_err(|_| OpenError::Malformed("capability runs past its parameter"))?;
        out.push(Capability::from_tlv(code, value)?);
        i = rest;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn round_trip(c: Capability, wire: &[u8]) {
        let mut b = BytesMut::new();
        c.encode(&mut b);
        assert_eq!(&b[..], wire, "{c:?}");
        let mut v = Vec::new();
        decode_list(wire, &mut v).unwrap();
        assert_eq!(v, vec![c]);
    }

    #[test]
    fn known_capabilities() {
        round_trip(
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            &[1, 4, 0, 2, 0, 1],
        );
        round_trip(Capability::RouteRefresh, &[2, 0]);
        round_trip(Capability::EnhancedRouteRefresh, &[70, 0]);
        round_trip(Capability::ExtendedMessage, &[6, 0]);
        round_trip(
            Capability::FourOctetAs(4_200_000_001),
            &[65, 4, 0xfa, 0x56, 0xea, 0x01],
        );
        round_trip(
            Capability::GracefulRestart(GracefulRestart {
                restart: true,
                notification: true,
                time: 120,
                families: vec![
                    (AfiSafi::IPV4_UNICAST, true),
                    (AfiSafi::IPV6_UNICAST, false),
                ],
            }),
            &[64, 10, 0xc0, 120, 0, 1, 1, 0x80, 0, 2, 1, 0],
        );
        round_trip(
            Capability::AddPath(vec![
                (AfiSafi::IPV4_UNICAST, AddPathMode::Both),
                (AfiSafi::IPV6_UNICAST, AddPathMode::Receive),
            ]),
            &[69, 8, 0, 1, 1, 3, 0, 2, 1, 1],
        );
        round_trip(
            Capability::Fqdn {
                hostname: "node1".into(),
                domain: "lab".into(),
            },
            b"\x49\x0a\x05node1\x03lab",
        );
        round_trip(
            Capability::Unknown {
                code: 128,
                value: Bytes::new(),
            },
            &[128, 0],
        );
    }

    #[test]
    fn graceful_restart_without_families_and_n_bit_only() {
        round_trip(
            Capability::GracefulRestart(GracefulRestart {
                restart: false,
                notification: true,
                time: 4095,
                families: vec![],
            }),
            &[64, 2, 0x4f, 0xff],
        );
    }

    #[test]
    fn several_capabilities_in_one_parameter() {
        let mut v = Vec::new();
        decode_list(&[1, 4, 0, 1, 0, 1, 2, 0, 65, 4, 0, 0, 0xfd, 0xe8], &mut v).unwrap();
        assert_eq!(
            v,
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::RouteRefresh,
                Capability::FourOctetAs(65000)
            ]
        );
    }

    #[test]
    fn malformed_capabilities_are_errors() {
        let mut v = Vec::new();
        for bad in [
            &[65u8, 2, 0, 1][..],
            &[1, 3, 0, 1, 0],
            &[2, 1, 0],
            &[64, 3, 0, 0, 1],
            &[69, 4, 0],
        ] {
            assert!(decode_list(bad, &mut v).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn add_path_ignores_bad_mode() {
        let mut v = Vec::new();
        decode_list(&[69, 8, 0, 1, 1, 9, 0, 2, 1, 2], &mut v).unwrap();
        assert_eq!(
            v,
            vec![Capability::AddPath(vec![(
                AfiSafi::IPV6_UNICAST,
                AddPathMode::Send
            )])]
        );
    }

    #[test]
    fn unreadable_fqdn_is_kept_opaque() {
        for bad in [
            &[73u8, 2, 1, 0xff][..],
            &[73, 2, 1, b'a'],
            &[73, 3, 1, 0xff, 0],
        ] {
            let mut v = Vec::new();
            decode_list(bad, &mut v).unwrap();
            assert_eq!(
                v,
                vec![Capability::Unknown {
                    code: 73,
                    value: Bytes::copy_from_slice(&bad[2..])
                }]
            );
        }
    }

    #[test]
    fn fqdn_encoding_truncates() {
        let c = Capability::Fqdn {
            hostname: "h".repeat(300),
            domain: "d".into(),
        };
        let mut b = BytesMut::new();
        c.encode(&mut b);
        assert_eq!(b.len(), 2 + 255);
        let mut v = Vec::new();
        decode_list(&b, &mut v).unwrap();
        assert_eq!(
            v,
            vec![Capability::Fqdn {
                hostname: "h".repeat(253),
                domain: String::new()
            }]
        );
    }
}
