//! Errors that point into the configuration file: `PATH:LINE:COL: message`.

use std::fmt;
use std::ops::Range;

/// One problem in a configuration file.
///
/// `line` and `col` are 1-based; `col` counts characters, not bytes, so that it matches
/// what an editor shows for non-ASCII text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{col}: {message}")]
pub struct Error {
    pub origin: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Every problem found in one file, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl IntoIterator for Errors {
    type Item = Error;
    type IntoIter = std::vec::IntoIter<Error>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a Error;
    type IntoIter = std::slice::Iter<'a, Error>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Collects errors against one source text, turning byte spans into line and column.
pub(crate) struct Sink<'a> {
    origin: &'a str,
    text: &'a str,
    errors: Vec<Error>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(origin: &'a str, text: &'a str) -> Self {
        Sink {
            origin,
            text,
            errors: Vec::new(),
        }
    }

    /// Records `message` at the start of `span` (the start of the file when unknown).
    pub(crate) fn at(&mut self, span: Option<&Range<usize>>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.map_or(0, |s| s.start));
        self.errors.push(Error {
            origin: self.origin.to_owned(),
            line,
            col,
            message: message.into(),
        });
    }

    /// The line (1-based) a span starts on, for messages like "first at line 12".
    pub(crate) fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    /// Where byte `offset` of the string `value`, written at `span`, is in the file: inside
    /// the quotes when the value is written as it reads (no escapes, one line); else the
    /// start of the value, as the text and the value no longer line up.
    pub(crate) fn in_string(
        &self,
        span: &Range<usize>,
        value: &str,
        offset: usize,
    ) -> Range<usize> {
        let written = self.text.get(span.clone()).unwrap_or("");
        for quote in ["\"", "'"] {
            let inner = written
                .strip_prefix(quote)
                .and_then(|w| w.strip_suffix(quote));
            if inner == Some(value) && offset <= value.len() {
                let at = span.start + quote.len() + offset;
                return at..at;
            }
        }
        span.clone()
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(crate) fn finish(mut self) -> Errors {
        // Stable: two problems at one spot keep the order they were found in.
        self.errors.sort_by_key(|e| (e.line, e.col));
        Errors(self.errors)
    }
}

/// 1-based line and character column of byte `offset`; offsets past the end or inside a
/// multi-byte character are clamped so that arbitrary input never panics.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "ab\ncd\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 1), (1, 2));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 4), (2, 2));
        assert_eq!(line_col(t, 6), (3, 1));
        assert_eq!(line_col(t, 600), (3, 1));
    }

    #[test]
    fn line_col_counts_characters() {
        let t = "é = 1";
        assert_eq!(line_col(t, 2), (1, 2));
        assert_eq!(line_col(t, 1), (1, 1));
    }

    #[test]
    fn errors_display_one_per_line() {
        let e = |line| Error {
            origin: "f.toml".into(),
            line,
            col: 3,
            message: "bad".into(),
        };
        let errs = Errors(vec![e(1), e(2)]);
        assert_eq!(errs.to_string(), "f.toml:1:3: bad\nf.toml:2:3: bad");
    }
}
