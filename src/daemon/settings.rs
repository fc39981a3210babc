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

/// Settings a reload cannot change without a restart, by name.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    if old.node.address != new.node.address {
        v.push("node.address");
    }
    if old.node.address_v6 != new.node.address_v6 {
        v.push("node.address_v6");
    }
    if old.node.asn != new.node.asn {
        v.push("node.asn");
    }
    if old.bgp != new.bgp {
        v.push("[bgp]");
    }
    if old.cluster.pools != new.cluster.pools {
        v.push("cluster.pools");
    }
    if old.ipip != new.ipip {
        v.push("[ipip]");
    }
    if old.kernel != new.kernel {
        v.push("[kernel]");
    }
    if old.control != new.control {
        v.push("[control]");
    }
    v
}
