//! The command line (clap derive, nested subcommands).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::control::client;
use crate::control::protocol::{Request, Response};
use crate::logging::LogFormat;

pub const DEFAULT_CONFIG: &str = "/etc/ipipd/ipipd.toml";

#[derive(Debug, Parser)]
#[command(
    name = "ipipd",
    version,
    about = "BGP routing daemon for Kubernetes pod networks in IPIP mode"
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct SocketArg {
    /// Control socket of the daemon.
    #[arg(long, default_value = config::DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Check a configuration file: exit 0 if valid, else every error and exit 2.
    ///
    /// Every error at once, as PATH:LINE:COL: message. Honours IPIPD_NODE_NAME,
    /// IPIPD_NODE_ADDRESS, IPIPD_NODE_LABELS, IPIPD_SOCKET and IPIPD_STATE_DIR.
    CheckConfig {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Datastore mode: manage the cluster's nodes.
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// The cluster's pod addresses (datastore mode).
    Ipam {
        #[command(subcommand)]
        action: IpamAction,
    },
    /// The pod address pools.
    Pool {
        #[command(subcommand)]
        action: PoolAction,
    },
    /// Show the daemon's state.
    Show {
        #[command(subcommand)]
        what: ShowWhat,
    },
    /// Register or remove local workloads (pods).
    Workload {
        #[command(subcommand)]
        action: WorkloadAction,
    },
    /// Is this node healthy, and if not, why (exit 0 healthy, 1 not).
    ///
    /// One line per reason, naming the peer, BFD session or component: a session not
    /// Established once its first connect window has passed, a BFD session that should
    /// be Up, kernel writes failing, etcd unreachable. Then sessions, blocks and their
    /// use, datastore, FIB and tunnel. No daemon answering is exit 1 too.
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// A completion script for SHELL on stdout.
    ///
    /// bash: put it in /usr/share/bash-completion/completions/ipipd (the Debian package
    /// does), or `source <(ipipd completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: crate::reference::Shell,
    },
    /// Write the man pages (ipipd.1, one per command, ipipd.toml.5) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Ask the daemon to re-read its configuration file.
    Reload {
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Print a complete, commented configuration.
    ///
    /// Every key with its meaning, its default and what a reload does with it.
    ExampleConfig,
    /// Install the CNI plugin and its network configuration.
    ///
    /// As a DaemonSet init container does: copies `ipipd-cni` into BIN_DIR and writes
    /// CONF_DIR/10-ipipd.conflist.
    InstallCni {
        /// Where the runtime looks for plugins.
        #[arg(long, default_value = "/opt/cni/bin")]
        bin_dir: PathBuf,
        /// Where the runtime reads network configurations.
        #[arg(long, default_value = "/etc/cni/net.d")]
        conf_dir: PathBuf,
        /// The plugin binary to install (default: `ipipd-cni` next to this program).
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// The daemon's control socket, written into the network configuration.
        #[arg(long, default_value = config::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// The network's name.
        #[arg(long, default_value = "ipipd")]
        name: String,
        /// Pod MTU written into the configuration (default: the tunnel's, at each ADD).
        #[arg(long)]
        mtu: Option<u32>,
        /// The cniVersion written. 1.1.0 lets runtimes send GC and STATUS; runtimes
        /// whose CNI library is older than 1.2 (podman 4, containerd 1.7) refuse it
        /// and need 1.0.0.
        #[arg(long, default_value = crate::install_cni::CNI_VERSIONS[0],
              value_parser = clap::builder::PossibleValuesParser::new(crate::install_cni::CNI_VERSIONS))]
        cni_version: String,
    },
    /// Hold the BFD sessions in a process of their own.
    ///
    /// So that a restart of the daemon does not look like a node death. `ipipd run` starts one
    /// itself (`--socket`, `--grace`); with `[bfd] keeper = "external"` run
    /// `ipipd bfd-keeper --config FILE` beside it, e.g. as a container of its
    /// own in the pod: then it stays when the daemon goes and waits for the
    /// next one. Honours the IPIPD_* environment variables as `run` does.
    BfdKeeper {
        /// The daemon's configuration: the socket is `bfd.sock` in its
        /// state_dir, the grace its BGP restart time; the keeper stays resident.
        #[arg(long, short, conflicts_with_all = ["socket", "grace"])]
        config: Option<PathBuf>,
        /// The socket the daemon connects to.
        #[arg(long, required_unless_present = "config")]
        socket: Option<PathBuf>,
        /// Seconds without a daemon after which the sessions go AdminDown.
        #[arg(long, required_unless_present = "config")]
        grace: Option<u64>,
        #[arg(long, default_value_t = bfd::driver::PORT)]
        port: u16,
    },
    /// Start a demo cluster in network namespaces on this machine (root).
    ///
    /// Needs only iproute2 (`ip`), and etcd with --datastore etcd: it checks for them
    /// before it starts, and sends its ICMP echoes itself. Its last line says OK or what
    /// failed; the exit status too: 2 a missing prerequisite (root, a program, the CNI
    /// plugin), 3 the kernel refused part of the network, 4 a node's ipipd or its pod did
    /// not come up, 5 routes did not converge, 6 pods could not reach each other, 7
    /// deleting the pods failed.
    Lab {
        /// Number of nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=50))]
        nodes: u8,
        /// Check and tear down at once instead of waiting for Ctrl-C.
        #[arg(long)]
        once: bool,
        /// ipipd binary run in each node (default: this one).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Where nodes and blocks live: `file` (each node's config lists them) or `etcd`
        /// (a one-member etcd in the lab, one config for every node, blocks claimed as
        /// pods start).
        #[arg(long, value_enum, default_value_t = crate::lab::LabDatastore::File)]
        datastore: crate::lab::LabDatastore,
        /// How pods' packets cross the underlay: `ipip` (a stand-in tunl0 on kernels
        /// without ipip) or `vxlan` (real VXLAN devices, `[vxlan] mode = "always"`).
        #[arg(long, value_enum, default_value_t = crate::lab::LabEncapsulation::Ipip)]
        encapsulation: crate::lab::LabEncapsulation,
    },
}

/// What replaces the file's node identity, socket and state directory (over the
/// IPIPD_* environment variables), so one file serves every node.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Overrides node.name (env IPIPD_NODE_NAME).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Overrides node.address (env IPIPD_NODE_ADDRESS).
    #[arg(long)]
    pub node_address: Option<String>,
    /// Replaces node.labels, e.g. rack=r1,zone=a (env IPIPD_NODE_LABELS).
    #[arg(long)]
    pub node_labels: Option<String>,
    /// Overrides control.socket (env IPIPD_SOCKET).
    #[arg(long)]
    pub socket: Option<String>,
    /// Overrides control.state_dir (env IPIPD_STATE_DIR).
    #[arg(long)]
    pub state_dir: Option<String>,
}

impl IdentityArgs {
    fn overrides(self) -> config::Overrides {
        config::Overrides::from_env().or(config::Overrides {
            node_name: self.node_name,
            node_address: self.node_address,
            node_labels: self.node_labels,
            socket: self.socket,
            state_dir: self.state_dir,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum NodeAction {
    /// Decommission a node (datastore mode).
    ///
    /// Its registration goes and its blocks are released; every node drops its session
    /// and its routes.
    Remove {
        name: String,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum IpamAction {
    /// The cluster's allocations against every node's live pods: leaked, missing,
    /// duplicates, orphan blocks (exit 0 when all are empty, 1 otherwise).
    ///
    /// Each check is recorded in the datastore: a release needs a later one.
    Check {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Frees the leaked allocations of a saved `ipam check --json` report that a later
    /// check found leaked too (run the check again first); refused otherwise.
    Release {
        #[arg(long, value_name = "FILE")]
        from_report: PathBuf,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolAction {
    /// Each pool with its options, whether it selects this node, and its use: blocks
    /// here and in the cluster (datastore mode), pod addresses here.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShowWhat {
    /// The cluster's nodes as this node sees them.
    Nodes {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// BGP sessions, like `calicoctl node status`.
    Peers {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Every route the node knows, like `birdc show route`.
    Routes {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Every block the node knows: its own (with pod addresses in use) and learned ones.
    Blocks {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// BFD sessions: state, negotiated interval, multiplier, since.
    Bfd {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkloadAction {
    /// Install IP/32 dev INTERFACE scope link (persisted; IP must be in cluster.pools).
    Add {
        ip: IpAddr,
        interface: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Remove a workload.
    Del {
        ip: IpAddr,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// List workloads (pods made by ipipd-cni show their IPAM handle).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

fn call(socket: &SocketArg, req: Request) -> anyhow::Result<Response> {
    match client::call(&socket.socket, &req) {
        Ok(Response::Error { message }) => Err(anyhow::Error::msg(message)),
        Ok(r) => Ok(r),
        Err(e) => Err(e.into()),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config, identity } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(crate::daemon::run(config, identity.overrides()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BfdKeeper {
            config,
            socket,
            grace,
            port,
        } => {
            let (socket, grace, resident) = match (config, socket, grace) {
                (Some(path), _, _) => {
                    let cfg = match config::Config::load_with(&path, &config::Overrides::from_env())
                    {
                        Ok(c) => c,
                        Err(errors) => {
                            eprintln!("{errors}");
                            return Ok(ExitCode::from(2));
                        }
                    };
                    (
                        crate::daemon::bfd::socket(&cfg),
                        crate::daemon::bfd::grace(&cfg),
                        true,
                    )
                }
                (None, Some(socket), Some(grace)) => (socket, grace, false),
                _ => anyhow::bail!("bfd-keeper needs --config, or --socket and --grace"),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(bfd::keeper::serve(
                &socket,
                bfd::keeper::Options {
                    grace: std::time::Duration::from_secs(grace),
                    port,
                    resident,
                },
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config, identity } => {
            match config::Config::load_with(&config, &identity.overrides()) {
                Ok(_) => {
                    println!("{}: configuration is valid", config.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::ExampleConfig => {
            print!("{}", config::reference::example(false));
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { what } => show(what),
        Command::Pool {
            action: PoolAction::List { json, socket },
        } => match call(&socket, Request::PoolList)? {
            Response::Pools { pools } => print_list(&pools, json, crate::show::pools_table),
            r => Err(anyhow::anyhow!("unexpected answer from the daemon: {r:?}")),
        },
        Command::Status { json, socket } => crate::status::run(&socket.socket, json),
        Command::Ipam { action } => crate::ipam_cli::run(action),
        Command::Completions { shell } => {
            use std::io::Write;
            std::io::stdout().write_all(&crate::reference::completions(shell))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            for page in crate::reference::man(&dir)? {
                println!("{}", dir.join(page).display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Node {
            action: NodeAction::Remove { name, socket },
        } => {
            if let Response::Ok { message } = call(&socket, Request::NodeRemove { name })? {
                println!("{message}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Workload { action } => workload(action),
        Command::InstallCni {
            bin_dir,
            conf_dir,
            plugin,
            socket,
            name,
            mtu,
            cni_version,
        } => {
            let done = crate::install_cni::install(&crate::install_cni::Install {
                bin_dir,
                conf_dir,
                plugin,
                socket,
                name,
                mtu,
                cni_version,
            })?;
            println!("{done}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload { socket } => {
            if let Response::Ok { message } = call(&socket, Request::Reload)? {
                println!("{message}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lab {
            nodes,
            once,
            binary,
            datastore,
            encapsulation,
        } => crate::lab::run(nodes.into(), once, binary, datastore, encapsulation),
    }
}

/// Prints what a `show` request answered: JSON, or the table.
fn print_list<T: serde::Serialize>(
    items: &[T],
    json: bool,
    table: fn(&[T]) -> String,
) -> anyhow::Result<ExitCode> {
    if json {
        print_json(&items)?;
    } else {
        print!("{}", table(items));
    }
    Ok(ExitCode::SUCCESS)
}

fn show(what: ShowWhat) -> anyhow::Result<ExitCode> {
    use crate::show;
    let unexpected = |r: Response| anyhow::anyhow!("unexpected answer from the daemon: {r:?}");
    match what {
        ShowWhat::Peers { json, socket } => match call(&socket, Request::ShowPeers)? {
            Response::Peers { peers } => print_list(&peers, json, show::peers_table),
            r => Err(unexpected(r)),
        },
        ShowWhat::Routes { json, socket } => match call(&socket, Request::ShowRoutes)? {
            Response::Routes { routes } => print_list(&routes, json, show::routes_table),
            r => Err(unexpected(r)),
        },
        ShowWhat::Blocks { json, socket } => match call(&socket, Request::ShowBlocks)? {
            Response::Blocks { blocks } => print_list(&blocks, json, show::blocks_table),
            r => Err(unexpected(r)),
        },
        ShowWhat::Nodes { json, socket } => match call(&socket, Request::ShowNodes)? {
            Response::Nodes { nodes } => print_list(&nodes, json, show::nodes_table),
            r => Err(unexpected(r)),
        },
        ShowWhat::Bfd { json, socket } => match call(&socket, Request::ShowBfd)? {
            Response::Bfd { sessions } => print_list(&sessions, json, show::bfd_table),
            r => Err(unexpected(r)),
        },
    }
}

fn workload(action: WorkloadAction) -> anyhow::Result<ExitCode> {
    let (socket, req, json) = match action {
        WorkloadAction::Add {
            ip,
            interface,
            socket,
        } => {
            crate::daemon::check_interface(&interface).map_err(anyhow::Error::msg)?;
            (socket, Request::WorkloadAdd { ip, interface }, false)
        }
        WorkloadAction::Del { ip, socket } => (socket, Request::WorkloadDel { ip }, false),
        WorkloadAction::List { json, socket } => (socket, Request::WorkloadList, json),
    };
    match call(&socket, req)? {
        Response::Ok { message } => println!("{message}"),
        Response::Workloads { workloads } if json => print_json(&workloads)?,
        Response::Workloads { workloads } => {
            print!("{}", crate::show::workloads_table(&workloads));
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}
