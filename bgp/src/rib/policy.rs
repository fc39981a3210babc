//! Import and export rules: which routes ipipd accepts, and what it tells whom.
//!
//! Import: only prefixes inside the cluster pools; never a prefix that overlaps
//! one of our own blocks (a peer must not capture our pods); RFC 4456 loop
//! checks (ORIGINATOR_ID, CLUSTER_LIST); eBGP AS_PATH loop check.
//!
//! Export (RFC 4271 §9.2, RFC 4456 §8): our own blocks to everyone; iBGP-learned
//! routes to iBGP peers only when we are a route reflector (client routes to
//! everyone, non-client routes to clients); eBGP-learned routes to everyone.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::{PeerInfo, Shared, Source};
use crate::wire::{AsPath, Attributes, Origin};

/// Why an incoming route was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    OutsidePools,
    OverlapsOwnBlock,
    OriginatorLoop,
    ClusterLoop,
    AsPathLoop,
    NextHopIsSelf,
    NoNextHop,
}

/// What the export of a path to a peer depends on, but for the peer's own address
/// (a peer never hears its own paths back): peers of one class with one negotiated
/// [`crate::wire::Context`] are sent the same octets (RFC 4456 §8: a reflector's clients all
/// hear the same ORIGINATOR_ID and CLUSTER_LIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportClass {
    pub ibgp: bool,
    pub rr_client: bool,
    pub ipv4: bool,
    pub ipv6: bool,
}

impl ExportClass {
    pub fn of(peer: &PeerInfo) -> ExportClass {
        ExportClass {
            ibgp: peer.ibgp,
            rr_client: peer.rr_client,
            ipv4: peer.ipv4,
            ipv6: peer.ipv6,
        }
    }
}

/// Settings the policy needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Set when this node reflects routes for its rr-client peers.
    pub cluster_id: Option<Ipv4Addr>,
    pub pools: Vec<IpNet>,
    pub own_blocks: Vec<IpNet>,
    /// Our addresses, used as NEXT_HOP for our own blocks (and to refuse routes
    /// that point at ourselves).
    pub next_hop_v4: Ipv4Addr,
    pub next_hop_v6: Option<std::net::Ipv6Addr>,
}

impl PolicyConfig {
    pub fn in_pools(&self, prefix: &IpNet) -> bool {
        self.pools.iter().any(|pool| pool.contains(prefix))
    }

    /// A host route inside an own block is another node's pod on an address it
    /// borrowed from that block (the more specific route wins past the block's
    /// blackhole); an own host route (one this node borrowed) inside a learned block
    /// is the same case seen from the borrower. Only the same prefix, or a block
    /// over a block, is a capture.
    fn overlaps_own(&self, prefix: &IpNet) -> bool {
        let host = |n: &IpNet| n.prefix_len() == n.max_prefix_len();
        self.own_blocks.iter().any(|b| {
            b == prefix || (b.contains(prefix) && !host(prefix)) || (prefix.contains(b) && !host(b))
        })
    }

    pub fn is_self(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => a == self.next_hop_v4,
            IpAddr::V6(a) => Some(a) == self.next_hop_v6,
        }
    }

    /// Checks one route from `peer`.
    pub fn import(
        &self,
        peer: &PeerInfo,
        prefix: &IpNet,
        attrs: &Attributes,
        next_hop: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        if !self.in_pools(prefix) {
            return Err(Refusal::OutsidePools);
        }
        if self.overlaps_own(prefix) {
            return Err(Refusal::OverlapsOwnBlock);
        }
        if peer.ibgp {
            if attrs.originator_id == Some(self.router_id) {
                return Err(Refusal::OriginatorLoop);
            }
            if let Some(cid) = self.cluster_id {
                if attrs.cluster_list.contains(&cid) {
                    return Err(Refusal::ClusterLoop);
                }
            }
        } else if attrs
            .as_path
            .as_ref()
            .is_some_and(|p| p.contains(self.local_as))
        {
            return Err(Refusal::AsPathLoop);
        }
        match next_hop {
            None => Err(Refusal::NoNextHop),
            Some(nh) if self.is_self(nh) => Err(Refusal::NextHopIsSelf),
            Some(_) => Ok(()),
        }
    }

    /// Attributes of our own blocks as announced to iBGP peers (RFC 4271 §5.1).
    pub fn local_attributes(&self) -> Attributes {
        Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            local_pref: Some(100),
            ..Attributes::default()
        }
    }

    /// What `to` should hear about paths sharing `path`: the attributes and next hop, or None.
    pub fn export(&self, path: &Shared, to: &PeerInfo) -> Option<(Arc<Attributes>, IpAddr)> {
        if path.source == Source::Peer(to.address) {
            return None;
        }
        self.export_to_class(path, &ExportClass::of(to))
    }

    /// What every peer of class `to` but the path's own sender hears about paths sharing
    /// `path` (that sender hears nothing of its own paths).
    pub fn export_to_class(
        &self,
        path: &Shared,
        to: &ExportClass,
    ) -> Option<(Arc<Attributes>, IpAddr)> {
        let family_ok = match path.prefix_is_v4 {
            true => to.ipv4,
            false => to.ipv6,
        };
        if !family_ok {
            return None;
        }
        let own_next_hop = |v4: bool| -> Option<IpAddr> {
            if v4 {
                Some(IpAddr::V4(self.next_hop_v4))
            } else {
                self.next_hop_v6.map(IpAddr::V6)
            }
        };
        match &path.source {
            Source::Local => {
                let nh = own_next_hop(path.prefix_is_v4)?;
                if to.ibgp {
                    Some((path.attrs.clone(), nh))
                } else {
                    let mut a = (*path.attrs).clone();
                    a.local_pref = None;
                    let mut p = a.as_path.take().unwrap_or_default();
                    p.prepend(self.local_as);
                    a.as_path = Some(p);
                    Some((Arc::new(a), nh))
                }
            }
            Source::Peer(_) => {
                let from_info = path.from.as_ref()?;
                if !to.ibgp {
                    let mut a = (*path.attrs).clone();
                    a.local_pref = None;
                    a.med = None;
                    a.originator_id = None;
                    a.cluster_list.clear();
                    let mut p = a.as_path.take().unwrap_or_default();
                    p.prepend(self.local_as);
                    a.as_path = Some(p);
                    return Some((Arc::new(a), own_next_hop(path.prefix_is_v4)?));
                }
                if !path.ibgp {
                    // eBGP-learned to iBGP: keep the next hop, give it a LOCAL_PREF.
                    let mut a = (*path.attrs).clone();
                    a.local_pref.get_or_insert(100);
                    return Some((Arc::new(a), path.next_hop));
                }
                // iBGP-learned to iBGP: only a reflector passes it on.
                let cluster_id = self.cluster_id?;
                if !(from_info.rr_client || to.rr_client) {
                    return None;
                }
                let mut a = (*path.attrs).clone();
                a.originator_id.get_or_insert(from_info.router_id);
                a.cluster_list.insert(0, cluster_id);
                Some((Arc::new(a), path.next_hop))
            }
        }
    }
}
