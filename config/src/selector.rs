//! `node_selector`: the subset of Calico's selector syntax ipipd understands, and its
//! evaluation over a node's labels.
//!
//! ```text
//! selector := or
//! or       := and ( "||" and )*
//! and      := unary ( "&&" unary )*
//! unary    := "!" unary | "(" or ")" | "all()" | "has(" label ")"
//!           | label "==" value | label "!=" value
//! value    := '"' any but '"' '"' | "'" any but "'" "'"
//! ```
//!
//! As in Calico, `k != "v"` also selects nodes without the label `k`. `&&` and `||`
//! chains are kept flat (n-ary), so only parentheses and `!` nest, and those are
//! bounded: a hostile file cannot exhaust the stack of the parser, the evaluation or
//! the drop.

use std::collections::BTreeMap;
use std::fmt;

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, multispace0};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::delimited;
use nom::IResult;
use serde::{Serialize, Serializer};

/// Deepest nesting of parentheses and `!` accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed selector, with the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    text: String,
    expr: Expr,
}

/// The selector's expression tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `all()`: every node.
    All,
    /// `has(k)`.
    Has(String),
    /// `k == "v"`.
    Eq(String, String),
    /// `k != "v"`: true when the label is absent too.
    Ne(String, String),
    Not(Box<Expr>),
    /// Two or more terms joined by `&&`.
    And(Vec<Expr>),
    /// Two or more terms joined by `||`.
    Or(Vec<Expr>),
}

/// Why a selector does not parse, and where: `offset` is a byte offset into its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    pub offset: usize,
    pub message: String,
}

impl Selector {
    /// `all()`, the default.
    pub fn all() -> Selector {
        Selector {
            text: "all()".to_owned(),
            expr: Expr::All,
        }
    }

    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let at = |rest: &str| text.len() - rest.len();
        if text.trim().is_empty() {
            return Err(SelectorError {
                offset: 0,
                message: "node_selector is empty; \"all()\" selects every node".to_owned(),
            });
        }
        match or_expr(text, 0) {
            Ok((rest, expr)) => {
                let rest = rest.trim_start();
                if rest.is_empty() {
                    return Ok(Selector {
                        text: text.to_owned(),
                        expr,
                    });
                }
                let message = if rest.starts_with(')') {
                    "unmatched ')'"
                } else {
                    "expected &&, || or the end of the selector"
                };
                Err(SelectorError {
                    offset: at(rest),
                    message: message.to_owned(),
                })
            }
            Err(nom::Err::Error(f) | nom::Err::Failure(f)) => Err(SelectorError {
                offset: at(f.at),
                message: if f.what.is_empty() {
                    "invalid selector".to_owned()
                } else {
                    f.what
                },
            }),
            Err(nom::Err::Incomplete(_)) => Err(SelectorError {
                offset: text.len(),
                message: "the selector ends too early".to_owned(),
            }),
        }
    }

    /// Whether a node with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.expr.matches(labels)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl Default for Selector {
    fn default() -> Selector {
        Selector::all()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        Selector::parse(s)
    }
}

/// As written, so the published configuration shows what the operator wrote.
impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Expr {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Expr::All => true,
            Expr::Has(k) => labels.contains_key(k),
            Expr::Eq(k, v) => labels.get(k) == Some(v),
            Expr::Ne(k, v) => labels.get(k) != Some(v),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(terms) => terms.iter().all(|t| t.matches(labels)),
            Expr::Or(terms) => terms.iter().any(|t| t.matches(labels)),
        }
    }
}

/// Canonical text that parses back to the same tree: parentheses only where the
/// tree has them.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |v: &str| {
            if v.contains('"') {
                format!("'{v}'")
            } else {
                format!("\"{v}\"")
            }
        };
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", quote(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", quote(v)),
            Expr::Not(e) if matches!(**e, Expr::And(_) | Expr::Or(_)) => write!(f, "!({e})"),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::And(terms) => join(f, terms, "&&", |t| matches!(t, Expr::And(_) | Expr::Or(_))),
            Expr::Or(terms) => join(f, terms, "||", |t| matches!(t, Expr::Or(_))),
        }
    }
}

/// `terms` with `op` between them; those `group` says in parentheses.
fn join(
    f: &mut fmt::Formatter<'_>,
    terms: &[Expr],
    op: &str,
    group: fn(&Expr) -> bool,
) -> fmt::Result {
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            write!(f, " {op} ")?;
        }
        if group(t) {
            write!(f, "({t})")?;
        } else {
            write!(f, "{t}")?;
        }
    }
    Ok(())
}

/// A parse failure: where, and what was expected there (empty: nom's own error,
/// worded by the caller).
#[derive(Debug)]
struct Fail<'a> {
    at: &'a str,
    what: String,
}

impl<'a> ParseError<&'a str> for Fail<'a> {
    fn from_error_kind(at: &'a str, _: ErrorKind) -> Self {
        Fail {
            at,
            what: String::new(),
        }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type Res<'a, T> = IResult<&'a str, T, Fail<'a>>;

/// A failure that ends the parse, at the first non-space character of `at`.
fn fail<'a, T>(at: &'a str, what: impl Into<String>) -> Res<'a, T> {
    Err(nom::Err::Failure(Fail {
        at: at.trim_start(),
        what: what.into(),
    }))
}

fn or_expr(i: &str, depth: usize) -> Res<'_, Expr> {
    let (mut i, first) = and_expr(i, depth)?;
    let mut terms = vec![first];
    loop {
        let (rest, _) = multispace0(i)?;
        match tag::<_, _, Fail>("||")(rest) {
            Ok((rest, _)) => {
                let (rest, term) = and_expr(rest, depth)?;
                terms.push(term);
                i = rest;
            }
            Err(_) => break,
        }
    }
    Ok((i, flat(terms, Expr::Or)))
}

fn and_expr(i: &str, depth: usize) -> Res<'_, Expr> {
    let (mut i, first) = unary(i, depth)?;
    let mut terms = vec![first];
    loop {
        let (rest, _) = multispace0(i)?;
        match tag::<_, _, Fail>("&&")(rest) {
            Ok((rest, _)) => {
                let (rest, term) = unary(rest, depth)?;
                terms.push(term);
                i = rest;
            }
            Err(_) => break,
        }
    }
    Ok((i, flat(terms, Expr::And)))
}

/// One term as itself, more joined.
fn flat(terms: Vec<Expr>, join: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.into_iter().next().unwrap_or(Expr::All)
    } else {
        join(terms)
    }
}

/// Label names as Kubernetes and Calico write them: `rack`, `topology.kubernetes.io/zone`.
pub(crate) fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn label(i: &str) -> Res<'_, &str> {
    take_while1(label_char)(i)
}

fn unary(i: &str, depth: usize) -> Res<'_, Expr> {
    let (i, _) = multispace0(i)?;
    if depth >= MAX_DEPTH {
        return fail(
            i,
            format!("selector nested too deeply (at most {MAX_DEPTH} levels of '(' and '!')"),
        );
    }
    if let Ok((rest, _)) = char::<_, Fail>('!')(i) {
        let (rest, e) = unary(rest, depth + 1)?;
        return Ok((rest, Expr::Not(Box::new(e))));
    }
    if let Ok((rest, _)) = char::<_, Fail>('(')(i) {
        let (rest, e) = or_expr(rest, depth + 1)?;
        let (rest, _) = multispace0(rest)?;
        return match char::<_, Fail>(')')(rest) {
            Ok((rest, _)) => Ok((rest, e)),
            Err(_) => fail(rest, "expected ')' closing the '('"),
        };
    }
    let Ok((rest, name)) = label(i) else {
        let what = if i.is_empty() {
            "the selector ends where a term was expected (a label comparison, has(..), all(), '!' or '(')"
        } else {
            "expected a label comparison (k == \"v\", k != \"v\"), has(..), all(), '!' or '('"
        };
        return fail(i, what);
    };
    let (after, _) = multispace0(rest)?;
    if let Ok((args, _)) = char::<_, Fail>('(')(after) {
        return function(i, name, args);
    }
    let Ok((rest, op)) = nom::branch::alt((tag::<_, _, Fail>("=="), tag("!=")))(after) else {
        return fail(
            after,
            format!("expected == or != after the label {name:?} (ipipd's selectors know ==, !=, has(), all(), !, &&, || and parentheses)"),
        );
    };
    let (rest, _) = multispace0(rest)?;
    let (rest, value) = quoted(rest)?;
    let (k, v) = (name.to_owned(), value.to_owned());
    Ok((
        rest,
        if op == "==" {
            Expr::Eq(k, v)
        } else {
            Expr::Ne(k, v)
        },
    ))
}

/// `all()` or `has(k)`; `start` is where the name began, `args` what follows its '('.
fn function<'a>(start: &'a str, name: &str, args: &'a str) -> Res<'a, Expr> {
    let close = |rest: &'a str| -> Res<'a, ()> {
        let (rest, _) = multispace0(rest)?;
        match char::<_, Fail>(')')(rest) {
            Ok((rest, _)) => Ok((rest, ())),
            Err(_) => fail(rest, format!("expected ')' closing {name}(")),
        }
    };
    match name {
        "all" => {
            let (rest, ()) = close(args)?;
            Ok((rest, Expr::All))
        }
        "has" => {
            let (rest, _) = multispace0(args)?;
            let Ok((rest, k)) = label(rest) else {
                return fail(rest, "expected a label name in has(..)");
            };
            let (rest, ()) = close(rest)?;
            Ok((rest, Expr::Has(k.to_owned())))
        }
        other => fail(
            start,
            format!("unknown function {other}(): ipipd's selectors know all() and has()"),
        ),
    }
}

/// `"v"` or `'v'`: the value of a comparison.
fn quoted(i: &str) -> Res<'_, &str> {
    let Some(q) = i.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return fail(i, "expected a quoted value after == or !=, e.g. \"r1\"");
    };
    let mut body = delimited(char::<_, Fail>(q), take_while(move |c| c != q), char(q));
    match body(i) {
        Ok(ok) => Ok(ok),
        Err(_) => fail(i, "this value has no closing quote"),
    }
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod tests;
