//! The one thing neither std, tokio nor socket2 offers: receiving a UDP
//! datagram together with its IP TTL (IP_RECVTTL) or IPv6 Hop Limit
//! (IPV6_RECVHOPLIMIT) through recvmsg, which RFC 5881 §5 needs to refuse
//! packets that did not come from a directly connected peer.
//!
//! This is the only unsafe code in the crate: one `setsockopt` with an `int`,
//! and one `recvmsg` into buffers that live on this function's stack, read
//! back with the libc CMSG macros.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, size_of_val};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid pointer to an int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            std::ptr::addr_of!(on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to attach each datagram's TTL as an IP_TTL control message.
pub fn set_recv_ttl(fd: RawFd) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_IP, libc::IP_RECVTTL)
}

/// The same for IPv6: each datagram's Hop Limit as an IPV6_HOPLIMIT message.
pub fn set_recv_hoplimit(fd: RawFd) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT)
}

/// One received datagram.
pub struct Received {
    /// Bytes of the datagram; more than the buffer means it was truncated.
    pub len: usize,
    pub source: SocketAddr,
    /// TTL or Hop Limit; None if the kernel attached none (then the packet is refused).
    pub ttl: Option<u8>,
}

/// Non-blocking `recvmsg` on a UDP socket with IP_RECVTTL (IPv4) or
/// IPV6_RECVHOPLIMIT (IPv6) set.
pub fn recv_with_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut src: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = std::ptr::addr_of_mut!(src).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: every pointer in msg points at a live local of the right size.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut len = usize::try_from(n).unwrap_or(0);
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        len = buf.len() + 1;
    }
    let mut ttl = None;
    // SAFETY: msg was filled by recvmsg; the CMSG macros stay within msg_controllen,
    // and IP_TTL / IPV6_HOPLIMIT data is one int (read unaligned to be safe).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            if (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT)
            {
                let v: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                ttl = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let source = match libc::c_int::from(src.ss_family) {
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6), which
            // fits in sockaddr_storage.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read_unaligned(std::ptr::addr_of!(src).cast()) };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                0,
                a.sin6_scope_id,
            ))
        }
        _ => {
            // SAFETY: as above, a sockaddr_in.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read_unaligned(std::ptr::addr_of!(src).cast()) };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            ))
        }
    };
    Ok(Received { len, source, ttl })
}
