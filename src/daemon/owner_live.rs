//! What the owner reports and collects around its allocations: the live handles it
//! publishes for `ipipd ipam check`, CNI GC with the datastore, and requested addresses
//! in file mode.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use api::protocol::{IpamErrorKind, Response, WorkloadJson};
use datastore::{Kv, LiveRecord};

use super::super::pods::Pods;
use super::ipam_ds::{check_requested, unix_now};
use super::{Outputs, Owner};

/// The network interfaces of this network namespace, from `/proc/self/net/dev` (which
/// shows the reading process's namespace). None when it cannot be read.
fn interfaces() -> Option<BTreeSet<String>> {
    let text = std::fs::read_to_string("/proc/self/net/dev").ok()?;
    Some(
        text.lines()
            .skip(2)
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
            .collect(),
    )
}

impl<K: Kv, O: Outputs> Owner<K, O> {
    /// Datastore mode, on each tick: the handles of the pods whose host interface
    /// exists, written to `<prefix>/live/<node>` when they changed. A pod whose network
    /// namespace went without a DEL loses its veth pair with it, and so drops out here:
    /// `ipam check` then finds its allocation leaked.
    pub(super) async fn publish_live(&mut self) {
        let Some(c) = self.cluster.clone() else {
            return;
        };
        let Some(present) = interfaces() else {
            return;
        };
        let handles: BTreeMap<String, Vec<IpAddr>> = self
            .pods
            .allocations()
            .filter(|a| present.contains(&a.interface))
            .map(|a| (a.handle.clone(), a.addresses.clone()))
            .collect();
        if self.live_sent.as_ref() == Some(&handles) {
            return;
        }
        let record = LiveRecord {
            at: unix_now(),
            handles: handles.clone(),
        };
        match c.ds.put_live(&c.name, &record).await {
            Ok(()) => self.live_sent = Some(handles),
            Err(e) => tracing::warn!(error = %e, "writing this node's live pods to the datastore"),
        }
    }

    /// CNI GC: every allocation of `network` whose handle `keep` lacks is released (in
    /// the datastore first, with one).
    pub(super) async fn collect(&mut self, keep: &[String], network: Option<&str>) -> Response {
        if self.cluster.is_none() {
            return self.pods.collect(keep, network);
        }
        let mut released = Vec::new();
        for handle in self.pods.stale(keep, network) {
            let interface = self
                .pods
                .allocation(&handle)
                .map(|a| a.interface.clone())
                .unwrap_or_default();
            match self.release_handle(&handle).await {
                Response::Released { released: ips } => {
                    released.extend(ips.into_iter().map(|ip| WorkloadJson {
                        ip,
                        interface: interface.clone(),
                        handle: Some(handle.clone()),
                    }))
                }
                other => return other,
            }
        }
        if !released.is_empty() {
            tracing::info!(released = ?released.iter().map(|w| w.ip).collect::<Vec<_>>(), "CNI GC released stale pod addresses");
        }
        Response::Collected { released }
    }

    /// File mode: a requested address, if it is in one of the node's open blocks and
    /// free there.
    pub(super) fn assign_requested_file(&mut self, request: ipam::Request) -> Response {
        if self.pods.allocation(&request.handle()).is_some() {
            return self.pods.assign(&self.state.config, request);
        }
        let families = Pods::families(&self.state.config);
        if let Err(message) = check_requested(&request.requested, &families) {
            return Response::IpamError {
                kind: IpamErrorKind::Invalid,
                message,
            };
        }
        for ip in &request.requested {
            let family = ipam::Family::of(ip);
            if !self
                .pods
                .open_blocks_of(family)
                .iter()
                .any(|b| b.contains(ip))
            {
                return Response::IpamError {
                    kind: IpamErrorKind::Invalid,
                    message: format!(
                        "requested address {ip} is in none of this node's blocks ({})",
                        super::list(&self.own)
                    ),
                };
            }
            if self.pods.is_held(ip) {
                return super::ipam_ds::in_use(*ip, &self.pods.holder(ip));
            }
        }
        // Families not requested get any free address of theirs.
        let mut held: Vec<datastore::Held> = request
            .requested
            .iter()
            .map(|ip| datastore::Held {
                address: *ip,
                sequence: 0,
            })
            .collect();
        for family in families {
            if request
                .requested
                .iter()
                .any(|ip| ipam::Family::of(ip) == family)
            {
                continue;
            }
            let free = self
                .pods
                .open_blocks_of(family)
                .into_iter()
                .find_map(|b| ipam_hosts(&b).find(|ip| !self.pods.is_held(ip)));
            match free {
                Some(address) => held.push(datastore::Held {
                    address,
                    sequence: 0,
                }),
                None => {
                    return Response::IpamError {
                        kind: IpamErrorKind::Exhausted,
                        message: format!("no free {family} address in the node's blocks"),
                    }
                }
            }
        }
        held.sort_by_key(|h| !h.address.is_ipv4());
        self.pods.assign_given(&self.state.config, &request, &held)
    }
}

/// Every address of a block, first and last included.
fn ipam_hosts(b: &ipnet::IpNet) -> Box<dyn Iterator<Item = IpAddr>> {
    match b {
        ipnet::IpNet::V4(n) => {
            Box::new(ipnet::Ipv4AddrRange::new(n.network(), n.broadcast()).map(IpAddr::V4))
        }
        ipnet::IpNet::V6(n) => {
            Box::new(ipnet::Ipv6AddrRange::new(n.network(), n.broadcast()).map(IpAddr::V6))
        }
    }
}
