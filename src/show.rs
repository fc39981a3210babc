//! Text tables for `show peers`, `show routes`, `show blocks` and `workload list`.

use crate::control::protocol::{
    BfdJson, BlockJson, NodeJson, PeerJson, PoolJson, RouteJson, WorkloadJson,
};

pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub fn peers_table(peers: &[PeerJson]) -> String {
    if peers.is_empty() {
        return "no peers configured\n".into();
    }
    let rows = peers
        .iter()
        .map(|p| {
            vec![
                p.address.to_string(),
                p.name.clone().unwrap_or_else(|| "-".into()),
                p.asn.to_string(),
                p.kind.clone(),
                p.state.clone(),
                p.since.clone(),
                p.received.to_string(),
                p.accepted.to_string(),
                p.bfd.clone().unwrap_or_else(|| "-".into()),
                p.info.clone(),
            ]
        })
        .collect();
    table(
        &[
            "PEER ADDRESS",
            "NAME",
            "ASN",
            "KIND",
            "STATE",
            "SINCE",
            "RECEIVED",
            "ACCEPTED",
            "BFD",
            "INFO",
        ],
        rows,
    )
}

pub fn routes_table(routes: &[RouteJson]) -> String {
    if routes.is_empty() {
        return "no routes\n".into();
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let rows = routes
        .iter()
        .map(|r| {
            let mut flags = String::new();
            if r.best {
                flags.push('*');
            }
            if r.stale {
                flags.push_str(" stale");
            }
            vec![
                r.prefix.clone(),
                dash(&r.next_hop),
                dash(&r.interface),
                r.origin.clone(),
                dash(&r.peer),
                flags,
                if r.installed {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    table(
        &[
            "PREFIX",
            "NEXT HOP",
            "INTERFACE",
            "ORIGIN",
            "PEER",
            "BEST",
            "INSTALLED",
        ],
        rows,
    )
}

pub fn blocks_table(blocks: &[BlockJson]) -> String {
    if blocks.is_empty() {
        return "no blocks\n".into();
    }
    let rows = blocks
        .iter()
        .map(|b| {
            vec![
                b.block.clone(),
                b.node.clone().unwrap_or_else(|| "?".into()),
                if b.local {
                    "local".into()
                } else {
                    "remote".into()
                },
                match (b.allocated, b.capacity) {
                    (Some(a), Some(c)) => format!("{a}/{c}"),
                    (Some(a), None) => a.to_string(),
                    _ => "-".into(),
                },
                b.state.clone(),
                b.next_hop
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &["BLOCK", "NODE", "WHERE", "ALLOCATED", "STATE", "NEXT HOP"],
        rows,
    )
}

pub fn pools_table(pools: &[PoolJson]) -> String {
    if pools.is_empty() {
        return "no pools configured\n".into();
    }
    let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let rows = pools
        .iter()
        .map(|p| {
            vec![
                p.cidr.clone(),
                format!("/{}", p.block_size),
                yes(p.nat_outgoing),
                yes(p.disabled),
                yes(p.selected),
                p.blocks.to_string(),
                format!(
                    "{}/{}",
                    p.cluster_blocks.map_or("-".into(), |c| c.to_string()),
                    p.total_blocks
                ),
                p.allocated.to_string(),
                // Last: a selector may hold spaces.
                p.node_selector.clone(),
            ]
        })
        .collect();
    table(
        &[
            "CIDR",
            "BLOCKS OF",
            "NAT OUTGOING",
            "DISABLED",
            "SELECTS THIS NODE",
            "BLOCKS HERE",
            "BLOCKS IN CLUSTER",
            "PODS HERE",
            "NODE SELECTOR",
        ],
        rows,
    )
}

pub fn workloads_table(workloads: &[WorkloadJson]) -> String {
    if workloads.is_empty() {
        return "no workloads\n".into();
    }
    let rows = workloads
        .iter()
        .map(|w| {
            vec![
                w.ip.to_string(),
                w.interface.clone(),
                w.handle.clone().unwrap_or_else(|| "(added by hand)".into()),
            ]
        })
        .collect();
    table(&["ADDRESS", "INTERFACE", "HANDLE"], rows)
}

pub fn nodes_table(nodes: &[NodeJson]) -> String {
    if nodes.is_empty() {
        return "no nodes\n".into();
    }
    let rows = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.address.to_string(),
                n.asn.to_string(),
                if n.blocks.is_empty() {
                    "-".into()
                } else {
                    n.blocks.join(",")
                },
                n.state.clone(),
            ]
        })
        .collect();
    table(&["NAME", "ADDRESS", "ASN", "BLOCKS", "STATE"], rows)
}

pub fn bfd_table(sessions: &[BfdJson]) -> String {
    if sessions.is_empty() {
        return "no BFD sessions\n".into();
    }
    let rows = sessions
        .iter()
        .map(|b| {
            vec![
                b.peer.to_string(),
                b.state.clone(),
                b.remote_state.clone(),
                format!("{}", b.interval_ms),
                b.multiplier.to_string(),
                b.detection_time_ms
                    .map_or_else(|| "-".into(), |d| format!("{d}")),
                b.since.clone(),
                b.diagnostic.clone(),
            ]
        })
        .collect();
    table(
        &[
            "PEER",
            "STATE",
            "REMOTE",
            "INTERVAL MS",
            "MULT",
            "DETECT MS",
            "SINCE",
            "DIAGNOSTIC",
        ],
        rows,
    )
}
