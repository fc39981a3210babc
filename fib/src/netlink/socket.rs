//! A raw rtnetlink socket on tokio: the daemon's, for the FIB writer and its notifications.
//! The framing and the reading of answers are in `frame`, shared with the blocking socket.
//!
//! Writes are batched: many requests go to the kernel in one `sendmsg`, and the kernel
//! processes them one after the other inside that call, so only the last one asks for an
//! acknowledgement. Failures are answered whether asked for or not; when the last ack
//! arrives, every request before it without an error answer succeeded.

use std::io;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr};
use tokio::io::unix::AsyncFd;

use super::frame::{self, Ack, Dump, DumpEnd, Frame, Seq, RECV_BUF};
use crate::sys;
use crate::FibError;

pub(crate) struct NlSocket {
    fd: AsyncFd<Socket>,
    portid: u32,
    seq: Seq,
    rbuf: Vec<u8>,
}

impl NlSocket {
    /// A socket for requests (`groups` empty) or for notifications of these groups.
    pub fn open(groups: &[u32], rcvbuf: usize) -> Result<NlSocket, FibError> {
        let (socket, portid) = frame::open(groups, rcvbuf)?;
        socket
            .set_non_blocking(true)
            .map_err(FibError::socket("non-blocking"))?;
        let fd = sys::register(socket).map_err(FibError::socket("register with tokio"))?;
        Ok(NlSocket {
            fd,
            portid,
            seq: Seq::new(),
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
        self.seq.take(n)
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
                Ok(Ok(n)) => return frame::datagram(&self.rbuf, n),
                Ok(Err(e)) => {
                    if let Some(e) = frame::recv_error(e) {
                        return Err(e);
                    }
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
                Ok(n) => each(frame::datagram(&self.rbuf, n)),
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
                Ok(Ok(n)) => each(frame::datagram(&self.rbuf, n)),
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

    /// Send one request with an ack and wait for the answer.
    pub async fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), io::Error> {
        let (ack, buf) = Ack::new(msg, flags, self.seq.take(1));
        self.send(&buf).await.map_err(frame::to_io)?;
        loop {
            let data = self.recv().await.map_err(frame::to_io)?;
            if let Some(answer) = ack.read(data) {
                return answer;
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
        let mut buf = Vec::with_capacity(128);
        loop {
            let mut dump = Dump::new(msg.clone(), self.seq.take(1), &mut buf);
            self.send(&buf).await?;
            let end = loop {
                let data = self.recv().await?;
                if let Some(end) = dump.read(data, &mut each) {
                    break end;
                }
            };
            match end {
                DumpEnd::Done(result) => return result,
                DumpEnd::Again => {}
            }
        }
    }
}
