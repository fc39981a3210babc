use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sel(text: &str) -> Selector {
    Selector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e} at {}", e.offset))
}

fn err(text: &str) -> (usize, String) {
    match Selector::parse(text) {
        Ok(s) => panic!("{text:?} accepted as {:?}", s.expr()),
        Err(e) => (e.offset, e.message),
    }
}

#[test]
fn each_form_selects_as_calico_does() {
    let r1 = labels(&[("rack", "r1"), ("zone", "a")]);
    let r2 = labels(&[("rack", "r2")]);
    let none = labels(&[]);
    let cases: [(&str, [bool; 3]); 10] = [
        ("all()", [true, true, true]),
        ("rack == \"r1\"", [true, false, false]),
        ("rack == 'r1'", [true, false, false]),
        // As in Calico: a node without the label is selected by `!=`.
        ("rack != \"r1\"", [false, true, true]),
        ("has(zone)", [true, false, false]),
        ("!has(zone)", [false, true, true]),
        ("rack == \"r2\" || has(zone)", [true, true, false]),
        ("has(rack) && !(rack == \"r1\")", [false, true, false]),
        (
            "  ( rack == \"r1\" || rack == \"r2\" ) && zone != \"b\"  ",
            [true, true, false],
        ),
        (
            "topology.kubernetes.io/zone == \"x\"",
            [false, false, false],
        ),
    ];
    for (text, want) in cases {
        let s = sel(text);
        let got = [s.matches(&r1), s.matches(&r2), s.matches(&none)];
        assert_eq!(got, want, "{text}");
        assert_eq!(s.as_str(), text);
    }
}

#[test]
fn and_binds_tighter_than_or() {
    let s = sel("a == \"1\" || b == \"1\" && c == \"1\"");
    assert!(s.matches(&labels(&[("a", "1")])));
    assert!(!s.matches(&labels(&[("b", "1")])));
    assert!(s.matches(&labels(&[("b", "1"), ("c", "1")])));
}

#[test]
fn errors_point_at_the_problem() {
    assert_eq!(
        err("rack = \"r1\""),
        (
            5,
            "expected == or != after the label \"rack\" (ipipd's selectors know ==, !=, has(), all(), !, &&, || and parentheses)".into()
        )
    );
    assert_eq!(err("rack == r1").0, 8, "an unquoted value is pointed at");
    assert_eq!(
        err("rack == \"r1"),
        (8, "this value has no closing quote".into())
    );
    assert_eq!(err("has(rack"), (8, "expected ')' closing has(".into()));
    assert_eq!(err("has()").0, 4);
    assert_eq!(
        err("a == \"b\" &&"),
        (
            11,
            "the selector ends where a term was expected (a label comparison, has(..), all(), '!' or '(')".into()
        )
    );
    assert_eq!(
        err("a == \"b\" & c == \"d\""),
        (9, "expected &&, || or the end of the selector".into())
    );
    assert_eq!(err("(a == \"b\"))"), (10, "unmatched ')'".into()));
    assert_eq!(
        err("(a == \"b\""),
        (9, "expected ')' closing the '('".into())
    );
    assert_eq!(
        err("has(x) && in(a)"),
        (
            10,
            "unknown function in(): ipipd's selectors know all() and has()".into()
        )
    );
    assert_eq!(err("   ").0, 0);
    assert_eq!(err("== \"x\"").0, 0);
    assert_eq!(err("all() all()").0, 6);
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}all(){}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(err(&deep).0, MAX_DEPTH);
    let ok = format!(
        "{}all(){}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert!(sel(&ok).matches(&labels(&[])));
    assert!(Selector::parse(&"!".repeat(100_000)).is_err());
    // Long flat chains are fine: they do not nest.
    let long = vec!["has(a)"; 10_000].join(" && ");
    assert!(sel(&long).matches(&labels(&[("a", "")])));
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "rack", "zone", "k8s.io/x"]).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "1", "r1", "it's", "say \"hi\""]).prop_map(str::to_owned)
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        Just(Expr::All),
        key().prop_map(Expr::Has),
        (key(), value()).prop_map(|(k, v)| Expr::Eq(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::Ne(k, v)),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(key(), value(), 0..4)
}

proptest! {
    /// What `Display` writes parses back to the same tree.
    #[test]
    fn display_parses_back(e in expr()) {
        let text = e.to_string();
        let back = Selector::parse(&text);
        prop_assert_eq!(back.as_ref().map(Selector::expr), Ok(&e), "{}", text);
    }

    /// `!` is the complement, `&&` and `||` are `all` and `any` of their terms.
    #[test]
    fn evaluation_is_boolean_algebra(e in expr(), f in expr(), l in label_set()) {
        let not = Expr::Not(Box::new(e.clone()));
        prop_assert_eq!(not.matches(&l), !e.matches(&l));
        let and = Expr::And(vec![e.clone(), f.clone()]);
        prop_assert_eq!(and.matches(&l), e.matches(&l) && f.matches(&l));
        let or = Expr::Or(vec![e.clone(), f.clone()]);
        prop_assert_eq!(or.matches(&l), e.matches(&l) || f.matches(&l));
    }

    /// Any text: a selector or an error at a character boundary inside it, never a panic.
    #[test]
    fn any_text_parses_or_errs_in_bounds(text in "[ -~]{0,40}") {
        if let Err(e) = Selector::parse(&text) {
            prop_assert!(e.offset <= text.len() && text.is_char_boundary(e.offset));
        }
    }
}
