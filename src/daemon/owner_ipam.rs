//! The owner's IPAM with the datastore: every address a pod or the tunnel takes is
//! first recorded in its block's allocation record in etcd by compare-and-swap
//! (`datastore::AllocationBlock`), then in the node-local record, which is a cache: at
//! start it is rebuilt from etcd, so a node whose `state_dir` was lost never hands out
//! a live address. Requested addresses (the CNI `ips` capability) are handled here too,
//! in file mode against the node's own blocks.

use std::net::IpAddr;
use std::time::SystemTime;

use api::protocol::{IpamErrorKind, Response};
use datastore::{AllocError, Attribute, Held, Kv};
use ipam::Family;
use ipnet::IpNet;

use super::super::cluster::Cluster;
use super::super::pods::Pods;
use super::{Outputs, Owner};

/// How many blocks one ADD may claim before it gives up (each claim is a full walk).
const MAX_CLAIMS: usize = 4;

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn refused(kind: IpamErrorKind, message: String) -> Response {
    Response::IpamError { kind, message }
}

impl<K: Kv, O: Outputs> Owner<K, O> {
    /// CNI ADD in datastore mode: each family's address recorded in etcd first, then
    /// locally; on any failure what was taken is given back.
    pub(super) async fn assign_in_datastore(
        &mut self,
        c: &Cluster<K>,
        request: ipam::Request,
    ) -> Response {
        if self.pods.allocation(&request.handle()).is_some() {
            // A repeated ADD: the addresses it holds (the host end's name follows).
            return self.pods.assign(&self.state.config, request);
        }
        if let Err(e) = request.validate() {
            return refused(IpamErrorKind::Invalid, e.to_string());
        }
        let handle = request.handle();
        let attr = Attribute {
            handle: handle.clone(),
            node: c.name.clone(),
            namespace: request.pod.as_ref().map(|p| p.namespace.clone()),
            pod: request.pod.as_ref().map(|p| p.name.clone()),
            interface: Some(request.interface.clone()),
            network: request.network.clone(),
            time: unix_now(),
        };
        let families = Pods::families(&self.state.config);
        if families.is_empty() {
            return refused(
                IpamErrorKind::Exhausted,
                "nothing to allocate: no pool is open to this node".into(),
            );
        }
        if let Err(message) = check_requested(&request.requested, &families) {
            return refused(IpamErrorKind::Invalid, message);
        }
        let mut got: Vec<Held> = Vec::new();
        for family in families {
            let wanted = request
                .requested
                .iter()
                .find(|ip| Family::of(ip) == family)
                .copied();
            let r = match wanted {
                Some(ip) => self.take_requested(c, ip, &attr).await,
                None => self.take_any(c, family, &attr).await,
            };
            match r {
                Ok(h) => got.push(h),
                Err(answer) => {
                    self.give_back(c, &got, &handle).await;
                    return answer;
                }
            }
        }
        let answer = self.pods.assign_given(&self.state.config, &request, &got);
        if !matches!(answer, Response::Assigned(_)) {
            self.give_back(c, &got, &handle).await;
        }
        self.publish().await;
        answer
    }

    /// A free address of `family` from the node's open blocks, claiming a block when
    /// they are full.
    async fn take_any(
        &mut self,
        c: &Cluster<K>,
        family: Family,
        attr: &Attribute,
    ) -> Result<Held, Response> {
        for _ in 0..=MAX_CLAIMS {
            for block in self.pods.open_blocks_of(family) {
                let pods = &self.pods;
                match c.ds.allocate(&block, attr, |ip| pods.is_held(ip)).await {
                    Ok(Some(h)) => return Ok(h),
                    Ok(None) => {}
                    Err(e) => {
                        c.note_error(&e);
                        return Err(unrecorded(&e));
                    }
                }
            }
            let Some(pool) = self
                .file
                .open_pools()
                .map(|p| p.cidr)
                .find(|p| Family::of_net(p) == family)
            else {
                break;
            };
            if self.at_block_limit() {
                let why = format!(
                    "no free {family} address in the node's {} blocks, and ipam.max_blocks_per_node = {} allows no more",
                    self.own.len(),
                    self.file.ipam.max_blocks_per_node
                );
                return self.borrow_or(c, family, attr, why).await;
            }
            let block = match c.claim(&self.file, &pool).await {
                Ok(b) => b,
                Err(m) => return self.borrow_or(c, family, attr, m).await,
            };
            let mut own = self.own.clone();
            if !own.contains(&block) {
                own.push(block);
            }
            self.set_own(own).await;
        }
        Err(refused(
            IpamErrorKind::Exhausted,
            format!("no free {family} address in the node's blocks, nor a block to claim"),
        ))
    }

    /// The requested `ip`: in one of the node's open blocks, or in a free block of an
    /// open pool, claimed for it.
    async fn take_requested(
        &mut self,
        c: &Cluster<K>,
        ip: IpAddr,
        attr: &Attribute,
    ) -> Result<Held, Response> {
        let family = Family::of(&ip);
        let mut block = self
            .pods
            .open_blocks_of(family)
            .into_iter()
            .find(|b| b.contains(&ip));
        if block.is_none() {
            let Some(pool) = self.file.open_pools().find(|p| p.cidr.contains(&ip)) else {
                return Err(refused(
                    IpamErrorKind::Invalid,
                    format!("requested address {ip} is in no pool open to this node"),
                ));
            };
            let net = IpNet::new(ip, pool.block_size.max(pool.cidr.prefix_len()))
                .map(|n| n.trunc())
                .map_err(|e| refused(IpamErrorKind::Invalid, format!("{ip}: {e}")))?;
            match c.ds.claim_block(&c.name, &net).await {
                Ok(true) => {
                    tracing::info!(block = %net, %ip, "block claimed for a requested address");
                    let mut own = self.own.clone();
                    if !own.contains(&net) {
                        own.push(net);
                    }
                    // The node's first block gets the tunnel address: not this one.
                    self.pods.set_requested(Some(ip));
                    self.set_own(own).await;
                    self.pods.set_requested(None);
                    block = Some(net);
                }
                Ok(false) => {
                    return Err(refused(
                        IpamErrorKind::Invalid,
                        format!("requested address {ip} is in block {net} of another node"),
                    ))
                }
                Err(e) => return Err(unrecorded(&e)),
            }
        }
        let Some(block) = block else {
            return Err(refused(
                IpamErrorKind::Invalid,
                format!("no block for {ip}"),
            ));
        };
        if self.pods.is_held(&ip) {
            return Err(in_use(ip, &self.pods.holder(&ip)));
        }
        match c.ds.allocate_at(&block, &ip, attr).await {
            Ok(Ok(h)) => Ok(h),
            Ok(Err(AllocError::InUse { handle, node, .. })) => {
                Err(in_use(ip, &format!("{handle} on node {node}")))
            }
            Ok(Err(e)) => Err(refused(IpamErrorKind::Invalid, e.to_string())),
            Err(e) => {
                c.note_error(&e);
                Err(unrecorded(&e))
            }
        }
    }

    /// Frees addresses this ADD took before it failed.
    async fn give_back(&mut self, c: &Cluster<K>, got: &[Held], handle: &str) {
        for h in got {
            let Some(block) = self.block_of(&h.address) else {
                continue;
            };
            match c.ds.free(&block, h, handle).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "giving back an address"),
                Err(e) => {
                    tracing::error!(address = %h.address, %handle, error = %e, "an address taken by a failed ADD could not be given back; `ipipd ipam check` will report it leaked")
                }
            }
        }
    }

    /// The block (own, with an allocation record, or another node's: a borrowed
    /// address in a record the last read did not have yet) that holds `ip`.
    pub(super) fn block_of(&self, ip: &IpAddr) -> Option<IpNet> {
        let recorded = self.snap.as_ref().and_then(|s| {
            s.allocations
                .keys()
                .chain(s.blocks.keys())
                .find(|b| b.contains(ip))
                .copied()
        });
        self.own
            .iter()
            .find(|b| b.contains(ip))
            .copied()
            .or(recorded)
    }

    /// CNI DEL (and GC, and spooled DELs): with the datastore, the addresses are freed
    /// there first (by their sequence); an etcd that does not answer keeps the
    /// allocation and fails the DEL, which the runtime repeats.
    pub(super) async fn release_handle(&mut self, handle: &str) -> Response {
        let Some(c) = self.cluster.clone() else {
            return self.pods.release(handle);
        };
        let Some(a) = self.pods.allocation(handle).cloned() else {
            return Response::Released {
                released: Vec::new(),
            };
        };
        for (i, ip) in a.addresses.iter().enumerate() {
            let (Some(seq), Some(block)) = (a.sequences.get(i), self.block_of(ip)) else {
                continue;
            };
            let held = Held {
                address: *ip,
                sequence: *seq,
            };
            match c.ds.free(&block, &held, handle).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(%handle, error = %e, "the datastore gives this address to another holder now; only the local allocation goes")
                }
                Err(e) => {
                    c.note_error(&e);
                    return refused(
                        IpamErrorKind::Storage,
                        format!("cannot release {ip} in the datastore ({e}); the addresses stay allocated until a DEL succeeds"),
                    );
                }
            }
        }
        self.pods.release(handle)
    }

    /// Datastore mode, at start and on each tick: the tunnel address is recorded in etcd
    /// under the tunnel's handle, and the one it left freed. An address etcd gives to
    /// another holder is not used: the tunnel takes one etcd gives it.
    pub(super) async fn sync_tunnel(&mut self) {
        let Some(c) = self.cluster.clone() else {
            return;
        };
        let handle = self.pods.tunnel_handle();
        let current = self.pods.tunnel().map(IpAddr::V4);
        if current == self.tunnel_held.map(|h| h.address) {
            return;
        }
        if let Some(ip) = current {
            let Some(block) = self.block_of(&ip) else {
                return;
            };
            let attr = Attribute {
                handle: handle.clone(),
                node: c.name.clone(),
                namespace: None,
                pod: None,
                interface: None,
                network: None,
                time: unix_now(),
            };
            match c.ds.allocate_at(&block, &ip, &attr).await {
                Ok(Ok(h)) => {
                    tracing::info!(address = %ip, "tunnel address recorded in the datastore");
                    self.note_tunnel(c.as_ref(), Some(h)).await;
                }
                Ok(Err(AllocError::InUse { handle: h, .. })) if h == handle => {
                    // Recorded by an earlier run: take its sequence.
                    let seq = self
                        .recorded_sequence(&c, &block, &ip)
                        .await
                        .unwrap_or_default();
                    self.note_tunnel(
                        c.as_ref(),
                        Some(Held {
                            address: ip,
                            sequence: seq,
                        }),
                    )
                    .await;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "the tunnel address is another holder's in the datastore: picking another");
                    let pods = &self.pods;
                    match c.ds.allocate(&block, &attr, |x| pods.is_held(x)).await {
                        Ok(Some(h)) => {
                            if self.pods.take_tunnel(h.address) {
                                self.note_tunnel(c.as_ref(), Some(h)).await;
                            }
                        }
                        Ok(None) => tracing::error!("no free address in the tunnel's block"),
                        Err(e) => tracing::warn!(error = %e, "recording the tunnel address"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording the tunnel address; trying again later")
                }
            }
        } else {
            self.note_tunnel(c.as_ref(), None).await;
        }
    }

    /// The tunnel now holds `new` in etcd: the address it held before is freed.
    async fn note_tunnel(&mut self, c: &Cluster<K>, new: Option<Held>) {
        let old = std::mem::replace(&mut self.tunnel_held, new);
        let Some(old) = old.filter(|o| Some(o.address) != new.map(|n| n.address)) else {
            return;
        };
        let Some(block) = self.block_of(&old.address) else {
            return;
        };
        if let Err(e) = c.ds.free(&block, &old, &self.pods.tunnel_handle()).await {
            tracing::warn!(address = %old.address, error = %e, "the tunnel's former address is not freed in the datastore; `ipipd ipam check` will report it");
        }
    }

    async fn recorded_sequence(&self, c: &Cluster<K>, block: &IpNet, ip: &IpAddr) -> Option<u64> {
        let (record, _) = c.ds.allocations(block).await.ok()?;
        let seq = record
            .held()
            .find(|(h, _)| h.address == *ip)
            .map(|(h, _)| h.sequence);
        seq
    }

    /// At start with the datastore: the local record is made to agree with etcd. What
    /// etcd records as this node's and the record lacks is taken up (its pod still runs
    /// on the veth named); a local allocation whose address etcd gives to another
    /// holder is dropped; one etcd lacks is recorded there if the address is free.
    pub async fn rebuild_from_datastore(&mut self) {
        let Some(c) = self.cluster.clone() else {
            return;
        };
        let snap = match c.ds.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the allocations from the datastore at start");
                return;
            }
        };
        let tunnel = self.pods.tunnel_handle();
        // The tunnel first: the address the local record (or a fresh pick) gave it may
        // be a live pod's in etcd; it is placed again once the pods are known.
        let recorded = snap.allocations.values().find_map(|(r, _)| {
            r.held()
                .find(|(_, a)| a.handle == tunnel && a.node == c.name)
                .map(|(h, _)| h)
        });
        self.pods.reset_tunnel(recorded.map(|h| h.address));
        self.tunnel_held = recorded;
        let mut etcd_handles = std::collections::BTreeSet::new();
        for (record, _) in snap.allocations.values() {
            for (held, attr) in record.held() {
                if attr.node != c.name {
                    let local = self
                        .pods
                        .allocations()
                        .find(|a| a.addresses.contains(&held.address))
                        .map(|a| a.handle.clone());
                    if let Some(h) = local {
                        self.pods.forget(&h);
                    }
                    continue;
                }
                etcd_handles.insert(attr.handle.clone());
                if attr.handle == tunnel {
                    continue;
                }
                let known = self.pods.allocation(&attr.handle).cloned();
                match known {
                    Some(mut a) if a.addresses.contains(&held.address) => {
                        if let Some(i) = a.addresses.iter().position(|x| *x == held.address) {
                            if a.sequences.len() != a.addresses.len() {
                                a.sequences = vec![0; a.addresses.len()];
                            }
                            a.sequences[i] = held.sequence;
                            self.pods.replace(a);
                        }
                    }
                    Some(mut a) => {
                        // Dual stack: the other family's address, recorded in another block.
                        a.addresses.push(held.address);
                        a.sequences.resize(a.addresses.len() - 1, 0);
                        a.sequences.push(held.sequence);
                        self.pods.replace(a);
                    }
                    None => {
                        let (container_id, ifname) = split_handle(&attr.handle);
                        self.pods.adopt(ipam::Allocation {
                            handle: attr.handle.clone(),
                            container_id,
                            ifname,
                            interface: attr.interface.clone().unwrap_or_default(),
                            addresses: vec![held.address],
                            pod: attr
                                .namespace
                                .clone()
                                .zip(attr.pod.clone())
                                .map(|(namespace, name)| ipam::PodRef { namespace, name }),
                            network: attr.network.clone(),
                            sequences: vec![held.sequence],
                        });
                    }
                }
            }
        }
        // Local allocations etcd lacks (written before allocations were in etcd): record them.
        let missing: Vec<ipam::Allocation> = self
            .pods
            .allocations()
            .filter(|a| !etcd_handles.contains(&a.handle))
            .cloned()
            .collect();
        for a in missing {
            self.backfill(&c, a).await;
        }
        self.pods.set_blocks(&self.file, &self.own);
        if let Err(e) = self.pods.save() {
            tracing::error!(error = %format!("{e:#}"), "the IPAM record rebuilt from the datastore is not written");
        }
        self.publish().await;
    }

    async fn backfill(&mut self, c: &Cluster<K>, mut a: ipam::Allocation) {
        let attr = Attribute {
            handle: a.handle.clone(),
            node: c.name.clone(),
            namespace: a.pod.as_ref().map(|p| p.namespace.clone()),
            pod: a.pod.as_ref().map(|p| p.name.clone()),
            interface: Some(a.interface.clone()),
            network: a.network.clone(),
            time: unix_now(),
        };
        let mut seqs = Vec::new();
        for ip in &a.addresses {
            let Some(block) = self.block_of(ip) else {
                seqs.push(0);
                continue;
            };
            match c.ds.allocate_at(&block, ip, &attr).await {
                Ok(Ok(h)) => seqs.push(h.sequence),
                Ok(Err(e)) => {
                    tracing::error!(handle = %a.handle, error = %e, "a local allocation the datastore gives to another holder: dropped");
                    self.pods.forget(&a.handle);
                    return;
                }
                Err(e) => {
                    tracing::warn!(handle = %a.handle, error = %e, "a local allocation could not be recorded in the datastore");
                    seqs.push(0);
                }
            }
        }
        a.sequences = seqs;
        self.pods.replace(a);
    }
}

/// `<container id>.<ifname>` → its parts (the interface name has no dot in practice).
fn split_handle(handle: &str) -> (String, String) {
    match handle.rsplit_once('.') {
        Some((id, ifname)) => (id.to_owned(), ifname.to_owned()),
        None => (handle.to_owned(), String::new()),
    }
}

/// At most one requested address per family the pools have, and none of another.
pub(super) fn check_requested(requested: &[IpAddr], families: &[Family]) -> Result<(), String> {
    for f in [Family::V4, Family::V6] {
        let n = requested.iter().filter(|ip| Family::of(ip) == f).count();
        if n > 1 {
            return Err(format!(
                "more than one {f} address requested: {requested:?}"
            ));
        }
        if n == 1 && !families.contains(&f) {
            return Err(format!(
                "an {f} address is requested, but no {f} pool is open to this node"
            ));
        }
    }
    Ok(())
}

pub(super) fn in_use(ip: IpAddr, by: &str) -> Response {
    refused(
        IpamErrorKind::Invalid,
        format!("requested address {ip} is in use by {by}; nothing was allocated"),
    )
}

pub(super) fn unrecorded(e: &datastore::Error) -> Response {
    refused(
        IpamErrorKind::Storage,
        format!("cannot record the allocation in the datastore ({e}); nothing was allocated"),
    )
}
