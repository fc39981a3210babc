//! What the reference generators make.

use super::*;

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
