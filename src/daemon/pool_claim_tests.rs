//! Pools as tables with the datastore: a node claims only from the pools open to it
//! (not disabled, its labels selected), each cut in its own block size, and a reload
//! that closes a pool leaves its blocks and pods alone while new addresses come from
//! elsewhere.

use super::*;

fn with_pools(dir: &std::path::Path, labels: &str, pools: &str) -> config::Config {
    let text = format!(
        "[node]\nname = \"n0\"\naddress = \"10.0.0.1\"\nlabels = {labels}\n{pools}\
         [datastore]\nkind = \"etcd\"\nblock_release_grace = 3600\n\
         [control]\nstate_dir = \"{d}\"\nsocket = \"{d}/s.sock\"\n",
        d = dir.display()
    );
    match config::Config::parse(&text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn store() -> Interleaved {
    Interleaved::new(MemoryKv::new(), Vec::new())
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn blocks_come_only_from_open_pools_in_their_own_size() {
    let dirs = Dirs::new();
    runtime().block_on(async {
        let pools = |first_disabled: bool| {
            format!(
                "[[pool]]\ncidr = \"10.1.0.0/24\"\ndisabled = {first_disabled}\n\
                 [[pool]]\ncidr = \"10.2.0.0/24\"\nnode_selector = \"rack == 'r2'\"\n\
                 [[pool]]\ncidr = \"10.3.0.0/26\"\nblock_size = 28\n\
                 node_selector = \"has(rack) && rack != 'r2'\"\n"
            )
        };
        let file = with_pools(&dirs.0[0], "{ rack = \"r1\" }", &pools(true));
        let c =
            match Cluster::join(Datastore::new(store(), PREFIX), &file, Default::default()).await {
                Ok(c) => c,
                Err(e) => panic!("{e:#}"),
            };
        let v4 = net("10.0.0.0/8");
        let mut got = Vec::new();
        let full = loop {
            match c.claim(&file, &v4).await {
                Ok(b) if got.len() < 8 => got.push(b),
                Ok(b) => panic!("a ninth block {b}: {got:?}"),
                Err(e) => break e,
            }
        };
        // Disabled, and not selected: nothing from 10.1 or 10.2, /28s from 10.3.
        let want: Vec<IpNet> = [
            "10.3.0.0/28",
            "10.3.0.16/28",
            "10.3.0.32/28",
            "10.3.0.48/28",
        ]
        .into_iter()
        .map(net)
        .collect();
        assert_eq!(got, want);
        assert!(full.contains("no free block"), "{full}");

        // A reload enables the first pool: it gives blocks of the default size.
        let enabled = with_pools(&dirs.0[0], "{ rack = \"r1\" }", &pools(false));
        assert_eq!(c.claim(&enabled, &v4).await, Ok(net("10.1.0.0/26")));

        // No labels: no IPv4 pool is open, and the answer says why, pool by pool.
        let none = with_pools(&dirs.0[0], "{}", &pools(true));
        let why = c.claim(&none, &v4).await.err().unwrap_or_default();
        for part in [
            "no IPv4 pool is open to this node (labels: none)",
            "10.1.0.0/24 is disabled",
            "10.2.0.0/24: node_selector \"rack == 'r2'\" does not select this node",
        ] {
            assert!(why.contains(part), "{part:?} in {why}");
        }
    });
}

async fn add(n: &Node, id: &str) -> Vec<IpAddr> {
    let request = ipam::Request {
        requested: Vec::new(),
        container_id: id.into(),
        ifname: "eth0".into(),
        interface: format!("cali{id}"),
        pod: None,
        network: None,
    };
    match n.inbox.ask(|r| Event::Assign(request, r)).await {
        Some(Response::Assigned(a)) => a.addresses,
        other => panic!("{id}: {other:?}"),
    }
}

#[test]
fn a_pool_disabled_by_a_reload_keeps_its_pods_and_gives_no_new_address() {
    let dirs = Dirs::new();
    runtime().block_on(async {
        let pools = |disabled: bool| {
            format!(
                "[[pool]]\ncidr = \"10.9.0.0/28\"\ndisabled = {disabled}\n\
                 [[pool]]\ncidr = \"10.8.0.0/29\"\n"
            )
        };
        let file = |disabled| with_pools(&dirs.0[0], "{}", &pools(disabled));
        let n = start_node_with(&store(), file(false)).await;
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        // The tunnel address is the block's first, the pod gets the next.
        assert_eq!(add(&n, "c1").await.first().copied(), ip("10.9.0.1"));

        let reloaded = n
            .inbox
            .ask(|r| Event::Reload(Box::new(file(true)), r))
            .await;
        assert!(matches!(reloaded, Some(Ok(_))), "{reloaded:?}");
        // 10.9.0.0/28 has free addresses, but its pool is disabled: a block is claimed
        // from the other pool (one block: the pool is shorter than /26).
        assert_eq!(add(&n, "c2").await.first().copied(), ip("10.8.0.0"));
        assert_eq!(add(&n, "c1").await.first().copied(), ip("10.9.0.1"), "kept");
        let Some(state) = n.state() else {
            panic!("nothing published")
        };
        assert_eq!(state.own_blocks(), [net("10.9.0.0/28"), net("10.8.0.0/29")]);
        assert_eq!(state.tunnel, "10.9.0.0".parse().ok(), "the tunnel stays");
    });
}
