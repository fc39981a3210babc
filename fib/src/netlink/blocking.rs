//! A blocking rtnetlink socket for requests and dumps: the CNI plugin's, one process per
//! call with nothing else to wait for, so no runtime. The requests, the reading of the
//! answers and the errors are those of the socket on tokio (`frame`).

use std::io;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr};

use super::frame::{self, Ack, Dump, DumpEnd, Frame, Get, Seq, RECV_BUF};
use crate::FibError;

pub(crate) struct BlockingSocket {
    socket: Socket,
    seq: Seq,
    rbuf: Vec<u8>,
}

impl BlockingSocket {
    /// A socket for requests in the calling thread's network namespace.
    pub fn open(rcvbuf: usize) -> Result<BlockingSocket, FibError> {
        let (socket, _portid) = frame::open(&[], rcvbuf)?;
        Ok(BlockingSocket {
            socket,
            seq: Seq::new(),
            rbuf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Hand a buffer of requests to the kernel (which processes them before returning).
    fn send(&self, buf: &[u8]) -> Result<(), FibError> {
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.socket.send_to(buf, &kernel, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(FibError::Socket {
                        context: "send",
                        source: e,
                    })
                }
            }
        }
    }

    /// Receive one datagram, waiting for it.
    fn recv(&mut self) -> Result<&[u8], FibError> {
        loop {
            self.rbuf.clear();
            match self.socket.recv(&mut self.rbuf, libc::MSG_TRUNC) {
                Ok(n) => return frame::datagram(&self.rbuf, n),
                Err(e) => {
                    if let Some(e) = frame::recv_error(e) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Send one request with an ack and wait for the answer.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), io::Error> {
        let (ack, buf) = Ack::new(msg, flags, self.seq.take(1));
        self.send(&buf).map_err(frame::to_io)?;
        loop {
            let data = self.recv().map_err(frame::to_io)?;
            if let Some(answer) = ack.read(data) {
                return answer;
            }
        }
    }

    /// Send one `RTM_GET*` request for a single object and return the payload of the
    /// answer (after its 16-byte header); an error answer is the error.
    pub fn get(&mut self, msg: RouteNetlinkMessage) -> Result<Option<Vec<u8>>, io::Error> {
        let (mut get, buf) = Get::new(msg, self.seq.take(1));
        self.send(&buf).map_err(frame::to_io)?;
        loop {
            let data = self.recv().map_err(frame::to_io)?;
            if let Some(answer) = get.read(data) {
                return answer;
            }
        }
    }

    /// Run a dump; every answer message goes to `each`. A dump the kernel marks
    /// inconsistent (changed while dumping) is run again, after `each(None)` to say so.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        mut each: impl FnMut(Option<&Frame<'_>>),
    ) -> Result<(), FibError> {
        let mut buf = Vec::with_capacity(128);
        loop {
            let mut dump = Dump::new(msg.clone(), self.seq.take(1), &mut buf);
            self.send(&buf)?;
            let end = loop {
                let data = self.recv()?;
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
