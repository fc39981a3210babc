//! [`RawConfig`] to [`Config`]: defaults, and every rule that spans more than one value.
//! Each problem is recorded and checking goes on, so the user sees them all at once.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::PathBuf;

use ipnet::IpNet;
use toml::Spanned;

use crate::checks::{self, at_least};
use crate::error::Sink;
use crate::model::*;
use crate::parse::Layout;
use crate::raw::*;
use crate::sections::{bfd, datastore, metrics};

/// Smallest MTU every IPv4 host must accept (RFC 791).
const MIN_MTU: u32 = 576;
/// 65535 minus the outer IPv4 header.
const MAX_MTU: u32 = 65515;
/// The restart time is a 12-bit field (RFC 4724 section 3).
const MAX_RESTART_TIME: u16 = 4095;
const PORT_RANGE: &str = "port must be from 1 to 65535";
/// Linux IFNAMSIZ minus the terminating NUL.
const MAX_IFNAME: usize = 15;
/// VXLAN network identifiers are 24 bits.
const MAX_VNI: u32 = (1 << 24) - 1;

pub(crate) fn get<T: Clone>(v: &Opt<T>) -> Option<T> {
    v.as_ref().map(|s| s.get_ref().clone())
}

pub(crate) fn validate(
    raw: RawConfig,
    layout: &Layout,
    overrides: &Overrides,
    sink: &mut Sink<'_>,
) -> Option<Config> {
    let node_present = raw.node.is_some();
    let mut raw_node = raw.node.unwrap_or_default();
    let raw_cluster = raw.cluster.unwrap_or_default();
    let raw_datastore = raw.datastore.unwrap_or_default();
    let datastore = datastore(&raw_datastore, sink);
    let etcd = datastore.kind == DatastoreKind::Etcd;
    if etcd {
        for (list, key, what) in [
            (
                &raw_node.blocks,
                "blocks",
                "blocks are claimed from the pools",
            ),
            (&raw_cluster.nodes, "nodes", "nodes register themselves"),
        ] {
            if let Some(first) = list.as_ref().and_then(|l| l.first()) {
                sink.at(
                    Some(&first.span()),
                    format!("with datastore.kind = \"etcd\" the {what}: remove `{key}`"),
                );
            }
        }
    }

    let name_override = overrides.node_name.as_ref().and_then(|n| {
        let ok = !n.trim().is_empty();
        if !ok {
            sink.at(None, "IPIPD_NODE_NAME / --node-name is empty");
        }
        ok.then(|| n.clone())
    });
    let address_override =
        overrides
            .node_address
            .as_ref()
            .and_then(|a| match a.trim().parse::<Ipv4Addr>() {
                Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast() => {
                    Some(ip)
                }
                _ => {
                    sink.at(
                        None,
                        format!(
                            "IPIPD_NODE_ADDRESS / --node-address {a:?} is no unicast IPv4 address"
                        ),
                    );
                    None
                }
            });
    if address_override.is_some() {
        // The file's address is replaced: neither checked nor required.
        raw_node.address = None;
    }
    let (mut node, mut address) = node(
        &raw_node,
        node_present && address_override.is_none() && overrides.node_address.is_none(),
        layout,
        address_override.is_some() || overrides.node_address.is_some(),
        sink,
    );
    if let Some(n) = name_override {
        node.name = n;
    }
    if address_override.is_some() {
        address = address_override;
    }
    let labels = crate::pools::labels(raw_node.labels.as_ref(), overrides, sink);
    let mut cluster = cluster(&raw_cluster, sink);
    let pools = crate::pools::pools(
        &raw_cluster.pools,
        raw.pool.unwrap_or_default(),
        (cluster.block_size, cluster.block_size_v6),
        layout,
        sink,
    );
    if let Ok(pools) = &pools {
        cluster.pools = pools.iter().map(|p| p.cidr).collect();
        blocks_in_pools(&node.blocks, &cluster.pools, sink);
    }
    let bgp = bgp(&raw.bgp.unwrap_or_default(), sink);
    let peers = peers(raw.peer.unwrap_or_default(), &node, address, layout, sink);
    let raw_vxlan = raw.vxlan.unwrap_or_default();
    let vxlan = vxlan(&raw_vxlan, sink);
    let ipip = ipip(&raw.ipip.unwrap_or_default(), vxlan.mode, sink);
    let kernel = kernel(&raw.kernel.unwrap_or_default(), sink);
    let mut control = control(&raw.control.unwrap_or_default(), sink);
    if let Some(s) = &overrides.socket {
        control.socket = PathBuf::from(s);
    }
    if let Some(s) = &overrides.state_dir {
        control.state_dir = PathBuf::from(s);
    }
    if etcd && !crate::checks::node_name_ok(&node.name) {
        sink.at(
            None,
            format!(
                "node name {:?} cannot be a datastore key (letters, digits, '-', '.', '_')",
                node.name
            ),
        );
    }
    let metrics = metrics(&raw.metrics.unwrap_or_default(), sink);
    let bfd = bfd(&raw.bfd.unwrap_or_default(), sink);
    let ipam = {
        let r = raw.ipam.unwrap_or_default();
        let d = IpamSettings::default();
        IpamSettings {
            strict_affinity: r
                .strict_affinity
                .map_or(d.strict_affinity, |v| v.into_inner()),
            max_blocks_per_node: r
                .max_blocks_per_node
                .map_or(d.max_blocks_per_node, |v| v.into_inner()),
        }
    };

    if sink.has_errors() {
        return None;
    }
    Some(Config {
        node: Node {
            name: node.name,
            address: address?,
            address_v6: node.address_v6,
            asn: node.asn,
            blocks: node.blocks.into_iter().map(|(n, _)| n).collect(),
            labels,
        },
        cluster,
        bgp,
        peers,
        pools: pools.ok()?,
        ipip,
        vxlan,
        kernel,
        control,
        metrics,
        datastore,
        bfd,
        ipam,
    })
}

struct NodeParts {
    name: String,
    address_v6: Option<Ipv6Addr>,
    asn: u32,
    blocks: Vec<(IpNet, Range<usize>)>,
}

fn node(
    raw: &RawNode,
    present: bool,
    layout: &Layout,
    address_given: bool,
    sink: &mut Sink<'_>,
) -> (NodeParts, Option<Ipv4Addr>) {
    let name = match &raw.name {
        Some(s) => checks::not_empty(sink, s, "name").unwrap_or_default(),
        None => default_node_name(),
    };
    let address = match &raw.address {
        Some(s) => match checks::unicast(sink, s, "node address") {
            Some(IpAddr::V4(a)) => Some(a),
            Some(IpAddr::V6(a)) => {
                sink.at(
                    Some(&s.span()),
                    format!("address must be IPv4 (it is the BGP router id), got {a}; put an IPv6 address in address_v6"),
                );
                None
            }
            None => None,
        },
        None if address_given || layout.reported(&["node"], "address", None) => None,
        None if present => {
            sink.at(
                layout.node.as_ref(),
                "missing key `address` in [node] (this node's IPv4 address)",
            );
            None
        }
        None if layout.reported(&[], "node", None) => None,
        None => {
            sink.at(
                None,
                "missing table [node] (it needs at least `address`, this node's IPv4 address)",
            );
            None
        }
    };
    let address_v6 =
        raw.address_v6
            .as_ref()
            .and_then(|s| match checks::unicast(sink, s, "address_v6")? {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(a) => {
                    sink.at(
                        Some(&s.span()),
                        format!("address_v6 must be an IPv6 address, got {a}"),
                    );
                    None
                }
            });
    let asn = match &raw.asn {
        Some(s) => checks::asn(sink, s).unwrap_or(DEFAULT_ASN),
        None => DEFAULT_ASN,
    };
    let blocks: Vec<(IpNet, Range<usize>)> = raw
        .blocks
        .iter()
        .flatten()
        .filter_map(|s| checks::cidr(sink, s, "block").map(|n| (n, s.span())))
        .collect();
    checks::overlaps(sink, &blocks, "block");
    (
        NodeParts {
            name,
            address_v6,
            asn,
            blocks,
        },
        address,
    )
}

/// `[cluster]` but its pools, which [`crate::pools::pools`] checks with the `[[pool]]`
/// tables.
fn cluster(raw: &RawCluster, sink: &mut Sink<'_>) -> Cluster {
    let mut nodes = Vec::new();
    let mut seen: HashMap<IpAddr, Range<usize>> = HashMap::new();
    for s in raw.nodes.iter().flatten() {
        let Some(a) = checks::unicast(sink, s, "node") else {
            continue;
        };
        if let Some(first) = seen.get(&a) {
            let line = sink.line_of(first);
            sink.at(
                Some(&s.span()),
                format!("node {a} is listed twice in `nodes` (first at line {line})"),
            );
            continue;
        }
        seen.insert(a, s.span());
        nodes.push(a);
    }
    let block_size = match &raw.block_size {
        Some(s) if !crate::pools::BLOCK_SIZES_V4.contains(s.get_ref()) => {
            sink.at(
                Some(&s.span()),
                format!(
                    "block_size must be from 16 to 30 (IPv4 prefix length), got {}",
                    s.get_ref()
                ),
            );
            DEFAULT_BLOCK_SIZE
        }
        Some(s) => *s.get_ref(),
        None => DEFAULT_BLOCK_SIZE,
    };
    let block_size_v6 = match &raw.block_size_v6 {
        Some(s) if !crate::pools::BLOCK_SIZES_V6.contains(s.get_ref()) => {
            sink.at(
                Some(&s.span()),
                format!("block_size_v6 must be from 96 to 126, got {}", s.get_ref()),
            );
            DEFAULT_BLOCK_SIZE_V6
        }
        Some(s) => *s.get_ref(),
        None => DEFAULT_BLOCK_SIZE_V6,
    };
    let mesh_password = raw
        .mesh_password
        .as_ref()
        .and_then(|s| checks::password(sink, s, "mesh_password"));
    Cluster {
        pools: Vec::new(),
        mesh: get(&raw.mesh).unwrap_or(true),
        nodes,
        mesh_password,
        block_size,
        block_size_v6,
    }
}

fn blocks_in_pools(blocks: &[(IpNet, Range<usize>)], pools: &[IpNet], sink: &mut Sink<'_>) {
    for (block, span) in blocks {
        if pools.iter().any(|p| p.contains(block)) {
            continue;
        }
        let pools = if pools.is_empty() {
            "no pools configured in [cluster]".to_owned()
        } else {
            pools
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        sink.at(
            Some(span),
            format!("block {block} is outside every cluster pool ({pools})"),
        );
    }
}

fn bgp(raw: &RawBgp, sink: &mut Sink<'_>) -> Bgp {
    let port = raw
        .port
        .as_ref()
        .and_then(|s| at_least(sink, s, 1, PORT_RANGE))
        .unwrap_or(DEFAULT_PORT);
    let hold_time = match &raw.hold_time {
        Some(s) if matches!(*s.get_ref(), 1 | 2) => {
            sink.at(
                Some(&s.span()),
                format!(
                    "hold_time must be 0 or at least 3 seconds (RFC 4271), got {}",
                    s.get_ref()
                ),
            );
            DEFAULT_HOLD_TIME
        }
        Some(s) => *s.get_ref(),
        None => DEFAULT_HOLD_TIME,
    };
    let keepalive_time = raw.keepalive_time.as_ref().and_then(|s| {
        let ka = *s.get_ref();
        if hold_time > 0 && ka >= hold_time {
            sink.at(Some(&s.span()), format!("keepalive_time must be less than hold_time ({hold_time}), got {ka}"));
            return None;
        }
        if hold_time > 0 && ka == 0 {
            sink.at(
                Some(&s.span()),
                format!("keepalive_time 0 sends no keepalives, so peers would drop the session after hold_time ({hold_time})"),
            );
            return None;
        }
        Some(ka)
    });
    let graceful_restart_time = match &raw.graceful_restart_time {
        Some(s) if *s.get_ref() > MAX_RESTART_TIME => {
            sink.at(
                Some(&s.span()),
                format!(
                    "graceful_restart_time must be at most {MAX_RESTART_TIME} seconds (a 12-bit field, RFC 4724), got {}",
                    s.get_ref()
                ),
            );
            DEFAULT_GRACEFUL_RESTART_TIME
        }
        Some(s) => *s.get_ref(),
        None => DEFAULT_GRACEFUL_RESTART_TIME,
    };
    let route_reflector_cluster_id = raw
        .route_reflector_cluster_id
        .as_ref()
        .and_then(|s| checks::ipv4(sink, s, "route_reflector_cluster_id"));
    let max_paths = raw
        .max_paths
        .as_ref()
        .and_then(|s| {
            at_least(
                sink,
                s,
                1,
                "max_paths must be at least 1 (1 turns ECMP off)",
            )
        })
        .unwrap_or(DEFAULT_MAX_PATHS);
    let connect_retry_time = raw
        .connect_retry_time
        .as_ref()
        .and_then(|s| at_least(sink, s, 1, "connect_retry_time must be at least 1 second"))
        .unwrap_or(DEFAULT_CONNECT_RETRY_TIME);
    Bgp {
        port,
        hold_time,
        keepalive_time,
        graceful_restart_time,
        route_reflector_cluster_id,
        max_paths,
        connect_retry_time,
        listen: get(&raw.listen).unwrap_or(true),
    }
}

fn peers(
    raw: Vec<RawPeer>,
    node: &NodeParts,
    address: Option<Ipv4Addr>,
    layout: &Layout,
    sink: &mut Sink<'_>,
) -> Vec<Peer> {
    let mut out = Vec::new();
    let mut seen: HashMap<IpAddr, Range<usize>> = HashMap::new();
    for (i, p) in raw.into_iter().enumerate() {
        let Some(addr_s) = &p.address else {
            let at = layout.peers.get(i).cloned().flatten();
            if !layout.reported(&["peer"], "address", at.as_ref()) {
                sink.at(at.as_ref(), "missing key `address` in [[peer]]");
            }
            continue;
        };
        let Some(addr) = checks::unicast(sink, addr_s, "peer") else {
            continue;
        };
        let own =
            Some(addr) == address.map(IpAddr::V4) || Some(addr) == node.address_v6.map(IpAddr::V6);
        if own {
            sink.at(
                Some(&addr_s.span()),
                format!("peer {addr} is this node's own address"),
            );
        }
        if let Some(first) = seen.get(&addr) {
            let line = sink.line_of(first);
            sink.at(
                Some(&addr_s.span()),
                format!("peer {addr} is listed twice (first at line {line})"),
            );
        } else {
            seen.insert(addr, addr_s.span());
        }
        out.push(peer(p, addr, node, sink));
    }
    out
}

/// Records every problem of one peer; the values after an error only keep checking going.
fn peer(p: RawPeer, address: IpAddr, node: &NodeParts, sink: &mut Sink<'_>) -> Peer {
    let asn = match &p.asn {
        Some(s) => checks::asn(sink, s).unwrap_or(node.asn),
        None => node.asn,
    };
    let port = p
        .port
        .as_ref()
        .and_then(|s| at_least(sink, s, 1, PORT_RANGE));
    let password = p
        .password
        .as_ref()
        .and_then(|s| checks::password(sink, s, "password"));
    let rr_client = get(&p.rr_client).unwrap_or(false);
    let route_reflector = get(&p.route_reflector).unwrap_or(false);
    let ibgp_only = |sink: &mut Sink<'_>, s: &Option<Spanned<bool>>, what: &str| {
        if let Some(s) = s.as_ref().filter(|s| *s.get_ref()) {
            if asn != node.asn {
                sink.at(
                    Some(&s.span()),
                    format!(
                        "{what} needs an iBGP peer (asn {}), but this peer has asn {asn}",
                        node.asn
                    ),
                );
            }
        }
    };
    ibgp_only(sink, &p.rr_client, "rr_client");
    ibgp_only(sink, &p.route_reflector, "route_reflector");
    if rr_client && route_reflector {
        let at = p.route_reflector.as_ref().map(Spanned::span);
        sink.at(
            at.as_ref(),
            "a peer cannot be both rr_client and route_reflector",
        );
    }
    let max_prefixes = p.max_prefixes.as_ref().and_then(|s| {
        at_least(
            sink,
            s,
            1,
            "max_prefixes must be at least 1 (remove the key for no limit)",
        )
    });
    let name = p
        .name
        .as_ref()
        .and_then(|s| checks::not_empty(sink, s, "name"));
    Peer {
        address,
        asn,
        port,
        passive: get(&p.passive).unwrap_or(false),
        password,
        rr_client,
        route_reflector,
        ttl_security: get(&p.ttl_security).unwrap_or(false),
        max_prefixes,
        name,
        shutdown: get(&p.shutdown).unwrap_or(false),
        bfd: get(&p.bfd),
    }
}

fn device_name(raw: &Opt<String>, default: &str, sink: &mut Sink<'_>) -> String {
    let Some(s) = raw else {
        return default.to_owned();
    };
    let d = s.get_ref();
    let bad = if d.is_empty() {
        Some("must not be empty".to_owned())
    } else if d.len() > MAX_IFNAME {
        Some(format!(
            "is {} bytes; Linux interface names are at most {MAX_IFNAME}",
            d.len()
        ))
    } else if d == "." || d == ".." || d.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("is not a valid interface name (no '/', ':' or spaces)".to_owned())
    } else {
        None
    };
    if let Some(why) = bad {
        sink.at(Some(&s.span()), format!("device {d:?} {why}"));
    }
    d.clone()
}

fn tunnel_mtu(raw: &Opt<u32>, sink: &mut Sink<'_>) -> Option<u32> {
    raw.as_ref().and_then(|s| {
        let m = *s.get_ref();
        if (MIN_MTU..=MAX_MTU).contains(&m) {
            Some(m)
        } else {
            sink.at(
                Some(&s.span()),
                format!("mtu must be from {MIN_MTU} to {MAX_MTU}, got {m}"),
            );
            None
        }
    })
}

/// `[ipip]`; its mode defaults to `never` when VXLAN is on, and may not be on beside it.
fn ipip(raw: &RawIpip, vxlan: IpipMode, sink: &mut Sink<'_>) -> Ipip {
    let device = device_name(&raw.device, DEFAULT_DEVICE, sink);
    let mtu = tunnel_mtu(&raw.mtu, sink);
    let mode = match &raw.mode {
        Some(m) if vxlan != IpipMode::Never && *m.get_ref() != IpipMode::Never => {
            sink.at(
                Some(&m.span()),
                format!(
                    "ipip.mode = \"{}\" beside vxlan.mode = \"{}\": a node encapsulates one way; set one of them to \"never\" (ipip.mode defaults to \"never\" when vxlan.mode is set)",
                    m.get_ref(),
                    vxlan
                ),
            );
            IpipMode::Never
        }
        Some(m) => *m.get_ref(),
        None if vxlan != IpipMode::Never => IpipMode::Never,
        None => IpipMode::default(),
    };
    Ipip { mode, device, mtu }
}

fn vxlan(raw: &RawVxlan, sink: &mut Sink<'_>) -> Vxlan {
    let device = device_name(&raw.device, DEFAULT_VXLAN_DEVICE, sink);
    let mtu = tunnel_mtu(&raw.mtu, sink);
    let vni = match &raw.vni {
        Some(s) if !(1..=MAX_VNI).contains(s.get_ref()) => {
            sink.at(
                Some(&s.span()),
                format!(
                    "vni must be from 1 to {MAX_VNI} (24 bits), got {}",
                    s.get_ref()
                ),
            );
            DEFAULT_VXLAN_VNI
        }
        Some(s) => *s.get_ref(),
        None => DEFAULT_VXLAN_VNI,
    };
    let port = raw
        .port
        .as_ref()
        .and_then(|s| at_least(sink, s, 1, PORT_RANGE))
        .unwrap_or(DEFAULT_VXLAN_PORT);
    Vxlan {
        mode: get(&raw.mode).unwrap_or(IpipMode::Never),
        device,
        vni,
        port,
        mtu,
    }
}

fn kernel(raw: &RawKernel, sink: &mut Sink<'_>) -> Kernel {
    let protocol = match &raw.protocol {
        Some(s) => {
            let reserved = match *s.get_ref() {
                0 => Some("RTPROT_UNSPEC"),
                1 => Some("RTPROT_REDIRECT"),
                2 => Some("RTPROT_KERNEL, routes the kernel adds itself"),
                3 => Some("RTPROT_BOOT, routes added by `ip route` without `proto`"),
                4 => Some("RTPROT_STATIC, routes an administrator added"),
                _ => None,
            };
            if let Some(what) = reserved {
                sink.at(
                    Some(&s.span()),
                    format!(
                        "protocol {} is reserved ({what}); ipipd owns every route with its protocol, so use a value above 4, e.g. {DEFAULT_PROTOCOL} (bgp)",
                        s.get_ref()
                    ),
                );
            }
            *s.get_ref()
        }
        None => DEFAULT_PROTOCOL,
    };
    let table = match &raw.table {
        Some(s) => {
            let why = match *s.get_ref() {
                0 => Some("table 0 is RT_TABLE_UNSPEC"),
                255 => Some("table 255 is the local table, which the kernel manages"),
                _ => None,
            };
            if let Some(why) = why {
                sink.at(
                    Some(&s.span()),
                    format!("{why}; the main table is {DEFAULT_TABLE}"),
                );
            }
            *s.get_ref()
        }
        None => DEFAULT_TABLE,
    };
    Kernel {
        protocol,
        table,
        install: get(&raw.install).unwrap_or(true),
        flush_on_stop: get(&raw.flush_on_stop).unwrap_or(false),
    }
}

fn control(raw: &RawControl, sink: &mut Sink<'_>) -> Control {
    let socket = match &raw.socket {
        Some(s) => {
            let len = s.get_ref().len();
            if checks::not_empty(sink, s, "socket").is_some() && len > checks::MAX_SOCKET_PATH {
                sink.at(
                    Some(&s.span()),
                    format!(
                        "socket path is {len} bytes; a Unix socket path is at most {} bytes",
                        checks::MAX_SOCKET_PATH
                    ),
                );
            }
            PathBuf::from(s.get_ref())
        }
        None => PathBuf::from(DEFAULT_SOCKET),
    };
    let state_dir = match &raw.state_dir {
        Some(s) => {
            checks::not_empty(sink, s, "state_dir");
            PathBuf::from(s.get_ref())
        }
        None => PathBuf::from(DEFAULT_STATE_DIR),
    };
    Control { socket, state_dir }
}
