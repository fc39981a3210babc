//! ipipd's configuration: the TOML schema, its defaults, and validation that reports
//! every problem at once as `PATH:LINE:COL: message`.
//!
//! Parsing runs in two steps: serde turns the text into raw structs that keep each
//! value's position ([`toml::Spanned`]), then validation applies defaults and checks the
//! rules between values. Both steps keep going after an error.
#![forbid(unsafe_code)]

mod checks;
mod error;
mod messages;
mod model;
mod neighbors;
mod parse;
mod pools;
mod raw;
pub mod reference;
mod reload;
mod sections;
pub mod selector;
mod validate;

use std::path::Path;

pub use error::{Error, Errors};
pub use model::*;
pub use neighbors::{Neighbor, PeerKind};
pub use reload::NeighborChanges;
pub use selector::{Selector, SelectorError};

use error::Sink;

impl Config {
    /// Reads and validates a file; every problem at once.
    pub fn load(path: &Path) -> Result<Config, Errors> {
        Config::load_with(path, &Overrides::default())
    }

    /// [`Config::load`] with node identity, socket and state directory replaced.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Config, Errors> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            let mut sink = Sink::new(&origin, "");
            sink.at(None, format!("cannot read the configuration: {e}"));
            sink.finish()
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => Config::parse_with(&text, &origin, overrides),
            Err(e) => {
                let valid = e
                    .as_bytes()
                    .get(..e.utf8_error().valid_up_to())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(valid);
                let mut sink = Sink::new(&origin, &text);
                let end = text.len();
                sink.at(Some(&(end..end)), "the file is not valid UTF-8");
                Err(sink.finish())
            }
        }
    }

    /// Parses and validates text; `origin` is the path shown in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, Errors> {
        Config::parse_with(text, origin, &Overrides::default())
    }

    /// [`Config::parse`] with node identity, socket and state directory replaced.
    pub fn parse_with(text: &str, origin: &str, overrides: &Overrides) -> Result<Config, Errors> {
        let mut sink = Sink::new(origin, text);
        let config = parse::deserialize(text, &mut sink)
            .and_then(|(raw, layout)| validate::validate(raw, &layout, overrides, &mut sink));
        match config {
            Some(c) if !sink.has_errors() => Ok(c),
            _ => Err(sink.finish()),
        }
    }
}

/// [`Config::parse`] with `<input>` as origin: one entry point for fuzzing.
pub fn parse_str(text: &str) -> Result<Config, Errors> {
    Config::parse(text, "<input>")
}
