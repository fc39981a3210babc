//! `ipipd ipam check` and `ipipd ipam release --from-report`, datastore mode.
//!
//! How a check knows every node's live pods: each daemon writes
//! `<prefix>/live/<node>`, the handles (with addresses) of its pods whose host veth
//! exists, whenever that set changes (checked every few seconds). A pod whose network
//! namespace went away without a DEL takes its veth pair with it, so it drops out of
//! its node's report. The check then compares every block's allocation record with
//! the registered nodes and their reports:
//! - an allocation of a node no longer registered is leaked (`node removed`);
//! - an allocation of a registered node, older than its last report and absent from
//!   it, is leaked (`pod gone`); one newer than the report is not judged yet;
//! - a reported pod with no allocation under its handle is missing;
//! - an address held by two handles (records or reports) is a duplicate;
//! - a block whose owner is no registered node (or an allocation record with no block
//!   key) is an orphan.
//!
//! A node that is down keeps its last report: its pods are judged by it until the node
//! is removed. Each check is recorded (`<prefix>/checks/last`); a release frees only
//! what its report and a later check both found leaked, each by its sequence, so an
//! address given to a new pod since is never freed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use api::ipam_report::{DuplicateJson, IpamReport, LeakJson, MissingJson, OrphanBlockJson};
use api::protocol::Response;
use datastore::{CheckRecord, Kv, Leak, Snapshot};

use super::cluster::Cluster;
use super::pods::is_tunnel_handle;

/// The check of `snap`, as of `now`.
pub fn check(snap: &Snapshot, now: SystemTime) -> IpamReport {
    let mut report = IpamReport {
        leaked: Vec::new(),
        missing: Vec::new(),
        duplicates: Vec::new(),
        orphan_blocks: Vec::new(),
        unreported_nodes: Vec::new(),
        checked_at: humantime::format_rfc3339_millis(now).to_string(),
    };
    let mut holders: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
    let mut unreported = BTreeSet::new();
    for (block, (record, _)) in &snap.allocations {
        let mut owners = BTreeSet::new();
        for (held, attr) in record.held() {
            holders
                .entry(held.address)
                .or_default()
                .insert(attr.handle.clone());
            owners.insert(attr.node.clone());
            let reason = if !snap.nodes.contains_key(&attr.node) {
                Some("node removed")
            } else if is_tunnel_handle(&attr.handle, &attr.node) {
                None
            } else {
                match snap.live.get(&attr.node) {
                    None => {
                        unreported.insert(attr.node.clone());
                        None
                    }
                    Some(live) => (attr.time < live.at
                        && !live
                            .handles
                            .get(&attr.handle)
                            .is_some_and(|ips| ips.contains(&held.address)))
                    .then_some("pod gone"),
                }
            };
            if let Some(reason) = reason {
                report.leaked.push(LeakJson {
                    address: held.address,
                    handle: attr.handle.clone(),
                    node: attr.node.clone(),
                    sequence: held.sequence,
                    pod: attr
                        .namespace
                        .as_ref()
                        .zip(attr.pod.as_ref())
                        .map(|(ns, p)| format!("{ns}/{p}")),
                    reason: reason.into(),
                });
            }
        }
        if !snap.blocks.contains_key(block) && !record.is_empty() {
            let node = owners.into_iter().next().unwrap_or_default();
            report.orphan_blocks.push(OrphanBlockJson {
                block: block.to_string(),
                node,
            });
        }
    }
    for b in snap.blocks.values() {
        if !snap.nodes.contains_key(&b.record.node) {
            report.orphan_blocks.push(OrphanBlockJson {
                block: b.net.to_string(),
                node: b.record.node.clone(),
            });
        }
    }
    for (node, live) in &snap.live {
        if !snap.nodes.contains_key(node) {
            continue;
        }
        for (handle, ips) in &live.handles {
            for ip in ips {
                let recorded = holders.get(ip).is_some_and(|h| h.contains(handle));
                if !recorded {
                    report.missing.push(MissingJson {
                        address: *ip,
                        handle: handle.clone(),
                        node: node.clone(),
                    });
                }
                holders.entry(*ip).or_default().insert(handle.clone());
            }
        }
    }
    for (address, handles) in holders {
        if handles.len() > 1 {
            report.duplicates.push(DuplicateJson {
                address,
                handles: handles.into_iter().collect(),
            });
        }
    }
    report.unreported_nodes = unreported.into_iter().collect();
    report.leaked.sort();
    report.orphan_blocks.sort();
    report
}

fn leak(l: &LeakJson) -> Leak {
    Leak {
        address: l.address,
        handle: l.handle.clone(),
        node: l.node.clone(),
        sequence: l.sequence,
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn error(message: String) -> Response {
    Response::Error { message }
}

/// `ipam check`: reads the datastore, judges, records the check.
pub async fn run_check<K: Kv>(c: &Cluster<K>) -> Response {
    let snap = match c.ds.snapshot().await {
        Ok(s) => s,
        Err(e) => return error(format!("reading the datastore: {e}")),
    };
    let now = SystemTime::now();
    let report = check(&snap, now);
    let record = CheckRecord {
        at: millis(now),
        leaked: report.leaked.iter().map(leak).collect(),
    };
    if let Err(e) = c.ds.put_check(&record).await {
        return error(format!("recording the check in the datastore: {e}"));
    }
    Response::IpamReport(Box::new(report))
}

/// What a release decided before touching anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Refuse(String),
    /// Free these; the report's other leaks the later check does not confirm.
    Free {
        confirmed: Vec<Leak>,
        unconfirmed: Vec<Leak>,
    },
}

/// A release of `report` against the last recorded check.
pub fn plan(report: &IpamReport, last: Option<&CheckRecord>) -> Plan {
    let Ok(at) = humantime::parse_rfc3339(&report.checked_at) else {
        return Plan::Refuse(format!(
            "the report's checked_at {:?} is no RFC 3339 time",
            report.checked_at
        ));
    };
    let Some(last) = last else {
        return Plan::Refuse(
            "no check is recorded: run `ipipd ipam check` again to confirm the report, then release".into(),
        );
    };
    if last.at <= millis(at) {
        return Plan::Refuse(format!(
            "the report ({}) is not older than the last check ({}): run `ipipd ipam check` again to confirm it, then release",
            report.checked_at,
            humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(last.at))
        ));
    }
    let later: BTreeSet<&Leak> = last.leaked.iter().collect();
    let (confirmed, unconfirmed): (Vec<Leak>, Vec<Leak>) = report
        .leaked
        .iter()
        .map(leak)
        .partition(|l| later.contains(l));
    if confirmed.is_empty() && !unconfirmed.is_empty() {
        return Plan::Refuse(format!(
            "the last check does not confirm any of the report's {} leaked allocations; nothing released",
            unconfirmed.len()
        ));
    }
    Plan::Free {
        confirmed,
        unconfirmed,
    }
}

/// `ipam release --from-report`.
pub async fn run_release<K: Kv>(c: &Cluster<K>, report: &IpamReport) -> Response {
    let snap = match c.ds.snapshot().await {
        Ok(s) => s,
        Err(e) => return error(format!("reading the datastore: {e}")),
    };
    let (confirmed, unconfirmed) = match plan(report, snap.last_check.as_ref()) {
        Plan::Refuse(why) => return error(why),
        Plan::Free {
            confirmed,
            unconfirmed,
        } => (confirmed, unconfirmed),
    };
    let mut freed = Vec::new();
    let mut refused = Vec::new();
    for l in &confirmed {
        match c.ds.free_leak(l).await {
            Ok(Ok(_)) => freed.push(l.address.to_string()),
            Ok(Err(e)) => refused.push(format!("{}: {e}", l.address)),
            Err(e) => return error(format!("releasing {}: {e}", l.address)),
        }
    }
    // Allocation records left empty with no block key (their node was removed).
    if let Ok(now) = c.ds.snapshot().await {
        for (block, (record, _)) in &now.allocations {
            if record.is_empty() && !now.blocks.contains_key(block) {
                if let Err(e) = c.ds.delete_empty_record(block).await {
                    tracing::warn!(%block, error = %e, "deleting an empty orphan allocation record");
                }
            }
        }
    }
    tracing::info!(freed = ?freed, refused = ?refused, "ipam release from a report");
    let mut message = format!("released {} addresses", freed.len());
    if !freed.is_empty() {
        message.push_str(&format!(": {}", freed.join(", ")));
    }
    if !unconfirmed.is_empty() {
        let list: Vec<String> = unconfirmed.iter().map(|l| l.address.to_string()).collect();
        message.push_str(&format!(
            "; not confirmed by the last check, kept: {}",
            list.join(", ")
        ));
    }
    if !refused.is_empty() {
        message.push_str(&format!("; refused: {}", refused.join("; ")));
    }
    Response::Ok { message }
}

#[cfg(test)]
#[path = "ipam_check_tests.rs"]
mod tests;
