//! From the configuration to the speaker's and the installer's settings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use bgp::speaker::{NeighborConfig, NeighborKind, SpeakerConfig};
use config::{Config, IpipMode, PeerKind};
use fib::vtep::{vtep_mac, vtep_mac_v6, Macs};

pub fn speaker(cfg: &Config, restarting: bool) -> SpeakerConfig {
    let gr = cfg.bgp.graceful_restart_time;
    SpeakerConfig {
        local_as: cfg.node.asn,
        router_id: cfg.node.address,
        local_address: cfg.node.address,
        local_address_v6: cfg.node.address_v6,
        port: cfg.bgp.port,
        listen: cfg.bgp.listen,
        hold_time: cfg.bgp.hold_time,
        keepalive_time: cfg.bgp.keepalive_time,
        connect_retry: Duration::from_secs(cfg.bgp.connect_retry_time.max(1).into()),
        graceful_restart_time: gr,
        restarting,
        cluster_id: cfg.bgp.route_reflector_cluster_id,
        pools: cfg.cluster.pools.clone(),
        own_blocks: cfg.node.blocks.clone(),
        max_paths: cfg.bgp.max_paths,
        hostname: cfg.node.name.clone(),
        // Stale kernel routes go once every peer sent End-of-RIB, or after the
        // graceful-restart time (a peer may be down for good).
        convergence_timeout: Duration::from_secs(if gr > 0 { gr.into() } else { 30 }),
        fib_view: cfg.kernel.install,
    }
}

pub fn neighbors(cfg: &Config) -> Vec<NeighborConfig> {
    cfg.neighbors()
        .into_iter()
        .map(|n| NeighborConfig {
            address: n.address,
            asn: n.asn,
            port: n.port,
            kind: match n.kind {
                PeerKind::Mesh => NeighborKind::Mesh,
                PeerKind::Peer => NeighborKind::Peer,
                PeerKind::RrClient => NeighborKind::RrClient,
                PeerKind::RouteReflector => NeighborKind::RouteReflector,
            },
            passive: n.passive,
            password: n.password,
            ttl_security: n.ttl_security,
            max_prefixes: n.max_prefixes,
            shutdown: n.shutdown,
        })
        .collect()
}

pub fn fib_mode(mode: IpipMode) -> fib::Mode {
    match mode {
        IpipMode::Always => fib::Mode::Always,
        IpipMode::CrossSubnet => fib::Mode::CrossSubnet,
        IpipMode::Never => fib::Mode::Never,
    }
}

/// The installer's settings: VXLAN when `vxlan.mode` is not `never`, else IPIP. `own`:
/// the VXLAN devices' MACs as recorded in etcd (`None`: derived from the addresses).
pub fn fib(cfg: &Config, own: super::vtep::Macs) -> fib::Settings {
    let vxlan = cfg.vxlan.mode != IpipMode::Never;
    let (mode, tunnel, tunnel_mtu) = if vxlan {
        (cfg.vxlan.mode, &cfg.vxlan.device, cfg.vxlan.mtu)
    } else {
        (cfg.ipip.mode, &cfg.ipip.device, cfg.ipip.mtu)
    };
    fib::Settings {
        mode: fib_mode(mode),
        tunnel: tunnel.clone(),
        tunnel_mtu,
        node_address: cfg.node.address,
        protocol: cfg.kernel.protocol,
        table: cfg.kernel.table,
        manage_tunnel: true,
        vxlan: vxlan.then_some(fib::Vxlan {
            vni: cfg.vxlan.vni,
            port: cfg.vxlan.port,
            mac: own.v4,
        }),
        vxlan_v6: cfg
            .vxlan_v6_device()
            .zip(cfg.node.address_v6)
            .map(|((device, mtu), local)| fib::VxlanV6 {
                device: device.to_owned(),
                local,
                mtu,
                mac: own.v6,
            }),
    }
}

/// VXLAN: the other nodes whose tunnel endpoints are known, with their VTEP MACs. With
/// etcd (`snap`), every registered node, with a mesh or without one (under route
/// reflectors), with the MAC its record holds, or the one derived from its address when
/// the record has none (a node of an earlier version); with the file, the nodes of
/// `cluster.nodes`, with the MACs derived from their addresses
/// ([`fib::vtep::vtep_mac`]).
pub fn vteps(cfg: &Config, snap: Option<&datastore::Snapshot>) -> Macs<Ipv4Addr> {
    let own = cfg.node.address;
    match snap {
        Some(snap) => snap
            .nodes
            .values()
            .filter(|n| n.name != cfg.node.name && n.address != own)
            .map(|n| {
                (
                    n.address,
                    n.vxlan_mac.map_or_else(|| vtep_mac(n.address), |m| m.0),
                )
            })
            .collect(),
        None => fib::vtep::derived(cfg.cluster.nodes.iter().filter_map(|a| match a {
            IpAddr::V4(v4) if *v4 != own => Some(*v4),
            _ => None,
        })),
    }
}

/// VXLAN over IPv6: the IPv6 addresses of the other nodes whose tunnel endpoints are
/// known, with their IPv6 VTEP MACs. With etcd, the `address_v6` of every registered
/// node that has one, with its record's `vxlan_mac_v6` or the MAC derived from the
/// address; with the file, the IPv6 addresses listed in `cluster.nodes` (the file has
/// no other word of another node's IPv6 address), with derived MACs
/// ([`fib::vtep::vtep_mac_v6`]).
pub fn vteps_v6(cfg: &Config, snap: Option<&datastore::Snapshot>) -> Macs<Ipv6Addr> {
    let own = cfg.node.address_v6;
    match snap {
        Some(snap) => snap
            .nodes
            .values()
            .filter(|n| n.name != cfg.node.name)
            .filter_map(|n| Some((n.address_v6?, n.vxlan_mac_v6)))
            .filter(|(a, _)| Some(*a) != own)
            .map(|(a, mac)| (a, mac.map_or_else(|| vtep_mac_v6(a), |m| m.0)))
            .collect(),
        None => fib::vtep::derived(cfg.cluster.nodes.iter().filter_map(|a| match a {
            IpAddr::V6(v6) if Some(*v6) != own => Some(*v6),
            _ => None,
        })),
    }
}

/// The keys a reload cannot apply, by name, that differ between `old` and `new`.
///
/// They shape every session (node address, AS, `[bgp]`), the RIB (pool CIDRs), the
/// blocks the cluster agreed on (block sizes), the tunnel and the kernel table, or the
/// daemon's own files: applying them would mean restarting everything, so a reload
/// that changes one is refused as a whole. `node.blocks`, `node.labels`,
/// `cluster.mesh`, `cluster.nodes`, `cluster.mesh_password`, `[[peer]]`, the pools'
/// `nat_outgoing`, `disabled` and `node_selector`, and `kernel.flush_on_stop` are
/// applied.
/// How often the NAT keeper reads ipipd's nftables table back besides when the
/// ruleset's change notifications say something changed (the FIB's full resync runs
/// as seldom).
pub const NAT_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Outbound NAT's desired table: every pool counts as inside (disabled ones and those
/// without NAT too), the pools with `nat_outgoing` are masqueraded when they leave.
pub fn nat(cfg: &Config) -> nat::Desired {
    nat::desired(cfg.pools.iter().map(|p| (p.cidr, p.nat_outgoing)))
}

pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (old, new);
    let resized = o.pools.iter().any(|p| {
        n.pools
            .iter()
            .any(|q| q.cidr == p.cidr && q.block_size != p.block_size)
    });
    let keys = [
        ("node.name", o.node.name != n.node.name),
        ("node.address", o.node.address != n.node.address),
        ("node.address_v6", o.node.address_v6 != n.node.address_v6),
        ("node.asn", o.node.asn != n.node.asn),
        ("pool.cidr", o.cluster.pools != n.cluster.pools),
        ("pool.block_size", resized),
        (
            "cluster.block_size",
            o.cluster.block_size != n.cluster.block_size,
        ),
        (
            "cluster.block_size_v6",
            o.cluster.block_size_v6 != n.cluster.block_size_v6,
        ),
        ("datastore", o.datastore != n.datastore),
        ("bgp.port", o.bgp.port != n.bgp.port),
        ("bgp.listen", o.bgp.listen != n.bgp.listen),
        ("bgp.hold_time", o.bgp.hold_time != n.bgp.hold_time),
        (
            "bgp.keepalive_time",
            o.bgp.keepalive_time != n.bgp.keepalive_time,
        ),
        (
            "bgp.graceful_restart_time",
            o.bgp.graceful_restart_time != n.bgp.graceful_restart_time,
        ),
        (
            "bgp.route_reflector_cluster_id",
            o.bgp.route_reflector_cluster_id != n.bgp.route_reflector_cluster_id,
        ),
        ("bgp.max_paths", o.bgp.max_paths != n.bgp.max_paths),
        (
            "bgp.connect_retry_time",
            o.bgp.connect_retry_time != n.bgp.connect_retry_time,
        ),
        ("ipip.mode", o.ipip.mode != n.ipip.mode),
        ("ipip.device", o.ipip.device != n.ipip.device),
        ("ipip.mtu", o.ipip.mtu != n.ipip.mtu),
        // The device is made at start, in one kind; neighbour and FDB entries follow it.
        ("vxlan.mode", o.vxlan.mode != n.vxlan.mode),
        ("vxlan.device", o.vxlan.device != n.vxlan.device),
        ("vxlan.vni", o.vxlan.vni != n.vxlan.vni),
        ("vxlan.port", o.vxlan.port != n.vxlan.port),
        ("vxlan.mtu", o.vxlan.mtu != n.vxlan.mtu),
        ("kernel.protocol", o.kernel.protocol != n.kernel.protocol),
        ("kernel.table", o.kernel.table != n.kernel.table),
        ("kernel.install", o.kernel.install != n.kernel.install),
        ("control.socket", o.control.socket != n.control.socket),
        (
            "control.state_dir",
            o.control.state_dir != n.control.state_dir,
        ),
        ("metrics.listen", o.metrics.listen != n.metrics.listen),
        // The keeper is started (or connected to) once, at start.
        ("bfd.keeper", o.bfd.keeper != n.bfd.keeper),
    ];
    keys.into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        match Config::parse(text, "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    const BASE: &str = "[node]\nname = \"a\"\naddress = \"10.0.0.1\"\n[cluster]\nnodes = [\"10.0.0.1\", \"10.0.0.2\"]\n";

    #[test]
    fn restart_only_keys_are_named_one_by_one() {
        let old = parse(BASE);
        assert!(restart_only_changes(&old, &old).is_empty());
        let new = parse(
            "[node]\nname = \"a\"\naddress = \"10.0.0.3\"\nasn = 65000\n\
             [cluster]\nnodes = [\"10.0.0.1\", \"10.0.0.2\"]\n[bgp]\nport = 1179\n",
        );
        assert_eq!(
            restart_only_changes(&old, &new),
            ["node.address", "node.asn", "bgp.port"]
        );
    }

    /// A value other than the default for every key, valid next to [`RELOAD_BASE`].
    fn changed_value(full_name: &str) -> &'static str {
        match full_name {
            "node.name" => "\"b\"",
            "node.address" => "\"10.0.0.3\"",
            "node.address_v6" => "\"fd00::1\"",
            "node.asn" => "65000",
            "node.blocks" => "[\"10.244.0.0/26\"]",
            "cluster.pools" => "[\"10.244.0.0/16\", \"10.245.0.0/16\"]",
            "cluster.mesh" => "false",
            "cluster.nodes" => "[\"10.0.0.2\"]",
            "node.labels" => "{ rack = \"r9\" }",
            "cluster.mesh_password" => "\"secret\"",
            "cluster.block_size" => "27",
            "cluster.block_size_v6" => "120",
            "bgp.port" => "1179",
            "bgp.hold_time" => "30",
            "bgp.keepalive_time" => "5",
            "bgp.graceful_restart_time" => "60",
            "bgp.route_reflector_cluster_id" => "\"1.1.1.1\"",
            "bgp.max_paths" => "2",
            "bgp.connect_retry_time" => "7",
            "bgp.listen" => "false",
            "[[peer]] address" => "\"10.0.0.8\"",
            "[[peer]] asn" => "65001",
            "[[peer]] name" => "\"tor\"",
            "[[peer]] port" => "1179",
            "[[peer]] passive" => "true",
            "[[peer]] password" => "\"secret\"",
            "[[peer]] rr_client" => "true",
            "[[peer]] route_reflector" => "true",
            "[[peer]] ttl_security" => "true",
            "[[peer]] max_prefixes" => "10",
            "[[peer]] shutdown" => "true",
            "[[peer]] bfd" => "true",
            "ipip.mode" => "\"never\"",
            "ipip.device" => "\"tunl1\"",
            "ipip.mtu" => "1400",
            "vxlan.mode" => "\"always\"",
            "vxlan.device" => "\"vxlan.other\"",
            "vxlan.vni" => "4097",
            "vxlan.port" => "8472",
            "vxlan.mtu" => "1400",
            "kernel.protocol" => "187",
            "kernel.table" => "100",
            "kernel.install" => "false",
            "kernel.flush_on_stop" => "true",
            "datastore.kind" => "\"etcd\"",
            "datastore.endpoints" => "[\"https://10.0.0.5:2379\"]",
            "datastore.prefix" => "\"/other\"",
            "datastore.ca_file" => "\"/etc/ca.crt\"",
            "datastore.cert_file" => "\"/etc/c.crt\"",
            "datastore.key_file" => "\"/etc/c.key\"",
            "datastore.dial_timeout_ms" => "100",
            "datastore.request_timeout_ms" => "100",
            "datastore.block_release_grace" => "10",
            "datastore.resync" => "60",
            "bfd.enabled" => "true",
            "bfd.interval_ms" => "100",
            "bfd.multiplier" => "5",
            "bfd.keeper" => "\"external\"",
            "control.socket" => "\"/run/other.sock\"",
            "control.state_dir" => "\"/var/lib/other\"",
            "metrics.listen" => "\"127.0.0.1:9179\"",
            "ipam.strict_affinity" => "true",
            "ipam.max_blocks_per_node" => "3",
            other => panic!("no changed value for {other}: add one to this test"),
        }
    }

    /// Every table, so that a changed key can go into its own.
    const RELOAD_BASE: &[(&str, &str)] = &[
        ("[node]", "name = \"a\"\naddress = \"10.0.0.1\""),
        ("[cluster]", "pools = [\"10.244.0.0/16\"]"),
        ("[bgp]", ""),
        ("[[peer]]", "address = \"10.0.0.9\""),
        ("[ipip]", ""),
        ("[vxlan]", ""),
        ("[kernel]", ""),
        // TLS files go in pairs, and with https.
        (
            "[datastore]",
            "endpoints = [\"https://10.0.0.4:2379\"]\ncert_file = \"/etc/c0.crt\"\nkey_file = \"/etc/c0.key\"",
        ),
        ("[bfd]", ""),
        ("[control]", ""),
        ("[metrics]", ""),
        ("[ipam]", ""),
    ];

    /// The base with `key = value` set in `header`'s table (replacing the base's).
    fn with_key(header: &str, key: &str, value: &str) -> String {
        let mut out = String::new();
        for (h, body) in RELOAD_BASE {
            out.push_str(h);
            out.push('\n');
            for line in body.lines() {
                if *h != header || !line.starts_with(&format!("{key} =")) {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            if *h == header {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        out
    }

    /// The reference (README, example-config, man page) says of each key what a reload
    /// does with it; this is what the daemon does.
    #[test]
    fn the_reference_says_which_keys_need_a_restart() {
        let base = parse(&with_key("[metrics]", "# nothing", ""));
        for (table, key) in config::reference::keys() {
            // `[[pool]]` stands instead of `cluster.pools`, so it cannot go into this
            // base; tests/daemon.rs (`pool list`) reloads its options and block size.
            if table.name == "pool" {
                continue;
            }
            let name = table.full_name(key);
            let text = with_key(&table.header(), key.name, changed_value(&name));
            let changed = match Config::parse(&text, "t.toml") {
                Ok(c) => c,
                Err(e) => panic!("{name}: {e}\n{text}"),
            };
            assert_ne!(base, changed, "{name}: the changed value is the default");
            let mut restart = restart_only_changes(&base, &changed);
            if name.starts_with("cluster.block_size") {
                // The pools' block size follows it: named too.
                restart.retain(|k| *k != "pool.block_size");
            }
            if name == "vxlan.mode" {
                // IPIP's mode follows it (off beside VXLAN): named too.
                restart.retain(|k| *k != "ipip.mode");
            }
            let named = if name.starts_with("datastore.") {
                restart.contains(&"datastore")
            } else if name == "cluster.pools" {
                // Refused naming the pool's CIDR, the key both spellings share.
                restart.contains(&"pool.cidr")
            } else {
                restart.contains(&name.as_str())
            };
            let want = key.reload == config::reference::Reload::Restart;
            assert_eq!(named, want, "{name}: restart keys {restart:?}");
            assert!(
                restart.len() <= 1,
                "{name} changed more than itself: {restart:?}"
            );
        }
    }

    #[test]
    fn what_a_reload_applies_is_not_restart_only() {
        let old = parse(BASE);
        let new = parse(
            "[node]\nname = \"a\"\naddress = \"10.0.0.1\"\n\
             [cluster]\nnodes = [\"10.0.0.2\", \"10.0.0.3\"]\n\
             [[peer]]\naddress = \"10.0.0.9\"\nname = \"tor\"\n\
             [kernel]\nflush_on_stop = true\n",
        );
        assert!(restart_only_changes(&old, &new).is_empty());
    }

    fn record(
        name: &str,
        address: &str,
        v6: Option<&str>,
        mac: Option<[u8; 6]>,
    ) -> datastore::NodeRecord {
        datastore::NodeRecord {
            name: name.into(),
            address: address.parse().expect("address"),
            address_v6: v6.map(|a| a.parse().expect("v6")),
            asn: 64512,
            port: 179,
            rr_cluster_id: None,
            vxlan_mac: mac.map(datastore::Mac),
            vxlan_mac_v6: mac.map(|m| datastore::Mac([m[0], 6, 6, 6, 6, m[5]])),
        }
    }

    #[test]
    fn with_etcd_every_registered_node_is_a_vtep_with_its_records_mac() {
        // No mesh (route reflectors): `cluster.nodes` is empty, the nodes are known all
        // the same.
        let cfg = parse(
            "[node]\nname = \"a\"\naddress = \"10.0.0.1\"\naddress_v6 = \"fd00::1\"\n\
             [cluster]\nmesh = false\n",
        );
        let mut snap = datastore::Snapshot::default();
        let mac = [0x0a, 1, 2, 3, 4, 5];
        for r in [
            record(
                "a",
                "10.0.0.1",
                Some("fd00::1"),
                Some([0x0a, 9, 9, 9, 9, 9]),
            ),
            record("b", "10.0.0.2", Some("fd00::2"), Some(mac)),
            // An earlier version's record: the derived MACs.
            record("c", "10.0.0.3", None, None),
        ] {
            snap.nodes.insert(r.name.clone(), r);
        }
        let v4 = vteps(&cfg, Some(&snap));
        let b: Ipv4Addr = "10.0.0.2".parse().expect("b");
        let c: Ipv4Addr = "10.0.0.3".parse().expect("c");
        assert_eq!(v4, [(b, mac), (c, vtep_mac(c))].into());
        let b6: Ipv6Addr = "fd00::2".parse().expect("b6");
        assert_eq!(
            vteps_v6(&cfg, Some(&snap)),
            [(b6, [0x0a, 6, 6, 6, 6, 5])].into()
        );
        // The file: `cluster.nodes`, derived.
        let file = parse(BASE);
        let two: Ipv4Addr = "10.0.0.2".parse().expect("two");
        assert_eq!(vteps(&file, None), [(two, vtep_mac(two))].into());
    }

    const POOLS: &str = "[node]\nname = \"a\"\naddress = \"10.0.0.1\"\n\
        [[pool]]\ncidr = \"10.244.0.0/16\"\n[[pool]]\ncidr = \"10.245.0.0/16\"\n";

    #[test]
    fn pool_options_and_labels_are_applied_cidrs_and_sizes_are_not() {
        let old = parse(POOLS);
        let options = parse(
            "[node]\nname = \"a\"\naddress = \"10.0.0.1\"\nlabels = { rack = \"r1\" }\n\
             [[pool]]\ncidr = \"10.244.0.0/16\"\nnat_outgoing = true\ndisabled = true\n\
             [[pool]]\ncidr = \"10.245.0.0/16\"\nnode_selector = \"rack == 'r1'\"\n",
        );
        assert!(restart_only_changes(&old, &options).is_empty());
        let sized = parse(&POOLS.replace(
            "cidr = \"10.245.0.0/16\"\n",
            "cidr = \"10.245.0.0/16\"\nblock_size = 24\n",
        ));
        assert_eq!(restart_only_changes(&old, &sized), ["pool.block_size"]);
        let moved = parse(&POOLS.replace("10.245.0.0/16", "10.246.0.0/16"));
        assert_eq!(restart_only_changes(&old, &moved), ["pool.cidr"]);
        // The shorthand is the same pools with the defaults: nothing changes.
        let shorthand = parse(
            "[node]\nname = \"a\"\naddress = \"10.0.0.1\"\n\
             [cluster]\npools = [\"10.244.0.0/16\", \"10.245.0.0/16\"]\n",
        );
        assert!(restart_only_changes(&old, &shorthand).is_empty());
    }
}
