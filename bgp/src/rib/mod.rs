//! The RIB: the peers' Adj-RIBs-In and the Loc-RIB (best paths and multipath
//! sets) in one table, and export to each peer. Sans-IO and single-owner: the
//! speaker's RIB task feeds it events and carries out the [`Effects`] it returns.
//!
//! There is no stored Adj-RIB-Out: what a peer is told is a pure function of
//! the Loc-RIB best path and the export policy, so a change is sent by
//! comparing the export of the old best with the export of the new one, and a
//! route refresh re-walks the Loc-RIB. That keeps memory at one entry per path.

mod best;
mod path;
mod policy;
mod shared_out;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_held;
#[cfg(test)]
mod tests_reflect;
mod update;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ipnet::IpNet;

use crate::wire::{codes, AfiSafi, Attributes, Context, Notification};

pub use best::{compare, multipath, DEFAULT_LOCAL_PREF};
use path::Paths;
pub use path::{Path, Shared};
pub use policy::{ExportClass, PolicyConfig, Refusal};
use table::Table;

/// Where a path came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// One of this node's own blocks.
    Local,
    Peer(IpAddr),
}

/// A peer as the RIB sees it while its session is up.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    pub address: IpAddr,
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub ibgp: bool,
    /// This node reflects routes for that peer (RFC 4456 client).
    pub rr_client: bool,
    /// Negotiated families.
    pub ipv4: bool,
    pub ipv6: bool,
    pub context: Context,
    pub max_prefixes: Option<u32>,
    /// RFC 7313 negotiated: a refresh is framed by BoRR and EoRR.
    pub enhanced_route_refresh: bool,
}

/// What the driver must do after an event.
#[derive(Debug, Default)]
pub struct Effects {
    /// Encoded messages to send, per peer, in order.
    pub messages: Vec<(IpAddr, Bytes)>,
    /// Sessions to reset with a NOTIFICATION (max-prefix).
    pub resets: Vec<(IpAddr, Notification)>,
    /// The FIB view changed.
    pub fib_changed: bool,
    /// Octets of UPDATEs encoded for `messages`, each encoding counted once however
    /// many peers share it: what the flush holds in memory until the sockets take it.
    pub encoded: usize,
}

#[cfg(test)]
impl Effects {
    /// Every message queued, one per entry: an entry may hold several whole messages
    /// (a slice of an encoding shared by many peers).
    pub(crate) fn each_message(&self) -> Vec<(IpAddr, Bytes)> {
        let ctx = Context {
            extended_message: true,
            ..Context::default()
        };
        let mut out = Vec::new();
        for (to, buf) in &self.messages {
            let mut rest = buf.clone();
            while let Ok(Some(n)) = crate::wire::frame(&rest, &ctx) {
                out.push((*to, rest.split_to(n)));
            }
            assert!(rest.is_empty(), "a partial message queued for {to}");
        }
        out
    }
}

/// Per-peer counters, as `show peers` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerCounts {
    /// Prefixes the peer announced that are in its Adj-RIB-In (before policy).
    pub received: u64,
    /// Of those, accepted by policy into the Loc-RIB.
    pub accepted: u64,
    /// Refused because they overlap one of our own blocks.
    pub refused_overlap: u64,
    /// Refused for any other policy reason.
    pub refused: u64,
    /// Treat-as-withdraw UPDATEs (RFC 7606).
    pub treat_as_withdraw: u64,
    /// UPDATEs with attributes discarded (RFC 7606).
    pub attributes_discarded: u64,
}

#[derive(Debug, Default)]
struct PeerRib {
    info: Option<Arc<PeerInfo>>,
    counts: PeerCounts,
    /// Per family (IPv4, IPv6): whether any of the peer's paths may be stale
    /// (graceful restart, or a route refresh between BoRR and EoRR). Without
    /// it, every End-of-RIB would scan the whole table.
    stale_families: [bool; 2],
    eor_received: Vec<AfiSafi>,
    /// Max-prefix tripped: the session is being reset and what it still sends is ignored,
    /// so a flood past the limit costs no memory while the reset travels.
    over_limit: bool,
    /// Held ([`Rib::hold`]): its socket is behind, so changes are not encoded for it but
    /// noted here, once per prefix with whether it had heard a route for it, and sent as
    /// they are then when [`Rib::release`]d. At most one entry per prefix: a peer that
    /// reads slowly costs memory bounded by the table, however much churns.
    held: Option<BTreeMap<IpNet, bool>>,
}

/// A route as `show routes` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RouteView {
    pub prefix: IpNet,
    pub local: bool,
    pub next_hop: Option<IpAddr>,
    pub peer: Option<IpAddr>,
    pub best: bool,
    /// Part of the equal-cost set installed in the FIB.
    pub multipath: bool,
    pub stale: bool,
    pub as_path: String,
    pub local_pref: Option<u32>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    /// Every path attribute as stored (after RFC 7606 handling), for detailed views.
    #[serde(skip)]
    pub attributes: Arc<Attributes>,
}

/// The RIB.
///
/// One table holds, per prefix, every path every peer sent: the accepted ones
/// are the Loc-RIB candidates, and all of them together are the peers'
/// Adj-RIBs-In. Work on one peer's paths (session down, graceful restart,
/// refresh) walks the table; a route costs one inline [`Path`] and its share
/// of a tree node.
#[derive(Debug)]
pub struct Rib {
    policy: PolicyConfig,
    max_paths: usize,
    peers: HashMap<IpAddr, PeerRib>,
    table: Table,
    /// Prefixes whose best path changed since the last flush, with the best
    /// each had before; when a prefix is listed twice the first record holds
    /// what peers were last told.
    dirty: Vec<(IpNet, Option<Path>)>,
    effects: Effects,
    /// With FIB tracking on: prefixes whose FIB entry may have changed since
    /// [`Rib::fib_changes`] last took them (in the order touched, repeats included).
    fib_prefixes: Option<Vec<IpNet>>,
}

/// Records the change `op` made to one prefix's paths, given its best path before.
fn note_change(
    dirty: &mut Vec<(IpNet, Option<Path>)>,
    fib_changed: &mut bool,
    fib_prefixes: &mut Option<Vec<IpNet>>,
    prefix: IpNet,
    old: Option<Path>,
    paths: &Paths,
) {
    let new = paths.best();
    if old.is_some() || new.is_some() {
        *fib_changed = true;
        // The multipath set can change while the best path stays: every touched
        // prefix is looked at again.
        if let Some(p) = fib_prefixes {
            p.push(prefix);
        }
    }
    let same = match (&old, new) {
        (Some(o), Some(n)) => o.same_route(n),
        (None, None) => true,
        _ => false,
    };
    if !same {
        dirty.push((prefix, old));
    }
}

/// Runs `op` on every prefix `touches` picks, and records what changed.
fn change_all(
    table: &mut Table,
    dirty: &mut Vec<(IpNet, Option<Path>)>,
    fib_changed: &mut bool,
    fib_prefixes: &mut Option<Vec<IpNet>>,
    touches: impl Fn(IpNet, &Paths) -> bool,
    mut op: impl FnMut(IpNet, &mut Paths),
) {
    table.for_each_mut(|prefix, paths| {
        if !touches(prefix, paths) {
            return;
        }
        let old = paths.best().cloned();
        op(prefix, paths);
        note_change(dirty, fib_changed, fib_prefixes, prefix, old, paths);
    });
}

/// The paths of peer `address` (of one family when given).
fn from_peer(address: IpAddr, family: Option<bool>) -> impl Fn(&Path) -> bool {
    let source = Source::Peer(address);
    move |p: &Path| p.source == source && family.is_none_or(|v4| p.prefix_is_v4 == v4)
}

impl Rib {
    pub fn new(policy: PolicyConfig, max_paths: usize) -> Self {
        let mut rib = Rib {
            policy,
            max_paths,
            peers: HashMap::new(),
            table: Table::default(),
            dirty: Vec::new(),
            effects: Effects::default(),
            fib_prefixes: None,
        };
        let blocks = rib.policy.own_blocks.clone();
        rib.add_local(&blocks);
        rib
    }

    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// Runs `op` on one prefix's paths in a single tree walk and records what changed.
    fn change<R>(&mut self, prefix: IpNet, op: impl FnOnce(&mut Paths) -> R) -> R {
        let dirty = &mut self.dirty;
        let fib_changed = &mut self.effects.fib_changed;
        let fib_prefixes = &mut self.fib_prefixes;
        self.table.update(prefix, |paths| {
            let old = paths.best().cloned();
            let r = op(paths);
            note_change(dirty, fib_changed, fib_prefixes, prefix, old, paths);
            r
        })
    }

    /// Runs `op` on every prefix with a path `touches` picks, and records what changed.
    fn change_all(&mut self, touches: impl Fn(&Path) -> bool, op: impl FnMut(IpNet, &mut Paths)) {
        let Rib {
            table,
            dirty,
            effects,
            fib_prefixes,
            ..
        } = self;
        let touched = |_: IpNet, paths: &Paths| paths.as_slice().iter().any(&touches);
        change_all(
            table,
            dirty,
            &mut effects.fib_changed,
            fib_prefixes,
            touched,
            op,
        );
    }

    fn local_shared(&self, v4: bool) -> Option<Arc<Shared>> {
        let next_hop = if v4 {
            IpAddr::V4(self.policy.next_hop_v4)
        } else {
            IpAddr::V6(self.policy.next_hop_v6?)
        };
        Some(Arc::new(Shared {
            source: Source::Local,
            from: None,
            attrs: Arc::new(self.policy.local_attributes()),
            next_hop,
            ibgp: true,
            prefix_is_v4: v4,
        }))
    }

    fn add_local(&mut self, blocks: &[IpNet]) {
        let shared = [self.local_shared(true), self.local_shared(false)];
        for block in blocks {
            let v4 = matches!(block, IpNet::V4(_));
            let Some(Some(shared)) = shared.get(usize::from(!v4)) else {
                continue;
            };
            let path = Path::new(shared.clone(), 0, true);
            self.change(*block, |paths| paths.upsert(path));
        }
    }

    /// Replaces our own blocks (config reload): new ones are announced, removed
    /// ones withdrawn, and learned paths near either are judged again, so a
    /// route refused for overlapping a block that is gone now is accepted.
    pub fn set_own_blocks(&mut self, blocks: Vec<IpNet>) {
        let removed: Vec<IpNet> = self
            .policy
            .own_blocks
            .iter()
            .filter(|b| !blocks.contains(b))
            .copied()
            .collect();
        let added: Vec<IpNet> = blocks
            .iter()
            .filter(|b| !self.policy.own_blocks.contains(b))
            .copied()
            .collect();
        self.policy.own_blocks = blocks;
        for block in &removed {
            self.change(*block, |paths| paths.remove_where(Path::is_local, drop));
        }
        self.add_local(&added);
        let changed: Vec<IpNet> = removed.into_iter().chain(added).collect();
        if !changed.is_empty() {
            self.judge_again(|prefix| {
                changed
                    .iter()
                    .any(|b| b.contains(prefix) || prefix.contains(b))
            });
        }
    }

    /// Runs import policy again on the learned paths of the prefixes `near` picks.
    fn judge_again(&mut self, near: impl Fn(&IpNet) -> bool) {
        let Rib {
            policy,
            peers,
            table,
            dirty,
            effects,
            fib_prefixes,
            ..
        } = self;
        let touched = |prefix: IpNet, _: &Paths| near(&prefix);
        change_all(
            table,
            dirty,
            &mut effects.fib_changed,
            fib_prefixes,
            touched,
            |prefix, paths| {
                paths.modify(|p| {
                    let Some(info) = p.from.clone() else { return };
                    let next_hop = Some(p.next_hop).filter(|a| !a.is_unspecified());
                    let accepted = policy.import(&info, &prefix, &p.attrs, next_hop).is_ok();
                    if accepted != p.accepted {
                        p.accepted = accepted;
                        if let Some(peer) = peers.get_mut(&info.address) {
                            let c = &mut peer.counts.accepted;
                            *c = if accepted {
                                *c + 1
                            } else {
                                c.saturating_sub(1)
                            };
                        }
                    }
                });
            },
        );
    }

    /// A session reached Established: send it everything it should hear, then
    /// End-of-RIB for each family at once (we never wait for the peer's EoR).
    pub fn peer_up(&mut self, info: PeerInfo) {
        let address = info.address;
        let info = Arc::new(info);
        let peer = self.peers.entry(address).or_default();
        peer.info = Some(info.clone());
        peer.eor_received.clear();
        peer.over_limit = false;
        peer.held = None;
        // Families the peer no longer supports lose their stale paths now.
        let families = [
            (AfiSafi::IPV4_UNICAST, info.ipv4),
            (AfiSafi::IPV6_UNICAST, info.ipv6),
        ];
        for (family, up) in families {
            if !up {
                self.flush_stale(address, Some(family));
            }
        }
        self.send_table(&info, true);
    }

    /// Sends `info` every best path it should hear, then End-of-RIB per family
    /// if `end_of_rib`.
    fn send_table(&mut self, info: &PeerInfo, end_of_rib: bool) {
        let address = info.address;
        let families = [
            (AfiSafi::IPV4_UNICAST, info.ipv4),
            (AfiSafi::IPV6_UNICAST, info.ipv6),
        ];
        let mut batches = update::Batches::default();
        let mut cache = update::ExportCache::default();
        for (prefix, paths) in self.table.iter() {
            let Some(best) = paths.best() else { continue };
            if let Some(exported) = cache.export(&self.policy, best, info) {
                batches.add(best, exported, prefix);
            }
        }
        let ctx = info.context;
        batches.send(&mut self.effects, address, &ctx);
        for (family, up) in families {
            if up && end_of_rib {
                update::end_of_rib(&mut self.effects, address, family, &ctx);
            }
        }
    }

    /// A session went down. With `keep_stale` (graceful restart helper), its
    /// paths stay, marked stale, until End-of-RIB or [`Rib::stale_expired`].
    pub fn peer_down(&mut self, address: IpAddr, keep_stale: bool) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        peer.info = None;
        peer.over_limit = false;
        peer.held = None;
        if keep_stale {
            peer.stale_families = [true, true];
            let mine = from_peer(address, None);
            self.change_all(&mine, |_, paths| {
                paths.modify(|p| p.stale |= mine(p));
            });
        } else {
            peer.counts.received = 0;
            peer.counts.accepted = 0;
            let mine = from_peer(address, None);
            self.change_all(&mine, |_, paths| paths.remove_where(&mine, drop));
        }
    }

    /// A peer left the configuration: forget it entirely.
    pub fn peer_removed(&mut self, address: IpAddr) {
        self.peer_down(address, false);
        self.peers.remove(&address);
    }

    /// RFC 7313 BoRR: the peer is about to re-send `family`; what it does not
    /// re-send before EoRR is gone.
    pub fn begin_refresh(&mut self, address: IpAddr, family: AfiSafi) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let v4 = family == AfiSafi::IPV4_UNICAST;
        if let Some(f) = peer.stale_families.get_mut(usize::from(!v4)) {
            *f = true;
        }
        let mine = from_peer(address, Some(v4));
        self.change_all(&mine, |_, paths| {
            paths.modify(|p| p.stale |= mine(p));
        });
    }

    /// RFC 7313 EoRR: paths not re-sent since BoRR are withdrawn.
    pub fn end_refresh(&mut self, address: IpAddr, family: AfiSafi) {
        self.flush_stale(address, Some(family));
    }

    /// The restart time ran out before End-of-RIB: drop what is still stale.
    pub fn stale_expired(&mut self, address: IpAddr) {
        self.flush_stale(address, None);
    }

    fn flush_stale(&mut self, address: IpAddr, family: Option<AfiSafi>) {
        let want_v4 = family.is_none_or(|f| f == AfiSafi::IPV4_UNICAST);
        let want_v6 = family.is_none_or(|f| f == AfiSafi::IPV6_UNICAST);
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let mut any = false;
        for (f, wanted) in peer.stale_families.iter_mut().zip([want_v4, want_v6]) {
            if wanted {
                any |= *f;
                *f = false;
            }
        }
        if !any {
            return;
        }
        let mine = from_peer(address, None);
        let gone = |p: &Path| mine(p) && p.stale && if p.prefix_is_v4 { want_v4 } else { want_v6 };
        let (mut received, mut accepted) = (0u64, 0u64);
        self.change_all(gone, |_, paths| {
            paths.remove_where(gone, |p| {
                received += 1;
                accepted += u64::from(p.accepted);
            })
        });
        if let Some(peer) = self.peers.get_mut(&address) {
            let c = &mut peer.counts;
            c.received = c.received.saturating_sub(received);
            c.accepted = c.accepted.saturating_sub(accepted);
        }
    }

    /// Route refresh: re-send everything `address` should hear. With enhanced
    /// route refresh (RFC 7313) the re-sent routes are framed by BoRR and EoRR
    /// per family, instead of ending with End-of-RIB.
    pub fn refresh(&mut self, address: IpAddr) {
        let Some(info) = self.peers.get(&address).and_then(|p| p.info.clone()) else {
            return;
        };
        if !info.enhanced_route_refresh {
            self.send_table(&info, true);
            return;
        }
        let families: Vec<AfiSafi> = [
            (AfiSafi::IPV4_UNICAST, info.ipv4),
            (AfiSafi::IPV6_UNICAST, info.ipv6),
        ]
        .into_iter()
        .filter_map(|(f, up)| up.then_some(f))
        .collect();
        for f in &families {
            update::route_refresh(&mut self.effects, address, *f, 1, &info.context);
        }
        self.send_table(&info, false);
        for f in &families {
            update::route_refresh(&mut self.effects, address, *f, 2, &info.context);
        }
    }

    /// Applies the changes of a round of events and returns what to do.
    /// Octets of UPDATEs encoded and waiting for the next [`Rib::flush`] (the table sent
    /// to sessions that came up, refreshes). The changes themselves are encoded by the
    /// flush and counted in its [`Effects::encoded`].
    pub fn encoded(&self) -> usize {
        self.effects.encoded
    }

    pub fn flush(&mut self) -> Effects {
        self.export_dirty();
        std::mem::take(&mut self.effects)
    }

    fn export_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        // Mostly in order already (each peer sends its prefixes in runs), which
        // the stable sort is quick on; the first record of a prefix is kept.
        dirty.sort_by_key(|d| d.0);
        dirty.dedup_by(|later, first| later.0 == first.0);
        update::export_changes(self, &dirty);
    }

    /// Stops encoding changes for an established peer whose socket is behind: they are
    /// noted per prefix instead, until [`Rib::release`].
    pub fn hold(&mut self, address: IpAddr) {
        if let Some(peer) = self.peers.get_mut(&address) {
            if peer.info.is_some() && peer.held.is_none() {
                peer.held = Some(BTreeMap::new());
            }
        }
    }

    /// Whether `address` is held.
    pub fn is_held(&self, address: IpAddr) -> bool {
        self.peers.get(&address).is_some_and(|p| p.held.is_some())
    }

    /// A held peer's socket can take more: up to `max` of its noted prefixes are sent
    /// as they are now (in the next [`Rib::flush`]'s messages, after every change made
    /// before this call). It stays held while some are left; returns whether so.
    pub fn release(&mut self, address: IpAddr, max: usize) -> bool {
        // Changes made before this call are noted first, so that what the peer is
        // told now is what later changes are compared with.
        self.export_dirty();
        update::release(self, address, max)
    }

    /// Start recording which prefixes the FIB must look at again ([`Rib::fib_changes`]);
    /// the first changes are every remote route the table holds now.
    pub fn track_fib(&mut self) {
        if self.fib_prefixes.is_none() {
            self.fib_prefixes = Some(self.table.iter().map(|(p, _)| p).collect());
        }
    }

    /// What changed for the FIB since the last call: each remote prefix touched with its
    /// equal-cost next hops now, or `None` when it has no remote best path any more (gone,
    /// or one of our own blocks now). A prefix changed and changed back is listed too:
    /// the receiver compares with what it has. Empty unless [`Rib::track_fib`] was called.
    pub fn fib_changes(&mut self) -> Vec<(IpNet, Option<Vec<IpAddr>>)> {
        let Some(prefixes) = self.fib_prefixes.as_mut() else {
            return Vec::new();
        };
        let mut prefixes = std::mem::take(prefixes);
        prefixes.sort_unstable();
        prefixes.dedup();
        prefixes
            .into_iter()
            .map(|prefix| {
                let hops = self
                    .table
                    .get(&prefix)
                    .filter(|paths| paths.best().is_some_and(|p| !p.is_local()))
                    .map(|paths| multipath(paths.as_slice(), self.max_paths));
                (prefix, hops)
            })
            .collect()
    }

    /// Remote prefixes with their equal-cost next hops: the whole FIB view at once, for
    /// tests and checks ([`Rib::fib_changes`] is what feeds the FIB).
    pub fn fib_view(&self) -> BTreeMap<IpNet, Vec<IpAddr>> {
        self.table
            .iter()
            .filter(|(_, paths)| paths.best().is_some_and(|p| !p.is_local()))
            .map(|(prefix, paths)| (prefix, multipath(paths.as_slice(), self.max_paths)))
            .collect()
    }

    pub fn counts(&self) -> HashMap<IpAddr, PeerCounts> {
        self.peers.iter().map(|(a, p)| (*a, p.counts)).collect()
    }

    /// Peers whose End-of-RIB has arrived for every negotiated family.
    pub fn eor_complete(&self, address: IpAddr) -> bool {
        let Some(peer) = self.peers.get(&address) else {
            return false;
        };
        let Some(info) = &peer.info else { return false };
        (!info.ipv4 || peer.eor_received.contains(&AfiSafi::IPV4_UNICAST))
            && (!info.ipv6 || peer.eor_received.contains(&AfiSafi::IPV6_UNICAST))
    }

    /// Prefixes with at least one accepted path.
    pub fn route_count(&self) -> usize {
        self.table
            .iter()
            .filter(|(_, paths)| paths.best().is_some())
            .count()
    }

    /// Every accepted path, best first per prefix, for `show routes`.
    pub fn routes(&self) -> Vec<RouteView> {
        let mut out = Vec::with_capacity(self.table.len());
        for (prefix, paths) in self.table.iter() {
            let mp = multipath(paths.as_slice(), self.max_paths);
            for (i, p) in paths.accepted().enumerate() {
                let best = i == 0;
                out.push(RouteView {
                    prefix,
                    local: p.is_local(),
                    next_hop: if p.is_local() { None } else { Some(p.next_hop) },
                    peer: match p.source {
                        Source::Peer(a) => Some(a),
                        Source::Local => None,
                    },
                    best,
                    multipath: !p.is_local() && (best || mp.contains(&p.next_hop)),
                    stale: p.stale,
                    as_path: p
                        .attrs
                        .as_path
                        .as_ref()
                        .map(format_as_path)
                        .unwrap_or_default(),
                    local_pref: p.attrs.local_pref,
                    originator_id: p.attrs.originator_id,
                    cluster_list: p.attrs.cluster_list.clone(),
                    attributes: p.attrs.clone(),
                });
            }
        }
        out
    }

    fn max_prefix_exceeded(&mut self, address: IpAddr, family: AfiSafi, limit: u32) {
        // RFC 4486 §4: Cease, Maximum Number of Prefixes Reached, with AFI, SAFI and the limit.
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&family.afi.to_be_bytes());
        data.push(family.safi);
        data.extend_from_slice(&limit.to_be_bytes());
        self.effects
            .resets
            .push((address, Notification::new(codes::CEASE, 1, data)));
    }
}

fn format_as_path(p: &crate::wire::AsPath) -> String {
    use crate::wire::SegmentKind;
    let mut parts = Vec::new();
    for seg in &p.segments {
        let asns: Vec<String> = seg.asns.iter().map(|a| a.to_string()).collect();
        match seg.kind {
            SegmentKind::Sequence => parts.push(asns.join(" ")),
            SegmentKind::Set => parts.push(format!("{{{}}}", asns.join(","))),
            SegmentKind::ConfedSequence => parts.push(format!("({})", asns.join(" "))),
            SegmentKind::ConfedSet => parts.push(format!("[{}]", asns.join(","))),
        }
    }
    parts.join(" ")
}

/// How long a restarting peer's stale routes are kept at most.
pub fn stale_time(peer_restart_time: u16, local_limit: Duration) -> Duration {
    Duration::from_secs(peer_restart_time.into()).min(local_limit)
}
