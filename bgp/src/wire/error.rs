//! Decoding errors, one type per message kind, each turned into exactly one NOTIFICATION
//! by the `From` impls below.

use std::net::Ipv4Addr;

use bytes::Bytes;

use super::codes;
use super::Notification;

/// Message header errors (RFC 4271 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("marker is not all ones")]
    ConnectionNotSynchronized,
    #[error("bad message length {0}")]
    BadLength(u16),
    #[error("bad message type {0}")]
    BadType(u8),
}

impl From<HeaderError> for Notification {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::ConnectionNotSynchronized => Notification::new(
                codes::MESSAGE_HEADER,
                codes::CONNECTION_NOT_SYNCHRONIZED,
                Bytes::new(),
            ),
            HeaderError::BadLength(len) => Notification::new(
                codes::MESSAGE_HEADER,
                codes::BAD_MESSAGE_LENGTH,
                Bytes::copy_from_slice(&len.to_be_bytes()),
            ),
            HeaderError::BadType(t) => Notification::new(
                codes::MESSAGE_HEADER,
                codes::BAD_MESSAGE_TYPE,
                Bytes::copy_from_slice(&[t]),
            ),
        }
    }
}

/// OPEN message errors (RFC 4271 §6.2, RFC 5492, RFC 9072).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    #[error("bad BGP identifier {0}")]
    BadBgpIdentifier(Ipv4Addr),
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// Lengths that disagree with each other or run past the message, or a known
    /// capability whose value has the wrong size.
    #[error("malformed optional parameters: {0}")]
    Malformed(&'static str),
}

impl From<OpenError> for Notification {
    fn from(e: OpenError) -> Self {
        let (sub, data) = match e {
            // RFC 4271 §6.2: data is the largest supported version, as 2 octets.
            OpenError::UnsupportedVersion(_) => (
                codes::UNSUPPORTED_VERSION_NUMBER,
                Bytes::from_static(&[0, 4]),
            ),
            OpenError::BadBgpIdentifier(_) => (codes::BAD_BGP_IDENTIFIER, Bytes::new()),
            OpenError::UnacceptableHoldTime(_) => (codes::UNACCEPTABLE_HOLD_TIME, Bytes::new()),
            OpenError::UnsupportedOptionalParameter(_) => {
                (codes::UNSUPPORTED_OPTIONAL_PARAMETER, Bytes::new())
            }
            OpenError::Malformed(_) => (codes::UNSPECIFIC, Bytes::new()),
        };
        Notification::new(codes::OPEN_MESSAGE, sub, data)
    }
}

/// UPDATE errors that reset the session (RFC 7606 "session reset"). The milder outcomes
/// are not errors: they are [`super::Outcome`] values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// Withdrawn Routes Length or Total Path Attribute Length past the message, or a
    /// repeated MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 7606 §3).
    #[error("malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    /// A well-known attribute we do not know; data is the whole attribute.
    #[error("unrecognized well-known attribute")]
    UnrecognizedWellKnown(Bytes),
    /// Withdrawn routes or NLRI field syntactically incorrect (RFC 7606 §5.3).
    #[error("invalid network field")]
    InvalidNetworkField,
    /// MP_REACH_NLRI / MP_UNREACH_NLRI that cannot be parsed, so its NLRI cannot be found
    /// (RFC 7606 §5.3, §7.11; subcode per RFC 4760 §7); data is the whole attribute.
    #[error("malformed multiprotocol attribute")]
    OptionalAttribute(Bytes),
}

impl From<UpdateError> for Notification {
    fn from(e: UpdateError) -> Self {
        let (sub, data) = match e {
            UpdateError::MalformedAttributeList(_) => {
                (codes::MALFORMED_ATTRIBUTE_LIST, Bytes::new())
            }
            UpdateError::UnrecognizedWellKnown(a) => (codes::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, a),
            UpdateError::InvalidNetworkField => (codes::INVALID_NETWORK_FIELD, Bytes::new()),
            UpdateError::OptionalAttribute(a) => (codes::OPTIONAL_ATTRIBUTE_ERROR, a),
        };
        Notification::new(codes::UPDATE_MESSAGE, sub, data)
    }
}

/// ROUTE-REFRESH errors (RFC 7313 §5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// BoRR/EoRR longer than 4 octets; data is the whole message.
    #[error("invalid ROUTE-REFRESH length")]
    InvalidLength(Bytes),
    /// A normal ROUTE-REFRESH longer than 4 octets (ORF, RFC 5291, is not supported).
    #[error("bad ROUTE-REFRESH length {0}")]
    BadLength(u16),
}

impl From<RefreshError> for Notification {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::InvalidLength(m) => {
                Notification::new(codes::ROUTE_REFRESH, codes::INVALID_MESSAGE_LENGTH, m)
            }
            RefreshError::BadLength(len) => HeaderError::BadLength(len).into(),
        }
    }
}
