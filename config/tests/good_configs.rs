//! Valid files: every key read, every default applied, the sessions derived from them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use config::{Config, IpipMode, PeerKind};

fn parse(text: &str) -> Config {
    match Config::parse(text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("rejected:\n{e}\n---\n{text}"),
    }
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().expect("test address"))
}

const ALL_KEYS: &str = r#"
[node]
name = "n1"
address = "172.29.235.101"
address_v6 = "fd00::101"
asn = 65001
blocks = ["101.76.9.128/26", "fd00:101::/120"]

[cluster]
pools = ["101.64.0.0/10", "fd00:101::/64"]
mesh = false
nodes = ["172.29.235.101", "172.29.235.130"]
mesh_password = "mesh-secret"

[bgp]
port = 1179
hold_time = 30
keepalive_time = 10
graceful_restart_time = 0
route_reflector_cluster_id = "1.1.1.1"
max_paths = 8
connect_retry_time = 2
listen = false

[[peer]]
address = "172.29.235.200"
asn = 65001
port = 2179
passive = true
password = "peer-secret"
rr_client = true
route_reflector = false
ttl_security = true
max_prefixes = 1000
name = "client-1"
shutdown = true

[ipip]
mode = "cross-subnet"
device = "tunl1"
mtu = 1440

[kernel]
protocol = 200
table = 100
install = false
flush_on_stop = true

[control]
socket = "/tmp/ipipd-test/ipipd.sock"
state_dir = "/tmp/ipipd-test/state"
"#;

#[test]
fn every_key_is_read() {
    let c = parse(ALL_KEYS);
    assert_eq!(c.node.name, "n1");
    assert_eq!(c.node.address, Ipv4Addr::new(172, 29, 235, 101));
    assert_eq!(
        c.node.address_v6,
        Some("fd00::101".parse::<Ipv6Addr>().expect("v6"))
    );
    assert_eq!(c.node.asn, 65001);
    assert_eq!(c.node.blocks.len(), 2);
    assert_eq!(c.cluster.pools.len(), 2);
    assert!(!c.cluster.mesh);
    assert_eq!(
        c.cluster.nodes,
        vec![v4("172.29.235.101"), v4("172.29.235.130")]
    );
    assert_eq!(c.cluster.mesh_password.as_deref(), Some("mesh-secret"));
    assert_eq!(c.bgp.port, 1179);
    assert_eq!(c.bgp.hold_time, 30);
    assert_eq!(c.bgp.keepalive_time, Some(10));
    assert_eq!(c.bgp.graceful_restart_time, 0);
    assert_eq!(
        c.bgp.route_reflector_cluster_id,
        Some(Ipv4Addr::new(1, 1, 1, 1))
    );
    assert_eq!(c.bgp.max_paths, 8);
    assert_eq!(c.bgp.connect_retry_time, 2);
    assert!(!c.bgp.listen);
    let p = c.peers.first().expect("one peer");
    assert_eq!(p.address, v4("172.29.235.200"));
    assert_eq!((p.asn, p.port), (65001, Some(2179)));
    assert!(p.passive && p.rr_client && !p.route_reflector && p.ttl_security && p.shutdown);
    assert_eq!(p.password.as_deref(), Some("peer-secret"));
    assert_eq!(p.max_prefixes, Some(1000));
    assert_eq!(p.name.as_deref(), Some("client-1"));
    assert_eq!(c.ipip.mode, IpipMode::CrossSubnet);
    assert_eq!(c.ipip.device, "tunl1");
    assert_eq!(c.ipip.mtu, Some(1440));
    assert_eq!((c.kernel.protocol, c.kernel.table), (200, 100));
    assert!(!c.kernel.install && c.kernel.flush_on_stop);
    assert_eq!(
        c.control.socket,
        PathBuf::from("/tmp/ipipd-test/ipipd.sock")
    );
    assert_eq!(c.control.state_dir, PathBuf::from("/tmp/ipipd-test/state"));
}

#[test]
fn defaults() {
    let c = parse("[node]\naddress = \"10.0.0.1\"\n");
    assert!(!c.node.name.is_empty());
    assert_eq!(c.node.address_v6, None);
    assert_eq!(c.node.asn, 64512);
    assert!(c.node.blocks.is_empty());
    assert!(c.cluster.pools.is_empty() && c.cluster.nodes.is_empty());
    assert!(c.cluster.mesh);
    assert_eq!(c.cluster.mesh_password, None);
    assert_eq!(c.bgp.port, 179);
    assert_eq!(c.bgp.hold_time, 90);
    assert_eq!(c.bgp.keepalive_time, None);
    assert_eq!(c.bgp.graceful_restart_time, 120);
    assert_eq!(c.bgp.route_reflector_cluster_id, None);
    assert_eq!(c.bgp.max_paths, 4);
    assert_eq!(c.bgp.connect_retry_time, 5);
    assert!(c.bgp.listen);
    assert!(c.peers.is_empty());
    assert_eq!(c.ipip.mode, IpipMode::Always);
    assert_eq!(c.ipip.device, "tunl0");
    assert_eq!(c.ipip.mtu, None);
    assert_eq!((c.kernel.protocol, c.kernel.table), (186, 254));
    assert!(c.kernel.install && !c.kernel.flush_on_stop);
    assert_eq!(c.control.socket, PathBuf::from("/run/ipipd/ipipd.sock"));
    assert_eq!(c.control.state_dir, PathBuf::from("/var/lib/ipipd"));
}

#[test]
fn peer_defaults_follow_the_node() {
    let c =
        parse("[node]\naddress = \"10.0.0.1\"\nasn = 65010\n[[peer]]\naddress = \"10.0.0.2\"\n");
    let p = c.peers.first().expect("one peer");
    assert_eq!(p.asn, 65010);
    assert_eq!(p.port, None);
    assert!(!p.passive && !p.rr_client && !p.route_reflector && !p.ttl_security && !p.shutdown);
    assert_eq!(
        (p.password.as_deref(), p.max_prefixes, p.name.as_deref()),
        (None, None, None)
    );
}

#[test]
fn hold_time_zero_and_inline_peers_are_accepted() {
    let c = parse(
        "peer = [{ address = \"10.0.0.2\", asn = 65000 }]\n[node]\naddress = \"10.0.0.1\"\n\
         [bgp]\nhold_time = 0\nkeepalive_time = 0\n",
    );
    assert_eq!(c.bgp.hold_time, 0);
    assert_eq!(c.peers.len(), 1);
}

#[test]
fn neighbors_merge_mesh_and_peers() {
    let c = parse(
        r#"
[node]
address = "172.29.235.101"
[cluster]
nodes = ["172.29.235.101", "172.29.235.130", "172.29.235.131"]
mesh_password = "m"
[bgp]
port = 1179
[[peer]]
address = "172.29.235.131"
port = 2179
password = "p"
max_prefixes = 10
[[peer]]
address = "172.29.235.200"
route_reflector = true
[[peer]]
address = "172.29.235.201"
rr_client = true
[[peer]]
address = "192.0.2.1"
asn = 65000
route_reflector = false
ttl_security = true
shutdown = true
"#,
    );
    let n = c.neighbors();
    let summary: Vec<(IpAddr, PeerKind, u16)> =
        n.iter().map(|n| (n.address, n.kind, n.port)).collect();
    assert_eq!(
        summary,
        vec![
            (v4("172.29.235.130"), PeerKind::Mesh, 1179),
            (v4("172.29.235.131"), PeerKind::Peer, 2179),
            (v4("172.29.235.200"), PeerKind::RouteReflector, 1179),
            (v4("172.29.235.201"), PeerKind::RrClient, 1179),
            (v4("192.0.2.1"), PeerKind::Peer, 1179),
        ]
    );
    let mesh = n.first().expect("mesh");
    assert_eq!((mesh.asn, mesh.password.as_deref()), (64512, Some("m")));
    let explicit = n.get(1).expect("explicit");
    assert_eq!(
        (explicit.password.as_deref(), explicit.max_prefixes),
        (Some("p"), Some(10))
    );
    let ebgp = n.get(4).expect("ebgp");
    assert_eq!(ebgp.asn, 65000);
    assert!(ebgp.ttl_security && ebgp.shutdown);
}

#[test]
fn a_reflector_node_sees_its_reflector_peers_as_plain_peers() {
    let c = parse(
        "[node]\naddress = \"10.0.0.1\"\n[bgp]\nroute_reflector_cluster_id = \"1.1.1.1\"\n\
         [[peer]]\naddress = \"10.0.0.2\"\nroute_reflector = true\n",
    );
    let kinds: Vec<PeerKind> = c.neighbors().iter().map(|n| n.kind).collect();
    assert_eq!(kinds, vec![PeerKind::Peer]);
}

#[test]
fn no_mesh_means_only_explicit_peers() {
    let c = parse(
        "[node]\naddress = \"10.0.0.1\"\n[cluster]\nmesh = false\nnodes = [\"10.0.0.3\"]\n\
         [[peer]]\naddress = \"10.0.0.2\"\n",
    );
    let addrs: Vec<IpAddr> = c.neighbors().iter().map(|n| n.address).collect();
    assert_eq!(addrs, vec![v4("10.0.0.2")]);
}

#[test]
fn a_lone_mesh_node_has_no_neighbors() {
    let c = parse("[node]\naddress = \"10.0.0.1\"\n[cluster]\nnodes = [\"10.0.0.1\"]\n");
    assert!(c.neighbors().is_empty());
}

#[test]
fn peer_kind_serializes_kebab_case() {
    let names: Vec<String> = [
        PeerKind::Mesh,
        PeerKind::Peer,
        PeerKind::RrClient,
        PeerKind::RouteReflector,
    ]
    .iter()
    .map(|k| serde_json_like(*k))
    .collect();
    assert_eq!(names, ["mesh", "peer", "rr-client", "route-reflector"]);
}

/// Serializes through `toml`, the serializer this crate already has.
fn serde_json_like(kind: PeerKind) -> String {
    #[derive(serde::Serialize)]
    struct W {
        k: PeerKind,
    }
    let text = toml::to_string(&W { k: kind }).expect("serializes");
    text.trim()
        .trim_start_matches("k = ")
        .trim_matches('"')
        .to_owned()
}

/// Removes its directory on drop, also when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ipipd-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = TempDir::new("load");
    let good = dir.0.join("good.toml");
    std::fs::write(&good, config::reference::example(false)).expect("write");
    let c = Config::load(&good).expect("example loads");
    assert_eq!(c.node.asn, 64512);

    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "[node]\naddress = \"x\"\n").expect("write");
    let e = Config::load(&bad).expect_err("bad address");
    assert_eq!(
        e.to_string(),
        format!("{}:2:11: invalid IP address \"x\"", bad.display())
    );

    let binary = dir.0.join("binary.toml");
    std::fs::write(&binary, b"[node]\naddress = \"\xff\"\n").expect("write");
    let e = Config::load(&binary).expect_err("not UTF-8");
    assert_eq!(
        e.to_string(),
        format!("{}:2:12: the file is not valid UTF-8", binary.display())
    );

    let missing = dir.0.join("missing.toml");
    let e = Config::load(&missing).expect_err("missing");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:1:1: cannot read the configuration: ",
            missing.display()
        )),
        "{text}"
    );
}

#[test]
fn bfd_defaults_and_per_peer_override() -> Result<(), config::Errors> {
    let c = config::Config::parse(
        "[node]\naddress = \"10.0.0.1\"\n[bfd]\nenabled = true\n\n\
         [[peer]]\naddress = \"10.0.0.2\"\nbfd = false\n[[peer]]\naddress = \"10.0.0.3\"\n",
        "t.toml",
    )?;
    assert_eq!((c.bfd.interval_ms, c.bfd.multiplier), (300, 3));
    assert!(!c.bfd.on(c.peers[0].bfd));
    assert!(c.bfd.on(c.peers[1].bfd));
    let off = config::Config::parse("[node]\naddress = \"10.0.0.1\"\n", "t.toml")?;
    assert!(!off.bfd.enabled);
    assert_eq!(c.bfd.keeper, config::Keeper::Spawn);
    let pod = config::Config::parse(
        "[node]\naddress = \"10.0.0.1\"\n[bfd]\nkeeper = \"external\"\n",
        "t.toml",
    )?;
    assert_eq!(pod.bfd.keeper, config::Keeper::External);
    Ok(())
}

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn pools_as_tables_with_their_options() {
    let c = parse(
        "[node]\naddress = \"10.0.0.1\"\nlabels = { rack = \"r1\" }\n\
         [cluster]\nblock_size = 28\nblock_size_v6 = 120\n\
         [[pool]]\ncidr = \"10.244.0.0/16\"\nblock_size = 24\nnat_outgoing = true\n\
         node_selector = \"rack == 'r2'\"\n\
         [[pool]]\ncidr = \"10.245.0.0/16\"\ndisabled = true\n\
         [[pool]]\ncidr = \"fd00:244::/64\"\n",
    );
    let cidrs: Vec<String> = c.pools.iter().map(|p| p.cidr.to_string()).collect();
    assert_eq!(cidrs, ["10.244.0.0/16", "10.245.0.0/16", "fd00:244::/64"]);
    assert_eq!(
        c.cluster.pools,
        c.pools.iter().map(|p| p.cidr).collect::<Vec<_>>(),
        "cluster.pools lists the tables' CIDRs"
    );
    let sizes: Vec<u8> = c.pools.iter().map(|p| p.block_size).collect();
    assert_eq!(sizes, [24, 28, 120], "own size, else the family's default");
    let nat: Vec<bool> = c.pools.iter().map(|p| p.nat_outgoing).collect();
    assert_eq!(nat, [true, false, false]);
    let disabled: Vec<bool> = c.pools.iter().map(|p| p.disabled).collect();
    assert_eq!(disabled, [false, true, false]);
    assert_eq!(c.pools[0].node_selector.as_str(), "rack == 'r2'");
    assert_eq!(c.pools[2].node_selector.as_str(), "all()");
    assert_eq!(c.node.labels, labels(&[("rack", "r1")]));
    // r1 is not selected by the first pool, the second is disabled.
    let open: Vec<String> = c.open_pools().map(|p| p.cidr.to_string()).collect();
    assert_eq!(open, ["fd00:244::/64"]);
}

#[test]
fn cluster_pools_stand_for_tables_with_the_defaults() {
    let c = parse(
        "[node]\naddress = \"10.0.0.1\"\n[cluster]\n\
         pools = [\"10.244.0.0/16\", \"10.9.0.0/28\", \"fd00::/64\"]\n",
    );
    let sizes: Vec<u8> = c.pools.iter().map(|p| p.block_size).collect();
    // A pool shorter than a block is one block.
    assert_eq!(sizes, [26, 28, 122]);
    assert!(c
        .pools
        .iter()
        .all(|p| !p.nat_outgoing && !p.disabled && p.node_selector.as_str() == "all()"));
    assert_eq!(c.open_pools().count(), 3);
    assert!(c.node.labels.is_empty());
}

/// `IPIPD_NODE_LABELS` replaces the file's labels as a whole.
#[test]
fn node_labels_from_the_environment_replace_the_file_s() {
    let text = "[node]\naddress = \"10.0.0.1\"\nlabels = { rack = \"r1\", os = \"linux\" }\n";
    let overrides = config::Overrides {
        node_labels: Some(" rack=r2 , zone=a,".into()),
        ..config::Overrides::default()
    };
    let c = match Config::parse_with(text, "t.toml", &overrides) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.node.labels, labels(&[("rack", "r2"), ("zone", "a")]));
    assert_eq!(
        parse(text).node.labels,
        labels(&[("os", "linux"), ("rack", "r1")])
    );
}

#[test]
fn vxlan_turns_ipip_off_by_default() {
    let c = parse(
        "[node]\naddress = \"172.29.235.101\"\n[vxlan]\nmode = \"cross-subnet\"\n\
         device = \"vx0\"\nvni = 7\nport = 8472\nmtu = 1400\n",
    );
    assert_eq!(c.vxlan.mode, IpipMode::CrossSubnet);
    assert_eq!(c.ipip.mode, IpipMode::Never);
    assert_eq!(
        (c.vxlan.device.as_str(), c.vxlan.vni, c.vxlan.port),
        ("vx0", 7, 8472)
    );
    assert_eq!(c.tunnel_device(), Some(("vx0", Some(1400))));
    // Saying `never` for IPIP beside VXLAN is fine.
    let c = parse(
        "[node]\naddress = \"172.29.235.101\"\n[ipip]\nmode = \"never\"\n[vxlan]\nmode = \"always\"\n",
    );
    assert_eq!(
        (c.ipip.mode, c.vxlan.mode),
        (IpipMode::Never, IpipMode::Always)
    );
    assert_eq!(c.vxlan.device, "vxlan.calico");
    assert_eq!((c.vxlan.vni, c.vxlan.port, c.vxlan.mtu), (4096, 4789, None));
    // Without [vxlan], IPIP as before.
    let c = parse("[node]\naddress = \"172.29.235.101\"\n");
    assert_eq!(
        (c.ipip.mode, c.vxlan.mode),
        (IpipMode::Always, IpipMode::Never)
    );
    assert_eq!(c.tunnel_device(), Some(("tunl0", None)));
}
