//! ipipd: a BGP routing daemon for Kubernetes pod networks in IPIP mode.

mod cli;
mod control;
mod daemon;
mod install_cni;
mod ipam_cli;
mod lab;
mod logging;
mod reference;
mod show;
mod status;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(
        cli.verbose,
        cli.log_format,
        matches!(
            cli.command,
            cli::Command::Run { .. } | cli::Command::BfdKeeper { .. }
        ),
    );
    match cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ipipd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
