//! Validation of the pools (`[[pool]]` tables, or the `cluster.pools` shorthand) and of
//! the node's labels, which the pools' `node_selector`s read.

use std::collections::BTreeMap;
use std::ops::Range;

use ipnet::IpNet;
use toml::Spanned;

use crate::checks;
use crate::error::Sink;
use crate::model::{Overrides, Pool};
use crate::parse::Layout;
use crate::raw::{List, RawPool};
use crate::selector::{label_char, Selector};
use crate::validate::get;

/// Block lengths `cluster.block_size` accepts, and a pool's own `block_size` too.
pub(crate) const BLOCK_SIZES_V4: std::ops::RangeInclusive<u8> = 16..=30;
pub(crate) const BLOCK_SIZES_V6: std::ops::RangeInclusive<u8> = 96..=126;
/// A Kubernetes label value: at most 63 characters.
const MAX_LABEL_VALUE: usize = 63;
/// A Kubernetes label key: a DNS-subdomain prefix (253), '/', a name (63).
const MAX_LABEL_KEY: usize = 317;

/// The pools, every problem reported; `Err(())` when one is invalid, since checks of
/// blocks against a partial list would mislead. `sizes` are `cluster.block_size` and
/// `cluster.block_size_v6`.
pub(crate) fn pools(
    shorthand: &List,
    tables: Vec<RawPool>,
    sizes: (u8, u8),
    layout: &Layout,
    sink: &mut Sink<'_>,
) -> Result<Vec<Pool>, ()> {
    let default_size = |net: &IpNet| match net {
        IpNet::V4(_) => sizes.0,
        IpNet::V6(_) => sizes.1,
    };
    let mut ok = true;
    if shorthand.is_some() && !tables.is_empty() {
        let at = layout.pools.first().cloned().flatten();
        sink.at(
            at.as_ref(),
            "pools are listed both in cluster.pools and as [[pool]] tables: keep one \
             (cluster.pools = [...] stands for [[pool]] tables with the defaults)",
        );
        ok = false;
    }
    let mut pools = Vec::new();
    let mut spans = Vec::new();
    for s in shorthand.iter().flatten() {
        match checks::cidr(sink, s, "pool") {
            Some(n) => {
                pools.push(Pool::with_defaults(n, default_size(&n)));
                spans.push((n, s.span()));
            }
            None => ok = false,
        }
    }
    for (i, t) in tables.into_iter().enumerate() {
        let at = layout.pools.get(i).cloned().flatten();
        match table(&t, at, default_size, layout, sink) {
            Some(p) => {
                if let Some(s) = &t.cidr {
                    spans.push((p.cidr, s.span()));
                }
                pools.push(p);
            }
            None => ok = false,
        }
    }
    checks::overlaps(sink, &spans, "pool");
    if ok {
        Ok(pools)
    } else {
        Err(())
    }
}

/// One `[[pool]]`; `at` is its header. Every key is checked even when another is bad.
fn table(
    t: &RawPool,
    at: Option<Range<usize>>,
    default_size: impl Fn(&IpNet) -> u8,
    layout: &Layout,
    sink: &mut Sink<'_>,
) -> Option<Pool> {
    let cidr = match &t.cidr {
        Some(s) => checks::cidr(sink, s, "pool"),
        None => {
            if !layout.reported(&["pool"], "cidr", at.as_ref()) {
                sink.at(at.as_ref(), "missing key `cidr` in [[pool]]");
            }
            None
        }
    };
    let mut size_ok = true;
    if let (Some(s), Some(net)) = (&t.block_size, &cidr) {
        let size = *s.get_ref();
        let (range, family) = match net {
            IpNet::V4(_) => (BLOCK_SIZES_V4, "IPv4"),
            IpNet::V6(_) => (BLOCK_SIZES_V6, "IPv6"),
        };
        if !range.contains(&size) {
            sink.at(
                Some(&s.span()),
                format!(
                    "block_size must be from {} to {} for an {family} pool, got {size}",
                    range.start(),
                    range.end()
                ),
            );
            size_ok = false;
        } else if size < net.prefix_len() {
            sink.at(
                Some(&s.span()),
                format!(
                    "block_size {size} is shorter than the pool {net} itself: a block cannot be larger than its pool (use at least {})",
                    net.prefix_len()
                ),
            );
            size_ok = false;
        }
    }
    let node_selector = match &t.node_selector {
        Some(s) => match Selector::parse(s.get_ref()) {
            Ok(sel) => Some(sel),
            Err(e) => {
                let at = sink.in_string(&s.span(), s.get_ref(), e.offset);
                sink.at(Some(&at), format!("invalid node_selector: {}", e.message));
                None
            }
        },
        None => Some(Selector::all()),
    };
    let (Some(cidr), Some(node_selector), true) = (cidr, node_selector, size_ok) else {
        return None;
    };
    let block_size = match get(&t.block_size) {
        Some(size) => size,
        // A pool shorter than the default block is one block, as before pools had sizes.
        None => default_size(&cidr).max(cidr.prefix_len()),
    };
    Some(Pool {
        cidr,
        block_size,
        nat_outgoing: get(&t.nat_outgoing).unwrap_or(false),
        disabled: get(&t.disabled).unwrap_or(false),
        node_selector,
    })
}

/// The node's labels: `IPIPD_NODE_LABELS` when set (the file's are then replaced, not
/// checked, as `node.address` is by `IPIPD_NODE_ADDRESS`), else `node.labels`.
pub(crate) fn labels(
    raw: Option<&BTreeMap<Spanned<String>, Spanned<String>>>,
    overrides: &Overrides,
    sink: &mut Sink<'_>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(list) = &overrides.node_labels {
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                sink.at(
                    None,
                    format!("IPIPD_NODE_LABELS / --node-labels: {item:?} is not KEY=VALUE"),
                );
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if let Some(why) = key_problem(k).or_else(|| value_problem(k, v)) {
                sink.at(None, format!("IPIPD_NODE_LABELS / --node-labels: {why}"));
            } else if out.insert(k.to_owned(), v.to_owned()).is_some() {
                sink.at(
                    None,
                    format!("IPIPD_NODE_LABELS / --node-labels: label {k:?} is set twice"),
                );
            }
        }
        return out;
    }
    for (k, v) in raw.into_iter().flatten() {
        let (key, value) = (k.get_ref(), v.get_ref());
        if let Some(why) = key_problem(key) {
            sink.at(Some(&k.span()), why);
        } else if let Some(why) = value_problem(key, value) {
            sink.at(Some(&v.span()), why);
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    out
}

/// A label key a selector can name: what Kubernetes allows, in the characters
/// `node_selector` reads as a label name.
fn key_problem(key: &str) -> Option<String> {
    let ok = !key.is_empty() && key.len() <= MAX_LABEL_KEY && key.chars().all(label_char);
    (!ok).then(|| {
        format!(
            "label name {key:?} must be 1 to {MAX_LABEL_KEY} letters, digits, '-', '_', '.' or '/'"
        )
    })
}

/// A Kubernetes label value: it can come from a node's labels unchanged.
fn value_problem(key: &str, value: &str) -> Option<String> {
    let ok = value.len() <= MAX_LABEL_VALUE
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    (!ok).then(|| {
        format!(
            "label {key}: value {value:?} must be at most {MAX_LABEL_VALUE} letters, digits, '-', '_' or '.' (as a Kubernetes label value)"
        )
    })
}
