//! Best path selection (RFC 4271 §9.1.2.2 with the RFC 4456 §9 tie-breaks) and
//! the equal-cost multipath set handed to the FIB.

use std::cmp::Ordering;

use super::Path;
use crate::wire::Origin;

/// LOCAL_PREF assumed when a path carries none (eBGP-learned, or a peer that omits it).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

fn local_pref(p: &Path) -> u32 {
    p.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
}

fn as_path_len(p: &Path) -> usize {
    p.attrs.as_path.as_ref().map_or(0, |a| a.path_len())
}

fn origin(p: &Path) -> Origin {
    p.attrs.origin.unwrap_or(Origin::Incomplete)
}

fn neighbor_as(p: &Path) -> Option<u32> {
    p.attrs.as_path.as_ref().and_then(|a| a.first_as())
}

/// Steps up to and including "eBGP over iBGP": paths equal here are equal cost
/// and may share the traffic (the IGP-cost step is skipped: every next hop is
/// one tunnel hop away).
pub fn compare_cost(a: &Path, b: &Path) -> Ordering {
    // Our own routes always win over learned ones.
    b.is_local()
        .cmp(&a.is_local())
        .then_with(|| local_pref(b).cmp(&local_pref(a)))
        .then_with(|| as_path_len(a).cmp(&as_path_len(b)))
        .then_with(|| origin(a).cmp(&origin(b)))
        .then_with(|| {
            // MED is compared only between paths from the same neighbouring AS (§9.1.2.2 c).
            if neighbor_as(a) == neighbor_as(b) {
                a.attrs.med.unwrap_or(0).cmp(&b.attrs.med.unwrap_or(0))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| a.ibgp.cmp(&b.ibgp))
}

/// The full order: cost, then lowest ORIGINATOR_ID or router id, shortest
/// CLUSTER_LIST, lowest peer address (RFC 4456 §9, RFC 4271 §9.1.2.2 f, g).
pub fn compare(a: &Path, b: &Path) -> Ordering {
    compare_cost(a, b)
        .then_with(|| a.tie_break_id().cmp(&b.tie_break_id()))
        .then_with(|| a.attrs.cluster_list.len().cmp(&b.attrs.cluster_list.len()))
        .then_with(|| a.source.cmp(&b.source))
        .then_with(|| a.path_id.cmp(&b.path_id))
}

/// Sorts paths best first, the refused ones (not candidates) last.
pub fn sort(paths: &mut [Path]) {
    paths.sort_by(|a, b| b.accepted.cmp(&a.accepted).then_with(|| compare(a, b)));
}

/// Next hops of the paths that tie with the best on cost, in best-path order,
/// without duplicates, at most `max`.
pub fn multipath(paths: &[Path], max: usize) -> Vec<std::net::IpAddr> {
    let mut hops = Vec::new();
    let Some(best) = paths.first().filter(|p| p.accepted) else {
        return hops;
    };
    for p in paths
        .iter()
        .take_while(|p| p.accepted && compare_cost(best, p) == Ordering::Equal)
    {
        if hops.len() >= max.max(1) {
            break;
        }
        if !hops.contains(&p.next_hop) {
            hops.push(p.next_hop);
        }
    }
    hops
}
