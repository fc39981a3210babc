//! `ipipd lab`: a demo cluster in network namespaces on this machine.
//!
//! An underlay namespace holds a bridge; each node is a namespace with a veth
//! on that bridge running its own ipipd in full mesh; each node has one pod, a
//! namespace brought up by the `ipipd-cni` plugin exactly as a container runtime
//! calls it (CNI_* variables, the network configuration on stdin): an address from
//! the node's block, a `cali…` veth, a default route via 169.254.1.1 answered by
//! proxy ARP.
//!
//! With `--datastore etcd` a one-member etcd runs on the underlay bridge, every node
//! runs from one configuration file (identity from the environment), and each node
//! claims its block in etcd when its pod starts.

mod echo;
mod etcd;
mod failure;
mod netns;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use failure::{fail, require_file, require_program, Failure, Stage, Step};
use ipnet::Ipv4Net;

use crate::control::client;
use crate::control::protocol::{Request, Response};
use netns::{ip, sysctl, Guard};

/// The pool every lab node's blocks come from.
const POOL: &str = "101.64.0.0/10";
/// Block length of the etcd lab (the file lab's blocks are /26 too).
const BLOCK_LEN: u8 = 26;

struct Node {
    index: usize,
    ns: String,
    pod_ns: String,
    address: Ipv4Addr,
    block: Ipv4Net,
    pod_ip: Ipv4Addr,
    veth: String,
    socket: PathBuf,
}

/// The seed scenario's node addresses and blocks for the first three nodes, then a
/// pattern. Pod addresses come from the plugin.
fn node_plan(i: usize) -> (Ipv4Addr, Ipv4Net) {
    let seed = [
        ([172, 29, 235, 101], [101, 76, 9, 128]),
        ([172, 29, 235, 130], [101, 88, 228, 192]),
        ([172, 29, 235, 140], [101, 99, 1, 0]),
    ];
    if let Some((a, b)) = seed.get(i) {
        let block = Ipv4Net::new(Ipv4Addr::from(*b), 26).unwrap_or_default();
        return (Ipv4Addr::from(*a), block);
    }
    let n = u8::try_from(i).unwrap_or(u8::MAX);
    let block = Ipv4Net::new(Ipv4Addr::new(101, 100, n, 0), 26).unwrap_or_default();
    (Ipv4Addr::new(172, 29, 235, 150u8.saturating_add(n)), block)
}

/// Where the lab's nodes keep nodes and blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabDatastore {
    /// Each node's own config lists every node and its block.
    File,
    /// A one-member etcd; one config for every node; blocks claimed as pods start.
    Etcd,
}

/// How the lab's pods' packets cross the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabEncapsulation {
    /// IPIP through tunl0 (a stand-in where the kernel has no ipip).
    Ipip,
    /// VXLAN through vxlan.calico: real encapsulation on any kernel with vxlan.
    Vxlan,
}

/// The lab's VXLAN device, as `[vxlan]` defaults name it.
const VXLAN_DEVICE: &str = "vxlan.calico";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether this kernel can make IPIP tunnels (the `ipip` module).
fn kernel_has_ipip(probe_ns: &str) -> bool {
    ip(&["-n", probe_ns, "link", "show", "tunl0"]).is_ok()
        || ip(&["-n", probe_ns, "link", "add", "tunl0", "type", "ipip"]).is_ok()
}

/// Runs the lab; its last line and exit status name what failed (see [`Stage`]).
pub fn run(
    nodes: usize,
    once: bool,
    binary: Option<PathBuf>,
    datastore: LabDatastore,
    encapsulation: LabEncapsulation,
) -> anyhow::Result<ExitCode> {
    match lab(nodes, once, binary, datastore, encapsulation) {
        Ok(summary) => {
            println!("\nipipd lab: OK, {summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            eprintln!("\nipipd lab: FAILED, {f}");
            Ok(ExitCode::from(f.stage.code()))
        }
    }
}

/// Everything the lab needs from outside, checked before anything is made.
fn preflight(binary: &std::path::Path, datastore: LabDatastore) -> Result<PathBuf, Failure> {
    if !is_root() {
        return Err(fail(
            Stage::Prerequisite,
            "ipipd lab needs root (it creates network namespaces): run it with sudo or as root",
        ));
    }
    require_program(
        "ip",
        "iproute2",
        "namespaces, links, addresses and routes are made with it",
    )?;
    if datastore == LabDatastore::Etcd {
        require_program(
            "etcd",
            "etcd-server",
            "--datastore etcd runs a one-member etcd",
        )?;
    }
    require_file(
        binary,
        "the ipipd binary",
        "cargo build --release builds it",
    )?;
    let plugin = binary.with_file_name(crate::install_cni::PLUGIN);
    require_file(
        &plugin,
        "the CNI plugin",
        "`cargo build --release` builds it next to ipipd",
    )?;
    Ok(plugin)
}

const NETNS_TODO: &str = "the lab needs network namespaces, veth and bridge support in the \
    kernel and root outside any container that forbids them";

fn lab(
    nodes: usize,
    once: bool,
    binary: Option<PathBuf>,
    datastore: LabDatastore,
    encapsulation: LabEncapsulation,
) -> Result<String, Failure> {
    let vxlan = encapsulation == LabEncapsulation::Vxlan;
    let binary = match binary {
        Some(b) => b,
        None => std::env::current_exe().step(
            Stage::Prerequisite,
            "finding the ipipd binary",
            "pass --binary PATH",
        )?,
    };
    let plugin = preflight(&binary, datastore)?;
    let tag = format!("ipl{}", std::process::id());
    let mut guard = Guard::default();
    let dir = PathBuf::from(format!("/run/ipipd-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).step(
        Stage::Prerequisite,
        &format!("creating {}", dir.display()),
        "/run must be writable",
    )?;
    guard.dir = Some(dir.clone());

    let underlay = format!("{tag}u");
    guard.add_ns(&underlay).step(
        Stage::Network,
        "creating the underlay namespace",
        NETNS_TODO,
    )?;
    ip(&["-n", &underlay, "link", "add", "br0", "type", "bridge"])
        .and_then(|_| ip(&["-n", &underlay, "link", "set", "br0", "up"]))
        .step(
            Stage::Network,
            "creating the underlay bridge",
            "the kernel needs bridge support (modprobe bridge)",
        )?;

    let mut plan: Vec<Node> = Vec::new();
    for i in 0..nodes {
        let (address, block) = node_plan(i);
        let ns = format!("{tag}n{}", i + 1);
        let pod_ns = format!("{tag}p{}", i + 1);
        plan.push(Node {
            index: i + 1,
            veth: String::new(),
            socket: dir.join(format!("node{}.sock", i + 1)),
            ns,
            pod_ns,
            address,
            block,
            pod_ip: Ipv4Addr::UNSPECIFIED,
        });
    }
    let mut real_ipip = true;
    for n in &plan {
        let what = format!("wiring node{} ({}) to the underlay", n.index, n.address);
        wire_node(&mut guard, n, &underlay).step(Stage::Network, &what, NETNS_TODO)?;
        if n.index == 1 && !vxlan {
            real_ipip = kernel_has_ipip(&n.ns);
        }
        if !real_ipip {
            // Stand-in: a veth end named tunl0 accepts the same onlink routes; its other
            // end is on the bridge, so packets routed through it reach the next hop
            // (unencapsulated) and pods can ping across nodes.
            let port = format!("t{}", n.index);
            ip(&[
                "link", "add", &port, "netns", &underlay, "type", "veth", "peer", "name", "tunl0",
                "netns", &n.ns,
            ])
            .and_then(|_| ip(&["-n", &underlay, "link", "set", &port, "master", "br0", "up"]))
            .step(
                Stage::Network,
                &format!("making node{}'s stand-in tunl0", n.index),
                "the kernel needs veth support (modprobe veth)",
            )?;
        }
        guard.add_ns(&n.pod_ns).step(
            Stage::Network,
            &format!("creating node{}'s pod namespace", n.index),
            NETNS_TODO,
        )?;
    }
    if !real_ipip {
        println!("note: this kernel has no IPIP support (no `ipip` module), so each node uses a stand-in");
        println!("      tunl0 (a veth end on the underlay bridge): routes are programmed for real and pods");
        println!(
            "      ping across nodes along them, but packets are not encapsulated. The VM test"
        );
        println!("      (interop/vm) shows real IPIP.");
    }
    let extra = if vxlan {
        "\n[vxlan]\nmode = \"always\"\n"
    } else {
        ""
    };
    let pids = start_nodes(
        &mut guard, &plan, &dir, &binary, &underlay, datastore, extra,
    )?;
    println!(
        "started {} nodes (ipipd pids {:?}); files in {}",
        plan.len(),
        pids,
        dir.display()
    );

    for n in plan.iter_mut() {
        wait_for_socket(n, &dir)?;
        let (pod_ip, veth) = cni_add(&plugin, n).step(
            Stage::Node,
            &format!("making node{}'s pod with {}", n.index, plugin.display()),
            "the node's log follows above if it said why",
        )?;
        println!(
            "node{}: pod {} on {} made by {}",
            n.index,
            pod_ip,
            veth,
            plugin.display()
        );
        n.pod_ip = pod_ip;
        n.veth = veth;
        if datastore == LabDatastore::Etcd {
            // The node claimed a block for this pod: the pod's /26.
            n.block = Ipv4Net::new(pod_ip, BLOCK_LEN)
                .map(|b| b.trunc())
                .unwrap_or_default();
            println!("node{}: claimed block {} in etcd", n.index, n.block);
        }
    }
    let converged = wait_converged(&plan, Duration::from_secs(60));
    for n in &plan {
        print_node(n);
    }
    let outcome = match converged {
        Ok(t) => {
            println!(
                "\nconverged: every node has every block in its kernel after {:.1} s",
                t.as_secs_f64()
            );
            let before = vxlan.then(|| vxlan_tx(&plan)).flatten();
            echo_all(&plan).and_then(|echoes| {
                let how = match before {
                    Some(before) => through_vxlan(&plan, before, &echoes)?,
                    None => String::new(),
                };
                Ok(format!(
                    "{} nodes converged in {:.1} s; pod on node1 reached every other pod ({echoes}){how}",
                    plan.len(),
                    t.as_secs_f64()
                ))
            })
        }
        Err(missing) => Err(fail(
            Stage::Converge,
            format!(
                "{missing}; the node logs follow above. Sessions not Established (`show peers` \
                 above) point at the underlay, routes missing from `ip route` at the kernel"
            ),
        )),
    };
    if outcome.is_err() {
        print_logs(&plan, &dir);
    }
    if once {
        let mut teardown = Ok(());
        for n in &plan {
            if let Err(e) = cni_del(&plugin, n) {
                println!("node{}: {e:#}", n.index);
                teardown = Err(fail(
                    Stage::Teardown,
                    format!("deleting node{}'s pod: {e:#}", n.index),
                ));
            }
        }
        drop(guard);
        let summary = outcome?;
        teardown?;
        return Ok(summary);
    }
    println!("\nthe lab is running; try for example:");
    println!(
        "  {} status --socket {}",
        binary.display(),
        plan.first()
            .map(|n| n.socket.display().to_string())
            .unwrap_or_default()
    );
    println!(
        "  {} show routes --socket {}",
        binary.display(),
        plan.first()
            .map(|n| n.socket.display().to_string())
            .unwrap_or_default()
    );
    println!("press Ctrl-C to tear it down");
    wait_for_interrupt();
    println!("tearing down");
    drop(guard);
    outcome
}

/// A node's namespace on the underlay bridge, with its address, a default route and
/// forwarding, and its pod's namespace.
fn wire_node(guard: &mut Guard, n: &Node, underlay: &str) -> anyhow::Result<()> {
    guard.add_ns(&n.ns)?;
    let port = format!("u{}", n.index);
    ip(&[
        "link", "add", &port, "netns", underlay, "type", "veth", "peer", "name", "eth0", "netns",
        &n.ns,
    ])?;
    ip(&["-n", underlay, "link", "set", &port, "master", "br0", "up"])?;
    ip(&[
        "-n",
        &n.ns,
        "addr",
        "add",
        &format!("{}/24", n.address),
        "dev",
        "eth0",
    ])?;
    ip(&["-n", &n.ns, "link", "set", "eth0", "up"])?;
    // Real nodes have a default route; proxy ARP for 169.254.1.1 needs one.
    ip(&["-n", &n.ns, "route", "add", "default", "dev", "eth0"])?;
    sysctl(&n.ns, "net.ipv4.ip_forward", "1")?;
    Ok(())
}

/// Starts one ipipd per node; returns their pids.
fn start_nodes(
    guard: &mut Guard,
    plan: &[Node],
    dir: &std::path::Path,
    binary: &std::path::Path,
    underlay: &str,
    datastore: LabDatastore,
    extra: &str,
) -> Result<Vec<u32>, Failure> {
    let mut pids = Vec::new();
    let bin = binary.display().to_string();
    match datastore {
        LabDatastore::File => {
            let nodes_list: Vec<String> =
                plan.iter().map(|n| format!("\"{}\"", n.address)).collect();
            for n in plan {
                let cfg = format!(
                    "[node]\nname = \"node{i}\"\naddress = \"{addr}\"\nblocks = [\"{block}\"]\n\n[cluster]\npools = [\"{POOL}\"]\nmesh = true\nnodes = [{nodes}]\n\n[bgp]\nhold_time = 9\ngraceful_restart_time = 30\nconnect_retry_time = 1\n\n[control]\nsocket = \"{sock}\"\nstate_dir = \"{state}\"\n",
                    i = n.index,
                    addr = n.address,
                    block = n.block,
                    nodes = nodes_list.join(", "),
                    sock = n.socket.display(),
                    state = dir.join(format!("state{}", n.index)).display(),
                ) + extra;
                let path = dir.join(format!("node{}.toml", n.index));
                std::fs::write(&path, cfg).step(
                    Stage::Node,
                    &format!("writing {}", path.display()),
                    "",
                )?;
                let log = dir.join(format!("node{}.log", n.index));
                let path_s = path.display().to_string();
                pids.push(
                    guard
                        .spawn(&n.ns, &[&bin, "run", "--config", &path_s], &log)
                        .step(
                            Stage::Node,
                            &format!("starting node{}'s ipipd", n.index),
                            "",
                        )?,
                );
            }
        }
        LabDatastore::Etcd => {
            let pid = etcd::start(guard, underlay, dir).step(
                Stage::Node,
                "starting etcd",
                "its log is above; a stale etcd data directory or a port in use are the usual causes",
            )?;
            println!(
                "etcd (pid {pid}) at {}, data in {}",
                etcd::endpoint(),
                dir.join("etcd").display()
            );
            let path = dir.join("ipipd.toml");
            std::fs::write(&path, etcd::config(POOL) + extra).step(
                Stage::Node,
                &format!("writing {}", path.display()),
                "",
            )?;
            let path_s = path.display().to_string();
            for n in plan {
                let log = dir.join(format!("node{}.log", n.index));
                let env = [
                    ("IPIPD_NODE_NAME", format!("node{}", n.index)),
                    ("IPIPD_NODE_ADDRESS", n.address.to_string()),
                    ("IPIPD_SOCKET", n.socket.display().to_string()),
                    (
                        "IPIPD_STATE_DIR",
                        dir.join(format!("state{}", n.index)).display().to_string(),
                    ),
                ];
                pids.push(
                    guard
                        .spawn_env(&n.ns, &[&bin, "run", "--config", &path_s], &env, &log)
                        .step(
                            Stage::Node,
                            &format!("starting node{}'s ipipd", n.index),
                            "",
                        )?,
                );
            }
            println!(
                "every node runs from {path_s}; identity from IPIPD_NODE_NAME/IPIPD_NODE_ADDRESS"
            );
        }
    }
    Ok(pids)
}

/// Packets node1's VXLAN device has sent.
fn vxlan_tx(plan: &[Node]) -> Option<u64> {
    let n = plan.first()?;
    let out = ip(&["-n", &n.ns, "-s", "-j", "link", "show", "dev", VXLAN_DEVICE]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v[0]["stats64"]["tx"]["packets"].as_u64()
}

/// The echoes went through node1's VXLAN device: it sent at least one packet per reply,
/// and the device is what `ip -d link` calls vxlan. Says so, with the device's details.
fn through_vxlan(plan: &[Node], before: u64, echoes: &str) -> Result<String, Failure> {
    let Some(n) = plan.first() else {
        return Err(fail(Stage::Reach, "the lab has no nodes"));
    };
    let after = vxlan_tx(plan).unwrap_or(before);
    let details = ip(&["-n", &n.ns, "-d", "link", "show", "dev", VXLAN_DEVICE]).unwrap_or_default();
    let neigh = ip(&["-n", &n.ns, "neigh", "show", "dev", VXLAN_DEVICE]).unwrap_or_default();
    println!("\n$ ip -d link show dev {VXLAN_DEVICE} (node1)\n{details}");
    println!("$ ip neigh show dev {VXLAN_DEVICE} (node1)\n{neigh}");
    let replies: u64 = echoes
        .split_whitespace()
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let sent = after.saturating_sub(before);
    if !details.contains("vxlan id") || sent < replies {
        return Err(fail(
            Stage::Reach,
            format!(
                "the echoes were answered, but node1's {VXLAN_DEVICE} sent {sent} packets for \
                 {replies} replies: the pods' packets did not all go through VXLAN"
            ),
        ));
    }
    println!(
        "encapsulated: node1's {VXLAN_DEVICE} sent {sent} packets during the echoes (UDP to the \
         other nodes' addresses), for {replies} replies"
    );
    Ok(format!(
        ", through real VXLAN ({VXLAN_DEVICE} on node1 sent {sent} packets)"
    ))
}

/// A node's sessions, routes and kernel table.
fn print_node(n: &Node) {
    println!(
        "\n=== node{} ({}, block {}, pod {} on {}) ===",
        n.index, n.address, n.block, n.pod_ip, n.veth
    );
    if let Ok(Response::Peers { peers }) = client::call(&n.socket, &Request::ShowPeers) {
        print!("{}", crate::show::peers_table(&peers));
    }
    println!();
    if let Ok(Response::Routes { routes }) = client::call(&n.socket, &Request::ShowRoutes) {
        print!("{}", crate::show::routes_table(&routes));
    }
    println!("\n$ ip route show proto bgp");
    match ip(&["-n", &n.ns, "route", "show", "proto", "bgp"]) {
        Ok(routes) => print!("{routes}"),
        Err(e) => println!("(cannot read the routes: {e})"),
    }
}

/// The last lines of every node's log.
fn print_logs(plan: &[Node], dir: &std::path::Path) {
    for n in plan {
        let path = dir.join(format!("node{}.log", n.index));
        let log = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
        println!("\n--- node{} log (last lines) ---", n.index);
        let lines: Vec<&str> = log.lines().collect();
        for l in lines.iter().skip(lines.len().saturating_sub(15)) {
            println!("{l}");
        }
    }
}

/// The pod's network configuration, as a runtime reads it from a `.conflist`.
fn netconf(n: &Node) -> String {
    let list = crate::install_cni::conflist(
        "ipipd",
        &n.socket,
        None,
        crate::install_cni::CNI_VERSIONS[0],
    );
    let mut conf = list["plugins"][0].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    conf.to_string()
}

/// Runs the plugin in the node's namespace as a container runtime does.
fn cni(plugin: &std::path::Path, n: &Node, command: &str) -> anyhow::Result<serde_json::Value> {
    use std::io::Write;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &n.ns])
        .arg(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("lab-pod-{}", n.index))
        .env("CNI_NETNS", format!("/var/run/netns/{}", n.pod_ns))
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_PATH",
            plugin.parent().unwrap_or(std::path::Path::new("/")),
        )
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-{}", n.index),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", plugin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(netconf(n).as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("node{}: CNI {command} failed: {}", n.index, text.trim());
    }
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

fn cni_add(plugin: &std::path::Path, n: &Node) -> anyhow::Result<(Ipv4Addr, String)> {
    let result = cni(plugin, n, "ADD")?;
    let ip = result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .with_context(|| {
            format!(
                "node{}: no IPv4 address in the CNI result {result}",
                n.index
            )
        })?;
    let veth = result["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((ip, veth))
}

fn cni_del(plugin: &std::path::Path, n: &Node) -> anyhow::Result<()> {
    cni(plugin, n, "DEL").map(|_| ())
}

fn wait_for_socket(n: &Node, dir: &std::path::Path) -> Result<(), Failure> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if client::call(&n.socket, &Request::ShowPeers).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let path = dir.join(format!("node{}.log", n.index));
    let log = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    println!("\n--- node{} log ---\n{log}", n.index);
    Err(fail(
        Stage::Node,
        format!(
            "node{}'s ipipd did not answer on {} within 20 s; its log is above",
            n.index,
            n.socket.display()
        ),
    ))
}

/// Waits until every node has every other block and every workload installed.
fn wait_converged(plan: &[Node], limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut missing = String::new();
    while start.elapsed() < limit {
        missing.clear();
        for n in plan {
            let routes = match client::call(&n.socket, &Request::ShowRoutes) {
                Ok(Response::Routes { routes }) => routes,
                _ => Vec::new(),
            };
            for other in plan {
                let want = if other.index == n.index {
                    n.pod_ip.to_string() + "/32"
                } else {
                    other.block.to_string()
                };
                if !routes.iter().any(|r| r.prefix == want && r.installed) {
                    missing.push_str(&format!(" node{}:{want}", n.index));
                }
            }
        }
        if missing.is_empty() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "still missing after {} s:{missing}",
        limit.as_secs()
    ))
}

/// ICMP echo from the first node's pod to every other pod, from inside the pod's
/// namespace (no `ping` needed). Fails naming each pair that got no reply.
fn echo_all(plan: &[Node]) -> Result<String, Failure> {
    let Some(a) = plan.first() else {
        return Err(fail(Stage::Reach, "the lab has no nodes"));
    };
    let mut failed = Vec::new();
    let mut replies = 0u32;
    for b in plan.iter().skip(1) {
        let to = b.pod_ip;
        let what = format!(
            "pod on node{} ({}) -> pod on node{} ({to})",
            a.index, a.pod_ip, b.index
        );
        let result = ::netns::in_netns_path(&::netns::path(&a.pod_ns), move || {
            echo::echo(to, 3, Duration::from_millis(200), Duration::from_secs(2))
        });
        match result {
            Ok(Ok(e)) => {
                println!(
                    "\n$ ICMP echo {what}, in netns {}\n{}",
                    a.pod_ns,
                    e.summary()
                );
                replies += u32::from(e.received);
                if e.received == 0 {
                    failed.push(format!("{what}: {}", e.summary()));
                }
            }
            Ok(Err(e)) => failed.push(format!("{what}: cannot send echoes: {e}")),
            Err(e) => failed.push(format!("{what}: cannot enter the pod's namespace: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(format!("{replies} echo replies"))
    } else {
        Err(fail(
            Stage::Reach,
            format!(
                "{}. The routes above are in every kernel, so look at the path: the stand-in \
                 tunl0 ports on the underlay bridge, forwarding, proxy ARP on the cali veths",
                failed.join("; ")
            ),
        ))
    }
}

fn wait_for_interrupt() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    if let Ok(rt) = rt {
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
}
