//! BFD for ipipd: the RFC 5880 Control packet codec and asynchronous-mode
//! state machine (pure, sans-IO), and the RFC 5881 single-hop UDP driver.
//!
//! The core modules (`packet`, `session`) forbid unsafe code; `sys` holds the
//! one `recvmsg` that reads a datagram's TTL.

pub mod packet;
pub mod session;

pub use packet::{decode, encode, DecodeError, Diag, Packet, State};
pub use session::{Config, Input, Output, Session, Timer};

pub mod driver;
pub mod keeper;
mod sys;

pub use driver::{Driver, Event, Spec, Status};
