//! The two syscalls this crate needs that have no safe wrapper in its dependencies. All
//! unsafe code of the crate is here.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Ask for socket buffers of these sizes (receive, send). The `*FORCE` options (they need
/// CAP_NET_ADMIN, which a process writing routes has) go past `net.core.rmem_max` and
/// `wmem_max`; without the capability the ordinary, capped options are the fallback. A
/// smaller buffer only means more resyncs or smaller batches, so failure is not an error.
pub(crate) fn set_buffers(socket: &impl AsRawFd, receive: usize, send: usize) {
    let wanted = [
        (receive, [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF]),
        (send, [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF]),
    ];
    for (size, options) in wanted {
        let value = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        for option in options {
            // SAFETY: the fd is a live socket owned by the caller; the option value is a
            // c_int on our stack whose size we pass.
            let rc = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&value as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
    }
}

/// Move the calling thread into the network namespace `ns` refers to.
pub(crate) fn setns_net(ns: &File) -> io::Result<()> {
    // SAFETY: setns only reads the fd, which `ns` keeps open for the duration of the call.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Register a netlink socket with the tokio reactor.
pub(crate) fn register(
    socket: netlink_sys::Socket,
) -> io::Result<tokio::io::unix::AsyncFd<netlink_sys::Socket>> {
    // SAFETY: `netlink_sys::Socket` owns its descriptor: it is open from creation until the
    // socket is dropped (which only the AsyncFd can do now), and `as_raw_fd` always returns
    // that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(io::Error::from)
}
