//! The kernel FIB over rtnetlink: one socket for requests and dumps, one for notifications.

mod codec;
mod neigh;
pub mod pod;
mod socket;
mod tunnel;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::fib::{Fib, FibEvent, Link, Op, TunnelSpec, Underlay};
use crate::vtep::{VtepOp, VtepTable};
use crate::{FibError, RouteKind};
use codec::{RTM_DELLINK, RTM_DELROUTE, RTM_NEWLINK, RTM_NEWROUTE};
use socket::{encode, error_code, frames, request_ack, Frame, NlSocket, NLMSG_ERROR};

pub use tunnel::{ensure_tunnel, vxlan_mac};

/// Requests per `sendmsg`. The kernel handles a whole batch inside the call, so the window
/// bounds only the buffers (and the error answers one batch can produce).
const WINDOW: usize = 1024;
/// Stay well under the default socket send buffer.
const WINDOW_BYTES: usize = 160 * 1024;
const REQUEST_RCVBUF: usize = 4 << 20;
/// Large enough to ride out a burst of foreign changes; an overrun costs one full resync.
const MONITOR_RCVBUF: usize = 16 << 20;
const RTNLGRP_LINK: u32 = 1;
/// Neighbour and FDB entries: the VXLAN device's are repaired when someone deletes them.
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// The kernel's FIB for the network namespace the socket was opened in.
pub struct NetlinkFib {
    req: NlSocket,
    mon: NlSocket,
    protocol: u8,
    table: u32,
    names: HashMap<u32, String>,
    indexes: HashMap<String, u32>,
    events: VecDeque<FibEvent>,
    wbuf: Vec<u8>,
}

impl NetlinkFib {
    /// Open both sockets (inside a tokio runtime, in the target network namespace). The
    /// notification socket is joined first, so nothing that happens after a dump is missed.
    pub fn open(protocol: u8, table: u32) -> Result<NetlinkFib, FibError> {
        let mon = NlSocket::open(
            &[
                RTNLGRP_LINK,
                RTNLGRP_NEIGH,
                RTNLGRP_IPV4_ROUTE,
                RTNLGRP_IPV6_ROUTE,
            ],
            MONITOR_RCVBUF,
        )?;
        let req = NlSocket::open(&[], REQUEST_RCVBUF)?;
        // Our own writes come back as notifications, one per route; they are skipped
        // below, and dropping them in the kernel saves reading them (measured: a route
        // listener reading meanwhile made a raw writer's million routes take 1.36× as long).
        mon.drop_route_notifications_of(req.portid())?;
        Ok(NetlinkFib {
            req,
            mon,
            protocol,
            table,
            names: HashMap::new(),
            indexes: HashMap::new(),
            events: VecDeque::new(),
            wbuf: Vec::with_capacity(WINDOW_BYTES + 4096),
        })
    }

    /// Pull every waiting notification into the event queue.
    fn drain_monitor(&mut self) {
        let mut state = MonitorState {
            own: self.req.portid(),
            protocol: self.protocol,
            table: self.table,
            names: &mut self.names,
            indexes: &mut self.indexes,
            events: &mut self.events,
        };
        self.mon.drain(|d| state.datagram(d));
    }

    async fn dump_links(&mut self) -> Result<Vec<Link>, FibError> {
        let mut links = Vec::new();
        let msg = RouteNetlinkMessage::GetLink(LinkMessage::default());
        self.req
            .dump(msg, |f| match f {
                Some(f) => links.extend(codec::parse_link(f.payload)),
                None => links.clear(),
            })
            .await?;
        self.names = links.iter().map(|l| (l.index, l.name.clone())).collect();
        self.indexes = links.iter().map(|l| (l.name.clone(), l.index)).collect();
        Ok(links)
    }

    async fn ipv4_addresses(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>, FibError> {
        ipv4_addresses(&mut self.req).await
    }
}

pub(crate) async fn ipv4_addresses(
    req: &mut NlSocket,
) -> Result<Vec<(u32, Ipv4Addr, u8)>, FibError> {
    let mut out = Vec::new();
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    req.dump(RouteNetlinkMessage::GetAddress(msg), |f| match f {
        Some(f) => out.extend(codec::parse_ipv4_address(f.payload)),
        None => out.clear(),
    })
    .await?;
    Ok(out)
}

/// What the notification reader needs, borrowed apart from the socket it reads.
struct MonitorState<'a> {
    /// Our request socket: its own changes come back as notifications and are skipped.
    own: u32,
    protocol: u8,
    table: u32,
    names: &'a mut HashMap<u32, String>,
    indexes: &'a mut HashMap<String, u32>,
    events: &'a mut VecDeque<FibEvent>,
}

impl MonitorState<'_> {
    fn datagram(&mut self, data: Result<&[u8], FibError>) {
        match data {
            Ok(data) => frames(data).for_each(|f| self.frame(&f)),
            Err(FibError::Lost) => self.events.push_back(FibEvent::Lost),
            Err(e) => {
                tracing::warn!(error = %e, "reading route notifications failed");
                self.events.push_back(FibEvent::Lost);
            }
        }
    }

    fn frame(&mut self, f: &Frame<'_>) {
        match f.kind {
            RTM_NEWROUTE | RTM_DELROUTE if f.pid != self.own => self.route(f),
            RTM_NEWLINK => {
                if let Some(link) = codec::parse_link(f.payload) {
                    if let Some(old) = self.names.insert(link.index, link.name.clone()) {
                        if old != link.name {
                            self.indexes.remove(&old);
                            self.events.push_back(FibEvent::LinkGone { name: old });
                        }
                    }
                    self.indexes.insert(link.name.clone(), link.index);
                    self.events.push_back(FibEvent::LinkSet(link));
                }
            }
            neigh::RTM_NEWNEIGH | neigh::RTM_DELNEIGH if f.pid != self.own => {
                let Some(device) = neigh::notified_index(f.payload)
                    .and_then(|i| self.names.get(&i))
                    .cloned()
                else {
                    return;
                };
                let event = FibEvent::NeighChanged { device };
                // ARP on busy devices is chatty: one pending event per device is enough.
                if self.events.back() != Some(&event) {
                    self.events.push_back(event);
                }
            }
            RTM_DELLINK => {
                if let Some(link) = codec::parse_link(f.payload) {
                    self.names.remove(&link.index);
                    self.indexes.remove(&link.name);
                    self.events
                        .push_back(FibEvent::LinkGone { name: link.name });
                }
            }
            _ => {}
        }
    }

    fn route(&mut self, f: &Frame<'_>) {
        let msg = match codec::decode_route(f) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::debug!(error = %e, "skipping undecodable route notification");
                return;
            }
        };
        let Some(route) = codec::parse_route(&msg, self.names) else {
            return;
        };
        if route.table != self.table {
            return;
        }
        let prefix = route.prefix;
        let event = match (f.kind, route.protocol == self.protocol) {
            (RTM_NEWROUTE, true) => FibEvent::RouteSet {
                prefix,
                kind: route.kind,
            },
            (RTM_DELROUTE, true) => FibEvent::RouteGone { prefix },
            (RTM_NEWROUTE, false) if f.flags & NLM_F_REPLACE != 0 => {
                FibEvent::RouteTaken { prefix }
            }
            _ => return,
        };
        self.events.push_back(event);
    }
}

fn is_route_event(e: &FibEvent) -> bool {
    matches!(
        e,
        FibEvent::RouteSet { .. } | FibEvent::RouteGone { .. } | FibEvent::RouteTaken { .. }
    )
}

fn is_link_event(e: &FibEvent) -> bool {
    matches!(e, FibEvent::LinkSet(_) | FibEvent::LinkGone { .. })
}

impl Fib for NetlinkFib {
    /// Notifications queued before the dump are reflected in it, so they are dropped. Each
    /// route goes to `each` as its message is read. A dump the kernel marks inconsistent
    /// is read again: a route seen in the first attempt and gone since is also announced
    /// by a notification, which the installer handles after the dump.
    async fn routes(
        &mut self,
        each: &mut (dyn FnMut(IpNet, Option<RouteKind>) + Send),
    ) -> Result<(), FibError> {
        self.drain_monitor();
        self.events.retain(|e| !is_route_event(e));
        for ipv6 in [false, true] {
            let msg = codec::route_dump(ipv6, self.protocol, self.table);
            let (names, protocol, table) = (&self.names, self.protocol, self.table);
            let dumped = self
                .req
                .dump(msg, |f| {
                    let Some(f) = f else { return };
                    match codec::decode_route(f) {
                        Ok(m) => match codec::parse_route(&m, names) {
                            Some(r) if r.protocol == protocol && r.table == table => {
                                each(r.prefix, r.kind)
                            }
                            _ => {}
                        },
                        Err(e) => tracing::debug!(error = %e, "skipping undecodable route"),
                    }
                })
                .await;
            match dumped {
                Ok(()) => {}
                // A table that does not exist yet holds no routes.
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Notifications queued before the dump are reflected in it, so they are dropped.
    async fn links(&mut self) -> Result<Vec<Link>, FibError> {
        self.drain_monitor();
        self.events.retain(|e| !is_link_event(e));
        self.dump_links().await
    }

    async fn underlay(&mut self, node: Ipv4Addr) -> Result<Option<Underlay>, FibError> {
        let Some((index, _, len)) = self
            .ipv4_addresses()
            .await?
            .into_iter()
            .find(|a| a.1 == node)
        else {
            return Ok(None);
        };
        let links = self.dump_links().await?;
        let Some(link) = links.into_iter().find(|l| l.index == index) else {
            return Ok(None);
        };
        let subnet = Ipv4Net::new(node, len).map_err(|e| FibError::Decode(e.to_string()))?;
        Ok(Some(Underlay {
            subnet: IpNet::V4(subnet.trunc()),
            device: link.name,
            mtu: link.mtu,
        }))
    }

    async fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), FibError>> {
        let mut results: Vec<Result<(), FibError>> = Vec::with_capacity(ops.len());
        let mut start = 0;
        while start < ops.len() {
            start = self.apply_window(ops, start, &mut results).await;
            // Let the rest of the runtime breathe between batches of a big change.
            tokio::task::yield_now().await;
        }
        results
    }

    async fn next_event(&mut self) -> FibEvent {
        loop {
            if let Some(event) = self.events.pop_front() {
                return event;
            }
            let mut state = MonitorState {
                own: self.req.portid(),
                protocol: self.protocol,
                table: self.table,
                names: &mut self.names,
                indexes: &mut self.indexes,
                events: &mut self.events,
            };
            if let Err(e) = self.mon.wait_and_drain(|d| state.datagram(d)).await {
                tracing::warn!(error = %e, "route notifications unavailable");
                // Do not spin on a broken socket; the periodic resync still runs.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                return FibEvent::Lost;
            }
        }
    }

    async fn ensure_tunnel(&mut self, spec: &TunnelSpec) -> Result<(), FibError> {
        tunnel::ensure(&mut self.req, spec).await?;
        self.dump_links().await?;
        Ok(())
    }

    async fn vteps(&mut self, device: &str) -> Result<VtepTable, FibError> {
        let index = self.index_of(device).await?;
        neigh::read(&mut self.req, index).await
    }

    async fn apply_vteps(&mut self, device: &str, ops: &[VtepOp]) -> Vec<Result<(), FibError>> {
        match self.index_of(device).await {
            Ok(index) => neigh::apply(&mut self.req, index, ops).await,
            Err(_) => ops
                .iter()
                .map(|_| Err(FibError::NoSuchDevice(device.to_string())))
                .collect(),
        }
    }
}

impl NetlinkFib {
    async fn index_of(&mut self, device: &str) -> Result<u32, FibError> {
        if let Some(i) = self.indexes.get(device) {
            return Ok(*i);
        }
        self.dump_links().await?;
        self.indexes
            .get(device)
            .copied()
            .ok_or_else(|| FibError::NoSuchDevice(device.to_string()))
    }
}

impl NetlinkFib {
    /// Encode, send and settle one batch starting at `start`; returns where the next starts.
    async fn apply_window(
        &mut self,
        ops: &[Op],
        start: usize,
        results: &mut Vec<Result<(), FibError>>,
    ) -> usize {
        let base = self.req.take_seq(WINDOW as u32);
        self.wbuf.clear();
        let mut last: Option<(usize, u32)> = None;
        let mut end = start;
        let indexes = &self.indexes;
        let index_of = |name: &str| indexes.get(name).copied();
        while end < ops.len() && end - start < WINDOW && self.wbuf.len() < WINDOW_BYTES {
            let Some(op) = ops.get(end) else { break };
            let seq = base.wrapping_add((end - start) as u32);
            match codec::route_request(op, self.protocol, self.table, &index_of) {
                Ok(msg) => {
                    let flags = match op {
                        Op::Write(_) => NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
                        Op::Delete(_) => NLM_F_REQUEST,
                    };
                    last = Some((encode(&mut self.wbuf, msg, flags, seq), seq));
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
            end += 1;
        }
        let Some((last_offset, last_seq)) = last else {
            return end;
        };
        request_ack(&mut self.wbuf, last_offset);
        if let Err(e) = self.req.send(&self.wbuf).await {
            let errno = socket_errno(&e);
            fail_window(results, start, end, |_| sent_error(errno));
            return end;
        }
        loop {
            let data = match self.req.recv().await {
                Ok(data) => data,
                Err(e) => {
                    // Error answers may be gone with it: every outcome of the batch is unknown.
                    let errno = socket_errno(&e);
                    fail_window(results, start, end, |_| match errno {
                        None => FibError::Lost,
                        some => sent_error(some),
                    });
                    return end;
                }
            };
            let mut done = false;
            for f in frames(data) {
                if f.kind != NLMSG_ERROR {
                    continue;
                }
                let offset = f.seq.wrapping_sub(base) as usize;
                if offset >= end - start {
                    continue;
                }
                done |= f.seq == last_seq;
                let errno = error_code(&f);
                let (Some(op), Some(slot)) =
                    (ops.get(start + offset), results.get_mut(start + offset))
                else {
                    continue;
                };
                if let Some(err) = refusal(op, errno) {
                    *slot = Err(err);
                }
            }
            if done {
                return end;
            }
        }
    }
}

/// The error for an op the kernel answered `errno`, or `None` when that is success for us.
fn refusal(op: &Op, errno: i32) -> Option<FibError> {
    let fine = match op {
        Op::Write(_) => errno == 0 || errno == libc::EEXIST,
        Op::Delete(_) => errno == 0 || errno == libc::ESRCH || errno == libc::ENOENT,
    };
    if fine {
        return None;
    }
    let what = match op {
        Op::Write(r) => format!("write route {}", r.prefix),
        Op::Delete(p) => format!("delete route {p}"),
    };
    Some(FibError::Kernel {
        what,
        source: io::Error::from_raw_os_error(errno),
    })
}

fn socket_errno(e: &FibError) -> Option<i32> {
    match e {
        FibError::Socket { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

fn sent_error(errno: Option<i32>) -> FibError {
    let source = errno.map_or_else(
        || io::Error::other("netlink failure"),
        io::Error::from_raw_os_error,
    );
    FibError::Socket {
        context: "batch",
        source,
    }
}

/// Replace every still-successful result of the window with an error.
fn fail_window(
    results: &mut [Result<(), FibError>],
    start: usize,
    end: usize,
    error: impl Fn(usize) -> FibError,
) {
    for (i, slot) in results.iter_mut().enumerate().take(end).skip(start) {
        if slot.is_ok() {
            *slot = Err(error(i));
        }
    }
}
