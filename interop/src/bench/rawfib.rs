//! The kernel's own limit on time to kernel: a raw rtnetlink writer with no BGP, writing
//! the routes the route-reflector benchmark's target installs ([`rrfib`]) into a fresh
//! namespace, the way ipipd's FIB writes them.
//!
//! Matched to `fib/src/netlink`: the same netlink stack (netlink-packet-route messages on
//! a netlink-sys socket with `NETLINK_CAP_ACK`), the same message per route
//! (`RTM_NEWROUTE`, create|replace, protocol 186, table main with `RTA_TABLE`, `via GW dev
//! tunl0 onlink`), the same batching: up to [`IPIPD_BATCH`] requests per `sendmsg`, an
//! acknowledgement asked for on the last request only, and the next batch sent once that
//! acknowledgement is read (the kernel handles the whole batch inside `sendmsg`, so the
//! wait is one `recv`). Encoding is inside the timed loop, as it is in ipipd.
//!
//! Other batch sizes, down to one request per `sendmsg` with an acknowledgement each (as
//! `ip -batch` does), show where the kernel's own rate is. With `listen`, a second socket
//! in the namespace is joined to the IPv4 route group and read on its own thread while
//! the writer writes, as ipipd's FIB watches for changes made by others: what a route
//! listener costs the kernel's write path (it builds a notification per route).
//!
//! [`rrfib`]: super::rrfib

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlag, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::median;
use super::throughput::{Size, POOL, PREFIX_LEN, SENDER_BASE};
use crate::harness::Netns;
use crate::loadgen::Pool;

/// Requests per `sendmsg` in ipipd's FIB (`WINDOW` in `fib/src/netlink/mod.rs`; its
/// 160 KiB cap is not reached by these 60-octet requests).
pub const IPIPD_BATCH: usize = 1024;
/// The batch sizes of the sweep.
pub const SWEEP: [usize; 6] = [1, 64, 256, 4096, 16384, 65536];
const PROTOCOL: u8 = 186;
const TABLE: u32 = 254;
const NLMSG_ERROR: u16 = 2;
/// "File exists": success for a create|replace write, as ipipd counts it.
const EEXIST: i32 = 17;

/// One write of every route.
#[derive(Debug, Clone)]
pub struct Write {
    pub routes: u64,
    pub batch: usize,
    /// First encode → last acknowledgement read.
    pub seconds: f64,
    /// Of that, inside `sendmsg` (the kernel inserting routes).
    pub send_s: f64,
    pub sends: u64,
    /// Requests the kernel refused (errors other than "exists").
    pub refused: u64,
    /// Routes in the namespace's main table afterwards, above what it held before.
    pub in_kernel: u64,
    /// Route notifications a listener read meanwhile (`None`: no listener).
    pub notified: Option<u64>,
}

/// The limit at one size: the median of the runs at ipipd's batch size, and the sweep.
#[derive(Debug, Clone)]
pub struct Row {
    pub size: Size,
    pub batch: usize,
    /// A route listener read notifications during the writes.
    pub listen: bool,
    pub runs: usize,
    pub seconds: Option<f64>,
    pub send_s: Option<f64>,
    pub sends: u64,
    pub failures: Vec<String>,
}

impl Row {
    pub fn of(
        size: Size,
        batch: usize,
        listen: bool,
        writes: &[Write],
        failures: Vec<String>,
    ) -> Row {
        Row {
            size,
            batch,
            listen,
            runs: writes.len(),
            seconds: median(writes.iter().map(|w| w.seconds).collect()),
            send_s: median(writes.iter().map(|w| w.send_s).collect()),
            sends: writes.first().map_or(0, |w| w.sends),
            failures,
        }
    }
}

/// The routes ipipd installs in the route-reflector benchmark at `size`: sender `s`
/// announces prefixes `s × P .. (s + 1) × P` of the pool, learned `via` the sender.
pub fn routes(size: Size) -> Result<Vec<(Ipv4Net, Ipv4Addr)>> {
    let pool = Pool::new(POOL.parse()?, PREFIX_LEN)?;
    (0..size.total())
        .map(|i| {
            let prefix = pool.prefix(i).context("the pool is too small")?;
            let sender = u32::try_from(i / size.prefixes.max(1))?;
            Ok((prefix, Ipv4Addr::from(u32::from(SENDER_BASE) + sender)))
        })
        .collect()
}

/// `RTM_NEWROUTE` for `prefix via gw dev <oif> onlink proto 186`, as ipipd's codec builds it.
fn request(prefix: Ipv4Net, gw: Ipv4Addr, oif: u32) -> RouteNetlinkMessage {
    let mut msg = RouteMessage::default();
    msg.header = RouteHeader {
        address_family: AddressFamily::Inet,
        destination_prefix_length: prefix.prefix_len(),
        table: TABLE as u8,
        protocol: RouteProtocol::from(PROTOCOL),
        scope: RouteScope::Universe,
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    msg.header.flags.push(RouteFlag::Onlink);
    msg.attributes = vec![
        RouteAttribute::Table(TABLE),
        RouteAttribute::Destination(RouteAddress::Inet(prefix.network())),
        RouteAttribute::Gateway(RouteAddress::Inet(gw)),
        RouteAttribute::Oif(oif),
    ];
    RouteNetlinkMessage::NewRoute(msg)
}

/// Appends one message; returns its offset.
fn encode(buf: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16, seq: u32) -> usize {
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

/// (type, sequence number, errno) of each message in a datagram.
fn answers(mut b: &[u8]) -> Vec<(u16, u32, i32)> {
    let mut out = Vec::new();
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    while let Some(len) = word(b, 0).map(|l| l as usize) {
        if len < 16 || len > b.len() {
            break;
        }
        let kind = word(b, 4).map_or(0, |w| (w & 0xffff) as u16);
        let seq = word(b, 8).unwrap_or(0);
        let errno = word(b, 16).map_or(0, |v| -(v as i32));
        out.push((kind, seq, errno));
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
    }
    out
}

/// The main table's prefix count of the calling thread's namespace.
fn main_prefixes_here() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/fib_triestat").ok()?;
    let main = text.split("Main:").nth(1)?;
    let line = main
        .lines()
        .find(|l| l.trim_start().starts_with("Prefixes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn link_index(ns: &Netns, name: &str) -> Result<u32> {
    let out = ns.ip(&["-o", "link", "show", name])?;
    out.split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .with_context(|| format!("no index for {name} in {out:?}"))
}

/// Writes `routes` into `ns` (which has a `tunl0`), `batch` requests per `sendmsg`; with
/// `listen`, a route listener reads notifications meanwhile.
pub fn write(
    ns: &Netns,
    routes: &[(Ipv4Net, Ipv4Addr)],
    batch: usize,
    listen: bool,
) -> Result<Write> {
    let oif = link_index(ns, "tunl0")?;
    ns.in_netns(|| {
        if !listen {
            return write_here(routes, batch.max(1), oif);
        }
        let listener = listener()?;
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| read_notifications(&listener, &stop));
            let w = write_here(routes, batch.max(1), oif);
            stop.store(true, Ordering::Relaxed);
            let notified = reader.join().unwrap_or(0);
            w.map(|w| Write {
                notified: Some(notified),
                ..w
            })
        })
    })?
}

/// A socket joined to the IPv4 route group, with ipipd's monitor buffer (16 MiB).
fn listener() -> Result<Socket> {
    const RTNLGRP_IPV4_ROUTE: u32 = 7;
    let mut socket = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
    socket.bind_auto().context("bind")?;
    socket
        .add_membership(RTNLGRP_IPV4_ROUTE)
        .context("join the route group")?;
    rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, 16 << 20)
        .context("SO_RCVBUFFORCE")?;
    rustix::net::sockopt::set_socket_timeout(
        &socket,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_millis(20)),
    )
    .context("SO_RCVTIMEO")?;
    Ok(socket)
}

/// Reads notifications until `stop` and a quiet moment; returns how many were read.
fn read_notifications(socket: &Socket, stop: &AtomicBool) -> u64 {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut n = 0u64;
    loop {
        buf.clear();
        match socket.recv(&mut buf, 0) {
            Ok(_) => n += answers(&buf).len() as u64,
            // A timeout (nothing waiting) or an overrun (ENOBUFS): go on until told.
            Err(_) if stop.load(Ordering::Relaxed) => return n,
            Err(_) => {}
        }
    }
}

fn write_here(routes: &[(Ipv4Net, Ipv4Addr)], batch: usize, oif: u32) -> Result<Write> {
    let mut socket = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
    socket.bind_auto().context("bind")?;
    socket.set_cap_ack(true).context("NETLINK_CAP_ACK")?;
    // ipipd's request socket: 4 MiB to receive, 1 MiB to send; a larger batch needs room
    // for itself in one send.
    rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, 4 << 20)
        .context("SO_RCVBUFFORCE")?;
    rustix::net::sockopt::set_socket_send_buffer_size_force(&socket, (batch * 128).max(1 << 20))
        .context("SO_SNDBUFFORCE")?;
    let before = main_prefixes_here().context("reading fib_triestat")?;
    let kernel = SocketAddr::new(0, 0);
    let mut buf = Vec::with_capacity(batch * 64 + 4096);
    let mut rbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let (mut send_s, mut sends, mut refused) = (0.0, 0u64, 0u64);
    let mut seq: u32 = 1;
    let start = Instant::now();
    for chunk in routes.chunks(batch) {
        buf.clear();
        let mut last = 0;
        for (prefix, gw) in chunk {
            let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
            last = encode(&mut buf, request(*prefix, *gw, oif), flags, seq);
            seq = seq.wrapping_add(1);
        }
        let last_seq = seq.wrapping_sub(1);
        // The acknowledgement on the last request only.
        if let Some(f) = buf.get_mut(last + 6..last + 8) {
            let flags = u16::from_ne_bytes([f[0], f[1]]) | NLM_F_ACK;
            f.copy_from_slice(&flags.to_ne_bytes());
        }
        let t = Instant::now();
        socket.send_to(&buf, &kernel, 0).context("sendmsg")?;
        send_s += t.elapsed().as_secs_f64();
        sends += 1;
        'ack: loop {
            rbuf.clear();
            socket.recv(&mut rbuf, 0).context("recv")?;
            for (kind, s, errno) in answers(&rbuf) {
                if kind != NLMSG_ERROR {
                    continue;
                }
                if errno != 0 && errno != EEXIST {
                    refused += 1;
                }
                if s == last_seq {
                    break 'ack;
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = main_prefixes_here().context("reading fib_triestat")?;
    let w = Write {
        routes: routes.len() as u64,
        batch,
        seconds,
        send_s,
        sends,
        refused,
        in_kernel: after.saturating_sub(before),
        notified: None,
    };
    if w.refused > 0 || w.in_kernel < w.routes {
        bail!(
            "raw writer, {} per sendmsg: {} refused, {} of {} in the kernel",
            batch,
            w.refused,
            w.in_kernel,
            w.routes
        );
    }
    Ok(w)
}

/// A fresh namespace with a stand-in `tunl0`, written once.
pub fn write_fresh(routes: &[(Ipv4Net, Ipv4Addr)], batch: usize, listen: bool) -> Result<Write> {
    let ns = super::fibrate::fresh_ns()?;
    write(&ns, routes, batch, listen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_load_generators() {
        let r = routes(Size {
            senders: 2,
            prefixes: 3,
        })
        .unwrap_or_default();
        let text: Vec<String> = r.iter().map(|(p, g)| format!("{p} via {g}")).collect();
        assert_eq!(
            text,
            [
                "64.0.0.0/26 via 10.0.1.1",
                "64.0.0.64/26 via 10.0.1.1",
                "64.0.0.128/26 via 10.0.1.1",
                "64.0.0.192/26 via 10.0.1.2",
                "64.0.1.0/26 via 10.0.1.2",
                "64.0.1.64/26 via 10.0.1.2",
            ]
        );
    }

    #[test]
    fn a_request_is_sixty_octets() {
        let mut buf = Vec::new();
        let p: Ipv4Net = "64.0.0.0/26".parse().unwrap_or_default();
        encode(
            &mut buf,
            request(p, Ipv4Addr::new(10, 0, 1, 1), 3),
            NLM_F_REQUEST,
            1,
        );
        assert_eq!(buf.len(), 60);
        let kinds: Vec<(u16, u32)> = answers(&buf).iter().map(|a| (a.0, a.1)).collect();
        assert_eq!(kinds, vec![(24, 1)]);
    }
}
