//! Pods made by the CNI plugin: the node's IPAM (addresses by handle, recorded in
//! `state_dir/ipam.json` before any answer) and the workload routes of those pods.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use api::protocol::{AssignedJson, IpamErrorKind, Response, WorkloadJson};
use config::Config;
use ipam::{Family, Ipam, Store};
use ipnet::IpNet;

pub struct Pods {
    ipam: Ipam,
    store: Store,
    node: String,
    /// An encapsulation device needs an address (ipip.mode is not "never").
    tunnel_wanted: bool,
    /// The tunnel is a VXLAN device (its allocation's handle says so).
    tunnel_vxlan: bool,
    /// An address a pod asked for, which a new tunnel address must not take.
    requested: Option<IpAddr>,
}

/// The pools new pod addresses come from. With the datastore, those open to this node
/// (not disabled, its labels selected); with the file datastore all of them: its blocks
/// are the file's `node.blocks`, to which `disabled` and `node_selector` do not apply.
fn open_pools(cfg: &Config) -> Vec<IpNet> {
    match cfg.datastore.kind {
        config::DatastoreKind::Etcd => cfg.open_pools().map(|p| p.cidr).collect(),
        config::DatastoreKind::File => cfg.cluster.pools.clone(),
    }
}

/// The families of the open pools: pods get one address of each (where the node has a
/// block).
fn families(cfg: &Config) -> Vec<Family> {
    let mut f: Vec<Family> = open_pools(cfg).iter().map(Family::of_net).collect();
    f.sort();
    f.dedup();
    f
}

/// The blocks outside every open pool: they keep their pods and the tunnel address, and
/// give no new address (a pool disabled, or no longer selecting the node, by a reload).
fn closed(cfg: &Config, blocks: &[IpNet]) -> Vec<IpNet> {
    let open = open_pools(cfg);
    blocks
        .iter()
        .filter(|b| !open.iter().any(|p| p.contains(*b)))
        .copied()
        .collect()
}

/// The tunnel allocation's handle, as Calico names it.
pub fn tunnel_handle(node: &str, vxlan: bool) -> String {
    if vxlan {
        format!("vxlan-tunnel-addr-{node}")
    } else {
        format!("ipip-tunnel-addr-{node}")
    }
}

/// Whether `handle` is `node`'s tunnel allocation, of either encapsulation.
pub fn is_tunnel_handle(handle: &str, node: &str) -> bool {
    handle == tunnel_handle(node, false) || handle == tunnel_handle(node, true)
}

impl Pods {
    /// This node's tunnel allocation's handle, for the device in use.
    pub fn tunnel_handle(&self) -> String {
        tunnel_handle(&self.node, self.tunnel_vxlan)
    }

    /// The allocations recorded by earlier runs, over today's `blocks`.
    pub fn load(cfg: &Config, blocks: &[IpNet]) -> anyhow::Result<Pods> {
        // With etcd the record is a cache: every allocation is in etcd before it is here.
        let store = if cfg.datastore.kind == config::DatastoreKind::Etcd {
            Store::cache_in_dir(&cfg.control.state_dir)
        } else {
            Store::in_dir(&cfg.control.state_dir)
        };
        let record = store.load().context("loading the IPAM record")?;
        let mut fresh = Ipam::new(blocks.to_vec(), Vec::new(), families(cfg));
        fresh.set_closed(closed(cfg, blocks));
        let (ipam, refused) = fresh.restore(record);
        for a in &refused {
            // Only a record edited by hand can hold these; the first holder keeps the address.
            tracing::error!(handle = %a.handle, addresses = ?a.addresses, "IPAM record: allocation clashes with an earlier one; ignored");
        }
        for a in ipam.allocations() {
            for ip in &a.addresses {
                if !ipam.blocks().iter().any(|b| b.contains(ip)) {
                    tracing::warn!(handle = %a.handle, %ip, "pod address outside the node's blocks (blocks changed); kept until the pod is deleted");
                }
            }
        }
        let mut pods = Pods {
            ipam,
            store,
            node: cfg.node.name.clone(),
            tunnel_wanted: cfg.tunnel_device().is_some(),
            tunnel_vxlan: cfg.vxlan.mode != config::IpipMode::Never,
            requested: None,
        };
        pods.place_tunnel();
        Ok(pods)
    }

    /// Own blocks or pools changed (a claim, a release, a reload, a datastore read).
    /// Existing allocations stay; the tunnel address stays while its block does.
    pub fn set_blocks(&mut self, cfg: &Config, blocks: &[IpNet]) -> bool {
        self.ipam.set_blocks(blocks.to_vec(), Vec::new());
        self.ipam.set_closed(closed(cfg, blocks));
        self.ipam.set_families(families(cfg));
        self.node = cfg.node.name.clone();
        self.place_tunnel()
    }

    /// The tunnel device's address.
    pub fn tunnel(&self) -> Option<Ipv4Addr> {
        match self.ipam.tunnel()?.address {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    /// Keeps the tunnel address while its block is the node's; otherwise allocates the
    /// lowest free IPv4 address of the blocks (none without an IPv4 block). True when it
    /// changed.
    fn place_tunnel(&mut self) -> bool {
        let current = self.ipam.tunnel().map(|t| t.address);
        if !self.tunnel_wanted {
            return current.is_some() && self.set_tunnel(None);
        }
        if current.is_some_and(|a| self.ipam.blocks().iter().any(|b| b.contains(&a))) {
            return false;
        }
        let next = self.ipam.pick_tunnel_except(None, self.requested);
        next != current && self.set_tunnel(next)
    }

    /// Before `block` is given back: moves the tunnel address into another block. False
    /// when no other block has room, so `block` has to stay.
    pub fn move_tunnel_out_of(&mut self, block: &IpNet) -> bool {
        let Some(current) = self.ipam.tunnel().map(|t| t.address) else {
            return true;
        };
        if !block.contains(&current) {
            return true;
        }
        match self.ipam.pick_tunnel(Some(block)) {
            Some(next) => self.set_tunnel(Some(next)),
            None => false,
        }
    }

    fn set_tunnel(&mut self, address: Option<IpAddr>) -> bool {
        let before = self.ipam.tunnel().cloned();
        let next = address.map(|address| ipam::TunnelAllocation {
            handle: self.tunnel_handle(),
            address,
        });
        if let Err(ip) = self.ipam.set_tunnel(next) {
            tracing::error!(%ip, "tunnel address held by a pod: not taken");
            return false;
        }
        if let Err(e) = self.store.save(&self.ipam.record()) {
            // In memory the address stays the tunnel's, so no pod gets it in this run;
            // the next start picks again from the addresses no pod holds.
            tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "IPAM record not written after a tunnel address change");
        }
        tracing::info!(before = ?before.map(|t| t.address), after = ?address, "tunnel address allocated");
        true
    }

    pub fn assign(&mut self, cfg: &Config, request: ipam::Request) -> Response {
        let before = self.ipam.get(&request.handle()).cloned();
        let assigned = match self.ipam.assign(&request) {
            Ok(a) => a,
            Err(e) => {
                let kind = match e {
                    ipam::IpamError::Invalid { .. } => IpamErrorKind::Invalid,
                    _ => IpamErrorKind::Exhausted,
                };
                let blocks: Vec<String> =
                    self.ipam.blocks().iter().map(|b| b.to_string()).collect();
                return Response::IpamError {
                    kind,
                    message: format!(
                        "node {} (blocks: {}): {e}",
                        self.node,
                        if blocks.is_empty() {
                            "none".to_string()
                        } else {
                            blocks.join(", ")
                        }
                    ),
                };
            }
        };
        let changed = before.as_ref() != Some(&assigned.allocation);
        if changed {
            if let Err(refused) = self.save_or_undo(&assigned.allocation.handle, before) {
                return refused;
            }
            tracing::info!(handle = %assigned.allocation.handle, addresses = ?assigned.allocation.addresses, interface = %assigned.allocation.interface, existing = assigned.existing, "pod addresses recorded");
        }
        Response::Assigned(self.json(cfg, &assigned.allocation, assigned.existing))
    }

    /// Datastore mode: records `request` with the addresses the datastore gave it (each
    /// with its sequence), durably. Any answer but `Assigned`: nothing is recorded here
    /// and the caller gives the addresses back.
    pub fn assign_given(
        &mut self,
        cfg: &Config,
        request: &ipam::Request,
        held: &[datastore::Held],
    ) -> Response {
        let addresses = held.iter().map(|h| h.address).collect();
        let sequences = held.iter().map(|h| h.sequence).collect();
        let a = match self.ipam.assign_given(request, addresses, sequences) {
            Ok(a) => a,
            Err(e) => {
                return Response::IpamError {
                    kind: IpamErrorKind::Invalid,
                    message: e.to_string(),
                }
            }
        };
        if let Err(refused) = self.save_or_undo(&a.handle, None) {
            return refused;
        }
        tracing::info!(handle = %a.handle, addresses = ?a.addresses, interface = %a.interface, "pod addresses recorded in the datastore and locally");
        Response::Assigned(self.json(cfg, &a, false))
    }

    /// Writes the record. When it cannot be written, `handle`'s allocation goes back to
    /// `before` (none: released), as the record on disk has it, and the answer says why.
    fn save_or_undo(
        &mut self,
        handle: &str,
        before: Option<ipam::Allocation>,
    ) -> Result<(), Response> {
        let Err(e) = self.store.save(&self.ipam.record()) else {
            return Ok(());
        };
        self.ipam.release(handle);
        if let Some(before) = before {
            let _ = self.ipam.restore_one(before);
        }
        tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "IPAM record not written; allocation undone");
        Err(Response::IpamError {
            kind: IpamErrorKind::Storage,
            message: format!(
                "cannot record the allocation in {}; nothing was allocated",
                self.store.path().display()
            ),
        })
    }

    /// The handle's allocation, if it holds one.
    pub fn allocation(&self, handle: &str) -> Option<&ipam::Allocation> {
        self.ipam.get(handle)
    }

    /// Whether `ip` is taken here (a pod's, the tunnel's).
    pub fn is_held(&self, ip: &IpAddr) -> bool {
        self.ipam.is_held(ip)
    }

    /// While a requested address is being taken: a tunnel address placed meanwhile (in
    /// the block claimed for it) takes another.
    pub fn set_requested(&mut self, ip: Option<IpAddr>) {
        self.requested = ip;
    }

    /// Who holds `ip` here, for a message.
    pub fn holder(&self, ip: &IpAddr) -> String {
        self.ipam
            .allocations()
            .find(|a| a.addresses.contains(ip))
            .map_or("this node's tunnel device".to_owned(), |a| {
                format!("{} on this node", a.handle)
            })
    }

    /// The open blocks of a family, in the order addresses come from them.
    pub fn open_blocks_of(&self, family: Family) -> Vec<IpNet> {
        self.ipam
            .open_blocks()
            .filter(|b| Family::of_net(b) == family)
            .copied()
            .collect()
    }

    /// The families a pod gets an address of.
    pub fn families(cfg: &Config) -> Vec<Family> {
        families(cfg)
    }

    /// Datastore mode, at start: takes up an allocation the datastore records as this
    /// node's that the local record lacks (it was lost). False: it clashes here.
    pub fn adopt(&mut self, a: ipam::Allocation) -> bool {
        let handle = a.handle.clone();
        match self.ipam.restore_one(a) {
            Ok(()) => {
                tracing::warn!(%handle, "allocation taken up from the datastore (the local record lacked it)");
                true
            }
            Err(a) => {
                tracing::error!(handle = %a.handle, addresses = ?a.addresses, "allocation in the datastore clashes with the local record");
                false
            }
        }
    }

    /// Puts `a` in place of the handle's allocation (its sequences learnt).
    pub fn replace(&mut self, a: ipam::Allocation) {
        let old = self.ipam.release(&a.handle);
        if let Err(a) = self.ipam.restore_one(a) {
            tracing::error!(handle = %a.handle, "allocation clashes with another here; the earlier one stays");
            if let Some(old) = old {
                let _ = self.ipam.restore_one(old);
            }
        }
    }

    /// Drops a local allocation the datastore gives to another holder.
    pub fn forget(&mut self, handle: &str) {
        if let Some(a) = self.ipam.release(handle) {
            tracing::error!(%handle, addresses = ?a.addresses, "local allocation dropped: the datastore gives its address to another holder");
        }
    }

    /// At start with the datastore: the tunnel address is the one etcd records for it,
    /// or none until the pods are known.
    pub fn reset_tunnel(&mut self, recorded: Option<IpAddr>) {
        if self.ipam.tunnel().map(|t| t.address) != recorded {
            self.set_tunnel(recorded);
        }
    }

    /// The handles of `network` that `keep` lacks (CNI GC).
    pub fn stale(&self, keep: &[String], network: Option<&str>) -> Vec<String> {
        self.ipam.stale(keep, network)
    }

    /// Sets the tunnel address to one the datastore records (None: leave it).
    pub fn take_tunnel(&mut self, address: IpAddr) -> bool {
        if self.ipam.tunnel().map(|t| t.address) == Some(address) {
            return false;
        }
        self.set_tunnel(Some(address))
    }

    /// Writes the local record (after adopting or forgetting).
    pub fn save(&self) -> anyhow::Result<()> {
        self.store
            .save(&self.ipam.record())
            .context("writing the IPAM record")
    }

    /// Every allocation here.
    pub fn allocations(&self) -> impl Iterator<Item = &ipam::Allocation> {
        self.ipam.allocations()
    }

    pub fn get(&self, cfg: &Config, handle: &str) -> Response {
        match self.ipam.get(handle) {
            Some(a) => Response::Assigned(self.json(cfg, a, true)),
            None => Response::IpamError {
                kind: IpamErrorKind::Unknown,
                message: format!("no addresses allocated to {handle}"),
            },
        }
    }

    pub fn release(&mut self, handle: &str) -> Response {
        let Some(a) = self.ipam.release(handle) else {
            return Response::Released {
                released: Vec::new(),
            };
        };
        if let Err(e) = self.store.save(&self.ipam.record()) {
            // Keep the allocation: a release that is not recorded would come back at the
            // next start while the address may have gone to another pod.
            let _ = self.ipam.restore_one(a);
            tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "IPAM record not written; release undone");
            return Response::IpamError {
                kind: IpamErrorKind::Storage,
                message: format!(
                    "cannot record the release in {}; the addresses stay allocated",
                    self.store.path().display()
                ),
            };
        }
        tracing::info!(%handle, addresses = ?a.addresses, "pod addresses released");
        Response::Released {
            released: a.addresses,
        }
    }

    /// CNI GC: releases every allocation of `network` whose handle is not in `keep`,
    /// recorded at once.
    pub fn collect(&mut self, keep: &[String], network: Option<&str>) -> Response {
        let stale = self.ipam.stale(keep, network);
        let released: Vec<ipam::Allocation> =
            stale.iter().filter_map(|h| self.ipam.release(h)).collect();
        if released.is_empty() {
            return Response::Collected {
                released: Vec::new(),
            };
        }
        if let Err(e) = self.store.save(&self.ipam.record()) {
            for a in released {
                let _ = self.ipam.restore_one(a);
            }
            tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "IPAM record not written; garbage collection undone");
            return Response::IpamError {
                kind: IpamErrorKind::Storage,
                message: format!(
                    "cannot record the release in {}; the addresses stay allocated",
                    self.store.path().display()
                ),
            };
        }
        let out: Vec<WorkloadJson> = released
            .iter()
            .flat_map(|a| {
                a.addresses.iter().map(|ip| WorkloadJson {
                    ip: *ip,
                    interface: a.interface.clone(),
                    handle: Some(a.handle.clone()),
                })
            })
            .collect();
        tracing::info!(released = ?out.iter().map(|w| w.ip).collect::<Vec<_>>(), "CNI GC released stale pod addresses");
        Response::Collected { released: out }
    }

    fn json(&self, cfg: &Config, a: &ipam::Allocation, existing: bool) -> AssignedJson {
        // One MTU per pod interface: with an IPv6 address and the IPv6 VXLAN device,
        // that device's (the smaller: its outer header is 20 bytes larger).
        let v6 = a.addresses.iter().any(|ip| ip.is_ipv6());
        let device = cfg
            .vxlan_v6_device()
            .filter(|_| v6)
            .or_else(|| cfg.tunnel_device());
        AssignedJson {
            handle: a.handle.clone(),
            interface: a.interface.clone(),
            addresses: a.addresses.clone(),
            existing,
            tunnel: device.map(|(d, _)| d.to_owned()),
            mtu: device.and_then(|(_, m)| m),
            route_protocol: cfg.kernel.protocol,
        }
    }

    /// Workload routes of the pods: address → host veth.
    pub fn workloads(&self) -> impl Iterator<Item = (IpAddr, String)> + '_ {
        self.ipam
            .allocations()
            .flat_map(|a| a.addresses.iter().map(|ip| (*ip, a.interface.clone())))
    }

    pub fn list(&self) -> Vec<WorkloadJson> {
        self.ipam
            .allocations()
            .flat_map(|a| {
                a.addresses.iter().map(|ip| WorkloadJson {
                    ip: *ip,
                    interface: a.interface.clone(),
                    handle: Some(a.handle.clone()),
                })
            })
            .collect()
    }

    pub fn allocated(&self) -> usize {
        self.ipam.allocated()
    }

    /// An open pool of each family in which the node has no free address left in its
    /// open blocks (none when `handle` holds its addresses already): where a datastore
    /// node claims a block.
    pub fn full_families(&self, cfg: &Config, handle: &str) -> Vec<IpNet> {
        if self.ipam.get(handle).is_some() {
            return Vec::new();
        }
        families(cfg)
            .into_iter()
            .filter_map(|f| {
                let free: u128 = self
                    .ipam
                    .open_blocks()
                    .filter(|b| Family::of_net(b) == f)
                    .map(|b| {
                        self.capacity(b)
                            .saturating_sub(self.allocated_in(b) as u128)
                    })
                    .sum();
                if free > 0 {
                    return None;
                }
                open_pools(cfg).into_iter().find(|p| Family::of_net(p) == f)
            })
            .collect()
    }

    /// Whether a new pod would get its addresses from the blocks the node has now.
    pub fn has_room(&self, cfg: &Config) -> bool {
        !families(cfg).is_empty() && self.full_families(cfg, "").is_empty()
    }

    pub fn allocated_in(&self, block: &IpNet) -> usize {
        self.ipam.allocated_in(block)
    }

    pub fn capacity(&self, block: &IpNet) -> u128 {
        self.ipam.capacity(block)
    }
}
