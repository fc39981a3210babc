//! The checker: every node and etcd read every 1.5 s, every invariant checked, the
//! first violation (or, with keep-going, every kind) recorded with its evidence.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::cluster::{lock, Shared, Status, StopOnDrop};
use super::invariants::{check_round, Finding, Round};
use super::observe::{describe, names, EtcdView, NodeObs, PodRef};
use super::{BLOCK_LEN, CHECK_EVERY, PREFIX};
use crate::etcd::NodeCtl;
use crate::harness::{ipv4_addresses, Netns};

/// A finding with the observations of every node it names and etcd's view of them.
pub fn evidence(
    f: &Finding,
    obs: &[(usize, NodeObs)],
    ctls: &[Option<NodeCtl>],
    etcd: Option<&EtcdView>,
) -> String {
    let mut s = format!("{}\n", f.text);
    let involved: Vec<&(usize, NodeObs)> = obs
        .iter()
        .filter(|(_, o)| names(&f.text, &o.name))
        .collect();
    if let Some(e) = etcd {
        let ns: Vec<&str> = involved.iter().map(|(_, o)| o.name.as_str()).collect();
        s.push_str(&e.describe(&ns, &[]));
    }
    for (i, o) in involved {
        s.push_str(&describe(o, ctls.get(*i).and_then(Option::as_ref)));
    }
    s
}

pub fn checker(sh: &Shared) {
    let _stop = StopOnDrop(sh, false);
    // Finding key → (first seen, reported as a violation, the finding).
    let mut seen: BTreeMap<String, (Instant, bool, Finding)> = BTreeMap::new();
    let mut cursor = 0usize;
    while !sh.stopped() {
        let t = Instant::now();
        let s0 = sh.snapshot();
        let mut obs: Vec<(usize, NodeObs)> = Vec::new();
        for (i, (status, _, _, ctl)) in s0.slots.iter().enumerate() {
            if let (Status::Running, Some(ctl)) = (status, ctl) {
                // A node that does not answer is being stopped (the next snapshot says
                // so) or has died (the chaos thread sees its process exit).
                if let Ok(o) = NodeObs::read(ctl) {
                    obs.push((i, o));
                }
            }
        }
        let etcd = EtcdView::read(&lock(&sh.etcd), PREFIX).ok();
        // A few pods' own view of their address, in turn.
        let pods0: Vec<&(PodRef, String)> = s0.pods.values().collect();
        let mut netns_seen = Vec::new();
        for k in 0..pods0.len().min(6) {
            let (p, ns) = pods0[(cursor + k) % pods0.len()];
            netns_seen.push((p.clone(), ipv4_addresses(&Netns::existing(ns), "eth0")));
        }
        cursor += 6;
        let s1 = sh.snapshot();
        obs.retain(|(i, _)| s1.slots[*i].0 == Status::Running && s1.slots[*i].1 == s0.slots[*i].1);
        let settled: BTreeSet<String> = obs
            .iter()
            .filter(|(i, _)| s0.slots[*i].2 <= s0.at)
            .map(|(_, o)| o.name.clone())
            .collect();
        let pods: Vec<PodRef> = s0
            .pods
            .iter()
            .filter(|(id, _)| s1.pods.contains_key(*id))
            .map(|(_, (p, _))| p.clone())
            .collect();
        let removed: Vec<(String, Ipv4Addr)> = s0
            .removed
            .iter()
            .filter(|(_, _, since)| *since <= s0.at)
            .map(|(n, a, _)| (n.clone(), *a))
            .collect();
        let nodes: Vec<NodeObs> = obs.iter().map(|(_, o)| o.clone()).collect();
        let mut findings = check_round(&Round {
            nodes: &nodes,
            settled: &settled,
            pods: &pods,
            etcd: etcd.as_ref(),
            removed: &removed,
            block_len: BLOCK_LEN,
        });
        for (p, seen_there) in netns_seen {
            let stable = pods.contains(&p);
            match seen_there {
                Ok(a) if a == [p.address] => {}
                other if stable => findings.push(Finding {
                    key: format!("pod-netns {}", p.id),
                    text: format!(
                        "live pod {} on {} was given {}, its eth0 has {other:?}",
                        p.id, p.node, p.address
                    ),
                    hold: Duration::ZERO,
                }),
                _ => {}
            }
        }
        let now = Instant::now();
        let ctls: Vec<Option<NodeCtl>> = s0
            .slots
            .iter()
            .map(|x| x.3.as_ref().map(NodeCtl::handle))
            .collect();
        let mut next = BTreeMap::new();
        for f in findings {
            let (first, mut reported) = seen.get(&f.key).map_or((now, false), |(t, r, _)| (*t, *r));
            if now.duration_since(first) >= f.hold {
                let kind = f.key.split(' ').next().unwrap_or_default();
                sh.fail_with(kind, || {
                    format!(
                        "{} (seen for {:.1} s)\n{}",
                        f.key,
                        now.duration_since(first).as_secs_f64(),
                        evidence(&f, &obs, &ctls, etcd.as_ref())
                    )
                });
                if sh.stopped() {
                    return;
                }
                reported = true;
            }
            next.insert(f.key.clone(), (first, reported, f));
        }
        // Session problems that healed before they were violations: flaps, counted.
        for (key, (first, reported, f)) in &seen {
            if !reported && !next.contains_key(key) && key.starts_with("session ") {
                sh.counts.session_dips.fetch_add(1, Relaxed);
                let mut d = lock(&sh.dips);
                if d.len() < 5 {
                    d.push(format!(
                        "{} for {:.1} s",
                        f.text,
                        now.duration_since(*first).as_secs_f64()
                    ));
                }
            }
        }
        seen = next;
        sh.counts.rounds.fetch_add(1, Relaxed);
        std::thread::sleep(CHECK_EVERY.saturating_sub(t.elapsed()));
    }
}
