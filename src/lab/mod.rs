//! `ipipd lab`: a demo cluster in network namespaces on this machine.
//!
//! An underlay namespace holds a bridge; each node is a namespace with a veth
//! on that bridge running its own ipipd in full mesh; each node has one pod (a
//! namespace wired like Calico does it: a `cali…` veth, the pod's /32, a
//! default route via 169.254.1.1 answered by proxy ARP).

mod netns;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ipnet::Ipv4Net;

use crate::control::client;
use crate::control::protocol::{Request, Response};
use netns::{exec, ip, sysctl, Guard};

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

/// The seed scenario's addresses for the first three nodes, then a pattern.
fn node_plan(i: usize) -> (Ipv4Addr, Ipv4Net, Ipv4Addr) {
    let seed = [
        ([172, 29, 235, 101], [101, 76, 9, 128], [101, 76, 9, 136]),
        (
            [172, 29, 235, 130],
            [101, 88, 228, 192],
            [101, 88, 228, 195],
        ),
        ([172, 29, 235, 140], [101, 99, 1, 0], [101, 99, 1, 5]),
    ];
    if let Some((a, b, p)) = seed.get(i) {
        let block = Ipv4Net::new(Ipv4Addr::from(*b), 26).unwrap_or_default();
        return (Ipv4Addr::from(*a), block, Ipv4Addr::from(*p));
    }
    let n = u8::try_from(i).unwrap_or(u8::MAX);
    let block = Ipv4Net::new(Ipv4Addr::new(101, 100, n, 0), 26).unwrap_or_default();
    (
        Ipv4Addr::new(172, 29, 235, 150u8.saturating_add(n)),
        block,
        Ipv4Addr::new(101, 100, n, 10),
    )
}

/// A Calico-like host-side interface name: `cali` + 11 hex characters.
fn cali_name(seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("cali{:011x}", h & 0xfff_ffff_ffff)
}

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

pub fn run(nodes: usize, once: bool, binary: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if !is_root() {
        bail!("ipipd lab needs root (it creates network namespaces)");
    }
    let binary = match binary {
        Some(b) => b,
        None => std::env::current_exe().context("finding the ipipd binary")?,
    };
    let tag = format!("ipl{}", std::process::id());
    let mut guard = Guard::default();
    let dir = PathBuf::from(format!("/run/ipipd-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    guard.dir = Some(dir.clone());

    let underlay = format!("{tag}u");
    guard.add_ns(&underlay)?;
    ip(&["-n", &underlay, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &underlay, "link", "set", "br0", "up"])?;

    let mut plan = Vec::new();
    for i in 0..nodes {
        let (address, block, pod_ip) = node_plan(i);
        let ns = format!("{tag}n{}", i + 1);
        let pod_ns = format!("{tag}p{}", i + 1);
        plan.push(Node {
            index: i + 1,
            veth: cali_name(&pod_ns),
            socket: dir.join(format!("node{}.sock", i + 1)),
            ns,
            pod_ns,
            address,
            block,
            pod_ip,
        });
    }
    let mut real_ipip = true;
    for n in &plan {
        guard.add_ns(&n.ns)?;
        let port = format!("u{}", n.index);
        ip(&[
            "link", "add", &port, "netns", &underlay, "type", "veth", "peer", "name", "eth0",
            "netns", &n.ns,
        ])?;
        ip(&["-n", &underlay, "link", "set", &port, "master", "br0", "up"])?;
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
        if n.index == 1 {
            real_ipip = kernel_has_ipip(&n.ns);
        }
        if !real_ipip {
            // Stand-in: a veth end named tunl0 accepts the same onlink routes.
            ip(&[
                "-n",
                &n.ns,
                "link",
                "add",
                "tunl0",
                "type",
                "veth",
                "peer",
                "name",
                "tunl0-peer",
            ])?;
            ip(&["-n", &n.ns, "link", "set", "tunl0-peer", "up"])?;
        }
        // The pod.
        guard.add_ns(&n.pod_ns)?;
        ip(&[
            "-n", &n.ns, "link", "add", &n.veth, "type", "veth", "peer", "name", "eth0", "netns",
            &n.pod_ns,
        ])?;
        ip(&["-n", &n.ns, "link", "set", &n.veth, "mtu", "1480", "up"])?;
        sysctl(&n.ns, &format!("net.ipv4.conf.{}.proxy_arp", n.veth), "1")?;
        ip(&["-n", &n.pod_ns, "link", "set", "eth0", "mtu", "1480", "up"])?;
        ip(&[
            "-n",
            &n.pod_ns,
            "addr",
            "add",
            &format!("{}/32", n.pod_ip),
            "dev",
            "eth0",
        ])?;
        ip(&[
            "-n",
            &n.pod_ns,
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ])?;
        ip(&[
            "-n",
            &n.pod_ns,
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ])?;
    }
    if !real_ipip {
        println!("note: this kernel has no IPIP support (no `ipip` module), so each node uses a stand-in");
        println!("      tunl0 (a veth end): routes are programmed for real, but packets are not encapsulated,");
        println!("      so pods cannot ping across nodes here. The VM test (interop/vm) shows real IPIP.");
    }
    let nodes_list: Vec<String> = plan.iter().map(|n| format!("\"{}\"", n.address)).collect();
    let mut pids = Vec::new();
    for n in &plan {
        let cfg = format!(
            "[node]\nname = \"node{i}\"\naddress = \"{addr}\"\nblocks = [\"{block}\"]\n\n[cluster]\npools = [\"101.64.0.0/10\"]\nmesh = true\nnodes = [{nodes}]\n\n[bgp]\nhold_time = 9\ngraceful_restart_time = 30\nconnect_retry_time = 1\n\n[control]\nsocket = \"{sock}\"\nstate_dir = \"{state}\"\n",
            i = n.index,
            addr = n.address,
            block = n.block,
            nodes = nodes_list.join(", "),
            sock = n.socket.display(),
            state = dir.join(format!("state{}", n.index)).display(),
        );
        let path = dir.join(format!("node{}.toml", n.index));
        std::fs::write(&path, cfg)?;
        let log = dir.join(format!("node{}.log", n.index));
        let path_s = path.display().to_string();
        let bin = binary.display().to_string();
        pids.push(guard.spawn(&n.ns, &[&bin, "run", "--config", &path_s], &log)?);
    }
    println!(
        "started {} nodes (ipipd pids {:?}); files in {}",
        plan.len(),
        pids,
        dir.display()
    );

    for n in &plan {
        wait_for_socket(n, &dir)?;
        let r = client::call(
            &n.socket,
            &Request::WorkloadAdd {
                ip: n.pod_ip.into(),
                interface: n.veth.clone(),
            },
        )
        .with_context(|| format!("node{}: workload add", n.index))?;
        if let Response::Error { message } = r {
            bail!("node{}: workload add: {message}", n.index);
        }
    }
    let converged = wait_converged(&plan, Duration::from_secs(60));
    for n in &plan {
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
        print!(
            "{}",
            ip(&["-n", &n.ns, "route", "show", "proto", "bgp"]).unwrap_or_default()
        );
    }
    let mut ok = converged.is_ok();
    match &converged {
        Ok(t) => println!(
            "\nconverged: every node has every block in its kernel after {:.1} s",
            t.as_secs_f64()
        ),
        Err(e) => println!("\nNOT converged: {e}"),
    }
    if real_ipip {
        ok &= ping_all(&plan);
    }
    if !ok {
        for n in &plan {
            let log = std::fs::read_to_string(dir.join(format!("node{}.log", n.index)))
                .unwrap_or_default();
            println!("\n--- node{} log (last lines) ---", n.index);
            for l in log
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                println!("{l}");
            }
        }
    }
    if once {
        drop(guard);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("\nthe lab is running; try for example:");
    println!(
        "  {} show routes --socket {}",
        binary.display(),
        plan.first()
            .map(|n| n.socket.display().to_string())
            .unwrap_or_default()
    );
    println!(
        "  ip netns exec {} ping {}",
        plan.first().map(|n| n.pod_ns.as_str()).unwrap_or(""),
        plan.get(1)
            .map(|n| n.pod_ip.to_string())
            .unwrap_or_default()
    );
    println!("press Ctrl-C to tear it down");
    wait_for_interrupt();
    println!("tearing down");
    drop(guard);
    Ok(ExitCode::SUCCESS)
}

fn wait_for_socket(n: &Node, dir: &std::path::Path) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if client::call(&n.socket, &Request::ShowPeers).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join(format!("node{}.log", n.index))).unwrap_or_default();
    bail!("node{}'s ipipd did not come up; its log:\n{log}", n.index)
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

fn ping_all(plan: &[Node]) -> bool {
    let mut ok = true;
    let Some(a) = plan.first() else { return false };
    for b in plan.iter().skip(1) {
        let out = exec(
            &a.pod_ns,
            &[
                "ping",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "2",
                &b.pod_ip.to_string(),
            ],
        );
        let text = out
            .as_ref()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let good = out.map(|o| o.status.success()).unwrap_or(false);
        println!(
            "\n$ ip netns exec {} ping {} (pod on node{} → pod on node{})\n{}",
            a.pod_ns,
            b.pod_ip,
            a.index,
            b.index,
            text.trim_end()
        );
        ok &= good;
    }
    ok
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
