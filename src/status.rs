//! `ipipd status`: one screen that says whether the node is healthy and, if not, why.

use std::path::Path;
use std::process::ExitCode;

use api::status::StatusJson;

use crate::control::client;
use crate::control::protocol::{Request, Response};
use crate::show::table;

/// Asks the daemon; prints the answer (text or JSON); exit 0 healthy, 1 not.
pub fn run(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let status = match client::call(socket, &Request::Status) {
        Ok(Response::Status(s)) => *s,
        Ok(Response::Error { message }) => anyhow::bail!(message),
        Ok(other) => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
        // No daemon is the plainest "not healthy" there is; with --json a probe or a
        // script still gets the object it parses.
        Err(e) if json => {
            println!(
                "{}",
                serde_json::json!({ "healthy": false, "reasons": [e.to_string()] })
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", text(&status));
    }
    Ok(if status.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The verdict first, one reason a line, then what it was judged on.
pub fn text(s: &StatusJson) -> String {
    let mut out = if s.healthy {
        format!("{} ({}): healthy\n", s.node, s.address)
    } else {
        format!(
            "{} ({}): NOT healthy, {} reason{}\n",
            s.node,
            s.address,
            s.reasons.len(),
            if s.reasons.len() == 1 { "" } else { "s" }
        )
    };
    for r in &s.reasons {
        out.push_str(&format!("  reason: {r}\n"));
    }
    let up = s.peers.iter().filter(|p| p.state == "Established").count();
    out.push_str(&format!(
        "\nsessions: {up} of {} Established (a new peer has {} s to come up)\n",
        s.peers.len(),
        s.connect_window_s
    ));
    if !s.peers.is_empty() {
        let rows = s
            .peers
            .iter()
            .map(|p| {
                let mut state = p.state.clone();
                if p.admin_down {
                    state.push_str(" (shutdown)");
                } else if p.starting {
                    state.push_str(" (starting)");
                }
                vec![
                    p.address.to_string(),
                    p.name.clone().unwrap_or_else(|| "-".into()),
                    p.kind.clone(),
                    state,
                    p.since.clone(),
                    p.bfd.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &["PEER", "NAME", "KIND", "STATE", "SINCE", "BFD"],
            rows,
        )));
    }
    out.push_str(&format!(
        "\nblocks: {} ({} pod addresses allocated)\n",
        s.blocks.len(),
        s.allocated
    ));
    for b in &s.blocks {
        out.push_str(&format!(
            "  {}  {} of {} in use\n",
            b.block, b.allocated, b.capacity
        ));
    }
    let ds = &s.datastore;
    out.push_str(&match (ds.reachable, &ds.last_sync) {
        (Some(true), Some(t)) => format!("datastore: {}, reachable, last read {t}\n", ds.kind),
        (Some(false), Some(t)) => {
            format!("datastore: {}, UNREACHABLE, last read {t}\n", ds.kind)
        }
        _ => format!("datastore: {} (blocks and nodes from the file)\n", ds.kind),
    });
    out.push_str(&match &s.fib {
        Some(f) => format!(
            "fib: {} failed writes since the start, {} routes missing\n",
            f.errors,
            f.missing.len()
        ),
        None => "fib: kernel.install = false, routes are not written\n".into(),
    });
    let e = &s.encapsulation;
    let device = match (&e.state, e.mtu) {
        (Some(state), Some(mtu)) => format!("{} ({state}, mtu {mtu})", e.device),
        (Some(state), None) => format!("{} ({state})", e.device),
        _ => e.device.clone(),
    };
    out.push_str(&format!(
        "encapsulation: {} {}, device {device}, address {}\n",
        e.kind,
        e.mode,
        e.address
            .map_or_else(|| "none yet".into(), |a| a.to_string())
    ));
    if let Some(v6) = &e.v6 {
        let mtu = v6.mtu.map_or_else(String::new, |m| format!(", mtu {m}"));
        out.push_str(&format!(
            "encapsulation (IPv6): vxlan {}, device {} ({}{mtu})\n",
            e.mode, v6.device, v6.state
        ));
    }
    out.push_str(&match &s.nat {
        Some(n) if n.pools.is_empty() && n.tables.is_empty() => {
            "nat: no pool has nat_outgoing, no table\n".to_string()
        }
        Some(n) => format!(
            "nat: masquerading {} leaving the pools; table ipipd in {}{}{}\n",
            n.pools.join(", "),
            if n.tables.is_empty() {
                "no family".to_string()
            } else {
                n.tables.join(", ")
            },
            if n.repairs > 0 {
                format!(", put back {} times", n.repairs)
            } else {
                String::new()
            },
            n.last_error
                .as_ref()
                .map_or_else(String::new, |e| format!("; FAILING: {e}")),
        ),
        None => "nat: kernel.install = false, no table is written\n".into(),
    });
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
