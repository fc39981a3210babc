//! The owner of the node's runtime state: see [`super::node`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::protocol::{IpamErrorKind, Response};
use config::Config;
use datastore::{Kv, Snapshot};
use ipnet::IpNet;
use tokio::sync::mpsc;

use super::cluster::Cluster;
use super::node::{Event, NodeState};
use super::pods::Pods;
use super::workloads::{check_in_pools, check_interface, Workloads};
use super::{bfd, settings};

/// How often empty blocks are looked for.
const RELEASE_TICK: Duration = Duration::from_secs(5);

/// Where each new state goes.
pub trait Outputs: Send + Sync + 'static {
    /// `new` replaces `old`: bring the speaker, BFD and the FIB in line with it. Called
    /// in order, one at a time, by the owner.
    fn publish(&self, old: &NodeState, new: Arc<NodeState>) -> impl Future<Output = ()> + Send;
}

pub struct Owner<K: Kv, O: Outputs> {
    out: Arc<O>,
    /// The configuration file as last read and accepted.
    file: Arc<Config>,
    cluster: Option<Arc<Cluster<K>>>,
    pods: Pods,
    workloads: Workloads,
    /// Own blocks, in the order they were taken (datastore mode), or the file's.
    own: Vec<IpNet>,
    /// The datastore's last applied read.
    snap: Option<Arc<Snapshot>>,
    /// When own blocks last changed here: reads started before may not show it.
    own_changed: Instant,
    /// The datastore revision this client had seen when own blocks last changed: a
    /// view at a lower one (a read, or a watch's changes applied) may not show it.
    own_changed_rev: i64,
    /// Own blocks without pods, and since when.
    empty_since: BTreeMap<IpNet, Instant>,
    /// The tunnel address as recorded in the datastore.
    tunnel_held: Option<datastore::Held>,
    /// The live handles last written to the datastore.
    live_sent: Option<std::collections::BTreeMap<String, Vec<IpAddr>>>,
    state: Arc<NodeState>,
}

impl<K: Kv, O: Outputs> Owner<K, O> {
    /// The owner at start: `own` are the blocks the node holds (the file's, or the
    /// datastore's confirmed ones), `snap` the datastore's first read.
    pub fn new(
        out: Arc<O>,
        file: Config,
        cluster: Option<(Arc<Cluster<K>>, Arc<Snapshot>)>,
        workloads: Workloads,
    ) -> anyhow::Result<Owner<K, O>> {
        let (cluster, snap) = match cluster {
            Some((c, s)) => (Some(c), Some(s)),
            None => (None, None),
        };
        let own = match (&cluster, &snap) {
            (Some(c), Some(s)) => s.confirmed_blocks_of(&c.name),
            _ => file.node.blocks.clone(),
        };
        let pods = Pods::load(&file, &own)?;
        let placeholder = Arc::new(NodeState {
            config: Arc::new(file.clone()),
            tunnel: None,
            neighbors: Vec::new(),
            bfd: Vec::new(),
            workloads: Vec::new(),
            workload_list: Vec::new(),
            block_use: BTreeMap::new(),
            allocated: 0,
            borrowed: Vec::new(),
            datastore: None,
        });
        let mut owner = Owner {
            out,
            file: Arc::new(file),
            cluster,
            pods,
            workloads,
            own,
            snap,
            own_changed: Instant::now(),
            own_changed_rev: 0,
            empty_since: BTreeMap::new(),
            tunnel_held: None,
            live_sent: None,
            state: placeholder,
        };
        owner.state = Arc::new(owner.compute());
        Ok(owner)
    }

    /// The state as of now (what the daemon starts with).
    pub fn state(&self) -> Arc<NodeState> {
        self.state.clone()
    }

    /// Applies events until every sender is gone.
    pub async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Event>) {
        let mut tick = tokio::time::interval(RELEASE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = inbox.recv() => match ev {
                    Some(ev) => self.handle(ev).await,
                    None => return,
                },
                // The first tick is at once: releases spooled while the daemon was down
                // are applied before any ADD can be.
                _ = tick.tick() => {
                    self.release_spooled().await;
                    self.release_empty_blocks().await;
                    self.sync_tunnel().await;
                    self.publish_live().await;
                }
            }
        }
    }

    pub async fn handle(&mut self, ev: Event) {
        match ev {
            Event::Reload(new, reply) => {
                let r = self.reload(*new).await;
                let _ = reply.send(r);
            }
            Event::Snapshot(snap, read_at) => self.apply_snapshot(snap, read_at).await,
            Event::Assign(request, reply) => {
                let r = self.assign(request).await;
                let _ = reply.send(r);
            }
            Event::Get(handle, reply) => {
                let _ = reply.send(self.pods.get(&self.state.config, &handle));
            }
            Event::Release(handle, reply) => {
                let r = self.release_handle(&handle).await;
                self.publish().await;
                let _ = reply.send(r);
            }
            Event::Gc(keep, network, reply) => {
                let r = self.collect(&keep, network.as_deref()).await;
                self.publish().await;
                let _ = reply.send(r);
            }
            Event::WorkloadAdd(ip, interface, reply) => {
                let r = self.workload_add(ip, interface);
                self.publish().await;
                let _ = reply.send(r);
            }
            Event::WorkloadDel(ip, reply) => {
                let r = match self.workloads.del(ip) {
                    Ok(true) => Response::Ok {
                        message: format!("workload {ip} removed"),
                    },
                    Ok(false) => Response::Error {
                        message: format!("no workload {ip}"),
                    },
                    Err(e) => Response::Error {
                        message: format!("workload removed but not persisted: {e:#}"),
                    },
                };
                self.publish().await;
                let _ = reply.send(r);
            }
            Event::Status(reply) => {
                let _ = reply.send(self.status());
            }
            #[cfg(test)]
            Event::ReleaseTick => self.release_empty_blocks().await,
        }
    }

    /// The published state for the owner's present fields.
    fn compute(&self) -> NodeState {
        let mut cfg = (*self.file).clone();
        let registered = match (&self.cluster, &self.snap) {
            (Some(c), Some(snap)) => {
                cfg = c.effective(cfg, self.own.clone(), snap);
                let registered = c.registered(snap);
                if !registered {
                    cfg.cluster.nodes.clear();
                }
                registered
            }
            _ => true,
        };
        let neighbors = match (&self.cluster, &self.snap) {
            (Some(_), _) if !registered => Vec::new(),
            (Some(c), Some(snap)) => c.neighbors(&cfg, snap),
            _ => settings::neighbors(&cfg),
        };
        let bfd = bfd::specs(&cfg, &neighbors);
        let mut workloads = self.workloads.pairs();
        workloads.extend(self.pods.workloads());
        let mut workload_list = self.workloads.list();
        workload_list.extend(self.pods.list());
        let block_use = cfg
            .node
            .blocks
            .iter()
            .map(|b| {
                let capacity = u64::try_from(self.pods.capacity(b)).unwrap_or(u64::MAX);
                (*b, (self.pods.allocated_in(b) as u64, capacity))
            })
            .collect();
        NodeState {
            config: Arc::new(cfg),
            tunnel: self.pods.tunnel(),
            neighbors,
            bfd,
            workloads,
            workload_list,
            block_use,
            allocated: self.pods.allocated() as u64,
            borrowed: self.borrowed(),
            datastore: self.snap.clone(),
        }
    }

    /// Publishes the state if it changed; returns once the outputs have it.
    async fn publish(&mut self) {
        self.sync_tunnel().await;
        let new = Arc::new(self.compute());
        if *new == *self.state {
            return;
        }
        let old = std::mem::replace(&mut self.state, new.clone());
        self.out.publish(&old, new).await;
    }

    /// Own blocks changed: IPAM follows (the tunnel address with it), then everyone else.
    async fn set_own(&mut self, own: Vec<IpNet>) {
        self.own = own;
        self.own_changed = Instant::now();
        if let Some(c) = &self.cluster {
            self.own_changed_rev = c.ds.revision_seen();
        }
        self.pods.set_blocks(&self.file, &self.own);
        self.publish().await;
    }

    async fn reload(&mut self, new: Config) -> Result<String, String> {
        let old = self.state.config.clone();
        let candidate = match (&self.cluster, &self.snap) {
            // Blocks and nodes come from the datastore, not from the file.
            (Some(c), Some(snap)) => c.effective(new.clone(), self.own.clone(), snap),
            _ => new.clone(),
        };
        let fixed = settings::restart_only_changes(&old, &candidate);
        if !fixed.is_empty() {
            let msg = format!(
                "configuration refused; the running configuration stays: {} \
                 change only at restart",
                fixed.join(", ")
            );
            tracing::error!("{msg}");
            return Err(msg);
        }
        self.file = Arc::new(new);
        if self.cluster.is_none() {
            self.own = self.file.node.blocks.clone();
        }
        self.pods.set_blocks(&self.file, &self.own);
        self.publish().await;
        let msg = "configuration reloaded".to_string();
        tracing::info!("{msg}");
        Ok(msg)
    }

    /// A read of the datastore: the registered nodes, and which blocks are this node's.
    /// A read that started before the last own change may miss it; it does not change
    /// own blocks. A newer one is the truth: blocks that are no longer confirmed as this
    /// node's stop being announced at once (two announcers of one block must never be),
    /// and blocks confirmed as this node's that it does not use (a claim whose answer was
    /// lost) are taken up.
    async fn apply_snapshot(&mut self, snap: Arc<Snapshot>, read_at: Instant) {
        let Some(c) = self.cluster.clone() else {
            return;
        };
        for why in &snap.invalid {
            tracing::warn!(key = %why, "datastore: undecodable key skipped");
        }
        let mut own = self.own.clone();
        if !c.registered(&snap) {
            if !own.is_empty() || self.snap.as_ref().is_some_and(|s| c.registered(s)) {
                tracing::error!(node = %c.name, "this node was removed from the datastore (`ipipd node remove`): its blocks are withdrawn and its sessions closed; restart ipipd to register it again");
            }
            own.clear();
        } else if read_at >= self.own_changed && snap.revision >= self.own_changed_rev {
            let confirmed = snap.confirmed_blocks_of(&c.name);
            let kept: Vec<IpNet> = own
                .iter()
                .filter(|b| confirmed.contains(b))
                .copied()
                .collect();
            if kept != own {
                tracing::error!(before = ?own, after = ?kept, "own blocks no longer this node's in the datastore: withdrawn");
            }
            own = kept;
            for b in confirmed {
                if !own.contains(&b) {
                    tracing::warn!(block = %b, "the datastore records a block as this node's that it did not use: taken up");
                    own.push(b);
                }
            }
        }
        self.snap = Some(snap);
        if own != self.own {
            self.own = own;
            self.pods.set_blocks(&self.file, &self.own);
        }
        self.publish().await;
    }

    /// CNI ADD: claims a block first when the node has no free address of a family the
    /// pools have, then assigns — one decision, no other event in between.
    async fn assign(&mut self, request: ipam::Request) -> Response {
        if let Some(c) = self.cluster.clone() {
            return self.assign_in_datastore(&c, request).await;
        }
        if !request.requested.is_empty() {
            let r = self.assign_requested_file(request);
            self.publish().await;
            return r;
        }
        let r = self.pods.assign(&self.state.config, request);
        self.publish().await;
        r
    }

    fn workload_add(&mut self, ip: IpAddr, interface: String) -> Response {
        if let Err(message) = check_interface(&interface) {
            return Response::Error { message };
        }
        if let Err(message) = check_in_pools(ip, &self.file.cluster.pools) {
            return Response::Error { message };
        }
        match self.workloads.add(ip, interface.clone()) {
            Ok(()) => Response::Ok {
                message: format!("workload {ip} on {interface} added"),
            },
            Err(e) => Response::Error {
                message: format!("workload added but not persisted: {e:#}"),
            },
        }
    }

    /// Releases that DEL spooled while this daemon did not answer (`super::spool`). The
    /// file is checked again here: an ADD of the handle removes it first, and ADDs are
    /// events of this owner, so a release never hits the fresh allocation.
    async fn release_spooled(&mut self) {
        let socket = self.file.control.socket.clone();
        let pending = super::spool::pending(&socket);
        if pending.is_empty() {
            return;
        }
        for (handle, path) in pending {
            if !path.exists() {
                continue;
            }
            match self.release_handle(&handle).await {
                Response::Released { released } => {
                    tracing::info!(%handle, ?released, "a DEL spooled while ipipd did not answer: released");
                    super::spool::done(&path);
                }
                other => {
                    tracing::error!(%handle, answer = ?other, "a spooled DEL could not be applied; trying again later")
                }
            }
        }
        self.publish().await;
    }

    /// CNI STATUS: an ADD can be served when the node has a free address of every
    /// family, or, with the datastore answering, can claim a block or borrow an address
    /// for each family it lacks one of (as ADD would, judged on the last read).
    fn status(&self) -> Response {
        if let Some(c) = self.cluster.as_ref().filter(|c| !c.reachable()) {
            // Every allocation is recorded there before ADD answers.
            return Response::IpamError {
                kind: IpamErrorKind::Exhausted,
                message: format!(
                    "the datastore is unreachable: node {} cannot record an allocation",
                    c.name
                ),
            };
        }
        if self.pods.has_room(&self.state.config) {
            return Response::Ok {
                message: "addresses available".into(),
            };
        }
        match &self.cluster {
            Some(c) => match self.unservable(&c.name) {
                Some(message) => Response::IpamError {
                    kind: IpamErrorKind::Exhausted,
                    message,
                },
                None => Response::Ok {
                    message: "blocks full; a block can be claimed or an address borrowed".into(),
                },
            },
            None => Response::IpamError {
                kind: IpamErrorKind::Exhausted,
                message: format!(
                    "every address of the node's blocks ({}) is in use",
                    list(&self.own)
                ),
            },
        }
    }

    /// Gives back own blocks that held no pod for `datastore.block_release_grace`: the
    /// tunnel address moves out first (the block holding it stays when no other block
    /// can take it, so a node keeps one IPv4 block), then the block is marked
    /// `releasing`, withdrawn here, and deleted. No ADD can land in between: ADDs are
    /// events of this same owner.
    async fn release_empty_blocks(&mut self) {
        let Some(c) = self.cluster.clone() else {
            return;
        };
        let grace = Duration::from_secs(self.file.datastore.block_release_grace);
        for block in self.empty_for_long(grace) {
            if !self.pods.move_tunnel_out_of(&block) {
                continue;
            }
            self.publish().await;
            let rev = match c.ds.mark_releasing(&c.name, &block).await {
                Ok(Some(rev)) => rev,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%block, error = %e, "cannot release an empty block now; trying later");
                    continue;
                }
            };
            let own = self.own.iter().filter(|b| **b != block).copied().collect();
            self.set_own(own).await;
            match c.ds.finish_release(&c.name, &block, rev).await {
                Ok(_) => tracing::info!(%block, "empty block released"),
                Err(e) => {
                    tracing::warn!(%block, error = %e, "block withdrawn but still marked releasing in the datastore")
                }
            }
        }
        // Releases a crash or an outage interrupted: withdrawn here, still in etcd.
        let Some(snap) = self.snap.clone() else {
            return;
        };
        for b in snap.blocks_of(&c.name) {
            if b.record.state == datastore::BlockState::Releasing && !self.own.contains(&b.net) {
                if let Err(e) = c.ds.finish_release(&c.name, &b.net, b.mod_revision).await {
                    tracing::warn!(block = %b.net, error = %e, "finishing a release");
                }
            }
        }
    }

    /// Own blocks empty of pods for at least `grace`, as of now.
    fn empty_for_long(&mut self, grace: Duration) -> Vec<IpNet> {
        let now = Instant::now();
        self.empty_since.retain(|b, _| self.own.contains(b));
        let mut out = Vec::new();
        for b in &self.own {
            if self.pods.allocated_in(b) > 0 || self.lent(b) {
                self.empty_since.remove(b);
                continue;
            }
            let t = *self.empty_since.entry(*b).or_insert(now);
            if now.duration_since(t) >= grace {
                out.push(*b);
            }
        }
        out
    }
}

fn list(blocks: &[IpNet]) -> String {
    if blocks.is_empty() {
        return "none".into();
    }
    let names: Vec<String> = blocks.iter().map(|b| b.to_string()).collect();
    names.join(", ")
}

#[path = "owner_borrow.rs"]
mod borrow;
#[path = "owner_ipam.rs"]
mod ipam_ds;
#[path = "owner_live.rs"]
mod live;

#[cfg(test)]
#[path = "owner_tests.rs"]
mod tests;
