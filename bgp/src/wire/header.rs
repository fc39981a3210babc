//! Message header and framing (RFC 4271 §4.1, §6.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +                                                               +
//! |                           Marker                              |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;

use super::error::HeaderError;
use super::{Context, Notification, HEADER_LEN, MAX_MESSAGE_LEN};

const MARKER: [u8; 16] = [0xff; 16];

/// The five message types of RFC 4271 and RFC 2918.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    pub fn from_u8(t: u8) -> Option<MessageType> {
        Some(match t {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// Smallest legal length per RFC 4271 §4.2–4.5 and RFC 2918 §3.
    fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => HEADER_LEN,
            MessageType::RouteRefresh => 23,
        }
    }

    /// Largest legal length. OPEN stays within 4096 even with Extended Message (RFC 8654
    /// §4), KEEPALIVE is the bare header. ROUTE-REFRESH may be longer than 23 octets only to
    /// let [`super::decode`] answer with the RFC 7313 §5 error.
    fn max_len(self, ctx: &Context) -> usize {
        match self {
            MessageType::Open => MAX_MESSAGE_LEN,
            MessageType::Keepalive => HEADER_LEN,
            _ => ctx.max_message_len(),
        }
    }
}

fn parse_header(i: &[u8]) -> IResult<&[u8], (&[u8], u16, u8)> {
    let (i, marker) = take(16usize)(i)?;
    let (i, len) = be_u16(i)?;
    let (i, kind) = be_u8(i)?;
    Ok((i, (marker, len, kind)))
}

/// Ok(None): buf does not yet hold a whole message. Ok(Some(n)): the first message is buf[..n].
/// Err: header error (bad marker 1/1, bad length 1/2 with the length as data, bad type 1/3
/// with the type as data).
///
/// Checks in the order of RFC 4271 §6.1: marker, length range, type, then the length the
/// type requires (OPEN ≥ 29, UPDATE ≥ 23, NOTIFICATION ≥ 21, KEEPALIVE = 19,
/// ROUTE-REFRESH ≥ 23). A partial marker is checked as soon as it arrives so that garbage is
/// rejected without waiting for 19 octets.
pub fn frame(buf: &[u8], ctx: &Context) -> Result<Option<usize>, Notification> {
    if buf.iter().take(MARKER.len()).any(|b| *b != 0xff) {
        return Err(HeaderError::ConnectionNotSynchronized.into());
    }
    let Ok((_, (_, len, kind))) = parse_header(buf) else {
        return Ok(None);
    };
    let n = usize::from(len);
    if !(HEADER_LEN..=ctx.max_message_len()).contains(&n) {
        return Err(HeaderError::BadLength(len).into());
    }
    let Some(kind) = MessageType::from_u8(kind) else {
        return Err(HeaderError::BadType(kind).into());
    };
    if n < kind.min_len() || n > kind.max_len(ctx) {
        return Err(HeaderError::BadLength(len).into());
    }
    Ok((buf.len() >= n).then_some(n))
}

/// Validates the header of one whole message and returns its type and body.
pub(super) fn split<'a>(
    msg: &'a [u8],
    ctx: &Context,
) -> Result<(MessageType, &'a [u8]), Notification> {
    let declared = match frame(msg, ctx)? {
        Some(n) => n,
        None => {
            // Shorter than its own length field (or than a header).
            let len = parse_header(msg).map(|(_, (_, l, _))| l).unwrap_or(0);
            return Err(HeaderError::BadLength(len).into());
        }
    };
    if declared != msg.len() {
        let len = u16::try_from(declared).unwrap_or(u16::MAX);
        return Err(HeaderError::BadLength(len).into());
    }
    let (body, (_, _, kind)) =
        parse_header(msg).map_err(|_| Notification::from(HeaderError::BadLength(0)))?;
    let kind = MessageType::from_u8(kind).ok_or(HeaderError::BadType(kind))?;
    Ok((kind, body))
}

/// Writes a header with a zero length and returns where it starts.
pub(super) fn begin(out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_slice(&MARKER);
    out.put_u16(0);
    out.put_u8(0);
    start
}

/// Fills in the length and type of the header written by [`begin`].
pub(super) fn finish(out: &mut BytesMut, start: usize, kind: MessageType) {
    let len = u16::try_from(out.len().saturating_sub(start)).unwrap_or(u16::MAX);
    if let Some(field) = out.get_mut(start + 16..start + 19) {
        let [hi, lo] = len.to_be_bytes();
        field.copy_from_slice(&[hi, lo, kind as u8]);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn hdr(len: u16, kind: u8) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&len.to_be_bytes());
        v.push(kind);
        v
    }

    #[test]
    fn partial_input_waits() {
        let ctx = Context::default();
        assert_eq!(frame(&[], &ctx), Ok(None));
        assert_eq!(frame(&[0xff; 18], &ctx), Ok(None));
        let mut m = hdr(23, 2);
        assert_eq!(frame(&m, &ctx), Ok(None));
        m.extend_from_slice(&[0, 0, 0, 0, 0xaa]);
        assert_eq!(frame(&m, &ctx), Ok(Some(23)));
    }

    #[test]
    fn bad_marker_is_1_1() {
        let mut m = hdr(19, 4);
        if let Some(b) = m.get_mut(3) {
            *b = 0;
        }
        let e = frame(&m, &Context::default()).unwrap_err();
        assert_eq!((e.code, e.subcode, e.data.len()), (1, 1, 0));
        // Detected before the header is complete.
        let e = frame(&[0xff, 0xfe], &Context::default()).unwrap_err();
        assert_eq!((e.code, e.subcode), (1, 1));
    }

    #[test]
    fn bad_lengths_are_1_2_with_length() {
        let ctx = Context::default();
        for (len, kind) in [
            (18u16, 4u8),
            (4097, 2),
            (20, 4),
            (28, 1),
            (22, 2),
            (20, 3),
            (22, 5),
        ] {
            let e = frame(&hdr(len, kind), &ctx).unwrap_err();
            assert_eq!((e.code, e.subcode), (1, 2), "len {len} type {kind}");
            assert_eq!(&e.data[..], &len.to_be_bytes()[..]);
        }
        let ext = Context {
            extended_message: true,
            ..Context::default()
        };
        assert_eq!(frame(&hdr(4097, 2), &ext), Ok(None));
        assert!(
            frame(&hdr(4097, 1), &ext).is_err(),
            "OPEN stays within 4096"
        );
    }

    #[test]
    fn bad_type_is_1_3_with_type() {
        let e = frame(&hdr(19, 9), &Context::default()).unwrap_err();
        assert_eq!((e.code, e.subcode, &e.data[..]), (1, 3, &[9u8][..]));
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut m = hdr(19, 4);
        m.push(0);
        let e = super::super::decode(&m, &Context::default()).unwrap_err();
        assert_eq!((e.code, e.subcode, &e.data[..]), (1, 2, &[0u8, 19][..]));
    }
}
