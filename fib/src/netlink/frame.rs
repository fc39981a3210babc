//! The framing of netlink messages and the exchanges of one request with the kernel,
//! without I/O: what the socket on tokio (the daemon's) and the blocking socket (the CNI
//! plugin's) share. Both open their socket the same way, send the same bytes and read
//! the kernel's answers with the same code; only how they wait for a datagram differs.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

use crate::sys;
use crate::FibError;

pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 16;
const NLMSG_HDRLEN: usize = 16;
/// The kernel never sends datagrams larger than 32 KiB to a reader that offers more.
pub(crate) const RECV_BUF: usize = 64 * 1024;

/// One netlink message inside a datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// The message after its 16-byte header.
    pub payload: &'a [u8],
    /// The whole message, header included.
    pub whole: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The messages of one datagram, stopping at the first malformed header.
pub(crate) fn frames(mut buf: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    std::iter::from_fn(move || {
        let len = u32_at(buf, 0)? as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let frame = Frame {
            kind: u16_at(buf, 4)?,
            flags: u16_at(buf, 6)?,
            seq: u32_at(buf, 8)?,
            pid: u32_at(buf, 12)?,
            payload: buf.get(NLMSG_HDRLEN..len)?,
            whole: buf.get(..len)?,
        };
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or(&[]);
        Some(frame)
    })
}

/// The errno of an `NLMSG_ERROR` frame (0: success ack), or of an `NLMSG_DONE` frame.
pub(crate) fn error_code(frame: &Frame<'_>) -> i32 {
    u32_at(frame.payload, 0).map_or(0, |v| -(v as i32))
}

/// Append one message to `buf`; returns its offset.
pub(crate) fn encode(buf: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16, seq: u32) -> usize {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    nl.finalize();
    let start = buf.len();
    buf.resize(start + nl.buffer_len(), 0);
    if let Some(slot) = buf.get_mut(start..) {
        nl.serialize(slot);
    }
    start
}

/// Turn on `NLM_F_ACK` in the message at `offset`.
pub(crate) fn request_ack(buf: &mut [u8], offset: usize) {
    if let Some(flags) = u16_at(buf, offset + 6) {
        if let Some(slot) = buf.get_mut(offset + 6..offset + 8) {
            slot.copy_from_slice(&(flags | NLM_F_ACK).to_ne_bytes());
        }
    }
}

/// A bound rtnetlink socket for requests (`groups` empty) or for notifications of these
/// groups, in the calling thread's network namespace, and its port id. Blocking: the
/// socket on tokio makes it non-blocking.
pub(crate) fn open(groups: &[u32], rcvbuf: usize) -> Result<(Socket, u32), FibError> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(FibError::socket("open"))?;
    let addr = socket.bind_auto().map_err(FibError::socket("bind"))?;
    for g in groups {
        socket
            .add_membership(*g)
            .map_err(FibError::socket("join group"))?;
    }
    // Small error answers: the request is not echoed back inside them.
    socket
        .set_cap_ack(true)
        .map_err(FibError::socket("NETLINK_CAP_ACK"))?;
    // Dumps filtered by the kernel (protocol, table) instead of sent whole.
    socket
        .set_netlink_get_strict_chk(true)
        .map_err(FibError::socket("NETLINK_GET_STRICT_CHK"))?;
    // Room for a whole batch of requests in one send.
    sys::set_buffers(&socket, rcvbuf, 1 << 20);
    Ok((socket, addr.port_number()))
}

/// Sequence numbers of one socket: never 0, which notifications carry.
#[derive(Debug)]
pub(crate) struct Seq(u32);

impl Seq {
    pub fn new() -> Seq {
        Seq(1)
    }

    /// Reserve `n` consecutive sequence numbers; returns the first.
    pub fn take(&mut self, n: u32) -> u32 {
        let first = self.0;
        self.0 = self.0.wrapping_add(n.max(1));
        if self.0 == 0 {
            self.0 = 1;
        }
        first
    }
}

/// What one `recv` of `n` bytes (`MSG_TRUNC`: the datagram's whole size) left in `rbuf`.
pub(crate) fn datagram(rbuf: &[u8], n: usize) -> Result<&[u8], FibError> {
    if n > rbuf.len() {
        return Err(FibError::Decode(format!("datagram of {n} bytes truncated")));
    }
    Ok(rbuf)
}

/// What a failed `recv` means: `None` to read again (interrupted), else the error;
/// ENOBUFS is [`FibError::Lost`] (the kernel dropped messages for us).
pub(crate) fn recv_error(e: io::Error) -> Option<FibError> {
    if e.kind() == io::ErrorKind::Interrupted {
        return None;
    }
    if e.raw_os_error() == Some(libc::ENOBUFS) {
        return Some(FibError::Lost);
    }
    Some(FibError::Socket {
        context: "recv",
        source: e,
    })
}

pub(crate) fn to_io(e: FibError) -> io::Error {
    match e {
        FibError::Socket { source, .. } | FibError::Kernel { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// One request with an ack: the bytes to send, and the reader of the answers.
pub(crate) struct Ack {
    seq: u32,
}

impl Ack {
    pub fn new(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> (Ack, Vec<u8>) {
        let mut buf = Vec::with_capacity(256);
        encode(&mut buf, msg, flags | NLM_F_REQUEST | NLM_F_ACK, seq);
        (Ack { seq }, buf)
    }

    /// One datagram read after the request: `Some` when it holds the answer.
    pub fn read(&self, datagram: &[u8]) -> Option<io::Result<()>> {
        frames(datagram)
            .find(|f| f.seq == self.seq && f.kind == NLMSG_ERROR)
            .map(|f| match error_code(&f) {
                0 => Ok(()),
                errno => Err(io::Error::from_raw_os_error(errno)),
            })
    }
}

/// One `RTM_GET*` request for a single object: its answer is the payload of the message
/// that answers it (after its 16-byte header); an error answer is the error.
pub(crate) struct Get {
    seq: u32,
    answer: Option<Vec<u8>>,
}

impl Get {
    pub fn new(msg: RouteNetlinkMessage, seq: u32) -> (Get, Vec<u8>) {
        let mut buf = Vec::with_capacity(128);
        encode(&mut buf, msg, NLM_F_REQUEST | NLM_F_ACK, seq);
        (Get { seq, answer: None }, buf)
    }

    /// One datagram read after the request: `Some` when the exchange is over.
    pub fn read(&mut self, datagram: &[u8]) -> Option<io::Result<Option<Vec<u8>>>> {
        for f in frames(datagram) {
            if f.seq != self.seq {
                continue;
            }
            match f.kind {
                NLMSG_ERROR => {
                    return Some(match error_code(&f) {
                        0 => Ok(self.answer.take()),
                        errno => Err(io::Error::from_raw_os_error(errno)),
                    })
                }
                NLMSG_DONE => return Some(Ok(self.answer.take())),
                NLMSG_NOOP | NLMSG_OVERRUN => {}
                _ => self.answer = Some(f.payload.to_vec()),
            }
        }
        None
    }
}

/// One dump: every answer message goes to the reader's `each`.
pub(crate) struct Dump {
    seq: u32,
    interrupted: bool,
}

/// How a dump ends.
pub(crate) enum DumpEnd {
    Done(Result<(), FibError>),
    /// The kernel marked it inconsistent (changed while dumping): run it again.
    Again,
}

impl Dump {
    pub fn new(msg: RouteNetlinkMessage, seq: u32, buf: &mut Vec<u8>) -> Dump {
        buf.clear();
        encode(buf, msg, NLM_F_REQUEST | NLM_F_DUMP, seq);
        Dump {
            seq,
            interrupted: false,
        }
    }

    /// One datagram read after the request: `Some` when the dump is over. Before
    /// [`DumpEnd::Again`], `each(None)` says that what it was given is void.
    pub fn read(
        &mut self,
        datagram: &[u8],
        each: &mut impl FnMut(Option<&Frame<'_>>),
    ) -> Option<DumpEnd> {
        let failed = |errno| {
            DumpEnd::Done(Err(FibError::Kernel {
                what: "dump".into(),
                source: io::Error::from_raw_os_error(errno),
            }))
        };
        for f in frames(datagram) {
            if f.seq != self.seq {
                continue;
            }
            self.interrupted |= f.flags & NLM_F_DUMP_INTR != 0;
            match f.kind {
                NLMSG_DONE => {
                    if self.interrupted {
                        each(None);
                        return Some(DumpEnd::Again);
                    }
                    return Some(match error_code(&f) {
                        0 => DumpEnd::Done(Ok(())),
                        errno => failed(errno),
                    });
                }
                NLMSG_ERROR => match error_code(&f) {
                    0 => {}
                    errno => return Some(failed(errno)),
                },
                NLMSG_NOOP | NLMSG_OVERRUN => {}
                _ => each(Some(&f)),
            }
        }
        None
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
