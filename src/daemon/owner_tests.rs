//! The node-state owner against the in-memory datastore, several nodes at once, with
//! every store operation yielding to the scheduler a number of times proptest picks, so
//! ADDs, DELs, reloads, datastore reads and block releases of all nodes interleave at
//! every await. After each step the cluster-wide invariants are checked on what the
//! nodes publish:
//! - no address is held by two pods, on one node or two;
//! - no tunnel address is a pod's;
//! - no block is announced by two nodes, and every announced block is the node's in the
//!   store;
//! - every pod's address lies in a block its node announces (a block is never released
//!   under a fresh allocation).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use datastore::{Datastore, Interleaved, MemoryKv};
use ipnet::IpNet;
use proptest::prelude::*;

use super::{Outputs, Owner};
use crate::daemon::cluster::Cluster;
use crate::daemon::node::{Event, Inbox, NodeState};
use crate::daemon::workloads::Workloads;
use api::protocol::Response;

/// The outputs of one node: what it published last.
struct Published(ArcSwap<Option<Arc<NodeState>>>);

impl Outputs for Published {
    async fn publish(&self, _old: &NodeState, new: Arc<NodeState>) {
        self.0.store(Arc::new(Some(new)));
        // Publishing reaches the speaker and the FIB across awaits in the daemon.
        tokio::task::yield_now().await;
    }
}

const PREFIX: &str = "/t";

fn config(i: usize, dir: &std::path::Path) -> config::Config {
    config_with(i, dir, "")
}

/// With at most two blocks a node: nodes borrow once they hold two full blocks.
fn config_limited(i: usize, dir: &std::path::Path) -> config::Config {
    config_with(i, dir, "[ipam]\nmax_blocks_per_node = 2\n")
}

fn config_with(i: usize, dir: &std::path::Path, extra: &str) -> config::Config {
    let text = format!(
        "[node]\nname = \"n{i}\"\naddress = \"10.0.0.{}\"\n\
         [cluster]\npools = [\"10.9.0.0/27\"]\nblock_size = 30\n\
         [datastore]\nkind = \"etcd\"\nblock_release_grace = 0\n{extra}\
         [control]\nstate_dir = \"{}\"\nsocket = \"{}/s.sock\"\n",
        i + 1,
        dir.display(),
        dir.display()
    );
    match config::Config::parse(&text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

struct Node {
    inbox: Inbox,
    published: Arc<Published>,
    cluster: Arc<Cluster<Interleaved>>,
    file: config::Config,
}

impl Node {
    fn state(&self) -> Option<Arc<NodeState>> {
        (**self.published.0.load()).clone()
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ipipd-owner-{tag}-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    let _ = std::fs::remove_dir_all(&d);
    if let Err(e) = std::fs::create_dir_all(&d) {
        panic!("{}: {e}", d.display());
    }
    d
}

fn fastrand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

async fn start_node_with(kv: &Interleaved, file: config::Config) -> Node {
    let dir = file.control.state_dir.clone();
    let cluster = match Cluster::join(
        Datastore::new(kv.clone(), PREFIX),
        &file,
        Default::default(),
    )
    .await
    {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("joining: {e:#}"),
    };
    let snap = cluster.view.load_full();
    let published = Arc::new(Published(ArcSwap::from_pointee(None)));
    let workloads = match Workloads::load(&dir) {
        Ok(w) => w,
        Err(e) => panic!("{e:#}"),
    };
    let owner = match Owner::new(
        published.clone(),
        file.clone(),
        Some((cluster.clone(), snap)),
        workloads,
    ) {
        Ok(o) => o,
        Err(e) => panic!("{e:#}"),
    };
    published.0.store(Arc::new(Some(owner.state())));
    let (inbox, events) = Inbox::new();
    tokio::spawn(owner.run(events));
    Node {
        inbox,
        published,
        cluster,
        file,
    }
}

fn pods_of(s: &NodeState) -> Vec<(IpAddr, String)> {
    s.workload_list
        .iter()
        .filter_map(|w| Some((w.ip, w.handle.clone()?)))
        .collect()
}

/// The invariants over what every node published, and the store as it is now.
fn check(nodes: &[Node], kv: &MemoryKv) -> Result<(), String> {
    let states: Vec<Arc<NodeState>> = nodes.iter().filter_map(Node::state).collect();
    let mut holder: BTreeMap<IpAddr, String> = BTreeMap::new();
    let mut announcer: BTreeMap<IpNet, String> = BTreeMap::new();
    let store: BTreeMap<String, String> = kv
        .dump()
        .into_iter()
        .map(|kv| (kv.key, String::from_utf8_lossy(&kv.value).into_owned()))
        .collect();
    for s in &states {
        let name = &s.config.node.name;
        for (ip, handle) in pods_of(s) {
            if let Some(other) = holder.insert(ip, format!("{name}/{handle}")) {
                return Err(format!("{ip} held by {other} and {name}/{handle}"));
            }
            if !s.own_blocks().iter().any(|b| b.contains(&ip)) {
                // Borrowed: announced as a /32, and recorded as this node's in the
                // record of a block that still exists (not released under the pod).
                if !s.borrowed.contains(&ip) {
                    return Err(format!(
                        "{name}: pod {handle} has {ip}, outside its blocks {:?} and not announced as borrowed",
                        s.own_blocks()
                    ));
                }
                let recorded = store.iter().any(|(k, v)| {
                    k.starts_with(&format!("{PREFIX}/ipam/"))
                        && serde_json::from_str::<datastore::AllocationBlock>(v)
                            .is_ok_and(|r| r.holder(&ip).is_some_and(|a| &a.node == name))
                });
                let block_kept = store.iter().any(|(k, v)| {
                    k.starts_with(&format!("{PREFIX}/blocks/"))
                        && k.rsplit('/')
                            .next()
                            .and_then(datastore::model::parse_block_id)
                            .is_some_and(|b| b.contains(&ip))
                        && !v.is_empty()
                });
                if !recorded || !block_kept {
                    return Err(format!(
                        "{name}: borrowed {ip} of pod {handle}: recorded as its {recorded}, block still there {block_kept}"
                    ));
                }
            }
        }
        for b in s.own_blocks() {
            if let Some(other) = announcer.insert(*b, name.clone()) {
                return Err(format!("{b} announced by {other} and {name}"));
            }
            let key = format!("{PREFIX}/blocks/{}", datastore::model::block_id(b));
            let owner_ok = store
                .get(&key)
                .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                .is_some_and(|v| v["node"] == name.as_str());
            if !owner_ok {
                return Err(format!(
                    "{name} announces {b}, which the store does not record as its: {:?}",
                    store.get(&key)
                ));
            }
        }
    }
    for s in &states {
        if let Some(t) = s.tunnel {
            if let Some(pod) = holder.get(&IpAddr::V4(t)) {
                return Err(format!(
                    "{}'s tunnel address {t} is pod {pod}'s",
                    s.config.node.name
                ));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Step {
    Add(usize),
    Del(usize, usize),
    /// Deletes the pod made by the n-th Add of the run.
    DelPod(usize, usize),
    Reload(usize),
    Read(usize),
    Release(usize),
    Settle(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize).prop_map(Step::Add),
        3 => (0..3usize, 0..64usize).prop_map(|(n, p)| Step::Del(n, p)),
        1 => (0..3usize).prop_map(Step::Reload),
        2 => (0..3usize).prop_map(Step::Read),
        2 => (0..3usize).prop_map(Step::Release),
        2 => (1..20u8).prop_map(Step::Settle),
    ]
}

async fn settle(n: u8) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    }
}

/// The nodes' state directories, removed when dropped.
struct Dirs(Vec<PathBuf>);

impl Dirs {
    fn new() -> Dirs {
        Dirs((0..3).map(|i| temp_dir(&format!("n{i}"))).collect())
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn run_steps(
    cfg: fn(usize, &std::path::Path) -> config::Config,
    dirs: &Dirs,
    steps: Vec<Step>,
    yields: Vec<u8>,
) -> Result<Vec<Arc<NodeState>>, String> {
    let rt = runtime();
    rt.block_on(async {
        let mem = MemoryKv::new();
        let kv = Interleaved::new(mem.clone(), yields);
        let mut nodes = Vec::new();
        for (i, d) in dirs.0.iter().enumerate() {
            nodes.push(start_node_with(&kv, cfg(i, d)).await);
        }
        let nodes = Arc::new(nodes);
        // Live pods per node: handle, as the driver made them.
        let live: Arc<Mutex<Vec<BTreeSet<String>>>> =
            Arc::new(Mutex::new(vec![BTreeSet::new(); 3]));
        let mut next_pod = 0usize;
        let mut tasks = Vec::new();
        for s in steps {
            match s {
                Step::Add(n) => {
                    next_pod += 1;
                    let id = format!("c{next_pod}");
                    let (nodes, live) = (nodes.clone(), live.clone());
                    tasks.push(tokio::spawn(async move {
                        let request = ipam::Request {
                            requested: Vec::new(),
                            container_id: id.clone(),
                            ifname: "eth0".into(),
                            interface: format!("cali{next_pod}"),
                            pod: None,
                            network: None,
                        };
                        let r = nodes[n].inbox.ask(|r| Event::Assign(request, r)).await;
                        if let Some(Response::Assigned(a)) = r {
                            live.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_mut(n)
                                .map(|l| l.insert(a.handle));
                        }
                    }));
                }
                Step::Del(n, p) => {
                    let handle = {
                        let mut l = live.lock().unwrap_or_else(PoisonError::into_inner);
                        let set = &mut l[n];
                        let h = set.iter().nth(p % set.len().max(1)).cloned();
                        if let Some(h) = &h {
                            set.remove(h);
                        }
                        h
                    };
                    if let Some(h) = handle {
                        let nodes = nodes.clone();
                        tasks.push(tokio::spawn(async move {
                            nodes[n].inbox.ask(|r| Event::Release(h, r)).await;
                        }));
                    }
                }
                Step::DelPod(n, p) => {
                    let h = format!("c{p}.eth0");
                    live.lock().unwrap_or_else(PoisonError::into_inner)[n].remove(&h);
                    let nodes = nodes.clone();
                    tasks.push(tokio::spawn(async move {
                        nodes[n].inbox.ask(|r| Event::Release(h, r)).await;
                    }));
                }
                Step::Reload(n) => {
                    let nodes = nodes.clone();
                    tasks.push(tokio::spawn(async move {
                        let file = Box::new(nodes[n].file.clone());
                        nodes[n].inbox.ask(|r| Event::Reload(file, r)).await;
                    }));
                }
                Step::Read(n) => {
                    let nodes = nodes.clone();
                    tasks.push(tokio::spawn(async move {
                        let read_at = Instant::now();
                        if let Ok(s) = nodes[n].cluster.ds.snapshot().await {
                            nodes[n].inbox.tell(Event::Snapshot(Arc::new(s), read_at));
                        }
                    }));
                }
                Step::Release(n) => {
                    nodes[n].inbox.tell(Event::ReleaseTick);
                }
                Step::Settle(k) => settle(k).await,
            }
            settle(1).await;
            check(&nodes, &mem)?;
        }
        for t in tasks {
            let _ = t.await;
        }
        // Quiet: a fresh read applied everywhere; then announced == the store's.
        for n in nodes.iter() {
            let read_at = Instant::now();
            if let Ok(s) = n.cluster.ds.snapshot().await {
                n.inbox.ask(|r| Event::Get("none".into(), r)).await;
                n.inbox.tell(Event::Snapshot(Arc::new(s), read_at));
            }
            n.inbox.ask(|r| Event::Get("none".into(), r)).await;
        }
        check(&nodes, &mem)?;
        let snap = match nodes[0].cluster.ds.snapshot().await {
            Ok(s) => s,
            Err(e) => return Err(e.to_string()),
        };
        for n in nodes.iter() {
            let Some(s) = n.state() else { continue };
            let mut want = snap.confirmed_blocks_of(&s.config.node.name);
            let mut have = s.own_blocks().to_vec();
            want.sort();
            have.sort();
            if want != have {
                return Err(format!(
                    "{}: announces {have:?}, the store says {want:?}",
                    s.config.node.name
                ));
            }
        }
        Ok(nodes.iter().filter_map(Node::state).collect())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_address_or_block_is_ever_held_twice_whatever_the_interleaving(
        steps in proptest::collection::vec(step(), 10..70),
        yields in proptest::collection::vec(0u8..4, 0..400),
    ) {
        if let Err(why) = run_steps(config_limited, &Dirs::new(), steps, yields) {
            return Err(TestCaseError::fail(why));
        }
    }
}

/// The first finding, as a sequence: pods fill two blocks, the first block's
/// pods go, the block is released, another node claims it and fills it. The tunnel
/// address moved out of the released block first, so no pod there gets it; and it
/// stays where it is while its block does, across a restart too.
#[test]
fn the_tunnel_address_moves_out_before_its_block_goes_and_never_is_a_pods() {
    let steps = [
        vec![Step::Add(0); 6],
        vec![Step::Settle(50)],
        (1..=3).map(|p| Step::DelPod(0, p)).collect(),
        vec![Step::Settle(50), Step::Release(0), Step::Settle(50)],
        vec![Step::Add(1); 8],
        vec![Step::Settle(50), Step::Release(0), Step::Read(0)],
    ]
    .concat();
    let dirs = Dirs::new();
    let states = match run_steps(config, &dirs, steps, Vec::new()) {
        Ok(s) => s,
        Err(why) => panic!("{why}"),
    };
    let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().ok();
    // Taken with the first block (10.9.0.0/30), moved to the second before the first
    // went back to the pool, which node n1 then claimed and filled.
    assert_eq!(
        states[0].tunnel,
        ip("10.9.0.7"),
        "{:?}",
        states[0].own_blocks()
    );
    assert!(
        states[1]
            .own_blocks()
            .contains(&IpNet::V4("10.9.0.0/30".parse().unwrap_or_default())),
        "{:?}",
        states[1].own_blocks()
    );
    let restarted = restart_tunnel(&states[0]);
    assert_eq!(
        restarted, states[0].tunnel,
        "the tunnel address survives a restart"
    );
}

/// The tunnel address a node reads back from its record at start, over the same blocks.
fn restart_tunnel(state: &NodeState) -> Option<std::net::Ipv4Addr> {
    match crate::daemon::pods::Pods::load(&state.config, state.own_blocks()) {
        Ok(p) => p.tunnel(),
        Err(e) => panic!("{e:#}"),
    }
}

/// The fourth finding: BFD sessions follow the neighbour set, whatever made it.
/// A node that registers after this one started gets a BFD session from it as soon as
/// a read of the datastore shows it (the sessions were computed from the file only).
#[test]
fn a_node_that_registers_later_gets_a_bfd_session() {
    let dirs = Dirs::new();
    let rt = runtime();
    rt.block_on(async {
        let kv = Interleaved::new(MemoryKv::new(), Vec::new());
        let with_bfd = |i: usize| {
            let mut c = config(i, &dirs.0[i]);
            c.bfd.enabled = true;
            c
        };
        let first = start_node_with(&kv, with_bfd(0)).await;
        let peers = |n: &Node| -> Vec<IpAddr> {
            n.state()
                .map(|s| s.bfd.iter().map(|b| b.peer).collect())
                .unwrap_or_default()
        };
        assert!(peers(&first).is_empty(), "alone: no session");
        let _second = start_node_with(&kv, with_bfd(1)).await;
        let read_at = Instant::now();
        let snap = match first.cluster.ds.snapshot().await {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("{e}"),
        };
        first.inbox.tell(Event::Snapshot(snap, read_at));
        first.inbox.ask(|r| Event::Get("none".into(), r)).await;
        assert_eq!(peers(&first), vec![IpAddr::from([10, 0, 0, 2])]);
        let neighbors: Vec<IpAddr> = first
            .state()
            .map(|s| s.neighbors.iter().map(|n| n.address).collect())
            .unwrap_or_default();
        assert_eq!(neighbors, vec![IpAddr::from([10, 0, 0, 2])]);
    });
}

#[path = "pool_claim_tests.rs"]
mod pools;

#[path = "owner_wipe_tests.rs"]
mod wipe;

#[path = "owner_status_tests.rs"]
mod status;

/// n1 reads the store and releases its empty blocks; then both nodes read it.
fn n1_releases_and_both_read() -> Vec<Step> {
    vec![
        Step::Settle(50),
        Step::Read(1),
        Step::Settle(50),
        Step::Release(1),
        Step::Settle(50),
        Step::Read(0),
        Step::Read(1),
        Step::Settle(50),
    ]
}

/// Borrowing, as a sequence: node n1 holds two blocks, n0 fills its two (its limit)
/// and borrows from n1's block with room; that block, emptied of n1's own pods, lends
/// an address and is kept; once the borrowed pod is deleted it is given back.
#[test]
fn a_node_at_its_block_limit_borrows_and_the_lending_block_is_kept_until_freed() {
    let phase1 = [
        vec![Step::Add(1); 4],
        vec![Step::Settle(50)],
        vec![Step::Add(0); 8],
        vec![Step::Settle(50)],
        // n1's pod in its second block goes: only n0's borrowed address is left there.
        vec![Step::DelPod(1, 4)],
        n1_releases_and_both_read(),
    ]
    .concat();
    let dirs = Dirs::new();
    let states = match run_steps(config_limited, &dirs, phase1.clone(), Vec::new()) {
        Ok(s) => s,
        Err(why) => panic!("{why}"),
    };
    let (n0, n1) = (&states[0], &states[1]);
    assert_eq!(n0.own_blocks().len(), 2, "{:?}", n0.own_blocks());
    assert_eq!(
        n0.borrowed.len(),
        1,
        "n0's eighth pod borrows: {:?}",
        n0.workload_list
    );
    let lent = n0.borrowed[0];
    assert!(
        n1.own_blocks().iter().any(|b| b.contains(&lent)),
        "the block lending {lent} is kept by n1: {:?}",
        n1.own_blocks()
    );
    assert!(
        n0.announced().contains(&IpNet::from(lent)),
        "n0 announces {lent}/32: {:?}",
        n0.announced()
    );

    // The borrowed pod (the 12th ADD) goes: the block is empty and given back.
    let dirs = Dirs::new();
    let phase2 = [
        phase1,
        vec![Step::DelPod(0, 12)],
        n1_releases_and_both_read(),
    ]
    .concat();
    let states = match run_steps(config_limited, &dirs, phase2, Vec::new()) {
        Ok(s) => s,
        Err(why) => panic!("{why}"),
    };
    assert!(states[0].borrowed.is_empty(), "{:?}", states[0].borrowed);
    assert!(
        !states[1].own_blocks().iter().any(|b| b.contains(&lent)),
        "the emptied block is given back: {:?}",
        states[1].own_blocks()
    );
}

/// A record that cannot be written undoes the allocation: the ADD answers a storage
/// error, nothing stays allocated, and once the record can be written the same request
/// is served.
#[test]
fn an_unwritable_record_undoes_the_allocation() {
    use api::protocol::{IpamErrorKind, Response};
    let dirs = Dirs::new();
    let dir = &dirs.0[0];
    let cfg = config(0, dir);
    let block = IpNet::V4("10.9.0.0/30".parse().unwrap_or_default());
    let mut pods = match crate::daemon::pods::Pods::load(&cfg, &[block]) {
        Ok(p) => p,
        Err(e) => panic!("{e:#}"),
    };
    let request = ipam::Request {
        requested: Vec::new(),
        container_id: "c0".into(),
        ifname: "eth0".into(),
        interface: "calic0".into(),
        pod: None,
        network: None,
    };
    // The state directory replaced by a file: no new copy of the record can be made.
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = std::fs::write(dir, b"not a directory") {
        panic!("{e}");
    }
    match pods.assign(&cfg, request.clone()) {
        Response::IpamError {
            kind: IpamErrorKind::Storage,
            message,
        } => assert!(message.contains("nothing was allocated"), "{message}"),
        other => panic!("an ADD with an unwritable record answered {other:?}"),
    }
    assert!(pods.allocation(&request.handle()).is_none());
    let _ = std::fs::remove_file(dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("{e}");
    }
    match pods.assign(&cfg, request.clone()) {
        Response::Assigned(_) => {}
        other => panic!("the ADD after the record is writable answered {other:?}"),
    }
    assert!(pods.allocation(&request.handle()).is_some());
}
