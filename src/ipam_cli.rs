//! `ipipd ipam check [--json]` and `ipipd ipam release --from-report FILE`.

use std::process::ExitCode;

use anyhow::Context;
use api::ipam_report::IpamReport;

use crate::cli::IpamAction;
use crate::control::client;
use crate::control::protocol::{Request, Response};

pub fn run(action: IpamAction) -> anyhow::Result<ExitCode> {
    match action {
        IpamAction::Check { json, socket } => {
            let report = match client::call(&socket.socket, &Request::IpamCheck)? {
                Response::IpamReport(r) => r,
                Response::Error { message } => anyhow::bail!(message),
                other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", text(&report));
            }
            Ok(if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        IpamAction::Release {
            from_report,
            socket,
        } => {
            let raw = std::fs::read_to_string(&from_report)
                .with_context(|| format!("reading {}", from_report.display()))?;
            let report: IpamReport = serde_json::from_str(&raw).with_context(|| {
                format!(
                    "{} is not an `ipipd ipam check --json` report",
                    from_report.display()
                )
            })?;
            match client::call(
                &socket.socket,
                &Request::IpamReleaseReport {
                    report: Box::new(report),
                },
            )? {
                Response::Ok { message } => {
                    println!("{message}");
                    Ok(ExitCode::SUCCESS)
                }
                Response::Error { message } => anyhow::bail!(message),
                other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
            }
        }
    }
}

/// The report for a person: one line per finding, and a verdict.
fn text(r: &IpamReport) -> String {
    let mut out = String::new();
    for l in &r.leaked {
        out.push_str(&format!(
            "leaked      {} {} node {} ({}){}\n",
            l.address,
            l.handle,
            l.node,
            l.reason,
            l.pod
                .as_ref()
                .map_or(String::new(), |p| format!(" pod {p}"))
        ));
    }
    for m in &r.missing {
        out.push_str(&format!(
            "missing     {} {} node {} (live, no allocation)\n",
            m.address, m.handle, m.node
        ));
    }
    for d in &r.duplicates {
        out.push_str(&format!(
            "duplicate   {} held by {}\n",
            d.address,
            d.handles.join(", ")
        ));
    }
    for o in &r.orphan_blocks {
        out.push_str(&format!(
            "orphan      {} (node {} is not registered)\n",
            o.block, o.node
        ));
    }
    for n in &r.unreported_nodes {
        out.push_str(&format!(
            "unreported  node {n} has not reported its pods; its allocations are not judged\n"
        ));
    }
    out.push_str(&format!(
        "{} at {}\n",
        if r.clean() { "clean" } else { "problems found" },
        r.checked_at
    ));
    out
}
