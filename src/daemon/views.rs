//! The daemon's state as the control protocol shows it: `show peers`, `show routes`,
//! `show blocks` and what a metrics scrape reads. One place maps internal state to the
//! `api` types.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::IpNet;

use super::{metrics, Daemon};
use crate::control::protocol::{AggregatorJson, AttributesJson, PeerJson, RouteJson};

/// The attributes `show routes --json` lists beyond the basic ones.
fn attributes_json(a: &bgp::wire::Attributes) -> AttributesJson {
    use bgp::wire::Origin;
    AttributesJson {
        bgp_origin: a.origin.map(|o| {
            match o {
                Origin::Igp => "igp",
                Origin::Egp => "egp",
                Origin::Incomplete => "incomplete",
            }
            .to_owned()
        }),
        med: a.med,
        atomic_aggregate: a.atomic_aggregate,
        aggregator: a.aggregator.map(|g| AggregatorJson {
            asn: g.asn,
            address: g.address,
        }),
        communities: a
            .communities
            .iter()
            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
            .collect(),
        extended_communities: a
            .extended_communities
            .iter()
            .map(|c| format!("{c:016x}"))
            .collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(|c| format!("{}:{}:{}", c.global, c.local1, c.local2))
            .collect(),
        unknown_attributes: a.unknown.iter().map(|u| u.type_code).collect(),
    }
}

/// One peer as `show peers --json` lists it.
fn peer_json(p: bgp::speaker::PeerStatus, name: Option<String>) -> PeerJson {
    PeerJson {
        address: p.address,
        name,
        asn: p.asn,
        kind: serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        state: p.state.name().to_owned(),
        since: rfc3339(p.since),
        info: p.info,
        received: p.counts.received,
        accepted: p.counts.accepted,
        refused_overlap: p.counts.refused_overlap,
        refused: p.counts.refused,
        treat_as_withdraw: p.counts.treat_as_withdraw,
        attributes_discarded: p.counts.attributes_discarded,
        updates_received: p.messages.updates_received,
        updates_sent: p.messages.updates_sent,
        router_id: p.router_id,
        hostname: p.hostname,
        established_count: p.established_count,
        graceful_restart: p.graceful_restart,
        bfd: None,
    }
}

/// RFC 3339 in UTC, seconds precision, as `show peers` prints `since`.
pub(super) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The next hop of an installed kernel route that goes via `gateway`.
fn installed_hop(kind: &fib::RouteKind, gateway: IpAddr) -> Option<fib::NextHop> {
    match kind {
        fib::RouteKind::Via(hops) => hops.iter().find(|h| h.gateway == gateway).cloned(),
        _ => None,
    }
}

impl Daemon {
    pub(super) fn peers(&self) -> Vec<PeerJson> {
        let state = self.state.load();
        let name = |address: IpAddr| {
            state
                .config
                .peers
                .iter()
                .find(|p| p.address == address)
                .and_then(|p| p.name.clone())
        };
        let bfd: BTreeMap<IpAddr, String> = self
            .bfd_sessions()
            .into_iter()
            .map(|s| (s.peer, s.state.name().to_owned()))
            .collect();
        self.speaker
            .peers()
            .into_iter()
            .map(|p| {
                let name = name(p.address);
                let address = p.address;
                let mut json = peer_json(p, name);
                json.bfd = bfd.get(&address).cloned();
                json
            })
            .collect()
    }

    pub(super) async fn routes(&self) -> Vec<RouteJson> {
        let installed = self.installed().await;
        let mut out = Vec::new();
        for r in self.speaker.routes().await {
            let kernel = installed.get(&r.prefix);
            // The kernel route through this path's next hop, if installed.
            let hop = match (kernel, r.next_hop) {
                (Some(k), Some(nh)) if r.best || r.multipath => installed_hop(&k.kind, nh),
                _ => None,
            };
            out.push(RouteJson {
                prefix: r.prefix.to_string(),
                origin: if r.local {
                    "local".into()
                } else {
                    "bgp".into()
                },
                next_hop: r.next_hop.map(|n| n.to_string()),
                interface: hop.as_ref().and_then(|h| h.device.clone()),
                peer: r.peer.map(|p| p.to_string()),
                best: r.best,
                installed: if r.local {
                    kernel.is_some()
                } else {
                    hop.is_some()
                },
                stale: r.stale,
                as_path: r.as_path,
                local_pref: r.local_pref,
                originator_id: r.originator_id,
                cluster_list: r.cluster_list,
                attributes: attributes_json(&r.attributes),
            });
        }
        let is_installed = |p: &IpNet| installed.contains_key(p);
        for (ip, interface) in self.state.load().workloads.iter().cloned() {
            let prefix = IpNet::from(ip);
            out.push(RouteJson {
                prefix: prefix.to_string(),
                origin: "workload".into(),
                next_hop: None,
                interface: Some(interface),
                peer: None,
                best: true,
                installed: is_installed(&prefix),
                stale: false,
                as_path: String::new(),
                local_pref: None,
                originator_id: None,
                cluster_list: Vec::new(),
                attributes: AttributesJson::default(),
            });
        }
        out
    }

    /// What a metrics scrape shows, read from the published state.
    pub(crate) async fn metrics_snapshot(&self) -> metrics::Snapshot {
        let peers = self
            .speaker
            .peers()
            .into_iter()
            .map(|p| metrics::PeerSample {
                peer: p.address.to_string(),
                kind: serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                up: p.state == bgp::fsm::State::Established,
                received: p.counts.received,
                accepted: p.counts.accepted,
                updates_received: p.messages.updates_received,
                updates_sent: p.messages.updates_sent,
            })
            .collect();
        let rib_prefixes = self
            .speaker
            .routes()
            .await
            .iter()
            .filter(|r| r.best)
            .count() as u64;
        let mut snap = metrics::Snapshot {
            peers,
            rib_prefixes,
            ipam_allocated: self.state.load().allocated,
            fib_errors: self.with_fib(|f| f.stats().errors).unwrap_or(0),
            bfd: self
                .bfd_sessions()
                .into_iter()
                .map(|b| (b.peer.to_string(), b.state == ::bfd::State::Up))
                .collect(),
            nat: self.nat.as_ref().map(|n| {
                let s = n.status();
                (s.in_sync, s.repairs)
            }),
            ..Default::default()
        };
        if let Some(counts) = self.with_fib(|f| f.counts()) {
            let c = counts.await;
            snap.fib_remote = c.remote;
            snap.fib_blackhole = c.blackhole;
            snap.fib_workload = c.workload;
        }
        snap
    }

    /// `show blocks`: own blocks with their allocation counts, then learned ones.
    pub(super) async fn blocks(&self) -> Vec<api::protocol::BlockJson> {
        let state = self.state.load_full();
        let cfg = &state.config;
        let mut out: Vec<api::protocol::BlockJson> = cfg
            .node
            .blocks
            .iter()
            .map(|b| api::protocol::BlockJson {
                block: b.to_string(),
                node: Some(cfg.node.name.clone()),
                local: true,
                allocated: Some(state.block_use.get(b).map_or(0, |u| u.0)),
                capacity: Some(state.block_use.get(b).map_or(0, |u| u.1)),
                state: "static".into(),
                next_hop: None,
                borrowed: false,
            })
            .collect();
        let names: BTreeMap<IpAddr, String> = self
            .speaker
            .peers()
            .into_iter()
            .filter_map(|p| Some((p.address, p.hostname?)))
            .collect();
        for r in self.speaker.routes().await {
            if r.local || !r.best {
                continue;
            }
            out.push(api::protocol::BlockJson {
                block: r.prefix.to_string(),
                node: r.peer.and_then(|p| names.get(&p).cloned()),
                local: false,
                allocated: None,
                capacity: None,
                // With the file datastore every block comes from a node's config file.
                state: "static".into(),
                next_hop: r.next_hop,
                borrowed: false,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_peers_json_has_name_and_every_counter() {
        let status = bgp::speaker::PeerStatus {
            address: IpAddr::from([10, 0, 0, 2]),
            asn: 64512,
            kind: bgp::speaker::NeighborKind::Peer,
            state: bgp::fsm::State::Established,
            admin_down: false,
            since: SystemTime::UNIX_EPOCH,
            configured: SystemTime::UNIX_EPOCH,
            info: String::new(),
            router_id: None,
            hostname: None,
            counts: bgp::rib::PeerCounts {
                received: 9,
                accepted: 4,
                refused_overlap: 1,
                refused: 2,
                treat_as_withdraw: 3,
                attributes_discarded: 5,
            },
            messages: bgp::speaker::MessageCounts {
                updates_received: 7,
                updates_sent: 8,
            },
            established_count: 1,
            graceful_restart: true,
        };
        let named = serde_json::to_value(peer_json(status.clone(), Some("tor-1".into())))
            .unwrap_or_default();
        assert_eq!(named["name"], "tor-1");
        assert_eq!(named["kind"], "peer");
        for (field, n) in [
            ("received", 9),
            ("accepted", 4),
            ("refused_overlap", 1),
            ("refused", 2),
            ("treat_as_withdraw", 3),
            ("attributes_discarded", 5),
        ] {
            assert_eq!(named[field], n, "{field}");
        }
        let unnamed = serde_json::to_value(peer_json(status, None)).unwrap_or_default();
        assert!(
            unnamed.get("name").is_some_and(|v| v.is_null()),
            "{unnamed}"
        );
    }

    #[test]
    fn since_is_rfc3339_utc_seconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
