//! The syscalls this crate needs that have no safe wrapper in its dependencies. All
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

/// Classic BPF, as `linux/filter.h` spells it.
/// `BPF_LD | BPF_H | BPF_ABS`.
const BPF_LD_H_ABS: u16 = 0x28;
/// `BPF_LD | BPF_W | BPF_ABS`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;

/// The filter [`drop_own_route_notifications`] attaches: a route notification (the one
/// message of its datagram) whose `nlmsg_pid` is `own` is dropped, anything else kept.
/// BPF loads are big-endian while netlink headers are in host order, hence the swaps.
pub(crate) fn own_route_filter(own: u32) -> [libc::sock_filter; 7] {
    let h = |v: u16| u32::from(u16::from_be_bytes(v.to_ne_bytes()));
    let w = |v: u32| u32::from_be_bytes(v.to_ne_bytes());
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    [
        op(BPF_LD_H_ABS, 0, 0, 4),            // nlmsg_type
        op(BPF_JEQ_K, 1, 0, h(RTM_NEWROUTE)), // → the pid check
        op(BPF_JEQ_K, 0, 3, h(RTM_DELROUTE)), // else → keep
        op(BPF_LD_W_ABS, 0, 0, 12),           // nlmsg_pid
        op(BPF_JEQ_K, 0, 1, w(own)),          // ours → drop, else keep
        op(BPF_RET_K, 0, 0, 0),               // drop
        op(BPF_RET_K, 0, 0, u32::MAX),        // keep all of it
    ]
}

/// Have the kernel drop, before they are queued, the route notifications our own
/// requests (from the socket with port id `own`) cause on the notification socket:
/// the reader skips them anyway, and at a million routes reading them is a million
/// wake-ups and `recv` calls competing with the writes, and a full receive buffer
/// (a lost notification means a full resync).
pub(crate) fn drop_own_route_notifications(socket: &impl AsRawFd, own: u32) -> io::Result<()> {
    let mut filter = own_route_filter(own);
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: the fd is a live socket owned by the caller; `prog` points at `filter`, which
    // outlives the call (the kernel copies the program), and we pass its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
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
#[cfg(feature = "tokio")]
pub(crate) fn register(
    socket: netlink_sys::Socket,
) -> io::Result<tokio::io::unix::AsyncFd<netlink_sys::Socket>> {
    // SAFETY: `netlink_sys::Socket` owns its descriptor: it is open from creation until the
    // socket is dropped (which only the AsyncFd can do now), and `as_raw_fd` always returns
    // that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(io::Error::from)
}
