//! Incoming UPDATEs into the Loc-RIB, and Loc-RIB changes out to peers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::policy::ExportClass;
use super::shared_out::ClassExport;
use super::{Effects, Path, PeerInfo, PolicyConfig, Refusal, Rib, Shared, Source};
use crate::wire::{
    pack_announce, pack_withdraw, AfiSafi, Attributes, Context, Nlri, Outcome, Update,
};

/// The UPDATEs announcing `nlri` of `family` with `attrs` and next hop `nh`.
pub(super) fn encode_announce(
    attrs: &Attributes,
    nh: IpAddr,
    family: AfiSafi,
    nlri: &[Nlri],
    ctx: &Context,
) -> Vec<bytes::Bytes> {
    let mut attrs = attrs.clone();
    attrs.next_hop = match nh {
        IpAddr::V4(a) if family == AfiSafi::IPV4_UNICAST => Some(a),
        _ => None,
    };
    pack_announce(&attrs, nh, family, nlri, ctx)
}

pub(super) fn announce(
    fx: &mut Effects,
    to: IpAddr,
    attrs: &Attributes,
    nh: IpAddr,
    family: AfiSafi,
    nlri: &[Nlri],
    ctx: &Context,
) {
    for msg in encode_announce(attrs, nh, family, nlri, ctx) {
        fx.encoded += msg.len();
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
        fx.encoded += msg.len();
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

/// Counter changes of one UPDATE, applied to the peer once at its end.
#[derive(Default)]
struct Tally {
    received: i64,
    accepted: i64,
    refused_overlap: u64,
    refused: u64,
}

impl Tally {
    fn apply(&self, c: &mut super::PeerCounts) {
        let add = |v: u64, d: i64| v.saturating_add_signed(d);
        c.received = add(c.received, self.received);
        c.accepted = add(c.accepted, self.accepted);
        c.refused_overlap += self.refused_overlap;
        c.refused += self.refused;
    }
}

impl Rib {
    /// One UPDATE from an established peer.
    pub fn update(&mut self, address: IpAddr, update: Update) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let Some(info) = peer.info.clone() else {
            return;
        };
        if peer.over_limit {
            return;
        }
        if let Some(family) = update.end_of_rib_family() {
            self.end_of_rib(address, family);
            return;
        }
        let withdraw_all = match &update.outcome {
            Outcome::Accepted => false,
            Outcome::Discarded(_) => {
                peer.counts.attributes_discarded += 1;
                false
            }
            Outcome::TreatAsWithdraw(_) => {
                peer.counts.treat_as_withdraw += 1;
                true
            }
        };
        let received_before = peer.counts.received;
        let Update {
            withdrawn,
            mut attributes,
            nlri,
            ..
        } = update;
        let mp_reach = attributes.mp_reach.take();
        let mp_unreach = attributes.mp_unreach.take();
        let mut tally = Tally::default();
        for n in withdrawn
            .iter()
            .chain(mp_unreach.iter().flat_map(|u| u.withdrawn.iter()))
        {
            self.withdraw_path(address, n, &mut tally);
        }
        let mp_next_hop = mp_reach.as_ref().and_then(|m| m.next_hops.first().copied());
        let groups = [
            (nlri.as_slice(), attributes.next_hop.map(IpAddr::V4)),
            (
                mp_reach.as_ref().map_or(&[][..], |m| m.nlri.as_slice()),
                mp_next_hop,
            ),
        ];
        if withdraw_all {
            for n in groups.iter().flat_map(|(list, _)| list.iter()) {
                self.withdraw_path(address, n, &mut tally);
            }
        } else {
            attributes.next_hop = None;
            let attrs = Arc::new(attributes);
            'groups: for (list, next_hop) in groups {
                // One shared part per family of prefixes in the group, made on first use.
                let mut shared: [Option<Arc<Shared>>; 2] = [None, None];
                for n in list {
                    let v4 = matches!(n.prefix, IpNet::V4(_));
                    let s = shared[usize::from(!v4)].get_or_insert_with(|| {
                        Arc::new(Shared {
                            source: Source::Peer(address),
                            from: Some(info.clone()),
                            attrs: attrs.clone(),
                            next_hop: next_hop.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                            ibgp: info.ibgp,
                            prefix_is_v4: v4,
                        })
                    });
                    let s = s.clone();
                    self.add_path(&info, n, s, next_hop, &mut tally);
                    let family = if v4 {
                        AfiSafi::IPV4_UNICAST
                    } else {
                        AfiSafi::IPV6_UNICAST
                    };
                    if self.check_limit(&info, family, received_before, &tally) {
                        break 'groups;
                    }
                }
            }
        }
        if let Some(peer) = self.peers.get_mut(&address) {
            tally.apply(&mut peer.counts);
        }
    }

    /// Whether the peer just went past its max-prefix limit; the reset is asked for once
    /// and the peer's further UPDATEs are ignored until its session goes down. The
    /// limit counts every path the peer has in the table, refused ones included
    /// (like BIRD's `receive limit`): it bounds what a peer can make us hold.
    /// `family`: that of the prefix just counted, the one RFC 4486 names as over its limit.
    fn check_limit(
        &mut self,
        info: &PeerInfo,
        family: AfiSafi,
        received_before: u64,
        tally: &Tally,
    ) -> bool {
        let Some(limit) = info.max_prefixes else {
            return false;
        };
        if received_before.saturating_add_signed(tally.received) <= u64::from(limit) {
            return false;
        }
        let Some(peer) = self.peers.get_mut(&info.address) else {
            return false;
        };
        peer.over_limit = true;
        self.max_prefix_exceeded(info.address, family, limit);
        true
    }

    fn add_path(
        &mut self,
        info: &PeerInfo,
        n: &Nlri,
        shared: Arc<Shared>,
        next_hop: Option<IpAddr>,
        tally: &mut Tally,
    ) {
        let verdict = self.policy.import(info, &n.prefix, &shared.attrs, next_hop);
        if let Err(reason) = verdict {
            if reason == Refusal::OverlapsOwnBlock {
                tally.refused_overlap += 1;
            } else {
                tally.refused += 1;
            }
            tracing::debug!(peer = %info.address, prefix = %n.prefix, ?reason, "route refused");
        }
        let accepted = verdict.is_ok();
        let path = Path::new(shared, n.path_id.unwrap_or(0), accepted);
        let old = self.change(n.prefix, |paths| paths.upsert(path));
        let was_accepted = old.as_ref().is_some_and(|p| p.accepted);
        tally.received += i64::from(old.is_none());
        tally.accepted += i64::from(accepted) - i64::from(was_accepted);
    }

    fn withdraw_path(&mut self, address: IpAddr, n: &Nlri, tally: &mut Tally) {
        let path_id = n.path_id.unwrap_or(0);
        let source = Source::Peer(address);
        let mut gone = None;
        self.change(n.prefix, |paths| {
            paths.remove_where(
                |p| p.path_id == path_id && p.source == source,
                |p| gone = Some(p.accepted),
            )
        });
        if let Some(accepted) = gone {
            tally.received -= 1;
            tally.accepted -= i64::from(accepted);
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

/// What one peer hears about the paths of one [`Shared`], asked once per
/// flush: the NLRI of one UPDATE arrive as a run, so most lookups repeat the
/// previous key and need no hashing.
#[derive(Default)]
pub(super) struct ExportCache {
    map: HashMap<usize, Exported>,
    last: Option<(usize, Exported)>,
}

type Exported = Option<(Arc<Attributes>, IpAddr)>;

impl ExportCache {
    pub(super) fn export(&mut self, policy: &PolicyConfig, path: &Path, to: &PeerInfo) -> Exported {
        let key = Arc::as_ptr(path.shared()) as usize;
        if let Some((k, v)) = &self.last {
            if *k == key {
                return v.clone();
            }
        }
        let v = self
            .map
            .entry(key)
            .or_insert_with(|| policy.export(path, to))
            .clone();
        self.last = Some((key, v.clone()));
        v
    }
}

/// Announcements waiting to be packed, grouped so that NLRI whose exports
/// are equal share UPDATEs: keyed by the paths' [`Shared`] part.
#[derive(Default)]
pub(super) struct Batches(HashMap<usize, (Arc<Attributes>, IpAddr, bool, Vec<Nlri>)>);

impl Batches {
    pub(super) fn add(
        &mut self,
        source: &Path,
        exported: (Arc<Attributes>, IpAddr),
        prefix: IpNet,
    ) {
        let (attrs, nh) = exported;
        let key = Arc::as_ptr(source.shared()) as usize;
        self.0
            .entry(key)
            .or_insert_with(|| (attrs, nh, source.prefix_is_v4, Vec::new()))
            .3
            .push(Nlri {
                path_id: None,
                prefix,
            });
    }

    /// Packs and queues everything for `to`, in prefix order.
    pub(super) fn send(self, fx: &mut Effects, to: IpAddr, ctx: &Context) {
        let mut groups: Vec<_> = self.0.into_values().collect();
        groups.sort_by(|a, b| a.3.first().cmp(&b.3.first()));
        for (attrs, nh, v4, mut nlri) in groups {
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

/// What a peer was last told about a prefix, for deciding whether to withdraw it.
#[derive(Clone, Copy)]
pub(super) enum Before<'a> {
    /// What it was told is the export of this path (the best one before the change).
    Path(Option<&'a Path>),
    /// Known already: whether it heard a route for the prefix (a held peer's note).
    Told(bool),
}

/// For each changed prefix (in order, once each), tells every established
/// peer the difference between the export of the old best path and of the new one.
/// A held peer (its socket behind) is not sent anything: each prefix is noted for
/// it, with whether it had heard a route for it, until [`release`].
pub(super) fn export_changes(rib: &mut Rib, dirty: &[(IpNet, Option<Path>)]) {
    if dirty.is_empty() {
        return;
    }
    let mut fx = Effects::default();
    {
        let Rib {
            policy,
            peers,
            table,
            ..
        } = &mut *rib;
        // The new best of each prefix, looked up once for all peers; a prefix
        // whose best path is the one it was is news to no one.
        let changes: Vec<(IpNet, Before<'_>, Option<&Path>)> = dirty
            .iter()
            .filter_map(|(prefix, old)| {
                let new = table.get(prefix).and_then(|p| p.best());
                let unchanged = matches!((old, new), (Some(o), Some(n)) if o.same_route(n));
                (!unchanged).then_some((*prefix, Before::Path(old.as_ref()), new))
            })
            .collect();
        // Peers that hear the same octets (but for their own routes), encoded for once.
        let mut classes: Vec<(ExportClass, Context, HashSet<IpAddr>)> = Vec::new();
        for (address, peer) in peers.iter_mut() {
            let Some(to) = peer.info.as_deref() else {
                continue;
            };
            if let Some(held) = peer.held.as_mut() {
                note_held(policy, to, &changes, held);
                continue;
            }
            let class = ExportClass::of(to);
            match classes
                .iter_mut()
                .find(|(c, ctx, _)| *c == class && *ctx == to.context)
            {
                Some((_, _, members)) => {
                    members.insert(*address);
                }
                None => classes.push((class, to.context, HashSet::from([*address]))),
            }
        }
        for (class, ctx, members) in classes {
            let out = ClassExport::build(policy, class, ctx, &changes, &members);
            fx.encoded += out.encoded();
            for to in members {
                out.send(to, &mut fx);
            }
        }
    }
    rib.effects.messages.append(&mut fx.messages);
    rib.effects.encoded += fx.encoded;
}

/// Notes `changes` for a held peer: the first note of a prefix says whether the peer
/// had heard a route for it (later changes do not reach it until released).
fn note_held(
    policy: &PolicyConfig,
    to: &PeerInfo,
    changes: &[(IpNet, Before<'_>, Option<&Path>)],
    held: &mut BTreeMap<IpNet, bool>,
) {
    let mut cache = ExportCache::default();
    for (prefix, before, _) in changes {
        held.entry(*prefix)
            .or_insert_with(|| told_before(policy, to, *before, &mut cache));
    }
}

fn told_before(
    policy: &PolicyConfig,
    to: &PeerInfo,
    before: Before<'_>,
    cache: &mut ExportCache,
) -> bool {
    match before {
        Before::Path(old) => old.is_some_and(|o| cache.export(policy, o, to).is_some()),
        Before::Told(told) => told,
    }
}

/// Sends a held peer up to `max` of its noted prefixes as they are now, in prefix
/// order; the peer stops being held when none is left. Returns whether some are left.
pub(super) fn release(rib: &mut Rib, address: IpAddr, max: usize) -> bool {
    let Rib {
        policy,
        peers,
        table,
        effects,
        ..
    } = rib;
    let Some(peer) = peers.get_mut(&address) else {
        return false;
    };
    let (Some(to), Some(held)) = (peer.info.as_deref(), peer.held.as_mut()) else {
        peer.held = None;
        return false;
    };
    let rest = match held.keys().nth(max).copied() {
        Some(first_left) => held.split_off(&first_left),
        None => BTreeMap::new(),
    };
    let now = std::mem::replace(held, rest);
    let left = !held.is_empty();
    let changes = now.into_iter().map(|(prefix, told)| {
        let new = table.get(&prefix).and_then(|p| p.best());
        (prefix, Before::Told(told), new)
    });
    export_to(policy, to, changes, effects);
    if !left {
        peer.held = None;
    }
    left
}

/// The UPDATEs that tell `to` about `changes` (prefix, what it heard before, new best),
/// in prefix order.
fn export_to<'a>(
    policy: &PolicyConfig,
    to: &PeerInfo,
    changes: impl IntoIterator<Item = (IpNet, Before<'a>, Option<&'a Path>)>,
    fx: &mut Effects,
) {
    let mut cache = ExportCache::default();
    let mut batches = Batches::default();
    let mut withdrawals: [Vec<Nlri>; 2] = [Vec::new(), Vec::new()];
    for (prefix, before, new) in changes {
        if let Some(new) = new {
            if let Some(exported) = cache.export(policy, new, to) {
                batches.add(new, exported, prefix);
                continue;
            }
        }
        // Nothing to announce now: withdraw if the peer heard the old best.
        if told_before(policy, to, before, &mut cache) {
            if let Some(w) = withdrawals.get_mut(usize::from(!matches!(prefix, IpNet::V4(_)))) {
                w.push(Nlri {
                    path_id: None,
                    prefix,
                });
            }
        }
    }
    let ctx = to.context;
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
