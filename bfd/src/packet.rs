//! The BFD Control packet (RFC 5880 §4.1) without authentication.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Your Discriminator                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Desired Min TX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Required Min RX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |       Optional Authentication Section (if present, A bit)     |
//! ```
#![forbid(unsafe_code)]

use std::fmt;

/// Length of a Control packet without authentication.
pub const LEN: usize = 24;

/// The only version RFC 5880 defines.
pub const VERSION: u8 = 1;

/// Session state as carried in the Sta field (RFC 5880 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The name `show bfd` prints.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Diagnostic code (RFC 5880 §4.1); reserved values are kept as they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Diag {
    None,
    /// 1: Control Detection Time Expired.
    DetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborDown,
    /// 4: Forwarding Plane Reset.
    ForwardingReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdminDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// 9–31: reserved.
    Reserved(u8),
}

impl Diag {
    fn from_bits(b: u8) -> Diag {
        match b & 0x1f {
            0 => Diag::None,
            1 => Diag::DetectionTimeExpired,
            2 => Diag::EchoFailed,
            3 => Diag::NeighborDown,
            4 => Diag::ForwardingReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdminDown,
            8 => Diag::ReverseConcatenatedPathDown,
            n => Diag::Reserved(n),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::DetectionTimeExpired => 1,
            Diag::EchoFailed => 2,
            Diag::NeighborDown => 3,
            Diag::ForwardingReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdminDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(n) => n & 0x1f,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::None => f.write_str("no diagnostic"),
            Diag::DetectionTimeExpired => f.write_str("control detection time expired"),
            Diag::EchoFailed => f.write_str("echo function failed"),
            Diag::NeighborDown => f.write_str("neighbor signaled session down"),
            Diag::ForwardingReset => f.write_str("forwarding plane reset"),
            Diag::PathDown => f.write_str("path down"),
            Diag::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diag::AdminDown => f.write_str("administratively down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Diag::Reserved(n) => write!(f, "reserved diagnostic {n}"),
        }
    }
}

/// A decoded Control packet. Intervals are in microseconds, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub diag: Diag,
    pub state: State,
    /// P: Poll.
    pub poll: bool,
    /// F: Final.
    pub final_: bool,
    /// C: Control Plane Independent.
    pub cpi: bool,
    /// D: Demand.
    pub demand: bool,
    pub detect_mult: u8,
    pub my_disc: u32,
    pub your_disc: u32,
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
}

/// Why a received packet is discarded (RFC 5880 §6.8.6, first checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes: shorter than a Control packet")]
    Short(usize),
    #[error("version {0}: only 1 is known")]
    Version(u8),
    #[error("length field {field} does not fit the {received} bytes received")]
    Length { field: u8, received: usize },
    #[error("detect multiplier 0")]
    DetectMultZero,
    #[error("multipoint bit set")]
    Multipoint,
    #[error("my discriminator 0")]
    MyDiscriminatorZero,
    #[error("authentication present, none configured")]
    Authentication,
}

fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

/// Decodes one datagram. Pure: whether the packet belongs to a session (your
/// discriminator, source address) is the caller's question.
pub fn decode(buf: &[u8]) -> Result<Packet, DecodeError> {
    let Some(fixed) = buf.get(..LEN) else {
        return Err(DecodeError::Short(buf.len()));
    };
    let mut w = [0u8; LEN];
    w.copy_from_slice(fixed);
    let [b0, b1, detect_mult, length, d0, d1, d2, d3, y0, y1, y2, y3, t0, t1, t2, t3, r0, r1, r2, r3, e0, e1, e2, e3] =
        w;
    let version = b0 >> 5;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let auth = b1 & 0x04 != 0;
    let min_len = if auth { LEN + 2 } else { LEN };
    if usize::from(length) < min_len || usize::from(length) > buf.len() {
        return Err(DecodeError::Length {
            field: length,
            received: buf.len(),
        });
    }
    if detect_mult == 0 {
        return Err(DecodeError::DetectMultZero);
    }
    if b1 & 0x01 != 0 {
        return Err(DecodeError::Multipoint);
    }
    let my_disc = be32([d0, d1, d2, d3]);
    if my_disc == 0 {
        return Err(DecodeError::MyDiscriminatorZero);
    }
    if auth {
        return Err(DecodeError::Authentication);
    }
    Ok(Packet {
        diag: Diag::from_bits(b0),
        state: State::from_bits(b1 >> 6),
        poll: b1 & 0x20 != 0,
        final_: b1 & 0x10 != 0,
        cpi: b1 & 0x08 != 0,
        demand: b1 & 0x02 != 0,
        detect_mult,
        my_disc,
        your_disc: be32([y0, y1, y2, y3]),
        desired_min_tx: be32([t0, t1, t2, t3]),
        required_min_rx: be32([r0, r1, r2, r3]),
        required_min_echo_rx: be32([e0, e1, e2, e3]),
    })
}

/// Encodes a packet (version 1, no authentication, never multipoint).
pub fn encode(p: &Packet) -> [u8; LEN] {
    let flag = |on: bool, bit: u8| if on { bit } else { 0 };
    let mut out = [0u8; LEN];
    out[0] = (VERSION << 5) | p.diag.bits();
    out[1] = (p.state.bits() << 6)
        | flag(p.poll, 0x20)
        | flag(p.final_, 0x10)
        | flag(p.cpi, 0x08)
        | flag(p.demand, 0x02);
    out[2] = p.detect_mult;
    out[3] = LEN as u8;
    out[4..8].copy_from_slice(&p.my_disc.to_be_bytes());
    out[8..12].copy_from_slice(&p.your_disc.to_be_bytes());
    out[12..16].copy_from_slice(&p.desired_min_tx.to_be_bytes());
    out[16..20].copy_from_slice(&p.required_min_rx.to_be_bytes());
    out[20..24].copy_from_slice(&p.required_min_echo_rx.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Init packet laid out by hand from RFC 5880 §4.1 with BIRD 2's idle
    /// values: diag 0, detect mult 5, my 0x2b3b1a6e, your 0x1c0f0e11, 1 s / 10 ms / 0.
    const BIRD_INIT: [u8; 24] = [
        0x20, 0x80, 0x05, 0x18, 0x2b, 0x3b, 0x1a, 0x6e, 0x1c, 0x0f, 0x0e, 0x11, 0x00, 0x0f, 0x42,
        0x40, 0x00, 0x00, 0x27, 0x10, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn decodes_a_bird_packet_and_encodes_it_back() -> Result<(), DecodeError> {
        let p = decode(&BIRD_INIT)?;
        assert_eq!(p.state, State::Init);
        assert_eq!(p.diag, Diag::None);
        assert_eq!(p.detect_mult, 5);
        assert_eq!(p.my_disc, 0x2b3b_1a6e);
        assert_eq!(p.your_disc, 0x1c0f_0e11);
        assert_eq!(p.desired_min_tx, 1_000_000);
        assert_eq!(p.required_min_rx, 10_000);
        assert!(!p.poll && !p.final_ && !p.cpi && !p.demand);
        assert_eq!(encode(&p), BIRD_INIT);
        Ok(())
    }

    fn with(f: impl FnOnce(&mut [u8; 24])) -> [u8; 24] {
        let mut b = BIRD_INIT;
        f(&mut b);
        b
    }

    #[test]
    fn malformed_packets_are_refused_with_their_reason() {
        assert_eq!(decode(&BIRD_INIT[..23]), Err(DecodeError::Short(23)));
        assert_eq!(decode(&with(|b| b[0] = 0x40)), Err(DecodeError::Version(2)));
        assert_eq!(
            decode(&with(|b| b[3] = 23)),
            Err(DecodeError::Length {
                field: 23,
                received: 24
            })
        );
        assert_eq!(
            decode(&with(|b| b[3] = 25)),
            Err(DecodeError::Length {
                field: 25,
                received: 24
            })
        );
        assert_eq!(
            decode(&with(|b| b[2] = 0)),
            Err(DecodeError::DetectMultZero)
        );
        assert_eq!(decode(&with(|b| b[1] |= 1)), Err(DecodeError::Multipoint));
        assert_eq!(
            decode(&with(|b| b[4..8].fill(0))),
            Err(DecodeError::MyDiscriminatorZero)
        );
        let mut auth = BIRD_INIT.to_vec();
        auth[1] |= 0x04;
        auth[3] = 28;
        auth.extend_from_slice(&[1, 4, 0, 0]);
        assert_eq!(decode(&auth), Err(DecodeError::Authentication));
    }

    #[test]
    fn trailing_bytes_beyond_the_length_are_ignored() -> Result<(), DecodeError> {
        let mut b = BIRD_INIT.to_vec();
        b.extend_from_slice(&[0xff; 8]);
        assert_eq!(decode(&b)?, decode(&BIRD_INIT)?);
        Ok(())
    }

    fn state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::AdminDown),
            Just(State::Down),
            Just(State::Init),
            Just(State::Up)
        ]
    }

    prop_compose! {
        fn packet()(diag in 0u8..32, state in state(), poll: bool, final_: bool, cpi: bool,
                    demand: bool, detect_mult in 1u8.., my_disc in 1u32.., your_disc: u32,
                    desired_min_tx: u32, required_min_rx: u32, required_min_echo_rx: u32) -> Packet {
            Packet { diag: Diag::from_bits(diag), state, poll, final_, cpi, demand, detect_mult,
                     my_disc, your_disc, desired_min_tx, required_min_rx, required_min_echo_rx }
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(p in packet()) {
            prop_assert_eq!(decode(&encode(&p)), Ok(p));
        }

        #[test]
        fn decode_never_panics_and_what_decodes_encodes_back(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = decode(&bytes) {
                let again = encode(&p);
                // Everything but the length byte and the bits we refuse is kept.
                prop_assert_eq!(decode(&again), Ok(p));
                prop_assert_eq!(&again[4..24], &bytes[4..24]);
            }
        }
    }
}
