//! Text to [`RawConfig`], reporting every serde error, not just the first.
//!
//! serde stops at the first error. To report them all, the document is parsed once into
//! `toml_edit`'s tree, which keeps the byte span of every key and value; after each
//! failed deserialization the item the error points at is taken out of the tree and
//! deserialization is run again. Each round removes one item, so this ends, and the
//! remaining spans stay those of the original text.

use std::ops::Range;

use toml_edit::{ArrayOfTables, DocumentMut, ImDocument, Item, Table, TableLike, Value};

use crate::error::Sink;
use crate::messages;
use crate::raw::RawConfig;

/// Positions of things validation may report as missing.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// The `[node]` table.
    pub node: Option<Range<usize>>,
    /// Each `[[peer]]`, in the order serde saw them.
    pub peers: Vec<Option<Range<usize>>>,
    /// Each `[[pool]]`, likewise.
    pub pools: Vec<Option<Range<usize>>>,
    /// Keys taken out because of an error, so that validation does not also call them missing.
    pub removed: Vec<Removed>,
}

#[derive(Debug)]
pub(crate) struct Removed {
    pub tables: Vec<String>,
    pub key: String,
    /// For an unknown key, the known key it probably stands for.
    pub meant: Option<String>,
    pub span: Option<Range<usize>>,
}

impl Layout {
    /// Whether `key` of the table `tables` at `within_span` was reported already, as a
    /// bad value or as a misspelling.
    pub(crate) fn reported(
        &self,
        tables: &[&str],
        key: &str,
        within_span: Option<&Range<usize>>,
    ) -> bool {
        self.removed.iter().any(|r| {
            r.tables
                .iter()
                .map(String::as_str)
                .eq(tables.iter().copied())
                && (r.key == key || r.meant.as_deref() == Some(key))
                && match (within_span, &r.span) {
                    (None, _) => true,
                    (Some(w), Some(s)) => within(Some(w.clone()), s),
                    (Some(_), None) => false,
                }
        })
    }
}

/// Where a removed item sat, to word the message.
#[derive(Debug)]
pub(crate) struct Hit {
    /// Keys of the enclosing tables, outermost first.
    pub tables: Vec<String>,
    /// True when the innermost table is one element of an array of tables.
    pub in_array_of_tables: bool,
    /// The key removed, or whose element/table was removed.
    pub key: String,
    pub what: HitKind,
    /// Of the key, element or table removed.
    pub span: Option<Range<usize>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HitKind {
    /// The error pointed at the key itself (unknown key).
    Key,
    /// The error pointed at the key's value.
    Value,
    /// One element (0-based) of an array value.
    Element(usize),
    /// One table (0-based) of an array of tables.
    Table(usize),
}

/// Parses `text`; syntax errors and serde errors go to `sink`. `None` when the text is
/// not TOML at all or an error could not be isolated.
pub(crate) fn deserialize(text: &str, sink: &mut Sink<'_>) -> Option<(RawConfig, Layout)> {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            sink.at(e.span().as_ref(), messages::syntax(e.message()));
            return None;
        }
    };
    let mut root: Table = doc.as_table().clone();
    let mut removed = sections(&mut root, sink);
    loop {
        match toml_edit::de::from_document::<RawConfig>(DocumentMut::from(root.clone())) {
            Ok(raw) => {
                let mut layout = layout(&root);
                layout.removed = removed;
                return Some((raw, layout));
            }
            Err(e) => {
                let span = e.span();
                let hit = span
                    .as_ref()
                    .and_then(|s| remove_at(&mut root, s, &mut Vec::new(), false));
                match hit {
                    Some(hit) => {
                        sink.at(span.as_ref(), messages::serde(e.message(), &hit));
                        removed.push(Removed {
                            meant: messages::meant(e.message(), &hit),
                            tables: hit.tables,
                            key: hit.key,
                            span: hit.span,
                        });
                    }
                    None => {
                        sink.at(span.as_ref(), messages::syntax(e.message()));
                        return None;
                    }
                }
            }
        }
    }
}

/// The top-level keys that hold one table each; `peer` and `pool` hold arrays of them.
const SECTIONS: [&str; 11] = [
    "node",
    "cluster",
    "bgp",
    "ipip",
    "vxlan",
    "kernel",
    "control",
    "metrics",
    "datastore",
    "bfd",
    "ipam",
];

/// Checks the shape of the top level before serde, which would read `[[node]]` as a
/// struct written as a sequence and word its complaint in those terms.
fn sections(root: &mut Table, sink: &mut Sink<'_>) -> Vec<Removed> {
    let mut removed = Vec::new();
    let keys: Vec<String> = root.iter().map(|(k, _)| k.to_owned()).collect();
    for key in keys {
        let Some((k, item)) = root.get_key_value(&key) else {
            continue;
        };
        let is_table = item.is_table() || item.is_inline_table();
        let what = item_kind(item);
        let array = key == "peer" || key == "pool";
        let msg = if SECTIONS.contains(&key.as_str()) && !is_table {
            format!("`{key}` must be a table, written [{key}], got {what}")
        } else if array && is_table {
            format!("`{key}` must be an array of tables: write each {key} as [[{key}]]")
        } else if array && !item.is_array_of_tables() && !item.is_array() {
            format!("`{key}` must be an array of tables, written [[{key}]], got {what}")
        } else {
            continue;
        };
        let span = k.span().or_else(|| item.span());
        sink.at(span.as_ref(), msg);
        root.remove(&key);
        removed.push(Removed {
            tables: Vec::new(),
            key,
            meant: None,
            span,
        });
    }
    removed
}

fn item_kind(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) | Item::Value(Value::InlineTable(_)) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(Value::Array(_)) => "an array",
        Item::Value(Value::String(_)) => "a string",
        Item::Value(Value::Integer(_)) => "an integer",
        Item::Value(Value::Float(_)) => "a float",
        Item::Value(Value::Boolean(_)) => "a boolean",
        Item::Value(Value::Datetime(_)) => "a date-time",
    }
}

fn layout(root: &Table) -> Layout {
    let node = root
        .get_key_value("node")
        .and_then(|(k, v)| v.span().or_else(|| k.span()));
    let spans = |key: &str| match root.get(key) {
        Some(Item::ArrayOfTables(aot)) => aot.iter().map(Table::span).collect(),
        Some(Item::Value(Value::Array(a))) => a.iter().map(Value::span).collect(),
        _ => Vec::new(),
    };
    Layout {
        node,
        peers: spans("peer"),
        pools: spans("pool"),
        removed: Vec::new(),
    }
}

fn within(outer: Option<Range<usize>>, inner: &Range<usize>) -> bool {
    outer.is_some_and(|o| o.start <= inner.start && inner.end <= o.end)
}

/// What became of a search below one key.
enum Outcome {
    /// Found and removed somewhere below.
    Done(Hit),
    /// The key's whole value is the culprit: the caller removes the key.
    RemoveKey,
    NotHere,
}

/// Removes the innermost item whose key or value `span` points at.
fn remove_at(
    table: &mut dyn TableLike,
    span: &Range<usize>,
    path: &mut Vec<String>,
    in_aot: bool,
) -> Option<Hit> {
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_owned()).collect();
    for key in keys {
        let key_span = table.key(&key).and_then(|k| k.span());
        let key_hit = key_span.as_ref() == Some(span);
        let outcome = if key_hit {
            Outcome::RemoveKey
        } else {
            match table.get_mut(&key) {
                Some(item) => {
                    path.push(key.clone());
                    let o = descend(item, span, path);
                    path.pop();
                    o
                }
                None => Outcome::NotHere,
            }
        };
        match outcome {
            Outcome::Done(hit) => return Some(hit),
            Outcome::RemoveKey => {
                table.remove(&key);
                return Some(Hit {
                    tables: path.clone(),
                    in_array_of_tables: in_aot,
                    key,
                    what: if key_hit {
                        HitKind::Key
                    } else {
                        HitKind::Value
                    },
                    span: key_span,
                });
            }
            Outcome::NotHere => {}
        }
    }
    None
}

/// `path` ends with the key that holds `item`.
fn descend(item: &mut Item, span: &Range<usize>, path: &mut Vec<String>) -> Outcome {
    let item_span = item.span();
    let contains = within(item_span.clone(), span);
    // Implicit tables (`[a.b]` makes `a`) have no span of their own: look inside anyway.
    let may_hold = contains || item_span.is_none();
    match item {
        Item::Table(t) if may_hold => in_table(t, span, path, false, contains),
        Item::Value(Value::InlineTable(t)) if may_hold => in_table(t, span, path, false, contains),
        Item::ArrayOfTables(aot) if may_hold => in_aot(aot, span, path, contains),
        Item::Value(Value::Array(arr)) if contains => {
            for i in 0..arr.len() {
                let Some(v) = arr.get_mut(i) else { break };
                let elem_span = v.span();
                if !within(elem_span.clone(), span) {
                    continue;
                }
                if let Value::InlineTable(t) = v {
                    if let Some(hit) = remove_at(t, span, path, true) {
                        return Outcome::Done(hit);
                    }
                }
                arr.remove(i);
                return Outcome::Done(element_hit(path, HitKind::Element(i), elem_span));
            }
            Outcome::RemoveKey
        }
        _ if contains => Outcome::RemoveKey,
        _ => Outcome::NotHere,
    }
}

fn in_table(
    t: &mut dyn TableLike,
    span: &Range<usize>,
    path: &mut Vec<String>,
    in_aot: bool,
    contains: bool,
) -> Outcome {
    match remove_at(t, span, path, in_aot) {
        Some(hit) => Outcome::Done(hit),
        None if contains => Outcome::RemoveKey,
        None => Outcome::NotHere,
    }
}

fn in_aot(
    aot: &mut ArrayOfTables,
    span: &Range<usize>,
    path: &mut Vec<String>,
    contains: bool,
) -> Outcome {
    for i in 0..aot.len() {
        let Some(t) = aot.get_mut(i) else { break };
        let table_span = t.span();
        if !within(table_span.clone(), span) && table_span.is_some() {
            continue;
        }
        if let Some(hit) = remove_at(t, span, path, true) {
            return Outcome::Done(hit);
        }
        if within(table_span.clone(), span) {
            aot.remove(i);
            return Outcome::Done(element_hit(path, HitKind::Table(i), table_span));
        }
    }
    if contains {
        Outcome::RemoveKey
    } else {
        Outcome::NotHere
    }
}

/// A hit on part of the value under the last key of `path`.
fn element_hit(path: &[String], what: HitKind, span: Option<Range<usize>>) -> Hit {
    let (key, tables) = match path.split_last() {
        Some((k, rest)) => (k.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    Hit {
        tables,
        in_array_of_tables: false,
        key,
        what,
        span,
    }
}
