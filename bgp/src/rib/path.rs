//! Paths as the RIB stores them, sized for tables of a million routes.
//!
//! Everything the routes of one UPDATE have in common (who sent it, the
//! attributes, the next hop) lives once in a [`Shared`]; a [`Path`] is a
//! 16-octet handle to it with what differs per prefix (ADD-PATH id, stale and
//! accepted flags). [`Paths`] holds a prefix's paths inline when there is one,
//! which is the common case, so a route costs no allocation of its own.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Deref;
use std::sync::Arc;

use super::{PeerInfo, Source};
use crate::wire::Attributes;

/// What the paths learned from one UPDATE (or our own blocks of one family) share.
#[derive(Debug)]
pub struct Shared {
    pub source: Source,
    /// The session the paths were learned on (None for local paths).
    pub from: Option<Arc<PeerInfo>>,
    pub attrs: Arc<Attributes>,
    /// Unspecified when the UPDATE had none (such paths are refused).
    pub next_hop: IpAddr,
    pub ibgp: bool,
    /// The family of the prefixes (IPv4 or IPv6).
    pub prefix_is_v4: bool,
}

/// One path to a prefix: the Adj-RIB-In entry of its peer, and a Loc-RIB
/// candidate when policy accepted it.
#[derive(Debug, Clone)]
pub struct Path {
    shared: Arc<Shared>,
    pub path_id: u32,
    /// Kept through the peer's graceful restart, awaiting refresh (RFC 4724 §4.2).
    pub stale: bool,
    /// Import policy accepted it; refused paths are kept only to count them and
    /// to re-judge them when our own blocks change.
    pub accepted: bool,
}

impl Deref for Path {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Path {
    pub fn new(shared: Arc<Shared>, path_id: u32, accepted: bool) -> Path {
        Path {
            shared,
            path_id,
            stale: false,
            accepted,
        }
    }

    pub fn is_local(&self) -> bool {
        self.source == Source::Local
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Same peer (or both local) and same ADD-PATH id: a new one replaces the old.
    pub fn same_key(&self, other: &Path) -> bool {
        self.path_id == other.path_id && self.source == other.source
    }

    /// Exported the same way as `other`: same shared data and path id.
    pub fn same_route(&self, other: &Path) -> bool {
        self.path_id == other.path_id && Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// ORIGINATOR_ID if present, else the advertising router's id (RFC 4456 §9).
    pub(super) fn tie_break_id(&self) -> Ipv4Addr {
        self.attrs
            .originator_id
            .or_else(|| self.from.as_ref().map(|f| f.router_id))
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}

/// Every path to one prefix: accepted ones first, best first among them.
#[derive(Debug, Default)]
pub enum Paths {
    /// Only while being built or emptied: the table never stores it.
    #[default]
    Empty,
    One(Path),
    /// Two or more. Boxed so that the common single path keeps the entry at
    /// 16 octets: a `Vec` inline is 24, a boxed slice 16 with no room for the tag.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Path>>),
}

impl Paths {
    pub fn as_slice(&self) -> &[Path] {
        match self {
            Paths::Empty => &[],
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(v) => v,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Paths::Empty)
    }

    /// The best path, if any path is accepted.
    pub fn best(&self) -> Option<&Path> {
        self.as_slice().first().filter(|p| p.accepted)
    }

    /// The accepted paths, best first.
    pub fn accepted(&self) -> impl Iterator<Item = &Path> {
        self.as_slice().iter().take_while(|p| p.accepted)
    }

    /// Adds `path`, replacing the one with the same key; returns that one.
    pub fn upsert(&mut self, path: Path) -> Option<Path> {
        match std::mem::take(self) {
            Paths::Empty => {
                *self = Paths::One(path);
                None
            }
            Paths::One(old) if old.same_key(&path) => {
                *self = Paths::One(path);
                Some(old)
            }
            Paths::One(old) => {
                let mut v = Vec::with_capacity(2);
                v.push(old);
                v.push(path);
                super::best::sort(&mut v);
                *self = Paths::Many(Box::new(v));
                None
            }
            Paths::Many(mut v) => {
                let old = v
                    .iter()
                    .position(|p| p.same_key(&path))
                    .map(|i| v.swap_remove(i));
                v.push(path);
                super::best::sort(&mut v);
                *self = Paths::Many(v);
                old
            }
        }
    }

    /// Removes the paths `gone` picks, passing each to `removed`.
    pub fn remove_where(
        &mut self,
        mut gone: impl FnMut(&Path) -> bool,
        mut removed: impl FnMut(Path),
    ) {
        match std::mem::take(self) {
            Paths::Empty => {}
            Paths::One(p) if gone(&p) => removed(p),
            one @ Paths::One(_) => *self = one,
            Paths::Many(v) => {
                let mut keep = Vec::with_capacity(v.len());
                for p in *v {
                    if gone(&p) {
                        removed(p);
                    } else {
                        keep.push(p);
                    }
                }
                *self = Paths::from_vec(keep);
            }
        }
    }

    /// Changes paths in place (flags only), then restores the order.
    pub fn modify(&mut self, mut f: impl FnMut(&mut Path)) {
        match self {
            Paths::Empty => {}
            Paths::One(p) => f(p),
            Paths::Many(v) => {
                v.iter_mut().for_each(&mut f);
                super::best::sort(v);
            }
        }
    }

    fn from_vec(mut v: Vec<Path>) -> Paths {
        match v.len() {
            0 => Paths::Empty,
            1 => v.pop().map_or(Paths::Empty, Paths::One),
            _ => {
                v.shrink_to_fit();
                Paths::Many(Box::new(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_and_a_prefix_entry_stay_small() {
        assert_eq!(std::mem::size_of::<Path>(), 16);
        assert_eq!(std::mem::size_of::<Paths>(), 16);
    }
}
