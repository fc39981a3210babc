//! OPEN message (RFC 4271 §4.2) with optional parameters (RFC 5492) and the extended
//! optional parameters length (RFC 9072).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! |             Optional Parameters (variable)                    |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Parm. Type   | Parm. Length  |  Parameter Value (variable)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! RFC 9072 §2: when the first octet after the BGP Identifier is non-zero and the next is
//! 255, a two-octet length follows and every parameter length is two octets:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Non-Ext OP Len.|Non-Ext OP Type|  Extended Opt. Parm. Length   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! |             Optional Parameters (variable)                    |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//!  0                   1                   2
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Parm. Type   |        Parameter Length       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~            Parameter Value (variable)         ~
//! |                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Errors (RFC 4271 §6.2), checked in this order:
//!
//! | finding | NOTIFICATION |
//! |---|---|
//! | version ≠ 4 | 2/1, data `00 04` (the version we support) |
//! | hold time 1 or 2 | 2/6 |
//! | BGP Identifier 0.0.0.0, 255.255.255.255 or multicast | 2/3 |
//! | optional parameter lengths that disagree with each other or the message, a parameter or capability cut short, a known capability with a wrong-size value | 2/0 (RFC 4271 §6.2 gives no subcode for a malformed optional parameter; 2/0 "Unspecific" is what it prescribes for "recognized but malformed") |
//! | optional parameter type other than 2 (Capabilities) | 2/4 |
//!
//! The peer AS is checked by the session, which knows the configured AS.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u32, be_u8};
use nom::IResult;

use super::aspath::AS_TRANS;
use super::capability::{self, Capability};
use super::error::OpenError;

const VERSION: u8 = 4;
const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED: u8 = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The speaker's AS: the 4-octet AS capability if present, else `my_as`.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Version 4; `my_as` is AS_TRANS (23456) when `asn` does not fit two octets. The
    /// caller adds [`Capability::FourOctetAs`] to `capabilities` to announce the real AS.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Open {
        Open {
            version: VERSION,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// Whether a capability with `code` was announced.
    pub fn has_capability(&self, code: u8) -> bool {
        self.capabilities.iter().any(|c| c.code() == code)
    }
}

fn fixed(i: &[u8]) -> IResult<&[u8], (u8, u16, u16, u32, u8)> {
    let (i, version) = be_u8(i)?;
    let (i, my_as) = be_u16(i)?;
    let (i, hold) = be_u16(i)?;
    let (i, id) = be_u32(i)?;
    let (i, opt_len) = be_u8(i)?;
    Ok((i, (version, my_as, hold, id, opt_len)))
}

fn param(extended: bool) -> impl Fn(&[u8]) -> IResult<&[u8], (u8, &[u8])> {
    move |i| {
        let (i, kind) = be_u8(i)?;
        let (i, len) = if extended {
            be_u16(i)?
        } else {
            let (i, l) = be_u8(i)?;
            (i, u16::from(l))
        };
        let (i, value) = take(len)(i)?;
        Ok((i, (kind, value)))
    }
}

fn bad_id(id: Ipv4Addr) -> bool {
    id.is_unspecified() || id.is_broadcast() || id.is_multicast()
}

pub(super) fn decode(body: &[u8]) -> Result<Open, OpenError> {
    let (rest, (version, my_as, hold_time, id, opt_len)) =
        fixed(body).map_err(|_| OpenError::Malformed("OPEN shorter than 29 octets"))?;
    if version != VERSION {
        return Err(OpenError::UnsupportedVersion(version));
    }
    if hold_time == 1 || hold_time == 2 {
        return Err(OpenError::UnacceptableHoldTime(hold_time));
    }
    let bgp_id = Ipv4Addr::from(id);
    if bad_id(bgp_id) {
        return Err(OpenError::BadBgpIdentifier(bgp_id));
    }

    let extended = opt_len != 0 && rest.first() == Some(&PARAM_EXTENDED);
    let mut params = if extended {
        let (r, _) = be_u8::<_, nom::error::Error<&[u8]>>(rest)
            .map_err(|_| OpenError::Malformed("extended parameter length missing"))?;
        let (r, ext_len) = be_u16::<_, nom::error::Error<&[u8]>>(r)
            .map_err(|_| OpenError::Malformed("extended parameter length missing"))?;
        if usize::from(ext_len) != r.len() {
            return Err(OpenError::Malformed(
                "extended parameter length disagrees with message",
            ));
        }
        r
    } else {
        if usize::from(opt_len) != rest.len() {
            return Err(OpenError::Malformed(
                "parameter length disagrees with message",
            ));
        }
        rest
    };

    let mut capabilities = Vec::new();
    let parse = param(extended);
    while !params.is_empty() {
        let (r, (kind, value)) =
            parse(params).map_err(|_| OpenError::Malformed("parameter runs past the message"))?;
        if kind != PARAM_CAPABILITIES {
            return Err(OpenError::UnsupportedOptionalParameter(kind));
        }
        capability::decode_list(value, &mut capabilities)?;
        params = r;
    }

    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

/// All capabilities go into one Capabilities parameter; the RFC 9072 format is used only
/// when that parameter does not fit the one-octet Opt Parm Len.
pub(super) fn encode(open: &Open, out: &mut BytesMut) {
    out.put_u8(open.version);
    out.put_u16(open.my_as);
    out.put_u16(open.hold_time);
    out.put_u32(u32::from(open.bgp_id));
    let mut caps = BytesMut::new();
    for c in &open.capabilities {
        c.encode(&mut caps);
    }
    if caps.is_empty() {
        out.put_u8(0);
    } else if let Ok(len) = u8::try_from(caps.len() + 2) {
        out.put_u8(len);
        out.put_u8(PARAM_CAPABILITIES);
        out.put_u8(len - 2);
        out.put_slice(&caps);
    } else {
        let len = u16::try_from(caps.len()).unwrap_or(u16::MAX);
        let caps = caps.get(..usize::from(len)).unwrap_or_default();
        out.put_u8(255);
        out.put_u8(PARAM_EXTENDED);
        out.put_u16(len.saturating_add(3));
        out.put_u8(PARAM_CAPABILITIES);
        out.put_u16(len);
        out.put_slice(caps);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::{encode_to_bytes, AfiSafi, Context, Message};
    use super::*;
    use bytes::Bytes;

    fn msg(body: &[u8]) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&u16::try_from(body.len() + 19).unwrap().to_be_bytes());
        m.push(1);
        m.extend_from_slice(body);
        m
    }

    fn body(version: u8, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
        let mut b = vec![version, 0xfd, 0xe8];
        b.extend_from_slice(&hold.to_be_bytes());
        b.extend_from_slice(&id);
        b.push(u8::try_from(params.len()).unwrap());
        b.extend_from_slice(params);
        b
    }

    fn err(b: &[u8]) -> (u8, u8, Bytes) {
        let n = super::super::decode(&msg(b), &Context::default()).unwrap_err();
        (n.code, n.subcode, n.data)
    }

    #[test]
    fn open_round_trip_and_asn() {
        let o = Open::new(
            4_200_000_000,
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::FourOctetAs(4_200_000_000),
            ],
        );
        assert_eq!(o.my_as, 23456);
        assert_eq!(o.asn(), 4_200_000_000);
        let b = encode_to_bytes(&Message::Open(o.clone()), &Context::default());
        assert_eq!(b.len(), 29 + 2 + 6 + 6);
        assert_eq!(
            super::super::decode(&b, &Context::default()),
            Ok(Message::Open(o))
        );
        let small = Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 1), vec![]);
        assert_eq!((small.my_as, small.asn()), (65001, 65001));
    }

    #[test]
    fn unsupported_version_is_2_1_with_version_4() {
        assert_eq!(
            err(&body(3, 90, [1, 1, 1, 1], &[])),
            (2, 1, Bytes::from_static(&[0, 4]))
        );
    }

    #[test]
    fn hold_time_1_or_2_is_2_6() {
        for h in [1, 2] {
            assert_eq!(err(&body(4, h, [1, 1, 1, 1], &[])), (2, 6, Bytes::new()));
        }
        for h in [0, 3, 65535] {
            assert!(decode(&body(4, h, [1, 1, 1, 1], &[])).is_ok());
        }
    }

    #[test]
    fn bad_bgp_identifier_is_2_3() {
        for id in [[0, 0, 0, 0], [255, 255, 255, 255], [224, 0, 0, 5]] {
            assert_eq!(err(&body(4, 90, id, &[])), (2, 3, Bytes::new()));
        }
    }

    #[test]
    fn unknown_parameter_type_is_2_4() {
        assert_eq!(
            err(&body(4, 90, [1, 1, 1, 1], &[1, 2, 0, 0])),
            (2, 4, Bytes::new())
        );
    }

    #[test]
    fn malformed_parameters_are_2_0() {
        // parameter length past opt parm len
        assert_eq!(
            err(&body(4, 90, [1, 1, 1, 1], &[2, 5, 2, 0])),
            (2, 0, Bytes::new())
        );
        // capability cut short inside its parameter
        assert_eq!(
            err(&body(4, 90, [1, 1, 1, 1], &[2, 2, 65, 4])),
            (2, 0, Bytes::new())
        );
        // opt parm len shorter than what follows
        let mut b = body(4, 90, [1, 1, 1, 1], &[2, 2, 2, 0]);
        b.push(0);
        assert_eq!(err(&b), (2, 0, Bytes::new()));
        // a lone parameter type octet
        assert_eq!(err(&body(4, 90, [1, 1, 1, 1], &[2])), (2, 0, Bytes::new()));
    }

    #[test]
    fn several_parameters_decode() {
        let o = decode(&body(
            4,
            90,
            [1, 1, 1, 1],
            &[2, 2, 2, 0, 2, 6, 65, 4, 0, 1, 0, 0],
        ))
        .unwrap();
        assert_eq!(
            o.capabilities,
            vec![Capability::RouteRefresh, Capability::FourOctetAs(65536)]
        );
        assert_eq!(o.asn(), 65536);
    }

    #[test]
    fn extended_optional_parameters_rfc9072() {
        // Decoding a hand-made RFC 9072 OPEN with a short parameter in extended form.
        let mut b = vec![
            4, 0xfd, 0xe8, 0, 90, 1, 1, 1, 1, 255, 255, 0, 5, 2, 0, 2, 2, 0,
        ];
        let o = decode(&b).unwrap();
        assert_eq!(o.capabilities, vec![Capability::RouteRefresh]);
        b.push(0);
        assert!(decode(&b).is_err());

        // Encoding switches to it only past 255 octets of parameters.
        let caps: Vec<_> = (0..70)
            .map(|i| Capability::Multiprotocol(AfiSafi { afi: i, safi: 1 }))
            .collect();
        let o = Open::new(65000, 90, Ipv4Addr::new(1, 2, 3, 4), caps);
        let wire = encode_to_bytes(&Message::Open(o.clone()), &Context::default());
        assert_eq!(&wire[28..33], &[255, 255, 1, 0xa7, 2]);
        assert_eq!(
            super::super::decode(&wire, &Context::default()),
            Ok(Message::Open(o))
        );

        let caps: Vec<_> = (0..42)
            .map(|i| Capability::Multiprotocol(AfiSafi { afi: i, safi: 1 }))
            .collect();
        let o = Open::new(65000, 90, Ipv4Addr::new(1, 2, 3, 4), caps);
        let wire = encode_to_bytes(&Message::Open(o), &Context::default());
        assert_eq!(&wire[28..31], &[254, 2, 252]);
    }
}
