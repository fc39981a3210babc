//! NOTIFICATION message (RFC 4271 §4.5) and the error code registry.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Shutdown Communication (RFC 9003 §2, for Cease subcodes 2 and 4), in the data field:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code 6  |    Subcode    |    Length     |     ...       \
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! \                                                               \
//! /                 ... Shutdown Communication ...                /
//! \                                                               \
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::{Context, HEADER_LEN};

/// Error codes and subcodes (IANA "BGP Error (Notification) Codes" and "Subcodes").
pub mod codes {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;

    /// Subcode 0 of any code (RFC 4271 §4.5).
    pub const UNSPECIFIC: u8 = 0;

    // Message Header Error subcodes (RFC 4271).
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;

    // OPEN Message Error subcodes (RFC 4271, RFC 5492, RFC 9234).
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;

    // UPDATE Message Error subcodes (RFC 4271).
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;

    // Finite State Machine Error subcodes (RFC 6608).
    pub const FSM_UNEXPECTED_IN_OPENSENT: u8 = 1;
    pub const FSM_UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    pub const FSM_UNEXPECTED_IN_ESTABLISHED: u8 = 3;

    // Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;

    // ROUTE-REFRESH Message Error subcodes (RFC 7313).
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// A NOTIFICATION, whether received or about to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Bytes,
}

/// RFC 9003 §2: the Shutdown Communication is at most 255 octets of UTF-8.
const MAX_SHUTDOWN_LEN: usize = 255;

impl Notification {
    pub fn new(code: u8, subcode: u8, data: impl Into<Bytes>) -> Self {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// RFC 9003 Cease 6/2 or 6/4 with the length-prefixed UTF-8 message (truncated to 255
    /// bytes on a char boundary).
    pub fn shutdown(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = message.get(..end).unwrap_or_default();
        let mut data = BytesMut::with_capacity(1 + text.len());
        data.put_u8(u8::try_from(text.len()).unwrap_or(u8::MAX));
        data.put_slice(text.as_bytes());
        Notification::new(codes::CEASE, subcode, data.freeze())
    }

    /// The RFC 9003 Shutdown Communication of a Cease 6/2 or 6/4, if it carries one.
    /// Invalid UTF-8 is replaced (the text is only for logs); a length running past the
    /// data means there is no communication.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != codes::CEASE
            || !matches!(
                self.subcode,
                codes::ADMINISTRATIVE_SHUTDOWN | codes::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(*len))?;
        Some(String::from_utf8_lossy(text).into_owned())
    }

    /// The RFC name of the error code.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            codes::MESSAGE_HEADER => "Message Header Error",
            codes::OPEN_MESSAGE => "OPEN Message Error",
            codes::UPDATE_MESSAGE => "UPDATE Message Error",
            codes::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            codes::FSM => "Finite State Machine Error",
            codes::CEASE => "Cease",
            codes::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => "Unknown Error",
        }
    }

    /// The RFC name of the subcode, `None` for codes that have no subcodes.
    pub fn subcode_name(&self) -> Option<&'static str> {
        use codes::*;
        if self.code == HOLD_TIMER_EXPIRED && self.subcode == 0 {
            return None;
        }
        Some(match (self.code, self.subcode) {
            (_, 0) => "Unspecific",
            (MESSAGE_HEADER, 1) => "Connection Not Synchronized",
            (MESSAGE_HEADER, 2) => "Bad Message Length",
            (MESSAGE_HEADER, 3) => "Bad Message Type",
            (OPEN_MESSAGE, 1) => "Unsupported Version Number",
            (OPEN_MESSAGE, 2) => "Bad Peer AS",
            (OPEN_MESSAGE, 3) => "Bad BGP Identifier",
            (OPEN_MESSAGE, 4) => "Unsupported Optional Parameter",
            (OPEN_MESSAGE, 5) => "Authentication Failure",
            (OPEN_MESSAGE, 6) => "Unacceptable Hold Time",
            (OPEN_MESSAGE, 7) => "Unsupported Capability",
            (OPEN_MESSAGE, 11) => "Role Mismatch",
            (UPDATE_MESSAGE, 1) => "Malformed Attribute List",
            (UPDATE_MESSAGE, 2) => "Unrecognized Well-known Attribute",
            (UPDATE_MESSAGE, 3) => "Missing Well-known Attribute",
            (UPDATE_MESSAGE, 4) => "Attribute Flags Error",
            (UPDATE_MESSAGE, 5) => "Attribute Length Error",
            (UPDATE_MESSAGE, 6) => "Invalid ORIGIN Attribute",
            (UPDATE_MESSAGE, 7) => "AS Routing Loop",
            (UPDATE_MESSAGE, 8) => "Invalid NEXT_HOP Attribute",
            (UPDATE_MESSAGE, 9) => "Optional Attribute Error",
            (UPDATE_MESSAGE, 10) => "Invalid Network Field",
            (UPDATE_MESSAGE, 11) => "Malformed AS_PATH",
            (FSM, 1) => "Receive Unexpected Message in OpenSent State",
            (FSM, 2) => "Receive Unexpected Message in OpenConfirm State",
            (FSM, 3) => "Receive Unexpected Message in Established State",
            (CEASE, 1) => "Maximum Number of Prefixes Reached",
            (CEASE, 2) => "Administrative Shutdown",
            (CEASE, 3) => "Peer De-configured",
            (CEASE, 4) => "Administrative Reset",
            (CEASE, 5) => "Connection Rejected",
            (CEASE, 6) => "Other Configuration Change",
            (CEASE, 7) => "Connection Collision Resolution",
            (CEASE, 8) => "Out of Resources",
            (CEASE, 9) => "Hard Reset",
            (CEASE, 10) => "BFD Down",
            (ROUTE_REFRESH, 1) => "Invalid Message Length",
            _ => "Unknown Subcode",
        })
    }
}

impl std::fmt::Display for Notification {
    /// `Cease/Administrative Shutdown (6/2): "maintenance"`; other data as hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code_name())?;
        if let Some(sub) = self.subcode_name() {
            write!(f, "/{sub}")?;
        }
        write!(f, " ({}/{})", self.code, self.subcode)?;
        if let Some(text) = self.shutdown_message() {
            write!(f, ": {text:?}")?;
        } else if !self.data.is_empty() {
            f.write_str(": data ")?;
            for b in self.data.iter().take(32) {
                write!(f, "{b:02x}")?;
            }
            if self.data.len() > 32 {
                f.write_str("…")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Notification {}

pub(super) fn decode(body: &[u8]) -> Notification {
    match body {
        [code, subcode, data @ ..] => {
            Notification::new(*code, *subcode, Bytes::copy_from_slice(data))
        }
        // frame guarantees 2 octets; keep total anyway.
        _ => Notification::new(0, 0, Bytes::new()),
    }
}

/// The data is cut so that the message stays within the session's maximum length.
pub(super) fn encode(n: &Notification, ctx: &Context, out: &mut BytesMut) {
    out.put_u8(n.code);
    out.put_u8(n.subcode);
    let room = ctx.max_message_len().saturating_sub(HEADER_LEN + 2);
    out.put_slice(n.data.get(..room.min(n.data.len())).unwrap_or_default());
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_round_trip_and_display() {
        let n = Notification::shutdown(codes::ADMINISTRATIVE_SHUTDOWN, "maintenance");
        assert_eq!(&n.data[..], b"\x0bmaintenance");
        assert_eq!(n.shutdown_message().as_deref(), Some("maintenance"));
        assert_eq!(
            n.to_string(),
            "Cease/Administrative Shutdown (6/2): \"maintenance\""
        );
    }

    #[test]
    fn shutdown_truncates_on_char_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let n = Notification::shutdown(codes::ADMINISTRATIVE_RESET, &long);
        assert_eq!(n.data.first(), Some(&254));
        assert_eq!(n.data.len(), 255);
        assert_eq!(n.shutdown_message().map(|s| s.chars().count()), Some(127));
    }

    #[test]
    fn shutdown_message_absent_or_bad() {
        assert_eq!(
            Notification::new(6, 2, Bytes::new()).shutdown_message(),
            None
        );
        assert_eq!(
            Notification::new(6, 2, &b"\x05ab"[..]).shutdown_message(),
            None
        );
        assert_eq!(
            Notification::new(6, 3, &b"\x01a"[..]).shutdown_message(),
            None
        );
    }

    #[test]
    fn display_names() {
        assert_eq!(
            Notification::new(4, 0, Bytes::new()).to_string(),
            "Hold Timer Expired (4/0)"
        );
        assert_eq!(
            Notification::new(2, 1, &[0u8, 4][..]).to_string(),
            "OPEN Message Error/Unsupported Version Number (2/1): data 0004"
        );
        assert_eq!(
            Notification::new(7, 1, Bytes::new()).to_string(),
            "ROUTE-REFRESH Message Error/Invalid Message Length (7/1)"
        );
        assert_eq!(
            Notification::new(6, 7, Bytes::new()).to_string(),
            "Cease/Connection Collision Resolution (6/7)"
        );
    }
}
