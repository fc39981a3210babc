//! The RIB: Adj-RIB-In per peer, the Loc-RIB with best paths and multipath
//! sets, and export to each peer. Sans-IO and single-owner: the speaker's RIB
//! task feeds it events and carries out the [`Effects`] it returns.
//!
//! There is no stored Adj-RIB-Out: what a peer is told is a pure function of
//! the Loc-RIB best path and the export policy, so a change is sent by
//! comparing the export of the old best with the export of the new one, and a
//! route refresh re-walks the Loc-RIB. That keeps memory at one entry per path.

mod best;
mod policy;
#[cfg(test)]
mod tests;
mod update;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ipnet::IpNet;

use crate::wire::{codes, AfiSafi, Attributes, Context, Notification};

pub use best::{compare, multipath, DEFAULT_LOCAL_PREF};
pub use policy::{PolicyConfig, Refusal};

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

/// One path to a prefix.
#[derive(Debug, Clone)]
pub struct Path {
    pub source: Source,
    /// The session the path was learned on (None for local paths).
    pub from: Option<Arc<PeerInfo>>,
    pub attrs: Arc<Attributes>,
    pub next_hop: IpAddr,
    pub path_id: u32,
    pub ibgp: bool,
    /// Kept through the peer's graceful restart, awaiting refresh (RFC 4724 §4.2).
    pub stale: bool,
    pub prefix_is_v4: bool,
}

impl Path {
    pub fn is_local(&self) -> bool {
        self.source == Source::Local
    }

    /// ORIGINATOR_ID if present, else the advertising router's id (RFC 4456 §9).
    fn tie_break_id(&self) -> Ipv4Addr {
        self.attrs
            .originator_id
            .or_else(|| self.from.as_ref().map(|f| f.router_id))
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
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
    /// it, every End-of-RIB would scan the peer's whole Adj-RIB-In.
    stale_families: Vec<bool>,
    /// Adj-RIB-In keys (prefix, path id) with whether policy accepted them.
    adj_in: HashMap<(IpNet, u32), bool>,
    eor_received: Vec<AfiSafi>,
    /// Max-prefix tripped: the session is being reset and what it still sends is ignored,
    /// so a flood past the limit costs no memory while the reset travels.
    over_limit: bool,
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
#[derive(Debug)]
pub struct Rib {
    policy: PolicyConfig,
    max_paths: usize,
    peers: HashMap<IpAddr, PeerRib>,
    /// Loc-RIB: every accepted path per prefix, best first.
    table: BTreeMap<IpNet, Vec<Path>>,
    /// Prefixes touched since the last flush, with what each peer was told before.
    /// In prefix order: exports then walk the Loc-RIB in order instead of probing
    /// it at random (a cache miss per tree level on a big table), and come out
    /// sorted. The old best is boxed: it is None for every new prefix, and a
    /// burst of a million new prefixes should not cost a million empty paths.
    dirty: BTreeMap<IpNet, Option<Box<Path>>>,
    effects: Effects,
}

impl Rib {
    pub fn new(policy: PolicyConfig, max_paths: usize) -> Self {
        let mut rib = Rib {
            policy,
            max_paths,
            peers: HashMap::new(),
            table: BTreeMap::new(),
            dirty: BTreeMap::new(),
            effects: Effects::default(),
        };
        let blocks = rib.policy.own_blocks.clone();
        rib.add_local(&blocks);
        rib
    }

    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    fn mark(&mut self, prefix: IpNet) {
        let table = &self.table;
        self.dirty.entry(prefix).or_insert_with(|| {
            table
                .get(&prefix)
                .and_then(|v| v.first())
                .cloned()
                .map(Box::new)
        });
    }

    fn add_local(&mut self, blocks: &[IpNet]) {
        let attrs = Arc::new(self.policy.local_attributes());
        for block in blocks {
            let Some(next_hop) = (match block {
                IpNet::V4(_) => Some(IpAddr::V4(self.policy.next_hop_v4)),
                IpNet::V6(_) => self.policy.next_hop_v6.map(IpAddr::V6),
            }) else {
                continue;
            };
            self.mark(*block);
            let path = Path {
                source: Source::Local,
                from: None,
                attrs: attrs.clone(),
                next_hop,
                path_id: 0,
                ibgp: true,
                stale: false,
                prefix_is_v4: matches!(block, IpNet::V4(_)),
            };
            let paths = self.table.entry(*block).or_default();
            paths.retain(|p| !p.is_local());
            paths.push(path);
            best::sort(paths);
        }
    }

    /// Replaces our own blocks (config reload): new ones are announced, removed
    /// ones withdrawn. Learned paths that now overlap an own block are dropped.
    pub fn set_own_blocks(&mut self, blocks: Vec<IpNet>) {
        let removed: Vec<IpNet> = self
            .policy
            .own_blocks
            .iter()
            .filter(|b| !blocks.contains(b))
            .copied()
            .collect();
        for block in removed {
            self.mark(block);
            if let Some(paths) = self.table.get_mut(&block) {
                paths.retain(|p| !p.is_local());
            }
        }
        let added: Vec<IpNet> = blocks
            .iter()
            .filter(|b| !self.policy.own_blocks.contains(b))
            .copied()
            .collect();
        self.policy.own_blocks = blocks;
        self.add_local(&added);
        // Learned paths overlapping a new block: refused from now on.
        let overlapping: Vec<IpNet> = self
            .table
            .iter()
            .filter(|(p, paths)| {
                paths.iter().any(|x| !x.is_local())
                    && added.iter().any(|b| b.contains(*p) || p.contains(b))
            })
            .map(|(p, _)| *p)
            .collect();
        for prefix in overlapping {
            self.mark(prefix);
            if let Some(paths) = self.table.get_mut(&prefix) {
                paths.retain(|p| p.is_local());
            }
        }
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
        let mut cache = update::ExportCache::new();
        for (prefix, paths) in &self.table {
            let Some(best) = paths.first() else { continue };
            if let Some(exported) = update::export_cached(self, &mut cache, best, info) {
                batches.add(best, exported, *prefix);
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
        if keep_stale {
            let prefixes: Vec<IpNet> = peer.adj_in.keys().map(|(p, _)| *p).collect();
            for prefix in prefixes {
                if let Some(paths) = self.table.get_mut(&prefix) {
                    for p in paths
                        .iter_mut()
                        .filter(|p| p.source == Source::Peer(address))
                    {
                        p.stale = true;
                    }
                }
            }
            if let Some(peer) = self.peers.get_mut(&address) {
                peer.stale_families = vec![true, true];
            }
        } else {
            self.remove_peer_paths(address, |_| true);
            if let Some(peer) = self.peers.get_mut(&address) {
                peer.adj_in.clear();
                peer.counts.received = 0;
                peer.counts.accepted = 0;
            }
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
        let Some(peer) = self.peers.get(&address) else {
            return;
        };
        let v4 = family == AfiSafi::IPV4_UNICAST;
        let prefixes: Vec<IpNet> = peer
            .adj_in
            .keys()
            .map(|(p, _)| *p)
            .filter(|p| matches!(p, IpNet::V4(_)) == v4)
            .collect();
        for prefix in prefixes {
            if let Some(paths) = self.table.get_mut(&prefix) {
                for p in paths
                    .iter_mut()
                    .filter(|p| p.source == Source::Peer(address))
                {
                    p.stale = true;
                }
            }
        }
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.stale_families.resize(2, false);
            if let Some(f) = peer.stale_families.get_mut(usize::from(!v4)) {
                *f = true;
            }
        }
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
        for (i, wanted) in [want_v4, want_v6].into_iter().enumerate() {
            if let Some(f) = peer.stale_families.get_mut(i).filter(|_| wanted) {
                any |= *f;
                *f = false;
            }
        }
        if !any {
            return;
        }
        let removed = self.remove_peer_paths(address, |p| {
            p.stale && ((p.prefix_is_v4 && want_v4) || (!p.prefix_is_v4 && want_v6))
        });
        if let Some(peer) = self.peers.get_mut(&address) {
            for (prefix, path_id) in removed {
                if peer.adj_in.remove(&(prefix, path_id)) == Some(true) {
                    peer.counts.accepted = peer.counts.accepted.saturating_sub(1);
                }
                peer.counts.received = peer.adj_in.len() as u64;
            }
        }
    }

    fn remove_peer_paths(
        &mut self,
        address: IpAddr,
        pred: impl Fn(&Path) -> bool,
    ) -> Vec<(IpNet, u32)> {
        let Some(peer) = self.peers.get(&address) else {
            return Vec::new();
        };
        let prefixes: Vec<IpNet> = peer.adj_in.keys().map(|(p, _)| *p).collect();
        let mut removed = Vec::new();
        for prefix in prefixes {
            let Some(paths) = self.table.get(&prefix) else {
                continue;
            };
            if !paths
                .iter()
                .any(|p| p.source == Source::Peer(address) && pred(p))
            {
                continue;
            }
            self.mark(prefix);
            if let Some(paths) = self.table.get_mut(&prefix) {
                paths.retain(|p| {
                    let gone = p.source == Source::Peer(address) && pred(p);
                    if gone {
                        removed.push((prefix, p.path_id));
                    }
                    !gone
                });
                if paths.is_empty() {
                    self.table.remove(&prefix);
                }
            }
        }
        removed
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
    pub fn flush(&mut self) -> Effects {
        let dirty = std::mem::take(&mut self.dirty);
        if !dirty.is_empty() {
            self.effects.fib_changed = true;
        }
        update::export_changes(self, dirty);
        std::mem::take(&mut self.effects)
    }

    /// Remote prefixes with their equal-cost next hops, for the FIB.
    pub fn fib_view(&self) -> BTreeMap<IpNet, Vec<IpAddr>> {
        self.table
            .iter()
            .filter(|(_, paths)| paths.first().is_some_and(|p| !p.is_local()))
            .map(|(prefix, paths)| (*prefix, multipath(paths, self.max_paths)))
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

    pub fn route_count(&self) -> usize {
        self.table.len()
    }

    /// Every path, best first per prefix, for `show routes`.
    pub fn routes(&self) -> Vec<RouteView> {
        let mut out = Vec::with_capacity(self.table.len());
        for (prefix, paths) in &self.table {
            let mp = multipath(paths, self.max_paths);
            for (i, p) in paths.iter().enumerate() {
                let best = i == 0;
                out.push(RouteView {
                    prefix: *prefix,
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
