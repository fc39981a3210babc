//! `datastore.kind = "etcd"`: the node registers itself, peers with every registered
//! node, and claims and releases its blocks through the datastore.
//!
//! The node-state owner (`super::owner`) applies each read of the datastore and makes
//! the claims and releases; this module connects, reads and watches, and turns a read
//! into the sessions and configuration the owner publishes.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use bgp::speaker::{NeighborConfig, NeighborKind};
use config::Config;

use super::node::{Event, Inbox};
use super::vtep;
use datastore::{
    Datastore, EtcdKv, EtcdSettings, Kv, NodeRecord, PoolLayout, PoolsRecord, Snapshot,
};
use ipnet::IpNet;

/// Longest a CNI ADD waits for a block claim.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(10);
/// Full reads at least this many times less often than `datastore.resync` while
/// changes keep coming: the view the watch's changes built is replaced by the whole
/// prefix now and then, at a cost to etcd that stays small with a thousand nodes.
const FULL_READ_FACTOR: u32 = 10;
/// Pause between attempts while etcd is unreachable.
const RETRY: Duration = Duration::from_secs(1);

pub struct Cluster<K: Kv = EtcdKv> {
    pub ds: Datastore<K>,
    pub name: String,
    record: NodeRecord,
    /// The MACs of the node's VXLAN devices ([`vtep::own`]).
    macs: vtep::Macs,
    /// The last full read.
    pub view: ArcSwap<Snapshot>,
    reachable: AtomicBool,
    /// When the last full read succeeded (`ipipd status`).
    last_sync: std::sync::Mutex<SystemTime>,
    /// `datastore.resync`: a full read after this long with nothing on the watch (a
    /// watch on a member that lost its quorum can stay open and silent).
    resync: Duration,
}

fn settings(cfg: &Config) -> EtcdSettings {
    let d = &cfg.datastore;
    EtcdSettings {
        endpoints: d.endpoints.clone(),
        ca_file: d.ca_file.clone(),
        cert_file: d.cert_file.clone(),
        key_file: d.key_file.clone(),
        dial_timeout: Duration::from_millis(d.dial_timeout_ms),
        request_timeout: Duration::from_millis(d.request_timeout_ms),
    }
}

fn layout(p: &config::Pool) -> PoolLayout {
    PoolLayout {
        cidr: p.cidr,
        block_size: p.block_size,
    }
}

/// What every node must agree on: the pools and their block sizes.
pub fn pools_record(cfg: &Config) -> PoolsRecord {
    let layouts: Vec<PoolLayout> = cfg.pools.iter().map(layout).collect();
    PoolsRecord::new(&layouts, cfg.cluster.block_size, cfg.cluster.block_size_v6)
}

/// Why no pool of the family of `family_of` is open to this node, pool by pool.
fn none_open(cfg: &Config, family_of: &IpNet) -> String {
    let family = if family_of.addr().is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    };
    let why: Vec<String> = cfg
        .pools
        .iter()
        .filter(|p| p.cidr.addr().is_ipv4() == family_of.addr().is_ipv4())
        .map(|p| {
            if p.disabled {
                format!("{} is disabled", p.cidr)
            } else {
                format!(
                    "{}: node_selector {:?} does not select this node",
                    p.cidr,
                    p.node_selector.as_str()
                )
            }
        })
        .collect();
    let labels: Vec<String> = cfg
        .node
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "no {family} pool is open to this node (labels: {}): {}",
        if labels.is_empty() {
            "none".to_owned()
        } else {
            labels.join(",")
        },
        if why.is_empty() {
            "there is none".to_owned()
        } else {
            why.join("; ")
        }
    )
}

/// The node's record, with the MACs of its VXLAN devices ([`vtep::recorded`]).
pub fn node_record(cfg: &Config, macs: vtep::Macs) -> NodeRecord {
    let (vxlan_mac, vxlan_mac_v6) = vtep::recorded(cfg, macs);
    NodeRecord {
        name: cfg.node.name.clone(),
        address: cfg.node.address,
        address_v6: cfg.node.address_v6,
        asn: cfg.node.asn,
        port: cfg.bgp.port,
        rr_cluster_id: cfg.bgp.route_reflector_cluster_id,
        vxlan_mac,
        vxlan_mac_v6,
    }
}

impl Cluster {
    /// Connects to etcd; see [`Cluster::join`].
    pub async fn connect(cfg: &Config, kernel: vtep::Macs) -> anyhow::Result<Cluster> {
        let kv = EtcdKv::new(&settings(cfg)).context("setting up the etcd client")?;
        Cluster::join(Datastore::new(kv, &cfg.datastore.prefix), cfg, kernel).await
    }
}

impl<K: Kv> Cluster<K> {
    /// Checks the pools, registers the node (with the MACs of its VXLAN devices: the
    /// record's, else `kernel`'s, else fresh ones, see [`vtep::own`]) and finishes
    /// interrupted claims; waits (retrying) while the store is unreachable.
    pub async fn join(
        ds: Datastore<K>,
        cfg: &Config,
        kernel: vtep::Macs,
    ) -> anyhow::Result<Cluster<K>> {
        let pools = pools_record(cfg);
        let mut warned = false;
        let (record, macs, snap) = loop {
            let attempt = async {
                ds.ensure_pools(&pools).await?;
                let before = ds.node(&cfg.node.name).await?;
                let macs = vtep::own(cfg, before.as_ref(), kernel);
                let record = node_record(cfg, macs);
                ds.register(&record).await?;
                ds.recover(&record.name).await?;
                Ok::<_, datastore::Error>((record, macs, ds.snapshot().await?))
            };
            match attempt.await {
                Ok(s) => break s,
                Err(e @ datastore::Error::Unreachable { .. }) => {
                    if !warned {
                        tracing::warn!(error = %e, "waiting for etcd to register this node");
                        warned = true;
                    }
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => return Err(e).context("joining the cluster datastore"),
            }
        };
        for why in &snap.invalid {
            tracing::warn!(key = %why, "datastore: undecodable key skipped");
        }
        tracing::info!(node = %record.name, nodes = snap.nodes.len(), blocks = ?snap.confirmed_blocks_of(&record.name), revision = snap.revision, vxlan_mac = ?macs.v4.map(datastore::Mac), vxlan_mac_v6 = ?macs.v6.map(datastore::Mac), "registered in the datastore");
        Ok(Cluster {
            ds,
            name: record.name.clone(),
            record,
            macs,
            view: ArcSwap::from_pointee(snap),
            reachable: AtomicBool::new(true),
            last_sync: std::sync::Mutex::new(SystemTime::now()),
            resync: Duration::from_secs(cfg.datastore.resync),
        })
    }

    /// The file's configuration with this node's blocks and the other nodes from `snap`.
    pub fn effective(&self, mut cfg: Config, own_blocks: Vec<IpNet>, snap: &Snapshot) -> Config {
        cfg.node.blocks = own_blocks;
        cfg.cluster.nodes = if cfg.cluster.mesh {
            snap.nodes
                .values()
                .filter(|n| n.name != self.name)
                .map(|n| IpAddr::V4(n.address))
                .collect()
        } else {
            Vec::new()
        };
        cfg
    }

    /// The sessions to run: the configuration's (mesh over `cluster.nodes` and explicit
    /// peers) plus, without a mesh, reflector ↔ client sessions between registered nodes.
    pub fn neighbors(&self, cfg: &Config, snap: &Snapshot) -> Vec<NeighborConfig> {
        let mut out = super::settings::neighbors(cfg);
        if cfg.cluster.mesh {
            return out;
        }
        let me_rr = cfg.bgp.route_reflector_cluster_id.is_some();
        for n in snap.nodes.values().filter(|n| n.name != self.name) {
            let address = IpAddr::V4(n.address);
            if out.iter().any(|o| o.address == address) {
                continue;
            }
            let kind = match (me_rr, n.rr_cluster_id.is_some()) {
                (true, true) => NeighborKind::Mesh,
                (true, false) => NeighborKind::RrClient,
                (false, true) => NeighborKind::RouteReflector,
                (false, false) => continue,
            };
            out.push(NeighborConfig {
                address,
                asn: n.asn,
                port: cfg.bgp.port,
                kind,
                passive: false,
                password: cfg.cluster.mesh_password.clone(),
                ttl_security: false,
                max_prefixes: None,
                shutdown: false,
            });
        }
        out
    }

    /// Whether the last request to the store had an answer.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::SeqCst)
    }

    /// When the last full read succeeded.
    pub fn last_sync(&self) -> SystemTime {
        *self
            .last_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a full read as the current view.
    fn synced(&self, snap: Arc<Snapshot>) {
        self.view.store(snap);
        *self
            .last_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = SystemTime::now();
    }

    /// A request to the store failed: if etcd was out of reach, say so (`status`, CNI
    /// STATUS) until the next full read succeeds.
    pub fn note_error(&self, e: &datastore::Error) {
        if matches!(
            e,
            datastore::Error::Unreachable { .. } | datastore::Error::OutcomeUnknown { .. }
        ) {
            self.set_reachable(false, Some(e));
        }
    }

    fn set_reachable(&self, ok: bool, error: Option<&datastore::Error>) {
        let was = self.reachable.swap(ok, Ordering::SeqCst);
        match (was, ok, error) {
            (true, false, Some(e)) => {
                tracing::error!(error = %e, "etcd unreachable: sessions, routes and pods stay as they are; new block claims fail until it is back")
            }
            (false, true, _) => tracing::info!("etcd reachable again; state read in full"),
            _ => {}
        }
    }

    /// Claims a block of the family of `family_of` from the pools of `cfg` open to this
    /// node (not disabled, its labels selected), in each pool's block size; bounded by
    /// [`CLAIM_TIMEOUT`]. `cfg` is the running configuration: `disabled` and
    /// `node_selector` follow reloads; CIDRs and sizes are the ones checked at join.
    pub async fn claim(&self, cfg: &Config, family_of: &IpNet) -> Result<IpNet, String> {
        let open: Vec<PoolLayout> = cfg
            .open_pools()
            .filter(|p| p.cidr.addr().is_ipv4() == family_of.addr().is_ipv4())
            .map(layout)
            .collect();
        if open.is_empty() {
            return Err(none_open(cfg, family_of));
        }
        let start = Instant::now();
        let r =
            tokio::time::timeout(CLAIM_TIMEOUT, self.ds.claim(&self.name, &open, family_of)).await;
        match r {
            Ok(Ok(b)) => {
                tracing::info!(block = %b, elapsed_ms = start.elapsed().as_millis() as u64, "block claimed");
                Ok(b)
            }
            Ok(Err(e)) => {
                if matches!(e, datastore::Error::Unreachable { .. }) {
                    self.set_reachable(false, Some(&e));
                }
                Err(format!("claiming a block from the datastore: {e}"))
            }
            Err(_) => Err(format!(
                "claiming a block from the datastore: no answer within {}s",
                CLAIM_TIMEOUT.as_secs()
            )),
        }
    }
}

/// Keeps the view current: full read, then watch from the next revision and apply the
/// changes it reports to the view (no read per change: with N nodes a read per change
/// would cost etcd N ranges of the whole prefix for every write); a broken watch, a
/// compaction gap, a view that no longer counts as many keys as etcd after a quiet
/// `datastore.resync` period, or [`FULL_READ_FACTOR`] times that since the last read
/// means another full read.
pub async fn sync<K: Kv>(cluster: Arc<Cluster<K>>, owner: Inbox) {
    loop {
        let read_at = Instant::now();
        let snap = match cluster.ds.snapshot().await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                cluster.set_reachable(false, Some(&e));
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        cluster.set_reachable(true, None);
        let revision = snap.revision;
        cluster.synced(snap.clone());
        if !owner.tell(Event::Snapshot(snap.clone(), read_at)) {
            return;
        }
        let mut watch = match cluster.ds.watch(revision + 1).await {
            Ok(w) => w,
            Err(e) => {
                cluster.set_reachable(false, Some(&e));
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut view = snap;
        let last_read = Instant::now();
        let mut last_heard = last_read;
        loop {
            match tokio::time::timeout(cluster.resync, watch.recv()).await {
                Ok(Some(datastore::WatchEvent::Changed { revision, changes })) => {
                    // Changes arrive in bursts (a claim is three transactions): the
                    // owner gets one view per burst.
                    let seen_at = Instant::now();
                    let mut next = (*view).clone();
                    next.apply(cluster.ds.keys(), revision, &changes);
                    match rest_of_burst(&mut watch, &mut next, cluster.ds.keys()) {
                        Burst::Changes => {}
                        Burst::Gap { compact_revision } => {
                            tracing::warn!(
                                compact_revision,
                                "etcd compacted past the watch: reading everything again"
                            );
                            break;
                        }
                        Burst::Ended => {
                            tracing::info!("etcd watch broken: reading everything again");
                            break;
                        }
                    }
                    let s = Arc::new(next);
                    cluster.synced(s.clone());
                    if !owner.tell(Event::Snapshot(s.clone(), seen_at)) {
                        return;
                    }
                    view = s;
                    last_heard = Instant::now();
                }
                Ok(Some(datastore::WatchEvent::Compacted { compact_revision })) => {
                    tracing::warn!(
                        compact_revision,
                        "etcd compacted past the watch: reading everything again"
                    );
                    break;
                }
                Ok(None) => {
                    tracing::info!("etcd watch broken: reading everything again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
                Err(_) => {}
            }
            if last_read.elapsed() >= cluster.resync * FULL_READ_FACTOR {
                // While changes keep coming, a full read now and then all the same.
                break;
            }
            if last_heard.elapsed() >= cluster.resync {
                // A watch can be live and still silent about a member that lost quorum:
                // after a quiet period, one small read (the key count and the latest
                // write: linearizable, which such a member refuses) says whether the
                // view missed anything; only then a full read. At N nodes a full read each would cost etcd N reads of
                // the whole prefix per period.
                match cluster.ds.is_current(&view).await {
                    Ok(true) => last_heard = Instant::now(),
                    Ok(false) => {
                        tracing::info!("the view no longer matches etcd: reading everything again");
                        break;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "etcd cannot be asked whether the view is current: reading everything again");
                        break;
                    }
                }
            }
        }
    }
}

/// What followed the first change of a burst on the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Burst {
    /// Only changes (or nothing): applied to the view.
    Changes,
    /// etcd cancelled the watch with a compaction notice: the watch is dead, so the
    /// view alone would leave the node deaf to what comes next.
    Gap { compact_revision: i64 },
    /// The watch ended.
    Ended,
}

/// Applies what is already queued behind a change to `view`, so that a burst (a claim
/// is three transactions) makes one view; a compaction notice or the end of the watch
/// among it is not dropped with the changes.
fn rest_of_burst(
    watch: &mut datastore::kv::Watch,
    view: &mut datastore::Snapshot,
    keys: &datastore::Keys,
) -> Burst {
    use tokio::sync::mpsc::error::TryRecvError;
    loop {
        match watch.try_recv() {
            Ok(datastore::WatchEvent::Changed { revision, changes }) => {
                view.apply(keys, revision, &changes)
            }
            Ok(datastore::WatchEvent::Compacted { compact_revision }) => {
                return Burst::Gap { compact_revision }
            }
            Err(TryRecvError::Empty) => return Burst::Changes,
            Err(TryRecvError::Disconnected) => return Burst::Ended,
        }
    }
}

impl<K: Kv> Cluster<K> {
    pub fn registered(&self, snap: &Snapshot) -> bool {
        snap.nodes.contains_key(&self.record.name)
    }

    /// The MACs of this node's VXLAN devices, as chosen when it registered.
    pub fn own_macs(&self) -> vtep::Macs {
        self.macs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastore::{Change, Keys, Snapshot, WatchEvent};

    fn watch(
        events: &[WatchEvent],
        open: bool,
    ) -> (
        datastore::kv::Watch,
        Option<tokio::sync::mpsc::Sender<WatchEvent>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for e in events {
            tx.try_send(e.clone()).expect("room in the channel");
        }
        (rx, open.then_some(tx))
    }

    fn node(rev: i64, name: &str) -> WatchEvent {
        WatchEvent::Changed {
            revision: rev,
            changes: vec![Change::Put(datastore::kv::KeyValue {
                key: format!("/ipipd/nodes/{name}"),
                value: format!(r#"{{"name":"{name}","address":"10.0.0.{rev}","asn":64512}}"#)
                    .into_bytes(),
                mod_revision: rev,
                version: 1,
            })],
        }
    }

    #[test]
    fn a_burst_of_changes_is_one_view_with_all_of_them() {
        let keys = Keys::new("/ipipd");
        let (mut w, _tx) = watch(&[node(7, "b"), node(8, "c")], true);
        let mut view = Snapshot::default();
        assert_eq!(rest_of_burst(&mut w, &mut view, &keys), Burst::Changes);
        assert!(w.try_recv().is_err(), "the burst was taken whole");
        assert_eq!(view.nodes.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(view.revision, 8);
    }

    #[test]
    fn a_compaction_notice_behind_changes_is_not_dropped() {
        // etcd sends what it had queued for a stalled watch, then cancels it with the
        // compaction notice: the two arrive together.
        let (mut w, _tx) = watch(
            &[
                node(7, "b"),
                WatchEvent::Compacted {
                    compact_revision: 418,
                },
                node(8, "c"),
            ],
            true,
        );
        assert_eq!(
            rest_of_burst(&mut w, &mut Snapshot::default(), &Keys::new("/ipipd")),
            Burst::Gap {
                compact_revision: 418
            }
        );
    }

    #[test]
    fn the_end_of_the_watch_behind_changes_is_not_dropped() {
        let (mut w, _tx) = watch(&[node(7, "b")], false);
        assert_eq!(
            rest_of_burst(&mut w, &mut Snapshot::default(), &Keys::new("/ipipd")),
            Burst::Ended
        );
    }
}
