//! One encoding of a flush's changes per export class, shared by every peer of it.
//!
//! A reflector's clients all hear the same UPDATEs (RFC 4456 §8: ORIGINATOR_ID and
//! CLUSTER_LIST do not depend on who hears them), but for the routes they sent themselves.
//! Encoding per peer cost a flush `peers × changes` messages, each its own allocation: at
//! 1,000 clients and 256 changed blocks, some 40 MiB waiting for the sockets. Here the
//! UPDATEs are encoded once into one buffer; a peer gets slices of it (reference counted,
//! no copy) that leave out the messages about its own routes, and a withdrawal of its own
//! where its route replaced one it had heard.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;

use super::policy::ExportClass;
use super::update::{encode_announce, Before};
use super::{Effects, Path, PolicyConfig, Source};
use crate::wire::{pack_withdraw, AfiSafi, Attributes, Context, Nlri};

/// Largest slice handed to one peer's queue, so that a KEEPALIVE queued meanwhile waits
/// behind at most this much (it goes before any slice not started yet).
const CHUNK: usize = 16 * 1024;

type Exported = Option<(Arc<Attributes>, IpAddr)>;

/// The two families' prefixes, IPv4 first.
type PerFamily = [Vec<Nlri>; 2];

fn family_index(prefix: &IpNet) -> usize {
    usize::from(!matches!(prefix, IpNet::V4(_)))
}

const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];

fn nlri(prefix: IpNet) -> Nlri {
    Nlri {
        path_id: None,
        prefix,
    }
}

/// A flush's UPDATEs for the peers of one class and context.
pub(super) struct ClassExport {
    buf: Bytes,
    /// Each message of `buf` in order: where it ends, and the member it must not reach
    /// (the sender of the routes it announces or withdraws).
    msgs: Vec<(usize, Option<IpAddr>)>,
    /// `buf` in chunks, for members no message leaves out.
    common: Vec<Bytes>,
    /// Members some message leaves out.
    tagged: HashSet<IpAddr>,
    /// Members whose own route replaced a best path they had heard: that one is withdrawn.
    own_withdrawals: HashMap<IpAddr, PerFamily>,
    ctx: Context,
}

/// Announcements sharing one path's attributes: (attributes, next hop, IPv4, member
/// left out, prefixes).
type Group = (Arc<Attributes>, IpAddr, bool, Option<IpAddr>, Vec<Nlri>);

impl ClassExport {
    /// Encodes `changes` (prefix, what was heard before, new best; in prefix order) for
    /// `members`, peers of `class` that negotiated `ctx`.
    pub(super) fn build(
        policy: &PolicyConfig,
        class: ExportClass,
        ctx: Context,
        changes: &[(IpNet, Before<'_>, Option<&Path>)],
        members: &HashSet<IpAddr>,
    ) -> ClassExport {
        let mut cache: HashMap<usize, Exported> = HashMap::new();
        let mut export = |p: &Path| -> Exported {
            cache
                .entry(Arc::as_ptr(p.shared()) as usize)
                .or_insert_with(|| policy.export_to_class(p, &class))
                .clone()
        };
        // The member a path's messages leave out: its sender, if that is one of them.
        let member = |p: &Path| match p.source {
            Source::Peer(a) if members.contains(&a) => Some(a),
            _ => None,
        };
        let mut groups: HashMap<usize, Group> = HashMap::new();
        let mut withdrawals: BTreeMap<Option<IpAddr>, PerFamily> = BTreeMap::new();
        let mut own_withdrawals: HashMap<IpAddr, PerFamily> = HashMap::new();
        for (prefix, before, new) in changes {
            let (told, old_member) = match before {
                Before::Path(old) => (
                    old.is_some_and(|o| export(o).is_some()),
                    old.and_then(&member),
                ),
                Before::Told(t) => (*t, None),
            };
            let fam = family_index(prefix);
            if let Some(new) = new {
                if let Some((attrs, nh)) = export(new) {
                    let sender = member(new);
                    groups
                        .entry(Arc::as_ptr(new.shared()) as usize)
                        .or_insert_with(|| (attrs, nh, new.prefix_is_v4, sender, Vec::new()))
                        .4
                        .push(nlri(*prefix));
                    // Its sender hears nothing of its own route: what it heard is withdrawn.
                    if let Some(s) = sender.filter(|s| told && old_member != Some(*s)) {
                        if let Some(l) = own_withdrawals.entry(s).or_default().get_mut(fam) {
                            l.push(nlri(*prefix));
                        }
                    }
                    continue;
                }
            }
            // The old best's sender never heard it: its withdrawal leaves that one out.
            if told {
                if let Some(l) = withdrawals.entry(old_member).or_default().get_mut(fam) {
                    l.push(nlri(*prefix));
                }
            }
        }
        let mut buf = BytesMut::new();
        let mut msgs = Vec::new();
        let mut add = |m: &[u8], skip: Option<IpAddr>| {
            buf.extend_from_slice(m);
            msgs.push((buf.len(), skip));
        };
        for (skip, lists) in &withdrawals {
            for (family, list) in FAMILIES.into_iter().zip(lists) {
                if !list.is_empty() {
                    for m in pack_withdraw(family, list, &ctx) {
                        add(&m, *skip);
                    }
                }
            }
        }
        let mut groups: Vec<Group> = groups.into_values().collect();
        groups.sort_by(|a, b| a.4.first().cmp(&b.4.first()));
        for (attrs, nh, v4, skip, mut list) in groups {
            list.sort();
            let family = FAMILIES[usize::from(!v4)];
            for m in encode_announce(&attrs, nh, family, &list, &ctx) {
                add(&m, skip);
            }
        }
        let buf = buf.freeze();
        let tagged = msgs.iter().filter_map(|(_, s)| *s).collect();
        let common = cut(&buf, &msgs, None);
        ClassExport {
            buf,
            msgs,
            common,
            tagged,
            own_withdrawals,
            ctx,
        }
    }

    /// Octets encoded once for every member (the withdrawals of single members are
    /// counted as [`ClassExport::send`] encodes them).
    pub(super) fn encoded(&self) -> usize {
        self.buf.len()
    }

    /// Queues what `to` hears, in order: its own withdrawals, then its share of the buffer.
    pub(super) fn send(&self, to: IpAddr, fx: &mut Effects) {
        if let Some(lists) = self.own_withdrawals.get(&to) {
            for (family, list) in FAMILIES.into_iter().zip(lists) {
                if !list.is_empty() {
                    for m in pack_withdraw(family, list, &self.ctx) {
                        fx.encoded += m.len();
                        fx.messages.push((to, m));
                    }
                }
            }
        }
        if self.tagged.contains(&to) {
            for c in cut(&self.buf, &self.msgs, Some(to)) {
                fx.messages.push((to, c));
            }
        } else {
            for c in &self.common {
                fx.messages.push((to, c.clone()));
            }
        }
    }
}

/// `buf` in slices of whole messages of at most [`CHUNK`] octets (or one larger
/// message), leaving out the messages tagged `skip`.
fn cut(buf: &Bytes, msgs: &[(usize, Option<IpAddr>)], skip: Option<IpAddr>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for &(end, tag) in msgs {
        let msg_start = at;
        at = end;
        if skip.is_some() && tag == skip {
            if msg_start > start {
                out.push(buf.slice(start..msg_start));
            }
            start = end;
            continue;
        }
        if end - start > CHUNK && msg_start > start {
            out.push(buf.slice(start..msg_start));
            start = msg_start;
        }
    }
    if at > start {
        out.push(buf.slice(start..at));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_leaves_out_tagged_messages_and_bounds_chunks() {
        let a = IpAddr::from([10, 0, 0, 2]);
        let buf = Bytes::from(vec![0u8; 3 * CHUNK]);
        // Five messages; the third is about `a`'s own route.
        let ends = [CHUNK / 2, CHUNK, CHUNK + 100, 2 * CHUNK, 3 * CHUNK];
        let msgs: Vec<(usize, Option<IpAddr>)> = ends
            .iter()
            .enumerate()
            .map(|(i, e)| (*e, (i == 2).then_some(a)))
            .collect();
        let all = cut(&buf, &msgs, None);
        assert_eq!(all.iter().map(Bytes::len).sum::<usize>(), 3 * CHUNK);
        assert!(all.iter().all(|c| c.len() <= CHUNK + 100), "{all:?}");
        let for_a = cut(&buf, &msgs, Some(a));
        assert_eq!(for_a.iter().map(Bytes::len).sum::<usize>(), 3 * CHUNK - 100);
        let other = IpAddr::from([10, 0, 0, 3]);
        assert_eq!(
            cut(&buf, &msgs, Some(other))
                .iter()
                .map(Bytes::len)
                .sum::<usize>(),
            3 * CHUNK
        );
    }
}
