//! The README and docs/ against the definitions: the generated blocks are what the code
//! generates now, and every command and configuration key they mention exists.
//! `IPIPD_BLESS=1 cargo test -p ipipd --bin ipipd reference` rewrites the blocks.

use std::path::{Path, PathBuf};

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every page under docs/.
fn documents() -> Vec<(PathBuf, String)> {
    let mut paths = vec![root().join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root().join("docs")) {
        let mut pages: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        pages.sort();
        paths.extend(pages);
    }
    paths.into_iter().map(|p| (p.clone(), read(&p))).collect()
}

/// The text between `<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->`,
/// as a byte range of `text`.
fn block(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let begin = format!("<!-- BEGIN generated:{name} ");
    let start = text.find(&begin)?;
    let start = start + text.get(start..)?.find('\n')? + 1;
    let end = start
        + text
            .get(start..)?
            .find(&format!("<!-- END generated:{name} -->"))?;
    Some(start..end)
}

/// Tests run in parallel: one rewrite of the README at a time.
static README: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Checks (or with IPIPD_BLESS=1 rewrites) one generated block of the README.
fn check_block(name: &str, want: &str) {
    let _one_at_a_time = README
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = root().join("README.md");
    let text = read(&path);
    let Some(range) = block(&text, name) else {
        panic!("README.md has no `<!-- BEGIN generated:{name} ... -->` block");
    };
    if text.get(range.clone()) == Some(want) {
        return;
    }
    if std::env::var_os("IPIPD_BLESS").is_some() {
        let mut new = text.clone();
        new.replace_range(range, want);
        if let Err(e) = std::fs::write(&path, new) {
            panic!("rewriting {}: {e}", path.display());
        }
        return;
    }
    panic!(
        "README.md's generated {name} block differs from the code; run \
         `IPIPD_BLESS=1 cargo test -p ipipd --bin ipipd reference` to rewrite it. \
         It should read:\n{want}"
    );
}

#[test]
fn readme_configuration_table_is_the_config_crates() {
    check_block("config", &config::reference::markdown_table());
}

#[test]
fn readme_command_list_is_clap_s() {
    check_block("commands", &format!("```\n{}```\n", commands_block()));
}

/// `code spans` of a markdown text.
fn spans(text: &str) -> Vec<&str> {
    text.split('`')
        .enumerate()
        .filter(|(i, s)| i % 2 == 1 && !s.contains('\n'))
        .map(|(_, s)| s)
        .collect()
}

/// Whether `ipipd WORDS` names a real command: each word a subcommand of the one
/// before, until options or arguments start.
fn command_exists(words: &[&str]) -> bool {
    let mut cmd = Cli::command();
    let mut matched = 0;
    for w in words {
        if w.starts_with('-') || !cmd.has_subcommands() {
            break;
        }
        // Prose around a command: "`ipipd lab: OK`".
        let w = w.trim_end_matches([':', ',', '.']);
        match cmd.find_subcommand(w) {
            Some(sub) => cmd = sub.clone(),
            None => return false,
        }
        matched += 1;
    }
    matched > 0 || words.first().is_some_and(|w| w.starts_with('-'))
}

#[test]
fn every_command_the_documents_mention_exists() {
    let mut wrong = Vec::new();
    for (path, text) in documents() {
        for span in spans(&text) {
            let Some(rest) = span.strip_prefix("ipipd ") else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            if !command_exists(&words) {
                wrong.push(format!("{}: `{span}`", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "no such command:\n{}", wrong.join("\n"));
}

#[test]
fn every_configuration_key_the_documents_mention_exists() {
    let mut wrong = Vec::new();
    for (path, text) in documents() {
        for span in spans(&text) {
            let Some((table, rest)) = span.split_once('.') else {
                continue;
            };
            let Some(t) = config::reference::TABLES
                .iter()
                .find(|t| t.name == table && !t.array)
            else {
                continue;
            };
            let key: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !key.is_empty() && !t.keys.iter().any(|k| k.name == key) {
                wrong.push(format!("{}: `{span}`", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "no such key:\n{}", wrong.join("\n"));
}

#[test]
fn the_checks_catch_what_they_are_for() {
    assert!(command_exists(&["show", "peers", "--json"]));
    assert!(command_exists(&["node", "remove", "NAME"]));
    assert!(command_exists(&["--version"]));
    assert!(!command_exists(&["show", "everything"]));
    assert!(!command_exists(&["launch"]));
    let text = "see `ipipd status --json` and `bgp.hold_time`, not `x.y`";
    assert_eq!(spans(text), ["ipipd status --json", "bgp.hold_time", "x.y"]);
}

#[test]
fn completion_scripts_name_every_command() {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let script = completions(shell);
        let text = String::from_utf8_lossy(&script);
        for word in ["status", "completions", "bfd-keeper", "remove", "nodes"] {
            assert!(text.contains(word), "{shell:?} completions lack {word}");
        }
    }
}

#[test]
fn the_config_page_has_every_key() {
    let page = config_page();
    for (table, key) in config::reference::keys() {
        assert!(
            page.contains(&table.header().replace('[', "\\[").replace(']', "\\]"))
                || page.contains(&table.header()),
            "{}",
            table.header()
        );
        assert!(page.contains(key.name), "{}", table.full_name(key));
    }
}

#[test]
fn the_command_list_has_every_command_and_no_hidden_one() {
    let block = commands_block();
    for cmd in [
        "ipipd show nodes [--json]",
        "ipipd node remove NAME",
        "ipipd bfd-keeper ",
        "ipipd status [--json]",
        "ipipd completions bash|zsh|fish",
    ] {
        assert!(block.contains(cmd), "{cmd} missing:\n{block}");
    }
    assert!(!block.contains("ipipd man"), "{block}");
}
