//! BGP-4 wire codec (RFC 4271 and the extensions ipipd speaks).
//!
//! Framing ([`frame`]) is separate from decoding ([`decode`]): the session reads bytes until
//! `frame` says a whole message is buffered, then hands exactly that message to `decode`.
//! Both are pure functions of the bytes and a [`Context`] that carries what was negotiated
//! in the OPEN exchange. Errors are values: a decoding failure is the [`Notification`] to
//! send, and the RFC 7606 outcomes that do not reset the session travel inside
//! [`Update::outcome`].
//!
//! Nothing here indexes or unwraps wire data, and every allocation is bounded by bytes that
//! are actually present in the buffer, never by a length field read from it.

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

mod aspath;
mod attr_decode;
mod attribute;
mod capability;
mod error;
mod header;
mod nlri;
mod notification;
mod open;
mod pack;
mod refresh;
mod update;

use bytes::BytesMut;

pub use aspath::{AsPath, AsSegment, SegmentKind, AS_TRANS};
pub use attribute::{
    Aggregator, Attributes, LargeCommunity, MpReach, MpUnreach, Origin, RawAttribute,
};
pub use capability::{AddPathMode, Capability, GracefulRestart};

/// Capability codes (IANA "Capability Codes"), e.g. for [`Open::has_capability`].
pub mod capability_code {
    pub use super::capability::{
        ADD_PATH, ENHANCED_ROUTE_REFRESH, EXTENDED_MESSAGE, FOUR_OCTET_AS, FQDN, GRACEFUL_RESTART,
        MULTIPROTOCOL, ROUTE_REFRESH,
    };
}
pub use error::{HeaderError, OpenError, RefreshError, UpdateError};
pub use header::{frame, MessageType};
pub use nlri::Nlri;
pub use notification::{codes, Notification};
pub use open::Open;
pub use pack::{pack_announce, pack_withdraw};
pub use refresh::RouteRefresh;
pub use update::{AttrError, Outcome, Update};

/// Length of the fixed message header (marker, length, type).
pub const HEADER_LEN: usize = 19;
/// Largest message without the Extended Message capability (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message once both sides announced Extended Message (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// An address family and subsequent address family pair (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AfiSafi {
    pub afi: u16,
    pub safi: u8,
}

impl AfiSafi {
    pub const IPV4_UNICAST: AfiSafi = AfiSafi { afi: 1, safi: 1 };
    pub const IPV6_UNICAST: AfiSafi = AfiSafi { afi: 2, safi: 1 };

    /// The family of a prefix when it travels as plain unicast.
    pub fn of(prefix: &ipnet::IpNet) -> AfiSafi {
        match prefix {
            ipnet::IpNet::V4(_) => AfiSafi::IPV4_UNICAST,
            ipnet::IpNet::V6(_) => AfiSafi::IPV6_UNICAST,
        }
    }
}

impl std::fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            AfiSafi::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            AfiSafi::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            AfiSafi { afi, safi } => write!(f, "afi {afi}/safi {safi}"),
        }
    }
}

/// A yes/no per unicast family ipipd handles (used for ADD-PATH directions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Families {
    /// Families ipipd does not handle are always `false`.
    pub fn get(&self, family: AfiSafi) -> bool {
        match family {
            AfiSafi::IPV4_UNICAST => self.ipv4,
            AfiSafi::IPV6_UNICAST => self.ipv6,
            _ => false,
        }
    }

    /// Sets the flag of `family`; families ipipd does not handle are ignored.
    pub fn set(&mut self, family: AfiSafi, value: bool) {
        match family {
            AfiSafi::IPV4_UNICAST => self.ipv4 = value,
            AfiSafi::IPV6_UNICAST => self.ipv6 = value,
            _ => {}
        }
    }
}

/// What was negotiated on a session; decode uses the *_rx fields, encode the *_tx ones.
///
/// Before the OPEN exchange completes use `Context::default()`: OPEN, KEEPALIVE and
/// NOTIFICATION do not depend on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// Both sides announced the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Both sides announced the Extended Message capability (RFC 8654).
    pub extended_message: bool,
    /// Families in which the peer sends us path identifiers (RFC 7911).
    pub add_path_rx: Families,
    /// Families in which we send path identifiers to the peer.
    pub add_path_tx: Families,
    /// The peer is in another AS: changes RFC 7606 handling of iBGP-only attributes.
    pub ebgp: bool,
}

impl Context {
    /// The largest message this session may carry.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

/// A decoded BGP message.
///
/// Not boxed: a message is moved once from the decoder to its handler, and the session
/// code matches on it directly.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    /// KEEPALIVE (RFC 4271 §4.4): the 19-octet header alone, type 4.
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// Decodes one whole message (header included) as returned by [`frame`].
///
/// The header is checked again, so a slice that is not exactly one message is rejected with
/// the header error `frame` would have given (or 1/2 when the slice length and the length
/// field disagree).
pub fn decode(msg: &[u8], ctx: &Context) -> Result<Message, Notification> {
    let (kind, body) = header::split(msg, ctx)?;
    match kind {
        MessageType::Open => open::decode(body).map(Message::Open).map_err(Into::into),
        MessageType::Update => update::decode(body, ctx)
            .map(Message::Update)
            .map_err(Into::into),
        MessageType::Notification => Ok(Message::Notification(notification::decode(body))),
        MessageType::Keepalive => Ok(Message::Keepalive),
        MessageType::RouteRefresh => refresh::decode(msg, body)
            .map(Message::RouteRefresh)
            .map_err(Into::into),
    }
}

/// Appends the encoding of `msg` (header included) to `out`.
///
/// The encoder does not split: an UPDATE bigger than the session allows comes out too big;
/// build UPDATEs with [`pack_announce`] / [`pack_withdraw`] to stay within the limit.
/// Values that cannot be represented at all (a capability longer than 255 octets, a
/// NOTIFICATION data field past the maximum message length) are truncated.
pub fn encode(msg: &Message, ctx: &Context, out: &mut BytesMut) {
    let start = header::begin(out);
    match msg {
        Message::Open(o) => open::encode(o, out),
        Message::Update(u) => update::encode(u, ctx, out),
        Message::Notification(n) => notification::encode(n, ctx, out),
        Message::Keepalive => {}
        Message::RouteRefresh(r) => refresh::encode(r, out),
    }
    header::finish(out, start, msg.message_type());
}

/// Encodes `msg` into a fresh buffer.
pub fn encode_to_bytes(msg: &Message, ctx: &Context) -> bytes::Bytes {
    let mut out = BytesMut::with_capacity(64);
    encode(msg, ctx, &mut out);
    out.freeze()
}
