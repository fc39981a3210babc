//! What crosses a network namespace's interfaces, seen by an `AF_PACKET` socket in it
//! (no tcpdump): the IPv4 source and destination of plain ICMP and TCP frames, the
//! inner addresses of VXLAN (UDP 4789) frames over IPv4 and IPv6, bare ICMPv6, and how
//! many frames were IPIP. Tests
//! capture in the underlay's namespace (its bridge and the hosts' ports, nothing
//! else) to check what the path between nodes carries.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::harness::Netns;

/// A capture never runs longer than this, whatever `during` does.
const LIMIT: Duration = Duration::from_secs(60);

/// (source, destination) of IPv4 packets.
pub type Pair = (Ipv4Addr, Ipv4Addr);

#[derive(Debug, Default)]
pub struct Seen {
    /// Inner (source, destination) of UDP 4789 frames.
    pub vxlan: BTreeSet<Pair>,
    /// (source, destination) of plain ICMP frames.
    pub icmp: BTreeSet<Pair>,
    /// (source, destination) of plain TCP frames.
    pub tcp: BTreeSet<Pair>,
    /// Frames of IP protocol 4 (IPIP).
    pub ipip: usize,
    /// Inner IPv6 (source, destination) of UDP 4789 over IPv6.
    pub vxlan6: BTreeSet<(Ipv6Addr, Ipv6Addr)>,
    /// (source, destination) of bare ICMPv6 frames.
    pub icmp6: BTreeSet<(Ipv6Addr, Ipv6Addr)>,
}

fn addr6(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

fn addr(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

impl Seen {
    /// An IPv6 packet (no extension headers: neither the kernel's VXLAN nor ping adds
    /// any).
    fn frame6(&mut self, ip: &[u8]) -> Option<()> {
        let (src, dst) = (addr6(ip, 8)?, addr6(ip, 24)?);
        match *ip.get(6)? {
            58 => {
                self.icmp6.insert((src, dst));
            }
            17 if ip.get(42..44)? == 4789u16.to_be_bytes() => {
                // UDP (8), VXLAN (8), inner Ethernet (14), then the inner IPv6 header.
                let inner = ip.get(70..)?;
                self.vxlan6.insert((addr6(inner, 8)?, addr6(inner, 24)?));
            }
            _ => {}
        }
        Some(())
    }

    /// Takes one Ethernet frame; anything but IPv4 and IPv6 is ignored.
    pub fn frame(&mut self, f: &[u8]) -> Option<()> {
        if f.get(12..14)? == [0x86, 0xdd] {
            return self.frame6(f.get(14..)?);
        }
        if f.get(12..14)? != [0x08, 0x00] {
            return None;
        }
        let ip = f.get(14..)?;
        let ihl = usize::from(ip.first()? & 0x0f) * 4;
        let (src, dst) = (addr(ip, 12)?, addr(ip, 16)?);
        match *ip.get(9)? {
            1 => {
                self.icmp.insert((src, dst));
            }
            4 => self.ipip += 1,
            6 => {
                self.tcp.insert((src, dst));
            }
            17 if ip.get(ihl + 2..ihl + 4)? == 4789u16.to_be_bytes() => {
                // UDP (8), VXLAN (8), inner Ethernet (14), then the inner IPv4 header.
                let inner = ip.get(ihl + 30..)?;
                self.vxlan.insert((addr(inner, 12)?, addr(inner, 16)?));
            }
            _ => {}
        }
        Some(())
    }

    /// Every address a TCP packet on the wire came from, sent to `to`.
    pub fn tcp_sources_to(&self, to: Ipv4Addr) -> BTreeSet<Ipv4Addr> {
        self.tcp
            .iter()
            .filter(|(_, d)| *d == to)
            .map(|(s, _)| *s)
            .collect()
    }
}

/// Captures every frame on every interface of `ns` while `during` runs (a short
/// pause before and after, so the first and last frames are in).
pub fn capture<T: Send>(ns: &Netns, during: impl FnOnce() -> T + Send) -> Result<(Seen, T)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = ns
        .in_netns(|| {
            // ETH_P_ALL, in network byte order.
            let all = Protocol::from(i32::from(0x0003u16.to_be()));
            let s = Socket::new(Domain::PACKET, Type::RAW, Some(all))?;
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            Ok::<_, std::io::Error>(s)
        })
        .with_context(|| format!("entering {}", ns.name))?
        .context("AF_PACKET socket")?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut seen = Seen::default();
            let mut buf = vec![0u8; 65536];
            let mut sock = &socket;
            let deadline = Instant::now() + LIMIT;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                if let Ok(n) = sock.read(&mut buf) {
                    seen.frame(buf.get(..n).unwrap_or_default());
                }
            }
            seen
        });
        std::thread::sleep(Duration::from_millis(200));
        let out = during();
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
        let seen = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the capture thread panicked"))?;
        Ok((seen, out))
    })
}
