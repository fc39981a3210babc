//! A raw rtnetlink socket on tokio, and the framing of netlink messages.
//!
//! Writes are batched: many requests go to the kernel in one `sendmsg`, and the kernel
//! processes them one after the other inside that call, so only the last one asks for an
//! acknowledgement. Failures are answered whether asked for or not; when the last ack
//! arrives, every request before it without an error answer succeeded.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::io::unix::AsyncFd;

use crate::sys;
use crate::FibError;

pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
const NLM_F_DUMP_INTR: u16 = 16;
const NLMSG_HDRLEN: usize = 16;
/// The kernel never sends datagrams larger than 32 KiB to a reader that offers more.
const RECV_BUF: usize = 64 * 1024;

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

pub(crate) struct NlSocket {
    fd: AsyncFd<Socket>,
    portid: u32,
    seq: u32,
    rbuf: Vec<u8>,
}

impl NlSocket {
    /// A socket for requests (`groups` empty) or for notifications of these groups.
    pub fn open(groups: &[u32], rcvbuf: usize) -> Result<NlSocket, FibError> {
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
        socket
            .set_non_blocking(true)
            .map_err(FibError::socket("non-blocking"))?;
        let fd = sys::register(socket).map_err(FibError::socket("register with tokio"))?;
        Ok(NlSocket {
            fd,
            portid: addr.port_number(),
            seq: 1,
            rbuf: Vec::with_capacity(RECV_BUF),
        })
    }

    pub fn portid(&self) -> u32 {
        self.portid
    }

    /// Route notifications caused by the socket with port id `own` never reach this one.
    pub fn drop_route_notifications_of(&self, own: u32) -> Result<(), FibError> {
        sys::drop_own_route_notifications(self.fd.get_ref(), own)
            .map_err(FibError::socket("attach the notification filter"))
    }

    /// Reserve `n` consecutive sequence numbers; returns the first.
    pub fn take_seq(&mut self, n: u32) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(n.max(1));
        if self.seq == 0 {
            self.seq = 1;
        }
        first
    }

    /// Hand a buffer of requests to the kernel (which processes them before returning).
    pub async fn send(&self, buf: &[u8]) -> Result<(), FibError> {
        let kernel = SocketAddr::new(0, 0);
        loop {
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(FibError::socket("wait writable"))?;
            match guard.try_io(|fd| fd.get_ref().send_to(buf, &kernel, 0)) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => {
                    return Err(FibError::Socket {
                        context: "send",
                        source: e,
                    })
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Receive one datagram, waiting for it. `Err(Lost)` when the kernel dropped messages
    /// for us (receive buffer overrun).
    pub async fn recv(&mut self) -> Result<&[u8], FibError> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(FibError::socket("wait readable"))?;
            self.rbuf.clear();
            let rbuf = &mut self.rbuf;
            match guard.try_io(|fd| fd.get_ref().recv(rbuf, libc::MSG_TRUNC)) {
                Ok(Ok(n)) => return self.datagram(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(FibError::Lost)
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => {
                    return Err(FibError::Socket {
                        context: "recv",
                        source: e,
                    })
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Read every datagram waiting now, without waiting for more.
    pub fn drain(&mut self, mut each: impl FnMut(Result<&[u8], FibError>)) {
        loop {
            self.rbuf.clear();
            match self
                .fd
                .get_ref()
                .recv(&mut self.rbuf, libc::MSG_TRUNC | libc::MSG_DONTWAIT)
            {
                Ok(n) => each(self.datagram(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => each(Err(FibError::Lost)),
                Err(e) => {
                    return each(Err(FibError::Socket {
                        context: "recv",
                        source: e,
                    }))
                }
            }
        }
    }

    /// Wait until something arrives, then read everything waiting. Cancel safe: the only
    /// suspension point is before anything is read.
    pub async fn wait_and_drain(
        &mut self,
        mut each: impl FnMut(Result<&[u8], FibError>),
    ) -> Result<(), FibError> {
        let mut guard = self
            .fd
            .readable()
            .await
            .map_err(FibError::socket("wait readable"))?;
        loop {
            self.rbuf.clear();
            let rbuf = &mut self.rbuf;
            match guard.try_io(|fd| fd.get_ref().recv(rbuf, libc::MSG_TRUNC)) {
                Ok(Ok(n)) => {
                    let n_ok = n <= self.rbuf.len();
                    each(if n_ok {
                        Ok(&self.rbuf)
                    } else {
                        Err(FibError::Decode(format!("datagram of {n} bytes truncated")))
                    });
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => each(Err(FibError::Lost)),
                Ok(Err(e)) => {
                    return Err(FibError::Socket {
                        context: "recv",
                        source: e,
                    })
                }
                // Nothing more: readiness is cleared and the next call waits again.
                Err(_would_block) => return Ok(()),
            }
        }
    }

    fn datagram(&self, n: usize) -> Result<&[u8], FibError> {
        if n > self.rbuf.len() {
            return Err(FibError::Decode(format!("datagram of {n} bytes truncated")));
        }
        Ok(&self.rbuf)
    }

    /// Send one request with an ack and wait for the answer.
    pub async fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), io::Error> {
        let seq = self.take_seq(1);
        let mut buf = Vec::with_capacity(256);
        encode(&mut buf, msg, flags | NLM_F_REQUEST | NLM_F_ACK, seq);
        self.send(&buf).await.map_err(to_io)?;
        loop {
            let data = self.recv().await.map_err(to_io)?;
            for f in frames(data) {
                if f.seq == seq && f.kind == NLMSG_ERROR {
                    return match error_code(&f) {
                        0 => Ok(()),
                        errno => Err(io::Error::from_raw_os_error(errno)),
                    };
                }
            }
        }
    }

    /// Send one `RTM_GET*` request for a single object and return the payload of the
    /// answer (after its 16-byte header); an error answer is the error.
    pub async fn get(&mut self, msg: RouteNetlinkMessage) -> Result<Option<Vec<u8>>, io::Error> {
        let seq = self.take_seq(1);
        let mut buf = Vec::with_capacity(128);
        encode(&mut buf, msg, NLM_F_REQUEST | NLM_F_ACK, seq);
        self.send(&buf).await.map_err(to_io)?;
        let mut answer = None;
        loop {
            let data = self.recv().await.map_err(to_io)?;
            for f in frames(data) {
                if f.seq != seq {
                    continue;
                }
                match f.kind {
                    NLMSG_ERROR => {
                        return match error_code(&f) {
                            0 => Ok(answer),
                            errno => Err(io::Error::from_raw_os_error(errno)),
                        }
                    }
                    NLMSG_DONE => return Ok(answer),
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    _ => answer = Some(f.payload.to_vec()),
                }
            }
        }
    }

    /// Run a dump; every answer message goes to `each`. A dump the kernel marks
    /// inconsistent (changed while dumping) is run again, after `each(None)` to say so.
    pub async fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        mut each: impl FnMut(Option<&Frame<'_>>),
    ) -> Result<(), FibError> {
        const NLM_F_DUMP: u16 = 0x300;
        let mut buf = Vec::with_capacity(128);
        'again: loop {
            let seq = self.take_seq(1);
            buf.clear();
            encode(&mut buf, msg.clone(), NLM_F_REQUEST | NLM_F_DUMP, seq);
            self.send(&buf).await?;
            let mut interrupted = false;
            loop {
                let data = self.recv().await?;
                for f in frames(data) {
                    if f.seq != seq {
                        continue;
                    }
                    interrupted |= f.flags & NLM_F_DUMP_INTR != 0;
                    match f.kind {
                        NLMSG_DONE => {
                            if interrupted {
                                each(None);
                                continue 'again;
                            }
                            return match error_code(&f) {
                                0 => Ok(()),
                                errno => Err(FibError::Kernel {
                                    what: "dump".into(),
                                    source: io::Error::from_raw_os_error(errno),
                                }),
                            };
                        }
                        NLMSG_ERROR => match error_code(&f) {
                            0 => {}
                            errno => {
                                return Err(FibError::Kernel {
                                    what: "dump".into(),
                                    source: io::Error::from_raw_os_error(errno),
                                })
                            }
                        },
                        NLMSG_NOOP | NLMSG_OVERRUN => {}
                        _ => each(Some(&f)),
                    }
                }
            }
        }
    }
}

fn to_io(e: FibError) -> io::Error {
    match e {
        FibError::Socket { source, .. } | FibError::Kernel { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}
