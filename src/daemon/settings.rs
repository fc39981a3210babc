//! From the configuration to the speaker's and the installer's settings.

use std::time::Duration;

use bgp::speaker::{NeighborConfig, NeighborKind, SpeakerConfig};
use config::{Config, IpipMode, PeerKind};

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

pub fn fib(cfg: &Config) -> fib::Settings {
    fib::Settings {
        mode: fib_mode(cfg.ipip.mode),
        tunnel: cfg.ipip.device.clone(),
        tunnel_mtu: cfg.ipip.mtu,
        node_address: cfg.node.address,
        protocol: cfg.kernel.protocol,
        table: cfg.kernel.table,
        manage_tunnel: true,
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
        ("kernel.protocol", o.kernel.protocol != n.kernel.protocol),
        ("kernel.table", o.kernel.table != n.kernel.table),
        ("kernel.install", o.kernel.install != n.kernel.install),
        ("control.socket", o.control.socket != n.control.socket),
        (
            "control.state_dir",
            o.control.state_dir != n.control.state_dir,
        ),
        ("metrics.listen", o.metrics.listen != n.metrics.listen),
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
