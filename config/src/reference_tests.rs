//! [`TABLES`] against the parser, validation and itself.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;

use super::*;
use crate::raw::*;
use crate::{Config, IpipMode};

fn parse(text: &str) -> Config {
    match Config::parse(text, "example.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{text}"),
    }
}

/// The keys serde accepts for `T`, from its own unknown-field message.
fn parser_keys<T: DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let e = match toml::from_str::<T>("not_a_key_of_ipipd = 1") {
        Ok(v) => panic!("an unknown key was accepted: {v:?}"),
        Err(e) => e.message().to_owned(),
    };
    let Some((_, expected)) = e.split_once("expected") else {
        panic!("no key list in {e:?}");
    };
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn table(name: &str) -> &'static Table {
    TABLES
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no table {name} in TABLES"))
}

fn documented(name: &str) -> BTreeSet<String> {
    table(name).keys.iter().map(|k| k.name.to_owned()).collect()
}

#[test]
fn every_key_the_parser_knows_is_documented_and_no_other() {
    let tables: BTreeSet<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(parser_keys::<RawConfig>(), tables, "tables");
    for (name, keys) in [
        ("node", parser_keys::<RawNode>()),
        ("cluster", parser_keys::<RawCluster>()),
        ("bgp", parser_keys::<RawBgp>()),
        ("peer", parser_keys::<RawPeer>()),
        ("ipip", parser_keys::<RawIpip>()),
        ("vxlan", parser_keys::<RawVxlan>()),
        ("kernel", parser_keys::<RawKernel>()),
        ("control", parser_keys::<RawControl>()),
        ("metrics", parser_keys::<RawMetrics>()),
        ("datastore", parser_keys::<RawDatastore>()),
        ("bfd", parser_keys::<RawBfd>()),
        ("pool", parser_keys::<RawPool>()),
    ] {
        assert_eq!(keys, documented(name), "keys of [{name}]");
    }
}

/// The resolved configuration as a TOML tree, so a key's value can be looked up by name.
fn resolved(text: &str) -> toml::Table {
    match toml::Table::try_from(parse(text)) {
        Ok(t) => t,
        Err(e) => panic!("serializing the configuration: {e}"),
    }
}

#[test]
fn every_documented_default_is_the_one_validation_fills_in() {
    let config = resolved(
        "[node]\naddress = \"10.0.0.1\"\n[[peer]]\naddress = \"10.0.0.9\"\n\
         [[pool]]\ncidr = \"10.244.0.0/16\"\n",
    );
    for (t, k) in keys() {
        // Arrays of tables are named in the plural in the resolved configuration.
        let plural = format!("{}s", t.name);
        let section = match (
            t.array,
            config.get(if t.array { plural.as_str() } else { t.name }),
        ) {
            (false, Some(toml::Value::Table(s))) => s,
            (true, Some(toml::Value::Array(a))) => match a.first() {
                Some(toml::Value::Table(s)) => s,
                other => panic!("{}: {other:?}", t.header()),
            },
            (_, other) => panic!("{} in the resolved configuration: {other:?}", t.header()),
        };
        let got = section.get(k.name);
        match k.default {
            KeyDefault::Value(v) => {
                let want: toml::Table = match toml::from_str(&format!("v = {v}")) {
                    Ok(w) => w,
                    Err(e) => panic!("{}: default {v} is not TOML: {e}", t.full_name(k)),
                };
                assert_eq!(got, want.get("v"), "default of {}", t.full_name(k));
            }
            KeyDefault::Unset(_) => {
                assert_eq!(got, None, "{} should stay unset", t.full_name(k))
            }
            KeyDefault::Derived(_) => {}
        }
    }
}

#[test]
fn example_parses() {
    let c = parse(&example(false));
    assert_eq!(c.node.name, "node-172-29-235-101");
    assert_eq!(c.peers.len(), 1);
    assert_eq!(c.ipip.mode, IpipMode::Always);
    assert_eq!(c.cluster.nodes.len(), 2);
}

/// With every commented key written out the file is still valid: the example values are
/// real values of real keys.
#[test]
fn example_with_every_key_parses() {
    let c = parse(&example(true));
    assert_eq!(c.bgp.keepalive_time, Some(30));
    assert_eq!(
        c.peers.first().and_then(|p| p.name.clone()).as_deref(),
        Some("tor-1")
    );
    assert_eq!(c.cluster.mesh_password.as_deref(), Some("secret"));
    assert_eq!(c.metrics.listen.map(|l| l.port()), Some(9179));
}

#[test]
fn the_example_shows_every_key_once() {
    let text = example(false);
    for (t, k) in keys() {
        let set = format!("\n{} = {}\n", k.name, k.example);
        let commented = format!("\n# {} = {}\n", k.name, k.example);
        let n = text.matches(&set).count() + text.matches(&commented).count();
        assert!(n >= 1, "{} missing from the example", t.full_name(k));
    }
    assert!(text.lines().all(|l| l.len() <= 100), "{text}");
}

#[test]
fn the_markdown_table_has_a_row_per_key() {
    let md = markdown_table();
    assert_eq!(md.lines().count(), 2 + keys().count());
    assert!(md.contains("| `cluster.block_size` | `26` |"), "{md}");
    assert!(md.contains("| `[[peer]] bfd` | `bfd.enabled` |"), "{md}");
}
