//! The reconciler's state and decisions, without I/O: what the kernel should have, what we
//! believe it has, and the ops that close the gap.
//!
//! It works on changes, not on tables. The RIB's changes, a workload added, a route someone
//! else deleted: each queues the prefixes it touches, and [`Reconciler::plan`] looks at
//! those alone. The whole table is walked only where everything may have changed (after
//! reading the kernel, when the tunnel or underlay device changes), and even then only the
//! prefixes that need a write are listed. Per prefix the state is one small [`Slot`]; the
//! desired route is computed from it when needed, never stored.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::desired::{host_prefix, mode_for, remote_route};
use crate::fib::{FibEvent, Link, Op, Underlay};
use crate::installer::{Counts, Stats};
use crate::state::{
    compact, expand, Dev, Devices, Have, Slot, Slots, Want, DRIFTED, PREVIOUS_RUN, QUEUED, SEEN,
};
use crate::vtep::Macs;
use crate::{FibError, Mode, Route, RouteKind};

/// What an event asks of the driver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reaction {
    /// Compare and write (after a short debounce).
    pub reconcile: bool,
    /// Read everything from the kernel again.
    pub resync: bool,
    /// Make the tunnel device right again.
    pub tunnel: bool,
    /// Compare the tunnel device's neighbour and FDB entries with what they should be.
    pub vteps: bool,
}

pub(crate) struct Reconciler {
    mode: Mode,
    tunnel: String,
    /// The gateways that can be tunnelled to, with their VTEP MACs (VXLAN); `None`:
    /// every one (IPIP).
    vteps: Option<Macs<Ipv4Addr>>,
    /// VXLAN over IPv6: the IPv6 device and the IPv6 gateways that can be tunnelled to,
    /// with their VTEP MACs.
    tunnel_v6: Option<(String, Macs<Ipv6Addr>)>,
    underlay: Option<Underlay>,
    /// The underlay as [`remote_route`] takes it.
    underlay_pair: Option<(IpNet, String)>,
    /// Own blocks in configured order (the first IPv4 one addresses the tunnel).
    own_blocks: Vec<IpNet>,
    blocks: BTreeSet<IpNet>,
    /// Host prefix of each local workload → its host-side device.
    workloads: BTreeMap<IpNet, String>,
    slots: Slots,
    /// Gateways of the prefixes whose [`Want`] is `Side`.
    want_side: HashMap<IpNet, Box<[IpAddr]>>,
    /// Kernel routes of the prefixes whose [`Have`] is `Side`.
    have_side: HashMap<IpNet, RouteKind>,
    devices: Devices,
    tunnel_dev: Option<Dev>,
    underlay_dev: Option<Dev>,
    /// Device name → administratively up.
    links: HashMap<String, bool>,
    converged: bool,
    /// The kernel has been read once: what was found then and is not wanted is a previous
    /// run's (kept until convergence); everything else that is not wanted goes at once, so
    /// a route withdrawn during startup does not linger until every peer sent End-of-RIB.
    kernel_read: bool,
    /// Prefixes to look at.
    queue: VecDeque<IpNet>,
    /// Look at every prefix before the queue.
    sweep: bool,
    pub stats: Stats,
}

/// Errors from writing a workload route whose device vanished or went down between our
/// last look and the write: the route simply waits for the link.
fn waits_for_link(err: &FibError) -> bool {
    matches!(err, FibError::NoSuchDevice(_))
        || matches!(err.errno(), Some(libc::ENODEV) | Some(libc::ENETDOWN))
}

impl Reconciler {
    pub fn new(mode: Mode, tunnel: &str) -> Reconciler {
        let mut devices = Devices::default();
        let tunnel_dev = devices.id(tunnel);
        Reconciler {
            mode,
            tunnel: tunnel.to_string(),
            vteps: None,
            tunnel_v6: None,
            underlay: None,
            underlay_pair: None,
            own_blocks: Vec::new(),
            blocks: BTreeSet::new(),
            workloads: BTreeMap::new(),
            slots: Slots::default(),
            want_side: HashMap::new(),
            have_side: HashMap::new(),
            devices,
            tunnel_dev,
            underlay_dev: None,
            links: HashMap::new(),
            converged: false,
            kernel_read: false,
            queue: VecDeque::new(),
            sweep: false,
            stats: Stats::default(),
        }
    }

    pub fn underlay(&self) -> Option<&Underlay> {
        self.underlay.as_ref()
    }

    fn queue(&mut self, prefix: IpNet) {
        let slot = self.slots.entry(prefix);
        if slot.flags & QUEUED == 0 {
            slot.flags |= QUEUED;
            self.queue.push_back(prefix);
        }
    }

    /// Drop the slot when it holds nothing worth keeping: a drift mark stays while the
    /// prefix is still wanted (a workload whose device is away), to be counted when the
    /// route is put back.
    fn tidy(&mut self, prefix: &IpNet) {
        let Some(slot) = self.slots.get(prefix) else {
            return;
        };
        let drift_kept = slot.flags & DRIFTED != 0 && self.is_desired(prefix, slot);
        if slot.is_empty() && !drift_kept {
            self.slots.remove(prefix);
        }
    }

    /// One change from the RIB: the best next hops of a remote prefix, or `None` when it
    /// has none any more.
    pub fn remote_changed(&mut self, prefix: IpNet, gateways: Option<&[IpAddr]>) {
        let prefix = prefix.trunc();
        let want = match (prefix, gateways) {
            (_, None | Some([])) => Want::None,
            (IpNet::V4(_), Some([IpAddr::V4(gw)])) => Want::V4(*gw),
            (_, Some(_)) => Want::Side,
        };
        let slot = self.slots.get(&prefix).copied().unwrap_or_default();
        let same = slot.want == want
            && (want != Want::Side || self.want_side.get(&prefix).map(|g| &g[..]) == gateways);
        if same {
            return;
        }
        match (want, gateways) {
            (Want::Side, Some(g)) => {
                self.want_side.insert(prefix, g.into());
            }
            _ => {
                self.want_side.remove(&prefix);
            }
        }
        let slot = self.slots.entry(prefix);
        slot.want = want;
        if want != Want::None {
            slot.flags &= !PREVIOUS_RUN;
        }
        self.queue(prefix);
    }

    /// Every remote route at once (replacing what was wanted before).
    pub fn set_remote(&mut self, remote: &BTreeMap<IpNet, Vec<IpAddr>>) {
        let wanted: std::collections::HashSet<IpNet> = remote.keys().map(IpNet::trunc).collect();
        let dropped: Vec<IpNet> = self
            .slots
            .iter()
            .filter(|(p, s)| s.want != Want::None && !wanted.contains(p))
            .map(|(p, _)| p)
            .collect();
        for prefix in dropped {
            self.remote_changed(prefix, None);
        }
        for (prefix, gateways) in remote {
            self.remote_changed(*prefix, Some(gateways));
        }
    }

    /// Own blocks and local workloads (few: compared whole).
    pub fn set_local(&mut self, own_blocks: Vec<IpNet>, workloads: &[(IpAddr, String)]) {
        let blocks: BTreeSet<IpNet> = own_blocks.iter().map(IpNet::trunc).collect();
        let loads: BTreeMap<IpNet, String> = workloads
            .iter()
            .map(|(ip, dev)| (host_prefix(*ip), dev.clone()))
            .collect();
        let mut changed: Vec<IpNet> = self.blocks.symmetric_difference(&blocks).copied().collect();
        changed.extend(
            self.workloads
                .iter()
                .filter(|(p, d)| loads.get(p) != Some(d))
                .map(|(p, _)| *p),
        );
        changed.extend(
            loads
                .iter()
                .filter(|(p, d)| self.workloads.get(p) != Some(d))
                .map(|(p, _)| *p),
        );
        for p in blocks.iter().chain(loads.keys()) {
            if let Some(slot) = self.slots.get_mut(p) {
                slot.flags &= !PREVIOUS_RUN;
            }
        }
        for d in loads.values() {
            self.devices.id(d);
        }
        self.own_blocks = own_blocks;
        self.blocks = blocks;
        self.workloads = loads;
        for p in changed {
            self.queue(p);
        }
    }

    /// The gateways that can be tunnelled to (`None`: every one); a change looks at every
    /// route again.
    pub fn set_vteps(&mut self, vteps: Option<Macs<Ipv4Addr>>) {
        if self.vteps != vteps {
            self.vteps = vteps;
            self.sweep = true;
        }
    }

    pub fn vteps(&self) -> Option<&Macs<Ipv4Addr>> {
        self.vteps.as_ref()
    }

    /// VXLAN over IPv6: the device and the IPv6 gateways that can be tunnelled to; a
    /// change looks at every prefix again.
    pub fn set_tunnel_v6(&mut self, v6: Option<(String, Macs<Ipv6Addr>)>) {
        if self.tunnel_v6 != v6 {
            self.tunnel_v6 = v6;
            self.sweep = true;
        }
    }

    pub fn tunnel_v6(&self) -> Option<&(String, Macs<Ipv6Addr>)> {
        self.tunnel_v6.as_ref()
    }

    /// Whether this device is one of the tunnel devices (IPv4, or the IPv6 VXLAN one).
    fn is_tunnel(&self, name: &str) -> bool {
        name == self.tunnel || self.tunnel_v6.as_ref().is_some_and(|(d, _)| d == name)
    }

    pub fn set_underlay(&mut self, underlay: Option<Underlay>) {
        if self.underlay != underlay {
            self.underlay_pair = underlay.as_ref().map(|u| (u.subnet, u.device.clone()));
            self.underlay_dev = underlay.as_ref().and_then(|u| self.devices.id(&u.device));
            self.underlay = underlay;
            self.sweep = true;
        }
    }

    pub fn set_links(&mut self, links: Vec<Link>) {
        self.links = links.into_iter().map(|l| (l.name, l.up)).collect();
        self.sweep = true;
    }

    pub fn converge(&mut self) {
        self.converged = true;
        self.sweep = true;
    }

    /// The remote, block or workload route this prefix should have, if any.
    fn is_desired(&self, prefix: &IpNet, slot: &Slot) -> bool {
        slot.want != Want::None
            || self.blocks.contains(prefix)
            || self.workloads.contains_key(prefix)
    }

    /// Precedence when prefixes collide: a local workload beats an own block, which beats a
    /// remote route, since local knowledge is the more trustworthy.
    fn desired_at(&self, prefix: &IpNet, slot: &Slot) -> Option<Route> {
        if let Some(device) = self.workloads.get(prefix) {
            return Some(Route {
                prefix: *prefix,
                kind: RouteKind::Link {
                    device: device.clone(),
                },
            });
        }
        if self.blocks.contains(prefix) {
            return Some(Route {
                prefix: *prefix,
                kind: RouteKind::Blackhole,
            });
        }
        let underlay = self.underlay_pair.as_ref();
        match slot.want {
            Want::None => None,
            Want::V4(gw) => remote_route(
                *prefix,
                &[IpAddr::V4(gw)],
                self.mode,
                &self.tunnel,
                underlay,
                self.vteps.as_ref(),
                None,
            ),
            Want::Side => remote_route(
                *prefix,
                self.want_side.get(prefix)?,
                self.mode,
                &self.tunnel,
                underlay,
                self.vteps.as_ref(),
                self.tunnel_v6.as_ref().map(|(d, v)| (d.as_str(), v)),
            ),
        }
    }

    /// Whether the kernel has exactly the desired route, without building it: for the
    /// common shape (one IPv4 gateway, in the kernel as such). `None`: ask [`Self::op_for`].
    fn current_fast(&self, prefix: &IpNet, slot: &Slot) -> Option<bool> {
        let (
            Want::V4(want_gw),
            Have::V4 {
                gateway,
                device,
                onlink,
            },
        ) = (slot.want, slot.have)
        else {
            return None;
        };
        if self.workloads.contains_key(prefix) || self.blocks.contains(prefix) {
            return None;
        }
        let direct = self
            .underlay_pair
            .as_ref()
            .is_some_and(|(subnet, _)| subnet.contains(&IpAddr::V4(want_gw)));
        let mode = mode_for(self.mode, want_gw, self.vteps.as_ref());
        let (want_dev, want_onlink) = match (mode, direct) {
            (Mode::Never, _) => (Some(0), false),
            (Mode::CrossSubnet, true) => (self.underlay_dev, false),
            (Mode::Always | Mode::CrossSubnet, _) => (self.tunnel_dev, true),
        };
        let want_dev = want_dev?;
        let same =
            gateway == want_gw && onlink == want_onlink && (want_dev == 0 || want_dev == device);
        let up = device == 0
            || self
                .devices
                .name(device)
                .is_some_and(|d| self.links.get(d).copied().unwrap_or(false));
        Some(same && up)
    }

    fn have_matches(&self, prefix: &IpNet, have: Have, want: &RouteKind) -> bool {
        match have {
            Have::Absent | Have::Foreign => false,
            Have::Side => self.have_side.get(prefix).is_some_and(|k| want.matches(k)),
            h => expand(h, &self.devices).is_some_and(|k| want.matches(&k)),
        }
    }

    fn installable(&self, route: &Route) -> bool {
        route
            .kind
            .devices()
            .all(|d| self.links.get(d).copied().unwrap_or(false))
    }

    fn kept(&self, slot: &Slot) -> bool {
        !self.converged && (!self.kernel_read || slot.flags & PREVIOUS_RUN != 0)
    }

    /// The op this prefix needs: write the desired route when it is installable and the
    /// kernel lacks it or has it differently; delete ours when nothing installable is
    /// desired (a previous run's only once converged).
    fn op_for(&self, prefix: &IpNet) -> Option<Op> {
        let slot = self.slots.get(prefix).copied().unwrap_or_default();
        if self.current_fast(prefix, &slot) == Some(true) {
            return None;
        }
        match self
            .desired_at(prefix, &slot)
            .filter(|r| self.installable(r))
        {
            Some(r) => (!self.have_matches(prefix, slot.have, &r.kind)).then_some(Op::Write(r)),
            None => (slot.have != Have::Absent && !self.kept(&slot)).then_some(Op::Delete(*prefix)),
        }
    }

    /// Queue every prefix that needs an op (the list holds only those).
    fn sweep_all(&mut self) {
        let mut found: Vec<IpNet> = self
            .slots
            .keys()
            .filter(|p| self.op_for(p).is_some())
            .collect();
        found.extend(
            self.blocks
                .iter()
                .chain(self.workloads.keys())
                .filter(|p| !self.slots.contains_key(p) && self.op_for(p).is_some()),
        );
        for p in found {
            self.queue(p);
        }
    }

    /// The next ops that make the kernel what we want, at most `limit`; empty when there is
    /// nothing left to do.
    pub fn plan(&mut self, limit: usize) -> Vec<Op> {
        if std::mem::take(&mut self.sweep) {
            self.sweep_all();
        }
        let mut ops = Vec::new();
        while ops.len() < limit {
            let Some(prefix) = self.queue.pop_front() else {
                break;
            };
            if let Some(slot) = self.slots.get_mut(&prefix) {
                slot.flags &= !QUEUED;
            }
            match self.op_for(&prefix) {
                Some(op) => ops.push(op),
                None => self.tidy(&prefix),
            }
        }
        ops
    }

    /// Deletes for every route of ours we know of (stop with flush), at most `limit`;
    /// the prefixes planned are forgotten.
    pub fn flush_plan(&mut self, limit: usize) -> Vec<Op> {
        let ops: Vec<Op> = self
            .slots
            .iter()
            .filter(|(_, s)| s.have != Have::Absent)
            .take(limit)
            .map(|(p, _)| Op::Delete(p))
            .collect();
        for op in &ops {
            self.set_have(op.prefix(), None);
        }
        ops
    }

    /// Record what the kernel has at `prefix` (`None`: nothing; `Some(None)`: a shape we
    /// never write). Returns the shape before and whether it changed.
    fn set_have(&mut self, prefix: IpNet, kind: Option<Option<&RouteKind>>) -> (Have, bool) {
        let have = match kind {
            None => Have::Absent,
            Some(None) => Have::Foreign,
            Some(Some(k)) => compact(k, &mut self.devices).unwrap_or(Have::Side),
        };
        let slot = self.slots.entry(prefix);
        let before = slot.have;
        slot.have = have;
        let mut changed = before != have;
        if have == Have::Side {
            if let Some(Some(k)) = kind {
                let old = self.have_side.insert(prefix, k.clone());
                changed |= old.as_ref() != Some(k);
            }
        } else if before == Have::Side {
            self.have_side.remove(&prefix);
        }
        (before, changed)
    }

    fn flag(&mut self, prefix: &IpNet, flag: u8, on: bool) -> bool {
        let Some(slot) = self.slots.get_mut(prefix) else {
            return false;
        };
        let was = slot.flags & flag != 0;
        if on {
            slot.flags |= flag;
        } else {
            slot.flags &= !flag;
        }
        was
    }

    /// One of our routes, as the kernel dump being read has it.
    pub fn kernel_route(&mut self, prefix: IpNet, kind: Option<RouteKind>) {
        let (before, changed) = self.set_have(prefix, Some(kind.as_ref()));
        let slot = self.slots.get(&prefix).copied().unwrap_or_default();
        let desired = self.is_desired(&prefix, &slot);
        self.flag(&prefix, SEEN, true);
        if !self.kernel_read {
            if !desired {
                self.flag(&prefix, PREVIOUS_RUN, true);
            }
        } else if before != Have::Absent && changed && desired {
            // Changed behind our back since we last looked.
            self.flag(&prefix, DRIFTED, true);
        }
    }

    /// The dump is read (`complete`), or failed part way. What was not in a complete dump
    /// is gone; what vanished and is wanted is drift.
    pub fn end_kernel(&mut self, complete: bool) {
        let gone: Vec<IpNet> = self
            .slots
            .iter()
            .filter(|(_, s)| complete && s.flags & SEEN == 0 && s.have != Have::Absent)
            .map(|(p, _)| p)
            .collect();
        for slot in self.slots.values_mut() {
            slot.flags &= !SEEN;
        }
        for prefix in gone {
            self.set_have(prefix, None);
            let slot = self.slots.get(&prefix).copied().unwrap_or_default();
            if self.is_desired(&prefix, &slot) {
                self.flag(&prefix, DRIFTED, true);
            } else {
                self.tidy(&prefix);
            }
        }
        if complete {
            self.kernel_read = true;
        }
        self.sweep = true;
    }

    /// Take the outcome of `ops` into our picture of the kernel. Returns whether the
    /// outcome of some op is unknown (the kernel must be read again).
    pub fn record(&mut self, ops: &[Op], results: Vec<Result<(), FibError>>) -> bool {
        let mut lost = false;
        let mut logged = 0;
        for (op, result) in ops.iter().zip(results) {
            match (op, result) {
                (Op::Write(route), Ok(())) => {
                    let (before, _) = self.set_have(route.prefix, Some(Some(&route.kind)));
                    if before != Have::Absent {
                        self.stats.replaced += 1;
                    } else {
                        self.stats.added += 1;
                    }
                    if self.flag(&route.prefix, DRIFTED, false) {
                        self.stats.drift_repairs += 1;
                    }
                }
                (Op::Delete(prefix), Ok(())) => {
                    self.set_have(*prefix, None);
                    self.flag(prefix, DRIFTED, false);
                    self.stats.deleted += 1;
                    self.tidy(prefix);
                }
                (_, Err(FibError::Lost)) => lost = true,
                (Op::Write(route), Err(e)) if waits_for_link(&e) => {
                    tracing::debug!(prefix = %route.prefix, error = %e, "route waits for its device");
                }
                (op, Err(e)) => {
                    self.stats.errors += 1;
                    // One bad route must not flood the log on every pass.
                    if logged < 5 {
                        logged += 1;
                        tracing::warn!(prefix = %op.prefix(), error = %e, "route write failed");
                    }
                }
            }
        }
        lost
    }

    /// Take in a change made by someone else.
    pub fn event(&mut self, event: FibEvent) -> Reaction {
        let mut reaction = Reaction::default();
        match event {
            FibEvent::RouteSet { prefix, kind } => {
                let slot = self.slots.get(&prefix).copied().unwrap_or_default();
                let wanted = self.desired_at(&prefix, &slot);
                let fine = matches!((&wanted, &kind), (Some(w), Some(k)) if w.kind.matches(k));
                self.set_have(prefix, Some(kind.as_ref()));
                if !fine {
                    if wanted.is_some() {
                        self.flag(&prefix, DRIFTED, true);
                    }
                    self.queue(prefix);
                    reaction.reconcile = true;
                }
            }
            FibEvent::RouteGone { prefix } | FibEvent::RouteTaken { prefix } => {
                let (before, _) = self.set_have(prefix, None);
                let slot = self.slots.get(&prefix).copied().unwrap_or_default();
                if before != Have::Absent && self.is_desired(&prefix, &slot) {
                    self.flag(&prefix, DRIFTED, true);
                    self.queue(prefix);
                    reaction.reconcile = true;
                } else {
                    self.tidy(&prefix);
                }
            }
            FibEvent::LinkSet(link) => {
                let was = self.links.insert(link.name.clone(), link.up);
                if was != Some(link.up) {
                    if !link.up {
                        reaction.resync = self.forget_routes_through(&link.name);
                        reaction.tunnel = self.is_tunnel(&link.name);
                    }
                    self.link_changed(&link.name);
                    reaction.reconcile = true;
                }
            }
            FibEvent::LinkGone { name } => {
                self.links.remove(&name);
                reaction.resync = self.forget_routes_through(&name);
                reaction.tunnel = self.is_tunnel(&name);
                self.link_changed(&name);
                reaction.reconcile = true;
            }
            FibEvent::NeighChanged { device } => reaction.vteps = self.is_tunnel(&device),
            FibEvent::Lost => reaction.resync = true,
        }
        reaction
    }

    /// Queue what a device change can affect: every route for the tunnel or underlay
    /// device, the workloads on any other.
    fn link_changed(&mut self, name: &str) {
        let underlay = self.underlay.as_ref().is_some_and(|u| u.device == name);
        if self.is_tunnel(name) || underlay {
            self.sweep = true;
            return;
        }
        let on_it: Vec<IpNet> = self
            .workloads
            .iter()
            .filter(|(_, d)| *d == name)
            .map(|(p, _)| *p)
            .collect();
        for p in on_it {
            self.queue(p);
        }
    }

    /// The kernel drops routes through a device that goes down or away, without a word.
    /// Returns whether some of our routes went through a device the kernel chose (we do
    /// not know which): then only reading the kernel again tells what is left.
    fn forget_routes_through(&mut self, device: &str) -> bool {
        let dev = self.devices.known(device);
        let mut unknown = false;
        let mut gone = Vec::new();
        for (prefix, slot) in self.slots.iter() {
            let through = match slot.have {
                Have::V4 { device: d, .. } => {
                    unknown |= d == 0;
                    dev == Some(d)
                }
                Have::Link(d) => dev == Some(d),
                Have::Side => match self.have_side.get(&prefix) {
                    Some(RouteKind::Via(hops)) => {
                        unknown |= hops.iter().any(|h| h.device.is_none());
                        hops.iter().any(|h| h.device.as_deref() == Some(device))
                    }
                    Some(k) => k.devices().any(|d| d == device),
                    None => false,
                },
                Have::Absent | Have::Foreign | Have::Blackhole => false,
            };
            if through {
                gone.push(prefix);
            }
        }
        for prefix in gone {
            self.set_have(prefix, None);
            let slot = self.slots.get(&prefix).copied().unwrap_or_default();
            if self.is_desired(&prefix, &slot) {
                self.flag(&prefix, DRIFTED, true);
                self.queue(prefix);
            } else {
                self.tidy(&prefix);
            }
        }
        unknown
    }

    /// Our routes in the kernel by kind.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for (prefix, slot) in self.slots.iter() {
            match slot.have {
                Have::V4 { .. } => c.remote += 1,
                Have::Blackhole => c.blackhole += 1,
                Have::Link(_) => c.workload += 1,
                Have::Side => match self.have_side.get(&prefix) {
                    Some(RouteKind::Via(_)) => c.remote += 1,
                    Some(RouteKind::Blackhole) => c.blackhole += 1,
                    Some(RouteKind::Link { .. }) => c.workload += 1,
                    None => {}
                },
                Have::Absent | Have::Foreign => {}
            }
        }
        c
    }

    /// Routes in the kernel exactly as we want them (built on request: `show routes`).
    pub fn installed(&self) -> BTreeMap<IpNet, Route> {
        self.slots
            .iter()
            .filter_map(|(p, s)| {
                let r = self.desired_at(&p, s)?;
                self.have_matches(&p, s.have, &r.kind).then_some((p, r))
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
