//! Whatever the text, parsing returns a config or errors; it never panics or loops.

use config::parse_str;
use proptest::prelude::*;

/// Fragments of real configurations, so that generated files get past the TOML
/// parser and reach the serde and validation passes.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => section(),
        10 => key_value(),
        1 => "[ -~\n]{0,20}",
    ]
}

fn section() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[node]\n".to_owned()),
        Just("[cluster]\n".to_owned()),
        Just("[bgp]\n".to_owned()),
        Just("[[peer]]\n".to_owned()),
        Just("[[pool]]\n".to_owned()),
        Just("[ipip]\n".to_owned()),
        Just("[kernel]\n".to_owned()),
        Just("[control]\n".to_owned()),
        Just("[a.b]\n".to_owned()),
        Just("[[node]]\n".to_owned()),
    ]
}

fn key_value() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "address",
            "asn",
            "blocks",
            "pools",
            "nodes",
            "mesh",
            "port",
            "hold_time",
            "keepalive_time",
            "mode",
            "mtu",
            "protocol",
            "table",
            "socket",
            "rr_client",
            "route_reflector",
            "passwd",
            "cidr",
            "block_size",
            "node_selector",
            "labels",
            "x.y",
        ]),
        prop::sample::select(vec![
            "\"10.0.0.1\"",
            "\"10.0.0.0/8\"",
            "[\"10.0.0.0/26\", 5]",
            "0",
            "2",
            "-1",
            "70000",
            "true",
            "\"always\"",
            "{ a = 1 }",
            "[{ address = \"1.2.3.4\" }]",
            "1979-05-27",
            "1.5",
            "\"fd00::1\"",
            "\"has(a) && (b == 'c'\"",
            "{ rack = \"r1\" }",
        ]),
    )
        .prop_map(|(k, v)| format!("{k} = {v}\n"))
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_str(&text);
    }

    #[test]
    fn config_like_text_never_panics(parts in prop::collection::vec(fragment(), 0..24)) {
        let text: String = parts.concat();
        if let Err(errors) = parse_str(&text) {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                prop_assert!(e.line >= 1 && e.col >= 1);
                prop_assert!(e.line <= text.lines().count() + 1);
            }
        }
    }
}
