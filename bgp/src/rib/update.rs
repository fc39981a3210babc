//! Incoming UPDATEs into the Loc-RIB, and Loc-RIB changes out to peers.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{best, policy::Refusal, Effects, Path, PeerInfo, Rib, Source};
use crate::wire::{
    pack_announce, pack_withdraw, AfiSafi, Attributes, Context, Nlri, Outcome, Update,
};

pub(super) fn announce(
    fx: &mut Effects,
    to: IpAddr,
    attrs: &Attributes,
    nh: IpAddr,
    family: AfiSafi,
    nlri: &[Nlri],
    ctx: &Context,
) {
    let mut attrs = attrs.clone();
    attrs.next_hop = match nh {
        IpAddr::V4(a) if family == AfiSafi::IPV4_UNICAST => Some(a),
        _ => None,
    };
    for msg in pack_announce(&attrs, nh, family, nlri, ctx) {
        fx.messages.push((to, msg));
    }
}

pub(super) fn withdraw(
    fx: &mut Effects,
    to: IpAddr,
    family: AfiSafi,
    nlri: &[Nlri],
    ctx: &Context,
) {
    for msg in pack_withdraw(family, nlri, ctx) {
        fx.messages.push((to, msg));
    }
}

pub(super) fn route_refresh(
    fx: &mut Effects,
    to: IpAddr,
    family: AfiSafi,
    subtype: u8,
    ctx: &Context,
) {
    let mut buf = bytes::BytesMut::new();
    let msg = crate::wire::Message::RouteRefresh(crate::wire::RouteRefresh {
        afi_safi: family,
        subtype,
    });
    crate::wire::encode(&msg, ctx, &mut buf);
    fx.messages.push((to, buf.freeze()));
}

pub(super) fn end_of_rib(fx: &mut Effects, to: IpAddr, family: AfiSafi, ctx: &Context) {
    let mut buf = bytes::BytesMut::new();
    crate::wire::encode(
        &crate::wire::Message::Update(Update::end_of_rib(family)),
        ctx,
        &mut buf,
    );
    fx.messages.push((to, buf.freeze()));
}

impl Rib {
    /// One UPDATE from an established peer.
    pub fn update(&mut self, address: IpAddr, update: Update) {
        let Some(info) = self.peers.get(&address).and_then(|p| p.info.clone()) else {
            return;
        };
        if self.peers.get(&address).is_some_and(|p| p.over_limit) {
            return;
        }
        if let Some(family) = update.end_of_rib_family() {
            self.end_of_rib(address, family);
            return;
        }
        let withdraw_all = match &update.outcome {
            Outcome::Accepted => false,
            Outcome::Discarded(_) => {
                if let Some(p) = self.peers.get_mut(&address) {
                    p.counts.attributes_discarded += 1;
                }
                false
            }
            Outcome::TreatAsWithdraw(_) => {
                if let Some(p) = self.peers.get_mut(&address) {
                    p.counts.treat_as_withdraw += 1;
                }
                true
            }
        };
        let Update {
            withdrawn,
            mut attributes,
            nlri,
            ..
        } = update;
        let mp_reach = attributes.mp_reach.take();
        let mp_unreach = attributes.mp_unreach.take();
        for n in withdrawn
            .iter()
            .chain(mp_unreach.iter().flat_map(|u| u.withdrawn.iter()))
        {
            self.withdraw_path(address, n);
        }
        let v4_next_hop = attributes.next_hop.map(IpAddr::V4);
        let mp_next_hop = mp_reach.as_ref().and_then(|m| m.next_hops.first().copied());
        let reach = nlri.iter().map(|n| (n, v4_next_hop)).chain(
            mp_reach
                .iter()
                .flat_map(|m| m.nlri.iter().map(move |n| (n, mp_next_hop))),
        );
        if withdraw_all {
            for (n, _) in reach {
                self.withdraw_path(address, n);
            }
            return;
        }
        attributes.next_hop = None;
        let attrs = Arc::new(attributes);
        let reach: Vec<(Nlri, Option<IpAddr>)> = reach.map(|(n, nh)| (*n, nh)).collect();
        for (n, nh) in reach {
            self.add_path(&info, n, &attrs, nh);
            if self.check_limit(&info) {
                return;
            }
        }
    }

    /// Whether the peer just went past its max-prefix limit; the reset is asked for once
    /// and the peer's further UPDATEs are ignored until its session goes down.
    fn check_limit(&mut self, info: &PeerInfo) -> bool {
        let Some(limit) = info.max_prefixes else {
            return false;
        };
        let Some(peer) = self.peers.get_mut(&info.address) else {
            return false;
        };
        if peer.counts.accepted <= u64::from(limit) {
            return false;
        }
        peer.over_limit = true;
        let family = if info.ipv4 {
            AfiSafi::IPV4_UNICAST
        } else {
            AfiSafi::IPV6_UNICAST
        };
        self.max_prefix_exceeded(info.address, family, limit);
        true
    }

    fn add_path(
        &mut self,
        info: &Arc<PeerInfo>,
        n: Nlri,
        attrs: &Arc<Attributes>,
        nh: Option<IpAddr>,
    ) {
        let address = info.address;
        let verdict = self.policy.import(info, &n.prefix, attrs, nh);
        let key = (n.prefix, n.path_id.unwrap_or(0));
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let was = peer.adj_in.insert(key, verdict.is_ok());
        match (was, verdict.is_ok()) {
            (Some(true), false) => peer.counts.accepted = peer.counts.accepted.saturating_sub(1),
            (Some(false) | None, true) => peer.counts.accepted += 1,
            _ => {}
        }
        peer.counts.received = peer.adj_in.len() as u64;
        match verdict {
            Err(reason) => {
                if reason == Refusal::OverlapsOwnBlock {
                    peer.counts.refused_overlap += 1;
                } else {
                    peer.counts.refused += 1;
                }
                tracing::debug!(peer = %address, prefix = %n.prefix, ?reason, "route refused");
                if was == Some(true) {
                    self.remove_path(address, &n);
                }
            }
            Ok(()) => {
                let Some(next_hop) = nh else { return };
                self.mark(n.prefix);
                let path = Path {
                    source: Source::Peer(address),
                    from: Some(info.clone()),
                    attrs: attrs.clone(),
                    next_hop,
                    path_id: key.1,
                    ibgp: info.ibgp,
                    stale: false,
                    prefix_is_v4: matches!(n.prefix, IpNet::V4(_)),
                };
                let paths = self.table.entry(n.prefix).or_default();
                paths.retain(|p| !(p.source == path.source && p.path_id == path.path_id));
                // Most prefixes have one or two paths: grow one at a time rather than
                // to Vec's first capacity of four (three unused paths per prefix).
                paths.reserve_exact(1);
                paths.push(path);
                best::sort(paths);
            }
        }
    }

    fn withdraw_path(&mut self, address: IpAddr, n: &Nlri) {
        let key = (n.prefix, n.path_id.unwrap_or(0));
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        match peer.adj_in.remove(&key) {
            Some(true) => peer.counts.accepted = peer.counts.accepted.saturating_sub(1),
            Some(false) => {}
            None => return,
        }
        peer.counts.received = peer.adj_in.len() as u64;
        self.remove_path(address, n);
    }

    fn remove_path(&mut self, address: IpAddr, n: &Nlri) {
        let path_id = n.path_id.unwrap_or(0);
        self.mark(n.prefix);
        if let Some(paths) = self.table.get_mut(&n.prefix) {
            paths.retain(|p| !(p.source == Source::Peer(address) && p.path_id == path_id));
            if paths.is_empty() {
                self.table.remove(&n.prefix);
            }
        }
    }

    /// End-of-RIB: the peer has re-sent everything; what is still stale is gone.
    pub fn end_of_rib(&mut self, address: IpAddr, family: AfiSafi) {
        if let Some(p) = self.peers.get_mut(&address) {
            if !p.eor_received.contains(&family) {
                p.eor_received.push(family);
            }
        }
        self.flush_stale(address, Some(family));
    }
}

/// What one peer hears about one path, cached per source attributes, next
/// hop and family: paths sharing an `Arc<Attributes>` came from the same
/// UPDATE of the same peer, or are local (whose IPv4 and IPv6 blocks share
/// attributes but not next hops), so with those equal they export the same way.
#[derive(Default)]
pub(super) struct ExportCache {
    map: HashMap<ExportKey, Exported>,
    /// The last answer: the NLRI of one UPDATE arrive as a run, so most
    /// lookups repeat the previous key and need no hashing.
    last: Option<(ExportKey, Exported)>,
}

type ExportKey = (usize, IpAddr, bool);
type Exported = Option<(Arc<Attributes>, IpAddr)>;

impl ExportCache {
    pub(super) fn new() -> ExportCache {
        ExportCache::default()
    }
}

pub(super) fn export_cached(
    rib: &Rib,
    cache: &mut ExportCache,
    path: &Path,
    to: &PeerInfo,
) -> Exported {
    let key = (
        Arc::as_ptr(&path.attrs) as usize,
        path.next_hop,
        path.prefix_is_v4,
    );
    if let Some((k, v)) = &cache.last {
        if *k == key {
            return v.clone();
        }
    }
    let v = cache
        .map
        .entry(key)
        .or_insert_with(|| rib.policy.export(path, to))
        .clone();
    cache.last = Some((key, v.clone()));
    v
}

/// Announcements waiting to be packed, grouped so that NLRI whose exports
/// are equal share UPDATEs: keyed by source attributes, next hop, family.
#[derive(Default)]
pub(super) struct Batches(HashMap<BatchKey, (Arc<Attributes>, Vec<Nlri>)>);

/// Source attributes (by address), next hop, IPv4 or not.
type BatchKey = (usize, IpAddr, bool);

impl Batches {
    pub(super) fn add(
        &mut self,
        source: &Path,
        exported: (Arc<Attributes>, IpAddr),
        prefix: IpNet,
    ) {
        let (attrs, nh) = exported;
        let key = (Arc::as_ptr(&source.attrs) as usize, nh, source.prefix_is_v4);
        self.0
            .entry(key)
            .or_insert_with(|| (attrs, Vec::new()))
            .1
            .push(Nlri {
                path_id: None,
                prefix,
            });
    }

    /// Packs and queues everything for `to`, in prefix order.
    pub(super) fn send(self, fx: &mut Effects, to: IpAddr, ctx: &Context) {
        let mut groups: Vec<_> = self.0.into_iter().collect();
        groups.sort_by(|a, b| a.1 .1.first().cmp(&b.1 .1.first()));
        for ((_, nh, v4), (attrs, mut nlri)) in groups {
            nlri.sort();
            let family = if v4 {
                AfiSafi::IPV4_UNICAST
            } else {
                AfiSafi::IPV6_UNICAST
            };
            announce(fx, to, &attrs, nh, family, &nlri, ctx);
        }
    }
}

/// For each changed prefix, tells every established peer the difference
/// between the export of the old best path and of the new one.
pub(super) fn export_changes(rib: &mut Rib, dirty: BTreeMap<IpNet, Option<Box<Path>>>) {
    if dirty.is_empty() {
        return;
    }
    let mut fx = Effects::default();
    {
        let rib: &Rib = rib;
        // The new best of each prefix, looked up once for all peers (in prefix
        // order); a prefix whose best path is the one it was is news to no one.
        let changes: Vec<(IpNet, Option<&Path>, Option<&Path>)> = dirty
            .iter()
            .filter_map(|(prefix, old)| {
                let old = old.as_deref();
                let new = rib.table.get(prefix).and_then(|v| v.first());
                let unchanged = matches!(
                    (old, new),
                    (Some(o), Some(n)) if Arc::ptr_eq(&o.attrs, &n.attrs) && o.next_hop == n.next_hop && o.source == n.source
                );
                (!unchanged).then_some((*prefix, old, new))
            })
            .collect();
        let peers: Vec<Arc<PeerInfo>> = rib.peers.values().filter_map(|p| p.info.clone()).collect();
        for to in peers {
            export_to(rib, &to, &changes, &mut fx);
        }
    }
    rib.effects.messages.append(&mut fx.messages);
}

/// The UPDATEs that tell `to` about `changes` (prefix, old best, new best).
fn export_to(
    rib: &Rib,
    to: &PeerInfo,
    changes: &[(IpNet, Option<&Path>, Option<&Path>)],
    fx: &mut Effects,
) {
    let mut cache = ExportCache::new();
    let mut batches = Batches::default();
    let mut withdrawals: [Vec<Nlri>; 2] = [Vec::new(), Vec::new()];
    for (prefix, old, new) in changes {
        if let Some(new) = new {
            if let Some(exported) = export_cached(rib, &mut cache, new, to) {
                batches.add(new, exported, *prefix);
                continue;
            }
        }
        // Nothing to announce now: withdraw if the peer heard the old best.
        let told_before = old.is_some_and(|o| export_cached(rib, &mut cache, o, to).is_some());
        if told_before {
            if let Some(w) = withdrawals.get_mut(usize::from(!matches!(prefix, IpNet::V4(_)))) {
                w.push(Nlri {
                    path_id: None,
                    prefix: *prefix,
                });
            }
        }
    }
    let ctx = to.context;
    // Already in prefix order (see export_changes).
    for (family, list) in [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
        .into_iter()
        .zip(withdrawals.iter())
    {
        if !list.is_empty() {
            withdraw(fx, to.address, family, list, &ctx);
        }
    }
    batches.send(fx, to.address, &ctx);
}
