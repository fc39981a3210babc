//! The reference made from the definitions themselves: completion scripts and man pages
//! from the clap command tree, the `ipipd.toml(5)` page and the README's tables from the
//! config crate's key table. Nothing here is written by hand twice.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// The shells `ipipd completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `ipipd completions SHELL`: the script.
pub fn completions(shell: Shell) -> Vec<u8> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ipipd", &mut script);
    script
}

/// `ipipd man DIR`: ipipd.1, one page per command (ipipd-show-peers.1, ...) and
/// ipipd.toml.5.
pub fn man(dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let page = dir.join("ipipd.toml.5");
    std::fs::write(&page, config_page()).with_context(|| format!("writing {}", page.display()))?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// ipipd.toml(5): every key of the configuration file, from the config crate's table.
fn config_page() -> String {
    use roff::{bold, italic, roman, Roff};
    let plain = |s: &str| s.replace('`', "");
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            "IPIPD.TOML",
            "5",
            "",
            concat!("ipipd ", env!("CARGO_PKG_VERSION")),
        ],
    )
    .control("SH", ["NAME"])
    .text([roman("ipipd.toml \\- configuration file of ipipd")])
    .control("SH", ["SYNOPSIS"])
    .text([roman(format!(
        "/etc/ipipd/ipipd.toml (ipipd run --config PATH; default {})",
        crate::cli::DEFAULT_CONFIG
    ))])
    .control("SH", ["DESCRIPTION"])
    .text([roman(
        "A TOML file. ipipd check-config --config PATH validates it and reports every \
         problem at once as PATH:LINE:COL: message; ipipd example-config prints a complete \
         commented file. A reload (SIGHUP, ipipd reload, or any change of the file) applies \
         the keys marked applied at once; one that changes a key marked restart is refused \
         as a whole, naming the keys, and the running configuration stays until ipipd \
         restarts with the new file.",
    )]);
    for table in config::reference::TABLES {
        page.control("SH", [table.header().as_str()])
            .text([roman(table.about)]);
        for key in table.keys {
            page.control("TP", [] as [&str; 0])
                .text([bold(key.name)])
                .text([
                    roman(plain(key.meaning)),
                    roman(" Default: "),
                    italic(plain(&config::reference::default_text(key))),
                    roman(". Reload: "),
                    italic(key.reload.name()),
                    roman("."),
                ]);
        }
    }
    page.control("SH", ["SEE ALSO"])
        .text([roman("ipipd(1), ipipd-run(1), ipipd-check-config(1)")]);
    page.render()
}

/// One line of the README's command list per command that does something: the path,
/// its arguments, and the first line of its help (the README's block is checked against
/// it).
#[cfg(test)]
fn commands_block() -> String {
    let mut lines = Vec::new();
    let cmd = Cli::command();
    for sub in cmd.get_subcommands() {
        leaves(sub, "ipipd", &mut lines);
    }
    // Comments line up at a width most commands fit in; a longer one gets its comment
    // on the next line.
    const WIDTH: usize = 44;
    let mut out = String::new();
    for (usage, about) in lines {
        if usage.len() > WIDTH {
            out.push_str(&format!("{usage}\n{:WIDTH$}  # {about}\n", ""));
        } else {
            out.push_str(&format!("{usage:<WIDTH$}  # {about}\n"));
        }
    }
    out
}

#[cfg(test)]
fn leaves(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, String)>) {
    if cmd.is_hide_set() {
        return;
    }
    let path = format!("{prefix} {}", cmd.get_name());
    if cmd.has_subcommands() {
        for sub in cmd.get_subcommands() {
            leaves(sub, &path, out);
        }
        return;
    }
    let mut usage = path;
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        // `--socket` with its default is every client command's; said once in the README.
        let client_socket = id == "socket" && !arg.get_default_values().is_empty();
        if arg.is_hide_set()
            || arg.is_global_set()
            || client_socket
            || ["help", "version"].contains(&id)
        {
            continue;
        }
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| id.to_uppercase(), |v| v.to_string());
        let value = match arg.get_possible_values().as_slice() {
            [] => value,
            many if arg.get_long().is_none() => many
                .iter()
                .map(|p| p.get_name())
                .collect::<Vec<_>>()
                .join("|"),
            _ => value,
        };
        let text = match arg.get_long() {
            None => value,
            Some(long) if !arg.get_action().takes_values() => format!("[--{long}]"),
            Some(long) if arg.is_required_set() => format!("--{long} {value}"),
            Some(long) => format!("[--{long} {value}]"),
        };
        usage.push(' ');
        usage.push_str(&text);
    }
    let about = cmd
        .get_about()
        .map(|a| a.to_string())
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_owned();
    out.push((usage, about));
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
