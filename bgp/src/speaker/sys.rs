//! Socket options that neither std nor socket2 offer: TCP-MD5 (RFC 2385), the
//! minimum TTL of GTSM (RFC 5082) and the saved SYN GTSM judges an accepted
//! connection by.
//!
//! This is the only unsafe code in the crate: `setsockopt` calls with
//! structures laid out as the kernel's `struct tcp_md5sig` and an `int`, and
//! one `getsockopt` into a byte buffer.
#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// Longest TCP-MD5 key the kernel accepts (TCP_MD5SIG_MAXKEYLEN).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` from <linux/tcp.h>.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MD5_MAX_KEY_LEN],
}

fn sockaddr(addr: IpAddr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                std::ptr::write(
                    std::ptr::addr_of_mut!(storage).cast::<libc::sockaddr_in>(),
                    sin,
                )
            };
        }
        IpAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe {
                std::ptr::write(
                    std::ptr::addr_of_mut!(storage).cast::<libc::sockaddr_in6>(),
                    sin6,
                )
            };
        }
    }
    storage
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` points to a live T of `len` bytes for the duration of the call.
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets (or with `None`, removes) the TCP-MD5 key for segments to and from `peer`.
/// On a listening socket it applies to connections accepted from that peer.
pub fn set_md5(fd: &impl AsRawFd, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP-MD5 key longer than 80 bytes",
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: sockaddr(peer),
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; MD5_MAX_KEY_LEN],
    };
    if let Some(dst) = sig.key.get_mut(..key.len()) {
        dst.copy_from_slice(key);
    }
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// GTSM: drop segments whose TTL (hop limit) is below `min`.
pub fn set_min_ttl(fd: &impl AsRawFd, v6: bool, min: u8) -> io::Result<()> {
    let value: libc::c_int = min.into();
    if v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &value)
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &value)
    }
}

/// Makes a listening socket keep the SYN (IP and TCP headers) of each
/// connection it accepts, for [`syn_ttl`].
pub fn save_syn(fd: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_SAVE_SYN, &on)
}

/// The TTL (IPv6: hop limit) of the SYN that opened an accepted connection,
/// if its listener saved it ([`save_syn`]). GTSM must judge a connection by
/// its first packet: segments that arrive before the minimum TTL is set on
/// the accepted socket (a peer's OPEN often does) are not checked by the kernel.
pub fn syn_ttl(fd: &impl AsRawFd) -> io::Result<Option<u8>> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes; the kernel writes at most that
    // many and stores the length it wrote in `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf.get(..len as usize).and_then(ip_header_ttl))
}

/// The TTL of an IPv4 header or the hop limit of an IPv6 header.
fn ip_header_ttl(header: &[u8]) -> Option<u8> {
    match header.first()? >> 4 {
        4 => header.get(8).copied(),
        6 => header.get(7).copied(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_from_ip_headers() {
        let v4 = [
            0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        assert_eq!(ip_header_ttl(&v4), Some(64));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[7] = 255;
        assert_eq!(ip_header_ttl(&v6), Some(255));
        assert_eq!(ip_header_ttl(&[0x45, 0, 0]), None);
        assert_eq!(ip_header_ttl(&[]), None);
        assert_eq!(ip_header_ttl(&[0x20; 40]), None);
    }

    #[test]
    fn saved_syn_tells_the_ttl_of_an_accepted_connection() -> io::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        save_syn(&listener)?;
        let addr = listener.local_addr()?;
        for ttl in [64, 255] {
            let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            client.set_ttl_v4(ttl)?;
            client.connect(&addr.into())?;
            let (accepted, _) = listener.accept()?;
            assert_eq!(syn_ttl(&accepted)?, Some(ttl as u8));
        }
        Ok(())
    }
}
