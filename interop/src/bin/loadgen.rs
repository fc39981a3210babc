//! BGP load generator for benchmarks.
//!
//! ```text
//! loadgen run  --target 10.0.0.1 --senders 10 --prefixes 100000 [--monitor 10.0.0.2] ...
//! loadgen sink --listen 10.0.0.1 --expect 1000000
//! loadgen clients --reflector 10.0.0.1 --reflector 10.0.0.2 --clients 1000
//! ```
//!
//! `run` opens one session per sender (source addresses `--sender-base`, +1, ...) and
//! optionally a monitor session, then every sender announces its own prefixes and the
//! monitor notes when it holds all of them. `sink` accepts sessions and counts what they
//! announce, for measuring the load generator itself. `clients` is a route-reflector
//! cluster: each client (source addresses `--client-base`, +1, ...) announces one block to
//! every reflector and counts what comes back, until every client holds every other
//! client's block from every reflector. Each prints one JSON object.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use interop::loadgen::clients::{self, ClientsConfig};
use interop::loadgen::{self, Pool, RunConfig};
use ipnet::Ipv4Net;

#[derive(Parser)]
#[command(about = "BGP load generator: senders, monitor and sink")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct PoolArgs {
    /// Pool the prefixes are numbered in.
    #[arg(long, default_value = "64.0.0.0/4")]
    pool: Ipv4Net,
    /// Length of every announced prefix.
    #[arg(long, default_value_t = 26)]
    len: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Senders (and a monitor) against a target.
    Run {
        /// Target address.
        #[arg(long)]
        target: IpAddr,
        #[arg(long, default_value_t = 179)]
        port: u16,
        #[arg(long, default_value_t = 64512)]
        target_as: u32,
        #[arg(long, default_value_t = 64512)]
        local_as: u32,
        #[arg(long, default_value_t = 10)]
        senders: u32,
        /// Source address of the first sender; the others follow it.
        #[arg(long, default_value = "10.0.1.1")]
        sender_base: Ipv4Addr,
        /// Prefixes per sender.
        #[arg(long, default_value_t = 10_000)]
        prefixes: u64,
        /// Source address of the monitor session; omit for a run into a sink.
        #[arg(long)]
        monitor: Option<Ipv4Addr>,
        #[command(flatten)]
        pool: PoolArgs,
        /// Announce the Extended Message capability (65535-octet UPDATEs when the target agrees).
        #[arg(long)]
        extended_message: bool,
        #[arg(long, default_value_t = 90)]
        hold_time: u16,
        /// Milliseconds between the sessions coming up and the first UPDATE.
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
        /// Seconds to wait for sessions and for the monitor.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Withdraw everything afterwards and time that too.
        #[arg(long)]
        withdraw: bool,
        /// Print the monitor's count every 100 ms to stderr.
        #[arg(long)]
        progress: bool,
        /// Once the monitor holds everything, keep the sessions up until this file exists
        /// (or the timeout).
        #[arg(long)]
        hold_until: Option<std::path::PathBuf>,
    },
    /// Route-reflector clients: one block each, announced to every reflector.
    Clients {
        /// A route reflector every client peers with; repeat for each.
        #[arg(long = "reflector", required = true)]
        reflectors: Vec<IpAddr>,
        #[arg(long, default_value_t = 179)]
        port: u16,
        /// The cluster's AS (iBGP).
        #[arg(long, default_value_t = 64512)]
        asn: u32,
        #[arg(long, default_value_t = 1000)]
        clients: u32,
        /// Source address of the first client; the others follow it.
        #[arg(long, default_value = "10.0.1.1")]
        client_base: Ipv4Addr,
        /// Pool the blocks are numbered in: client i announces block i.
        #[arg(long, default_value = "101.64.0.0/10")]
        pool: Ipv4Net,
        /// Block length.
        #[arg(long, default_value_t = 26)]
        len: u8,
        #[arg(long, default_value_t = 90)]
        hold_time: u16,
        /// Milliseconds between the sessions coming up and the first UPDATE.
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
        /// Seconds to wait for the sessions, and again for convergence.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Sessions opening at once.
        #[arg(long, default_value_t = 64)]
        connect_parallel: usize,
        /// Print the complete sessions per reflector every 500 ms to stderr.
        #[arg(long)]
        progress: bool,
        /// Once converged, keep the sessions up until this file exists (or the timeout).
        #[arg(long)]
        hold_until: Option<std::path::PathBuf>,
    },
    /// Accept sessions and count what they announce.
    Sink {
        #[arg(long)]
        listen: IpAddr,
        #[arg(long, default_value_t = 179)]
        port: u16,
        #[arg(long, default_value_t = 64512)]
        local_as: u32,
        /// Prefixes to wait for.
        #[arg(long)]
        expect: u64,
        #[command(flatten)]
        pool: PoolArgs,
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

fn router_id(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::new(10, 255, 255, 254),
    }
}

async fn main_async(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Run {
            target,
            port,
            target_as,
            local_as,
            senders,
            sender_base,
            prefixes,
            monitor,
            pool,
            extended_message,
            hold_time,
            settle_ms,
            timeout,
            withdraw,
            progress,
            hold_until,
        } => {
            let base = u32::from(sender_base);
            let cfg = RunConfig {
                target: SocketAddr::new(target, port),
                target_as,
                local_as,
                senders: (0..senders).map(|i| Ipv4Addr::from(base + i)).collect(),
                monitor,
                prefixes,
                pool: Pool::new(pool.pool, pool.len)?,
                extended_message,
                hold_time,
                settle: Duration::from_millis(settle_ms),
                timeout: Duration::from_secs(timeout),
                withdraw,
                progress,
                hold_until,
            };
            let report = loadgen::run(&cfg).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(monitor.is_none() || report.complete_s.is_some())
        }
        Command::Clients {
            reflectors,
            port,
            asn,
            clients,
            client_base,
            pool,
            len,
            hold_time,
            settle_ms,
            timeout,
            connect_parallel,
            progress,
            hold_until,
        } => {
            let base = u32::from(client_base);
            let cfg = ClientsConfig {
                reflectors: reflectors
                    .iter()
                    .map(|a| SocketAddr::new(*a, port))
                    .collect(),
                asn,
                clients: (0..clients).map(|i| Ipv4Addr::from(base + i)).collect(),
                pool: Pool::new(pool, len)?,
                hold_time,
                settle: Duration::from_millis(settle_ms),
                timeout: Duration::from_secs(timeout),
                connect_parallel,
                progress,
                hold_until,
            };
            let report = clients::run(&cfg).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(report.complete_s.is_some())
        }
        Command::Sink {
            listen,
            port,
            local_as,
            expect,
            pool,
            timeout,
        } => {
            let pool = Pool::new(pool.pool, pool.len)?;
            let report = loadgen::sink(
                SocketAddr::new(listen, port),
                local_as,
                router_id(listen),
                pool,
                expect,
                Duration::from_secs(timeout),
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Thousands of sessions that each take a few octets at a time: one thread, so that
    // a wake-up is not a hand-over between threads.
    let mut rt = if matches!(cli.command, Command::Clients { .. }) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = rt.enable_all().build().context("starting the runtime");
    match rt.and_then(|rt| rt.block_on(main_async(cli))) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
