//! ICMP echo from inside a pod's namespace, so the lab needs no `ping` (a fresh Debian
//! has no iputils-ping). A raw ICMP socket (the lab runs as root), a few requests, and
//! the replies matched by identifier, sequence and source; nothing read from the wire
//! is trusted to be well formed.
//!
//! Written here rather than taken from a crate: the ICMP crates (surge-ping, pnet) bring
//! an async runtime per ping or a packet framework for what is 8 octets each way.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// What a round of echoes found.
#[derive(Debug, Clone, PartialEq)]
pub struct Echoes {
    pub sent: u16,
    pub received: u16,
    /// Round-trip times of the replies.
    pub rtts: Vec<Duration>,
}

impl Echoes {
    /// `3 of 3 echo replies, rtt min/avg/max 0.051/0.070/0.102 ms`, as ping sums up.
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut s = format!("{} of {} echo replies", self.received, self.sent);
        let min = self.rtts.iter().min();
        let max = self.rtts.iter().max();
        if let (Some(min), Some(max)) = (min, max) {
            let n = u32::try_from(self.rtts.len()).unwrap_or(u32::MAX).max(1);
            let avg = self.rtts.iter().sum::<Duration>() / n;
            s.push_str(&format!(
                ", rtt min/avg/max {:.3}/{:.3}/{:.3} ms",
                ms(*min),
                ms(avg),
                ms(*max)
            ));
        }
        s
    }
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| match c {
            [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
            [a] => u32::from(u16::from_be_bytes([*a, 0])),
            _ => 0,
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: type, code, checksum, identifier, sequence, then the payload.
fn request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![ECHO_REQUEST, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"ipipd lab echo..");
    let sum = checksum(&p).to_be_bytes();
    p[2] = sum[0];
    p[3] = sum[1];
    p
}

/// If `packet` (an IPv4 datagram as a raw socket delivers it) is an echo reply from
/// `from` with identifier `id`, its sequence number.
fn reply_seq(packet: &[u8], from: Ipv4Addr, id: u16) -> Option<u16> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let source: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    let icmp = packet.get(ihl..)?;
    let is_reply = *icmp.first()? == ECHO_REPLY && *icmp.get(1)? == 0;
    let got_id = u16::from_be_bytes(icmp.get(4..6)?.try_into().ok()?);
    let seq = u16::from_be_bytes(icmp.get(6..8)?.try_into().ok()?);
    (is_reply && got_id == id && Ipv4Addr::from(source) == from).then_some(seq)
}

/// Sends `count` echo requests to `to`, `interval` apart, and waits up to `wait` after
/// the last for the replies. Run it inside the namespace the echoes leave from.
pub fn echo(
    to: Ipv4Addr,
    count: u16,
    interval: Duration,
    wait: Duration,
) -> std::io::Result<Echoes> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let dest = SocketAddrV4::new(to, 0).into();
    // The low bits of the pid tell our echoes from another lab's in the same namespace.
    let id = (std::process::id() & 0xffff) as u16;
    let mut sent_at = Vec::new();
    let mut rtts = Vec::new();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1500];
    for seq in 0..count {
        sent_at.push(Instant::now());
        socket.send_to(&request(id, seq), &dest)?;
        // Replies are read while waiting for the next send, and after the last one.
        let until = Instant::now() + if seq + 1 == count { wait } else { interval };
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || seen.len() == usize::from(count) {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            let n = match (&socket).read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            };
            let Some(seq) = buf.get(..n).and_then(|p| reply_seq(p, to, id)) else {
                continue;
            };
            if let (Some(at), false) = (sent_at.get(usize::from(seq)), seen.contains(&seq)) {
                seen.push(seq);
                rtts.push(at.elapsed());
            }
        }
    }
    Ok(Echoes {
        sent: count,
        received: u16::try_from(seen.len()).unwrap_or(u16::MAX),
        rtts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies_to_zero() {
        let p = request(0x1234, 7);
        assert_eq!(checksum(&p), 0);
        // RFC 1071's example words.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    fn reply(from: [u8; 4], id: u16, seq: u16, kind: u8) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&from);
        ip.extend_from_slice(&[10, 0, 0, 1]);
        let mut icmp = request(id, seq);
        icmp[0] = kind;
        ip.extend(icmp);
        ip
    }

    #[test]
    fn replies_are_matched_by_source_identifier_and_type() {
        let from = Ipv4Addr::new(101, 88, 228, 193);
        assert_eq!(reply_seq(&reply(from.octets(), 9, 2, 0), from, 9), Some(2));
        assert_eq!(reply_seq(&reply(from.octets(), 8, 2, 0), from, 9), None);
        assert_eq!(reply_seq(&reply([1, 2, 3, 4], 9, 2, 0), from, 9), None);
        assert_eq!(reply_seq(&reply(from.octets(), 9, 2, 8), from, 9), None);
    }

    #[test]
    fn short_or_odd_packets_are_no_reply() {
        let from = Ipv4Addr::new(101, 88, 228, 193);
        let full = reply(from.octets(), 9, 2, 0);
        for n in 0..full.len() {
            if n < 28 {
                assert_eq!(reply_seq(&full[..n], from, 9), None, "{n} octets");
            }
        }
        // An IHL pointing past the end.
        let mut long_header = full.clone();
        long_header[0] = 0x4f;
        assert_eq!(reply_seq(&long_header, from, 9), None);
    }

    #[test]
    fn the_summary_reads_like_ping_s() {
        let e = Echoes {
            sent: 3,
            received: 2,
            rtts: vec![Duration::from_micros(50), Duration::from_micros(150)],
        };
        assert_eq!(
            e.summary(),
            "2 of 3 echo replies, rtt min/avg/max 0.050/0.100/0.150 ms"
        );
        let none = Echoes {
            sent: 3,
            received: 0,
            rtts: Vec::new(),
        };
        assert_eq!(none.summary(), "0 of 3 echo replies");
    }
}
