//! CNI STATUS with the datastore (the owner's answer, which `ipipd status` reports as
//! "a new pod gets no address"): a node whose blocks are full is servable only if ADD
//! could claim a block (under `ipam.max_blocks_per_node`, with a free block left) or
//! borrow an address (`ipam.strict_affinity = false`, another node's block with room).

use super::*;
use api::protocol::IpamErrorKind;

/// Two nodes on a pool of `blocks` /30 blocks (four addresses each; a node's first
/// block also holds its tunnel address).
fn with_ipam(i: usize, dir: &std::path::Path, blocks: u32, ipam: &str) -> config::Config {
    let prefix = 32 - (blocks * 4).trailing_zeros();
    let text = format!(
        "[node]\nname = \"n{i}\"\naddress = \"10.0.0.{}\"\n\
         [cluster]\npools = [\"10.9.0.0/{prefix}\"]\nblock_size = 30\n\
         [datastore]\nkind = \"etcd\"\nblock_release_grace = 3600\n\
         [ipam]\n{ipam}\n\
         [control]\nstate_dir = \"{d}\"\nsocket = \"{d}/s.sock\"\n",
        i + 1,
        d = dir.display()
    );
    match config::Config::parse(&text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{text}"),
    }
}

async fn add(n: &Node, id: &str) -> Response {
    let request = ipam::Request {
        requested: Vec::new(),
        container_id: id.into(),
        ifname: "eth0".into(),
        interface: format!("cali{id}"),
        pod: None,
        network: None,
    };
    n.inbox
        .ask(|r| Event::Assign(request, r))
        .await
        .unwrap_or_else(|| panic!("{id}: no answer"))
}

async fn add_ok(n: &Node, id: &str) {
    match add(n, id).await {
        Response::Assigned(_) => {}
        other => panic!("{id}: {other:?}"),
    }
}

/// The node applies a fresh read of the store (the other node's blocks and pods).
async fn read(n: &Node) {
    let read_at = Instant::now();
    match n.cluster.ds.snapshot().await {
        Ok(s) => n.inbox.tell(Event::Snapshot(Arc::new(s), read_at)),
        Err(e) => panic!("{e}"),
    };
    n.inbox.ask(|r| Event::Get("none".into(), r)).await;
}

/// The STATUS answer: None when servable, else why not.
async fn no_address(n: &Node) -> Option<String> {
    match n.inbox.ask(Event::Status).await {
        Some(Response::Ok { .. }) => None,
        Some(Response::IpamError {
            kind: IpamErrorKind::Exhausted,
            message,
        }) => Some(message),
        other => panic!("STATUS answered {other:?}"),
    }
}

/// n1 takes a block and one pod (two addresses left there); n0 fills its first block
/// (three pods beside its tunnel address); both read the store.
async fn n0_full_n1_with_room(kv: &Interleaved, dirs: &Dirs, blocks: u32, ipam: &str) -> [Node; 2] {
    let n0 = start_node_with(kv, with_ipam(0, &dirs.0[0], blocks, ipam)).await;
    let n1 = start_node_with(kv, with_ipam(1, &dirs.0[1], blocks, ipam)).await;
    add_ok(&n1, "b1").await;
    for k in 0..3 {
        add_ok(&n0, &format!("a{k}")).await;
    }
    read(&n0).await;
    read(&n1).await;
    [n0, n1]
}

#[test]
fn at_the_block_limit_with_strict_affinity_status_reports_no_address() {
    let dirs = Dirs::new();
    runtime().block_on(async {
        let kv = Interleaved::new(MemoryKv::new(), Vec::new());
        let ipam = "strict_affinity = true\nmax_blocks_per_node = 1";
        let [n0, _n1] = n0_full_n1_with_room(&kv, &dirs, 8, ipam).await;
        let why = no_address(&n0)
            .await
            .unwrap_or_else(|| panic!("STATUS says servable at the limit, strict"));
        for part in [
            "ipam.max_blocks_per_node = 1 allows no more",
            "ipam.strict_affinity = true",
        ] {
            assert!(why.contains(part), "{part:?} in {why}");
        }
        // STATUS told the truth: the ADD fails the same way.
        match add(&n0, "a3").await {
            Response::IpamError {
                kind: IpamErrorKind::Exhausted,
                message,
            } => assert!(message.contains("strict_affinity"), "{message}"),
            other => panic!("the ADD STATUS refused answered {other:?}"),
        }
    });
}

#[test]
fn with_no_free_block_and_strict_affinity_status_reports_no_address() {
    let dirs = Dirs::new();
    runtime().block_on(async {
        let kv = Interleaved::new(MemoryKv::new(), Vec::new());
        // A pool of exactly two blocks, one each; no block limit.
        let ipam = "strict_affinity = true\nmax_blocks_per_node = 0";
        let [n0, _n1] = n0_full_n1_with_room(&kv, &dirs, 2, ipam).await;
        let why = no_address(&n0)
            .await
            .unwrap_or_else(|| panic!("STATUS says servable with every block taken"));
        assert!(
            why.contains("every block of the open IPv4 pools is taken")
                && why.contains("ipam.strict_affinity = true"),
            "{why}"
        );
        assert!(matches!(
            add(&n0, "a3").await,
            Response::IpamError {
                kind: IpamErrorKind::Exhausted,
                ..
            }
        ));
    });
}

#[test]
fn borrowing_allowed_status_is_servable_while_another_block_has_room() {
    let dirs = Dirs::new();
    runtime().block_on(async {
        let kv = Interleaved::new(MemoryKv::new(), Vec::new());
        let ipam = "strict_affinity = false\nmax_blocks_per_node = 1";
        let [n0, n1] = n0_full_n1_with_room(&kv, &dirs, 8, ipam).await;
        assert_eq!(no_address(&n0).await, None, "n1's block has room to lend");
        // And the ADD is indeed served, by borrowing.
        add_ok(&n0, "a3").await;
        // n0 borrows n1's last free address too: nothing is left to borrow.
        add_ok(&n0, "a4").await;
        read(&n0).await;
        let why = no_address(&n0)
            .await
            .unwrap_or_else(|| panic!("STATUS says servable with every block full"));
        assert!(
            why.contains("no other node's block has a free IPv4 address to borrow"),
            "{why}"
        );
        assert!(matches!(
            add(&n0, "a5").await,
            Response::IpamError {
                kind: IpamErrorKind::Exhausted,
                ..
            }
        ));
        drop(n1);
    });
}
