//! Pods through `ipipd-cni`, on one node, for the whole run.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::cluster::{lock, Pod, Shared, Status, StopOnDrop};
use super::observe::{describe, names, EtcdView, NodeObs, PodRef};
use super::{MAX_PODS, PREFIX};
use crate::cni::{Call, Outcome};
use crate::etcd::NodeCtl;
use crate::harness::{ipv4_addresses, Netns};

pub fn count_add_failure(sh: &Shared, node: &str, id: &str, out: &Outcome) {
    sh.counts.add_failed.fetch_add(1, Relaxed);
    let code = out.code().map_or_else(
        || format!("status {:?}", out.status),
        |c| format!("code {c}"),
    );
    let mut e = lock(&sh.add_errors);
    let entry = e.entry(code).or_insert_with(|| {
        (
            0,
            format!("{node} ADD {id}: {} {}", out.stdout, out.stderr.trim()),
        )
    });
    entry.0 += 1;
}

/// One ADD. Returns the pod when it must be deleted again (failed ADD, or node gone).
pub fn add_one(sh: &Shared, slot: usize, ctl: &NodeCtl, id: String) -> Option<(String, Netns)> {
    let ns = match Netns::new("sp") {
        Ok(ns) => ns,
        Err(e) => {
            sh.fail("harness", format!("making a pod namespace: {e}"));
            return None;
        }
    };
    let out = match Call::new("ADD", &id, Some(&ns), ctl.cni_conf()).run(&ctl.ns) {
        Ok(o) => o,
        Err(e) => {
            sh.fail("harness", format!("running ipipd-cni: {e:#}"));
            return Some((id, ns));
        }
    };
    if !out.ok() {
        count_add_failure(sh, &ctl.name, &id, &out);
        return Some((id, ns));
    }
    let Some(address) = out.address().and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
        sh.fail(
            "add-result",
            format!(
                "{} ADD {id}: no IPv4 address in the result: {}",
                ctl.name, out.stdout
            ),
        );
        return Some((id, ns));
    };
    match ipv4_addresses(&ns, "eth0") {
        Ok(a) if a == [address] => {}
        other => sh.fail(
            "pod-netns",
            format!(
                "{} ADD {id} answered {address}, the pod's eth0 has {other:?}",
                ctl.name
            ),
        ),
    }
    let pod = Pod {
        r: PodRef {
            id: id.clone(),
            node: ctl.name.clone(),
            address,
        },
        ns,
        result: out.stdout,
    };
    let clash = {
        let mut s = lock(&sh.state);
        if s.slots[slot].status == Status::Removed {
            // Made just before the node was powered off: it went with the node.
            return None;
        }
        let clash = s
            .pods
            .values()
            .find(|p| p.r.address == address)
            .map(|p| (p.r.clone(), p.result.clone()));
        let made = format!("{:?}", pod.r);
        let result = pod.result.clone();
        s.pods.insert(id, pod);
        clash.map(|c| (c, made, result))
    };
    sh.counts.made.fetch_add(1, Relaxed);
    if let Some(((other, other_result), made, result)) = clash {
        sh.fail(
            "dup-pod",
            duplicate_evidence(sh, &other, &other_result, &made, &result),
        );
    }
    None
}

pub fn duplicate_evidence(
    sh: &Shared,
    other: &PodRef,
    other_result: &str,
    made: &str,
    result: &str,
) -> String {
    let mut s = format!(
        "two live pods hold {}: {other:?} (ADD result {other_result}) and the new {made} (ADD result {result})\n",
        other.address
    );
    let snap = sh.snapshot();
    let etcd = EtcdView::read(&lock(&sh.etcd), PREFIX).ok();
    for (_, _, _, ctl) in &snap.slots {
        let Some(ctl) = ctl else { continue };
        if names(&s, &ctl.name) {
            if let Ok(o) = NodeObs::read(ctl) {
                s.push_str(&describe(&o, Some(ctl)));
            }
        }
    }
    if let Some(e) = etcd {
        s.push_str(&e.describe(&[], &[other.address]));
    }
    s
}

/// DEL as a runtime sends it; true when it succeeded.
pub fn del_one(sh: &Shared, ctl: &NodeCtl, id: &str, ns: &Netns) -> bool {
    match Call::new("DEL", id, Some(ns), ctl.cni_conf()).run(&ctl.ns) {
        Ok(o) if o.ok() => true,
        _ => {
            sh.counts.del_failed.fetch_add(1, Relaxed);
            false
        }
    }
}

/// Adds and deletes pods on one node for the whole run: towards a target count picked
/// at random (a quarter of the time zero, so the node drains and gives blocks back), a
/// few operations at once, now and then holding still long enough for blocks to be
/// released.
pub fn pod_worker(sh: &Shared, slot: usize, seed: u64) {
    let _stop = StopOnDrop(sh, false);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut pending: Vec<(String, Netns)> = Vec::new();
    let mut target = rng.usize(1..=MAX_PODS);
    let mut serial = 0usize;
    while !sh.stopped() {
        let (status, ctl) = sh.slot(slot);
        let ctl = match (status, ctl) {
            (Status::Running, Some(c)) => c,
            (Status::Removed, _) => {
                sh.idle[slot].store(true, Relaxed);
                return;
            }
            (Status::Absent, _) => {
                sh.idle[slot].store(true, Relaxed);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        pending.retain(|(id, ns)| !del_one(sh, &ctl, id, ns));
        let draining = sh.draining.load(Relaxed);
        let mine: Vec<String> = lock(&sh.state)
            .pods
            .values()
            .filter(|p| p.r.node == ctl.name)
            .map(|p| p.r.id.clone())
            .collect();
        if sh.paused.load(Relaxed) || (draining && mine.is_empty()) {
            sh.idle[slot].store(pending.is_empty(), Relaxed);
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if draining {
            target = 0;
        }
        if mine.len() < target {
            let k = rng.usize(1..=3).min(target - mine.len());
            let ids: Vec<String> = (0..k)
                .map(|_| {
                    serial += 1;
                    format!("soak-{slot}-{serial}")
                })
                .collect();
            let again: Vec<(String, Netns)> = std::thread::scope(|s| {
                let handles: Vec<_> = ids
                    .into_iter()
                    .map(|id| {
                        let ctl = &ctl;
                        s.spawn(move || add_one(sh, slot, ctl, id))
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok().flatten())
                    .collect()
            });
            pending.extend(again);
        } else if mine.len() > target {
            let k = rng.usize(1..=3).min(mine.len() - target);
            let mut chosen = mine;
            rng.shuffle(&mut chosen);
            chosen.truncate(k);
            let pods: Vec<Pod> = {
                let mut s = lock(&sh.state);
                chosen.iter().filter_map(|id| s.pods.remove(id)).collect()
            };
            let again: Vec<(String, Netns)> = std::thread::scope(|s| {
                let handles: Vec<_> = pods
                    .into_iter()
                    .map(|p| {
                        let ctl = &ctl;
                        s.spawn(move || {
                            if del_one(sh, ctl, &p.r.id, &p.ns) {
                                sh.counts.deleted.fetch_add(1, Relaxed);
                                None
                            } else {
                                Some((p.r.id, p.ns))
                            }
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok().flatten())
                    .collect()
            });
            pending.extend(again);
        } else {
            target = if rng.u8(0..4) == 0 {
                0
            } else {
                rng.usize(1..=MAX_PODS)
            };
            // Half the time the node stays as it is for a while: blocks it no longer
            // needs outlive the release grace and go back while the next ADDs arrive.
            if rng.bool() && !draining {
                let dwell = Instant::now() + Duration::from_millis(rng.u64(5_000..16_000));
                let busy = || sh.stopped() || sh.paused.load(Relaxed) || sh.draining.load(Relaxed);
                while Instant::now() < dwell && !busy() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        if !draining {
            std::thread::sleep(Duration::from_millis(rng.u64(100..500)));
        }
    }
}
