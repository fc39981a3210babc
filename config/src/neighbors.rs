//! The sessions a configuration asks for: mesh nodes and explicit peers, merged.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::Config;

/// One BGP session to run, with every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    pub address: IpAddr,
    pub asn: u32,
    pub port: u16,
    pub kind: PeerKind,
    pub passive: bool,
    pub password: Option<String>,
    pub ttl_security: bool,
    pub max_prefixes: Option<u32>,
    pub shutdown: bool,
    /// BFD on this session (`[[peer]] bfd`, else `[bfd] enabled`).
    pub bfd: bool,
}

/// Why a session exists, as `show peers` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerKind {
    /// Another node of the full iBGP mesh (`cluster.nodes`).
    Mesh,
    /// An explicit `[[peer]]`: a switch, an external router, a non-client reflector.
    Peer,
    /// This node reflects routes to that peer (RFC 4456 client).
    RrClient,
    /// That peer reflects routes to this node.
    RouteReflector,
}

impl Config {
    /// The mesh peers plus explicit peers, each with its kind. The node's own address is
    /// skipped; an explicit `[[peer]]` at a mesh node's address replaces the mesh entry.
    pub fn neighbors(&self) -> Vec<Neighbor> {
        let own = |a: &IpAddr| {
            *a == IpAddr::V4(self.node.address)
                || self.node.address_v6.is_some_and(|v6| *a == IpAddr::V6(v6))
        };
        let explicit: HashSet<IpAddr> = self.peers.iter().map(|p| p.address).collect();
        let mut out = Vec::new();
        if self.cluster.mesh {
            let mut seen = HashSet::new();
            for a in &self.cluster.nodes {
                if own(a) || explicit.contains(a) || !seen.insert(*a) {
                    continue;
                }
                out.push(Neighbor {
                    address: *a,
                    asn: self.node.asn,
                    port: self.bgp.port,
                    kind: PeerKind::Mesh,
                    passive: false,
                    password: self.cluster.mesh_password.clone(),
                    ttl_security: false,
                    max_prefixes: None,
                    shutdown: false,
                    bfd: self.bfd.enabled,
                });
            }
        }
        for p in self.peers.iter().filter(|p| !own(&p.address)) {
            let ibgp = p.asn == self.node.asn;
            let kind = if p.rr_client {
                PeerKind::RrClient
            } else if p.route_reflector && ibgp && self.bgp.route_reflector_cluster_id.is_none() {
                PeerKind::RouteReflector
            } else {
                PeerKind::Peer
            };
            out.push(Neighbor {
                address: p.address,
                asn: p.asn,
                port: p.port.unwrap_or(self.bgp.port),
                kind,
                passive: p.passive,
                password: p.password.clone(),
                ttl_security: p.ttl_security,
                max_prefixes: p.max_prefixes,
                shutdown: p.shutdown,
                bfd: self.bfd.on(p.bfd),
            });
        }
        out
    }
}
