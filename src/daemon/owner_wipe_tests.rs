//! Allocations in the datastore: nodes stop, restart, and lose their `state_dir`
//! (ipam.json) at random between ADDs and DELs, and no address is ever on two live
//! pods; a node that lost its record takes its pods back from etcd; a requested
//! address in use is refused with nothing left behind.

use super::*;

/// One node and its owner task.
struct Running {
    node: Node,
    task: tokio::task::JoinHandle<()>,
}

async fn boot(kv: &Interleaved, i: usize, dir: &std::path::Path) -> Running {
    let file = config(i, dir);
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
    let workloads = Workloads::load(dir).unwrap_or_else(|e| panic!("{e:#}"));
    let mut owner = Owner::new(
        published.clone(),
        file.clone(),
        Some((cluster.clone(), snap)),
        workloads,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    owner.rebuild_from_datastore().await;
    published.0.store(Arc::new(Some(owner.state())));
    let (inbox, events) = Inbox::new();
    let task = tokio::spawn(owner.run(events));
    Running {
        node: Node {
            inbox,
            published,
            cluster,
            file,
        },
        task,
    }
}

async fn stop(r: Running) {
    drop(r.node);
    let _ = r.task.await;
}

#[derive(Debug, Clone)]
enum Life {
    Add(usize),
    Del(usize, usize),
    Restart(usize),
    /// Stops the node, removes its `state_dir`, starts it again.
    Wipe(usize),
}

fn life() -> impl Strategy<Value = Life> {
    prop_oneof![
        6 => (0..2usize).prop_map(Life::Add),
        3 => (0..2usize, 0..64usize).prop_map(|(n, p)| Life::Del(n, p)),
        1 => (0..2usize).prop_map(Life::Restart),
        2 => (0..2usize).prop_map(Life::Wipe),
    ]
}

fn request(id: &str, requested: Vec<IpAddr>) -> ipam::Request {
    ipam::Request {
        requested,
        container_id: id.into(),
        ifname: "eth0".into(),
        interface: format!("cali{id}"),
        pod: None,
        network: None,
    }
}

/// Runs `steps` on two nodes; the live pods (as the driver made them) never share an
/// address, and every node publishes each of its live pods after any restart.
fn run_life(dirs: &Dirs, steps: Vec<Life>) -> Result<(), String> {
    runtime().block_on(async {
        let kv = Interleaved::new(MemoryKv::new(), Vec::new());
        let mut nodes = Vec::new();
        for i in 0..2 {
            nodes.push(Some(boot(&kv, i, &dirs.0[i]).await));
        }
        // handle → (node, address) of the pods alive now.
        let mut live: BTreeMap<String, (usize, IpAddr)> = BTreeMap::new();
        let mut next = 0usize;
        for s in steps {
            match s {
                Life::Add(n) => {
                    next += 1;
                    let Some(r) = &nodes[n] else { continue };
                    let req = request(&format!("c{next}"), Vec::new());
                    let answer = r.node.inbox.ask(|tx| Event::Assign(req, tx)).await;
                    if let Some(Response::Assigned(a)) = answer {
                        let ip = a.addresses[0];
                        if let Some((h, _)) = live.iter().find(|(_, (_, x))| *x == ip) {
                            return Err(format!("{ip} given to {} while {h} holds it", a.handle));
                        }
                        live.insert(a.handle, (n, ip));
                    }
                }
                Life::Del(n, p) => {
                    let mine: Vec<String> = live
                        .iter()
                        .filter(|(_, (m, _))| *m == n)
                        .map(|(h, _)| h.clone())
                        .collect();
                    let Some(h) = mine.get(p % mine.len().max(1)).cloned() else {
                        continue;
                    };
                    let Some(r) = &nodes[n] else { continue };
                    let answer = r.node.inbox.ask(|tx| Event::Release(h.clone(), tx)).await;
                    if matches!(answer, Some(Response::Released { .. })) {
                        live.remove(&h);
                    }
                }
                Life::Restart(n) | Life::Wipe(n) => {
                    if let Some(r) = nodes[n].take() {
                        stop(r).await;
                    }
                    if matches!(s, Life::Wipe(_)) {
                        let _ = std::fs::remove_file(dirs.0[n].join("ipam.json"));
                    }
                    nodes[n] = Some(boot(&kv, n, &dirs.0[n]).await);
                    // The node routes to every pod it had.
                    let Some(state) = nodes[n].as_ref().and_then(|r| r.node.state()) else {
                        return Err(format!("n{n} published nothing"));
                    };
                    let routed: BTreeSet<(IpAddr, String)> = pods_of(&state).into_iter().collect();
                    for (h, (m, ip)) in &live {
                        if *m == n && !routed.contains(&(*ip, h.clone())) {
                            return Err(format!(
                                "after {s:?}: n{n} lost its pod {h} ({ip}): {routed:?}"
                            ));
                        }
                    }
                    if let Some(t) = state.tunnel {
                        if let Some((h, _)) = live.iter().find(|(_, (_, x))| *x == IpAddr::V4(t)) {
                            return Err(format!(
                                "after {s:?}: n{n}'s tunnel has {h}'s address {t}"
                            ));
                        }
                    }
                }
            }
        }
        for r in nodes.into_iter().flatten() {
            stop(r).await;
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn no_address_is_on_two_live_pods_whatever_wipes_and_restarts(
        steps in proptest::collection::vec(life(), 5..60),
    ) {
        if let Err(why) = run_life(&Dirs::new(), steps) {
            return Err(TestCaseError::fail(why));
        }
    }
}

/// The plain case, as a user meets it: pods on a node, its `state_dir` wiped, more pods:
/// none gets an address a pod holds, and the node still routes to the old ones.
#[test]
fn a_wiped_node_takes_its_pods_back_from_the_datastore() {
    let steps = [
        vec![Life::Add(0); 3],
        vec![Life::Wipe(0)],
        vec![Life::Add(0); 5],
        vec![Life::Del(0, 0), Life::Wipe(0), Life::Add(0), Life::Add(0)],
    ]
    .concat();
    if let Err(why) = run_life(&Dirs::new(), steps) {
        panic!("{why}");
    }
}

#[test]
fn a_requested_address_is_given_once_and_a_refusal_leaves_nothing_behind() {
    let dirs = Dirs::new();
    runtime().block_on(async {
        let mem = MemoryKv::new();
        let kv = Interleaved::new(mem.clone(), Vec::new());
        let r = boot(&kv, 0, &dirs.0[0]).await;
        // The first address of a block no node holds: the tunnel, placed in the block
        // claimed for it, takes another.
        let want: IpAddr = "10.9.0.20".parse().unwrap_or_else(|e| panic!("{e}"));
        let ask = |id: &str, ips: Vec<IpAddr>| {
            let req = request(id, ips);
            r.node.inbox.ask(|tx| Event::Assign(req, tx))
        };
        match ask("a", vec![want]).await {
            Some(Response::Assigned(a)) => assert_eq!(a.addresses, vec![want]),
            other => panic!("first request: {other:?}"),
        }
        let before = mem.dump();
        match ask("b", vec![want]).await {
            Some(Response::IpamError { message, .. }) => {
                assert!(
                    message.contains("10.9.0.20 is in use by a.eth0"),
                    "{message}"
                )
            }
            other => panic!("second request: {other:?}"),
        }
        let outside: IpAddr = "10.99.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        match ask("c", vec![outside]).await {
            Some(Response::IpamError { message, .. }) => {
                assert!(message.contains("in no pool"), "{message}")
            }
            other => panic!("outside every pool: {other:?}"),
        }
        assert_eq!(
            mem.dump(),
            before,
            "a refused request changed the datastore"
        );
        let state = r.node.state().unwrap_or_else(|| panic!("no state"));
        assert_eq!(
            state.tunnel,
            "10.9.0.21".parse().ok(),
            "the tunnel's address"
        );
        let handles: Vec<String> = pods_of(&state).into_iter().map(|(_, h)| h).collect();
        assert_eq!(handles, ["a.eth0"]);
        stop(r).await;
    });
}
