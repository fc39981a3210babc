//! Turns parser and serde messages into ones that name the key and table, and suggest
//! the key that was probably meant.

use crate::parse::{Hit, HitKind};

/// A TOML syntax error: `toml_edit` gives several short lines, joined here into one.
pub(crate) fn syntax(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if parts.is_empty() {
        "invalid TOML".to_owned()
    } else {
        parts.join(": ")
    }
}

/// Where a key lives, as the user wrote it: "[bgp]", "[[peer]]", "the top level".
fn table_name(hit: &Hit) -> String {
    if hit.tables.is_empty() {
        return "the top level".to_owned();
    }
    let name = hit.tables.join(".");
    if hit.in_array_of_tables {
        format!("[[{name}]]")
    } else {
        format!("[{name}]")
    }
}

/// The subject of a message: "`hold_time` in [bgp]", "element 2 of `blocks` in [node]".
fn subject(hit: &Hit) -> String {
    let place = if hit.tables.is_empty() {
        String::new()
    } else {
        format!(" in {}", table_name(hit))
    };
    match hit.what {
        HitKind::Element(i) => format!("element {} of `{}`{place}", i + 1, hit.key),
        HitKind::Table(i) => format!("table {} of `{}`{place}", i + 1, hit.key),
        HitKind::Key | HitKind::Value => format!("`{}`{place}", hit.key),
    }
}

/// A serde error, reworded with the key it concerns.
pub(crate) fn serde(message: &str, hit: &Hit) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    if let Some(rest) = first.strip_prefix("unknown field ") {
        return unknown_key(rest, hit);
    }
    if let Some(rest) = first.strip_prefix("unknown variant ") {
        let got = backticked(rest).into_iter().next().unwrap_or_default();
        let valid = expected_names(rest);
        let mut msg = format!(
            "{} must be one of {}, got `{got}`",
            subject(hit),
            list(&valid)
        );
        if let Some(best) = closest(&got, &valid) {
            msg.push_str(&format!("; did you mean `{best}`?"));
        }
        return msg;
    }
    if first.starts_with("wanted string or table") {
        // toml_edit's words for a non-string where an enum (only `ipip.mode`) belongs.
        return format!("{} must be a string", subject(hit));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = first.strip_prefix(prefix) {
            if let Some((got, expected)) = rest.rsplit_once(", expected ") {
                return format!(
                    "{} must be {}, got {}",
                    subject(hit),
                    expected_kind(expected),
                    got_kind(got)
                );
            }
        }
    }
    format!("{}: {}", subject(hit), first)
}

/// For an unknown-key error, the known key the user probably meant.
pub(crate) fn meant(message: &str, hit: &Hit) -> Option<String> {
    let first = message.lines().next().unwrap_or("").trim();
    let rest = first.strip_prefix("unknown field ")?;
    let name = backticked(rest)
        .into_iter()
        .next()
        .unwrap_or_else(|| hit.key.clone());
    closest(&name, &expected_names(rest))
}

fn unknown_key(rest: &str, hit: &Hit) -> String {
    let name = backticked(rest)
        .into_iter()
        .next()
        .unwrap_or_else(|| hit.key.clone());
    let valid = expected_names(rest);
    let mut msg = if hit.tables.is_empty() {
        format!("unknown key `{name}` at the top level")
    } else {
        format!("unknown key `{name}` in {}", table_name(hit))
    };
    match closest(&name, &valid) {
        Some(best) => msg.push_str(&format!("; did you mean `{best}`?")),
        None if !valid.is_empty() => msg.push_str(&format!(" (valid keys: {})", list(&valid))),
        None => {}
    }
    msg
}

/// The names serde lists after "expected" (`expected one of `a`, `b``).
fn expected_names(rest: &str) -> Vec<String> {
    match rest.split_once("expected") {
        Some((_, tail)) => backticked(tail),
        None => Vec::new(),
    }
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// serde's type names in words a config file's reader knows.
fn expected_kind(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "u8" => "an integer from 0 to 255".to_owned(),
        "u16" => "an integer from 0 to 65535".to_owned(),
        "u32" => "an integer from 0 to 4294967295".to_owned(),
        "usize" | "u64" => "a non-negative integer".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a boolean" => "a boolean (true or false)".to_owned(),
        _ if e.starts_with("struct ") => "a table".to_owned(),
        _ if e.starts_with("enum ") => "a string".to_owned(),
        _ => e.to_owned(),
    }
}

fn got_kind(got: &str) -> String {
    match got.trim() {
        "map" => "a table".to_owned(),
        "sequence" => "an array".to_owned(),
        other => other.replace('`', ""),
    }
}

/// The valid name closest to `name`, if it is close enough to be a typo or an
/// abbreviation (`addr` for `address`).
pub(crate) fn closest(name: &str, valid: &[String]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if lower.chars().count() >= 3 {
        let shortest_prefixed = valid
            .iter()
            .filter(|v| v.to_ascii_lowercase().starts_with(&lower))
            .min_by_key(|v| v.len());
        if let Some(v) = shortest_prefixed {
            return Some(v.clone());
        }
    }
    valid
        .iter()
        .map(|v| (edit_distance(&lower, &v.to_ascii_lowercase()), v))
        // A third of the shorter name: one slip in a short key, two in `hold_time`.
        .filter(|(d, v)| *d <= 1.max(v.chars().count().min(name.chars().count()) / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v.clone())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let subst = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(subst.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("hold_tme", "hold_time"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_only_for_typos() {
        let v: Vec<String> = ["port", "hold_time", "listen"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(closest("hold_tme", &v).as_deref(), Some("hold_time"));
        assert_eq!(closest("Port", &v).as_deref(), Some("port"));
        assert_eq!(closest("completely_else", &v), None);
        assert_eq!(closest("hold", &v).as_deref(), Some("hold_time"));
        assert_eq!(closest("po", &v), None);
    }

    #[test]
    fn syntax_joins_lines() {
        assert_eq!(
            syntax("invalid table header\nexpected `.`, `]`"),
            "invalid table header: expected `.`, `]`"
        );
        assert_eq!(syntax(""), "invalid TOML");
    }
}
