//! The one thing neither std, tokio nor socket2 offers: receiving a UDP
//! datagram together with its IP TTL (IP_RECVTTL + recvmsg), which RFC 5881 §5
//! needs to refuse packets that did not come from a directly connected peer.
//!
//! This is the only unsafe code in the crate: one `setsockopt` with an `int`,
//! and one `recvmsg` into buffers that live on this function's stack, read
//! back with the libc CMSG macros.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, size_of_val};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;

/// Asks the kernel to attach each datagram's TTL as an IP_TTL control message.
pub fn set_recv_ttl(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid pointer to an int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_RECVTTL,
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

/// One received datagram.
pub struct Received {
    /// Bytes of the datagram; more than the buffer means it was truncated.
    pub len: usize,
    pub source: SocketAddrV4,
    /// None if the kernel attached no TTL (then the packet is refused).
    pub ttl: Option<u8>,
}

/// Non-blocking `recvmsg` on an IPv4 UDP socket with IP_RECVTTL set.
pub fn recv_with_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero is a valid sockaddr_in and msghdr.
    let mut src: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = std::ptr::addr_of_mut!(src).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
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
    // and IP_TTL data is one int (read unaligned to be safe).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_TTL {
                let v: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                ttl = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let source = SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(src.sin_addr.s_addr)),
        u16::from_be(src.sin_port),
    );
    Ok(Received { len, source, ttl })
}
