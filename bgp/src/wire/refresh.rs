//! ROUTE-REFRESH message (RFC 2918 §3) with the Message Subtype of Enhanced Route Refresh
//! (RFC 7313 §3.2).
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Res.  | SAFI  |
//! +-------+-------+-------+-------+
//! ```
//!
//! RFC 7313 renames "Res." to "Message Subtype": 0 normal request, 1 BoRR, 2 EoRR,
//! 255 reserved.

use bytes::{BufMut, Bytes, BytesMut};
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;

use super::error::RefreshError;
use super::AfiSafi;

/// A route refresh request or an RFC 7313 demarcation.
///
/// Subtypes other than 0, 1 and 2 are decoded as they are: RFC 7313 §5 says to ignore such
/// a message, which is the session's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi_safi: AfiSafi,
    /// 0 normal, 1 BoRR, 2 EoRR (RFC 7313)
    pub subtype: u8,
}

impl RouteRefresh {
    pub const NORMAL: u8 = 0;
    pub const BORR: u8 = 1;
    pub const EORR: u8 = 2;

    pub fn new(afi_safi: AfiSafi, subtype: u8) -> RouteRefresh {
        RouteRefresh { afi_safi, subtype }
    }
}

fn parse(i: &[u8]) -> IResult<&[u8], RouteRefresh> {
    let (i, afi) = be_u16(i)?;
    let (i, subtype) = be_u8(i)?;
    let (i, safi) = be_u8(i)?;
    Ok((
        i,
        RouteRefresh {
            afi_safi: AfiSafi { afi, safi },
            subtype,
        },
    ))
}

/// A body longer than 4 octets is a 7/1 error for BoRR/EoRR (RFC 7313 §5, data = the
/// whole message) and a 1/2 error otherwise: ipipd does not do ORF (RFC 5291).
pub(super) fn decode(msg: &[u8], body: &[u8]) -> Result<RouteRefresh, RefreshError> {
    let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
    let (rest, rr) = parse(body).map_err(|_| RefreshError::BadLength(len))?;
    if !rest.is_empty() {
        return Err(match rr.subtype {
            RouteRefresh::BORR | RouteRefresh::EORR => {
                RefreshError::InvalidLength(Bytes::copy_from_slice(msg))
            }
            _ => RefreshError::BadLength(len),
        });
    }
    Ok(rr)
}

pub(super) fn encode(rr: &RouteRefresh, out: &mut BytesMut) {
    out.put_u16(rr.afi_safi.afi);
    out.put_u8(rr.subtype);
    out.put_u8(rr.afi_safi.safi);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::*;

    #[test]
    fn route_refresh_subtypes_round_trip() {
        let ctx = Context::default();
        for sub in [0u8, 1, 2] {
            let m = Message::RouteRefresh(RouteRefresh::new(AfiSafi::IPV6_UNICAST, sub));
            let b = encode_to_bytes(&m, &ctx);
            assert_eq!(b.len(), 23);
            assert_eq!(&b[19..], &[0, 2, sub, 1]);
            assert_eq!(decode(&b, &ctx), Ok(m));
        }
    }

    #[test]
    fn long_borr_is_7_1_with_message() {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&[0, 24, 5, 0, 1, 1, 1, 0]);
        let e = decode(&m, &Context::default()).unwrap_err();
        assert_eq!((e.code, e.subcode), (7, 1));
        assert_eq!(&e.data[..], &m[..]);
        // A normal request with ORF entries: not supported, bad length.
        if let Some(b) = m.get_mut(21) {
            *b = 0;
        }
        let e = decode(&m, &Context::default()).unwrap_err();
        assert_eq!((e.code, e.subcode, &e.data[..]), (1, 2, &[0u8, 24][..]));
    }
}
