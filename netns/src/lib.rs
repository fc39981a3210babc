//! Network namespaces as ipipd's demo lab, its tests and its benchmarks use them: one
//! place that creates them (with `lo` up), runs commands and threads inside them, wires
//! them to an underlay bridge, and removes them — with every process still inside — when
//! the owning handle is dropped, also when a test panics half-way.
//!
//! Everything goes through iproute2's `ip`, as an operator would; only entering a
//! namespace from a thread uses setns(2) directly.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ip {args}: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: exit status {status}: {stderr}")]
    Failed {
        what: String,
        status: String,
        stderr: String,
    },
    #[error("timed out after {limit:?} waiting for {what}")]
    Timeout { what: String, limit: Duration },
}

pub type Result<T> = std::result::Result<T, Error>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Runs `ip ARGS` and returns stdout, failing with stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(io("running ip (is iproute2 installed?)"))?;
    if !out.status.success() {
        return Err(Error::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sends SIGTERM (`kill = false`) or SIGKILL to the process `pid`; an error when it is
/// gone or not ours to signal.
pub fn signal(pid: u32, kill: bool) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let sig = if kill {
        rustix::process::Signal::KILL
    } else {
        rustix::process::Signal::TERM
    };
    rustix::process::kill_process(pid, sig).map_err(std::io::Error::from)
}

/// A name unique to this process and call, short enough for interface names.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` every 50 ms until it returns Some, or fails after `limit` naming `what`.
pub fn wait_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > limit {
            return Err(Error::Timeout {
                what: what.to_string(),
                limit,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where `ip netns add NAME` keeps the namespace (what a runtime passes as CNI_NETNS).
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/netns/{name}"))
}

/// Runs `f` on a thread inside the namespace at `path` and returns its result. Sockets
/// made there stay in that namespace, and processes started there start inside it. A
/// panic in `f` goes on in the caller (a failed assertion inside keeps its message).
pub fn in_netns_path<T: Send>(path: &std::path::Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let file = File::open(path).map_err(io(format!("opening {}", path.display())))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| Error::Io {
                what: format!("setns into {}", path.display()),
                source: e.into(),
            })?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A network namespace with `lo` up. The owning handle deletes it on drop, after killing
/// every process still inside.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    owned: bool,
}

impl Netns {
    /// A new namespace named `prefix` + a unique suffix.
    pub fn new(prefix: &str) -> Result<Netns> {
        Netns::create(&unique(prefix))
    }

    /// A new namespace with exactly this name.
    pub fn create(name: &str) -> Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
            owned: true,
        };
        // Onlink routes are refused while lo is down.
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A handle to a namespace that exists already (made by someone else): it is not
    /// deleted on drop.
    pub fn existing(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            owned: false,
        }
    }

    /// Another handle to the same namespace, one that does not delete it.
    pub fn handle(&self) -> Netns {
        Netns {
            name: self.name.clone(),
            owned: false,
        }
    }

    pub fn path(&self) -> PathBuf {
        path(&self.name)
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        ip(&v)
    }

    /// A command that runs inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs a command inside the namespace and returns its output, whatever its status.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let Some((prog, rest)) = args.split_first() else {
            return Err(Error::Failed {
                what: "an empty command".into(),
                status: "-".into(),
                stderr: String::new(),
            });
        };
        self.command(prog)
            .args(rest)
            .output()
            .map_err(io(format!("running {args:?} in {}", self.name)))
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        in_netns_path(&self.path(), f)
    }

    /// Sets `key` (dotted, e.g. `net.ipv4.ip_forward`) by writing /proc/sys.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_string();
        let what = format!("sysctl {key}={value} in {}", self.name);
        self.in_netns(move || std::fs::write(&file, value))?
            .map_err(io(what))
    }

    /// A veth pair inside the namespace, both ends up; `name` is the end routes use.
    pub fn veth(&self, name: &str, peer: &str) -> Result<()> {
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", peer])?;
        self.ip(&["link", "set", name, "up"])?;
        self.ip(&["link", "set", peer, "up"])?;
        Ok(())
    }

    /// A stand-in `tunl0`: one end of a veth pair, both ends up. The kernels of the test
    /// machines have no ipip driver; onlink routes via this device are real.
    pub fn add_standin_tunl0(&self) -> Result<()> {
        self.veth("tunl0", "tunl0-peer")
    }

    /// A pod's side as the CNI plugin wires it: `addr`/32 on `eth0`, the gateway
    /// 169.254.1.1 on the link and the default route through it.
    pub fn wire_pod(&self, addr: &str) -> Result<()> {
        self.ip(&["addr", "add", &format!("{addr}/32"), "dev", "eth0"])?;
        self.ip(&[
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ])?;
        self.ip(&[
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ])?;
        Ok(())
    }

    /// `ip route show proto bgp` in this namespace (empty on error).
    pub fn bgp_routes(&self) -> String {
        self.ip(&["route", "show", "proto", "bgp"])
            .unwrap_or_default()
    }

    /// Waits until `ip route show proto bgp` has exactly the line `line`.
    pub fn wait_bgp_route_line(&self, line: &str, limit: Duration) -> Result<()> {
        wait_until(
            limit,
            &format!("kernel route `{line}` in {}", self.name),
            || {
                self.bgp_routes()
                    .lines()
                    .any(|l| l.trim() == line)
                    .then_some(())
            },
        )
        .map_err(|e| self.with_routes(e))
    }

    /// Waits until no `proto bgp` route for `prefix` is left in the kernel.
    pub fn wait_no_bgp_route(&self, prefix: &str, limit: Duration) -> Result<()> {
        wait_until(
            limit,
            &format!("no kernel route for {prefix} in {}", self.name),
            || {
                (!self
                    .bgp_routes()
                    .lines()
                    .any(|l| route_line_prefix(l) == Some(prefix)))
                .then_some(())
            },
        )
        .map_err(|e| self.with_routes(e))
    }

    fn with_routes(&self, e: Error) -> Error {
        match e {
            Error::Timeout { what, limit } => Error::Timeout {
                what: format!(
                    "{what}; ip route show proto bgp in {}:\n{}",
                    self.name,
                    self.bgp_routes()
                ),
                limit,
            },
            other => other,
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // Kill anything still running inside before deleting the namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                // Gone already is fine: the namespace is deleted either way.
                if let Ok(pid) = pid.parse() {
                    let _ = signal(pid, true);
                }
            }
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// The destination of an `ip route` line, skipping a leading route type
/// (`blackhole 101.76.9.128/26 proto bgp` → `101.76.9.128/26`).
pub fn route_line_prefix(line: &str) -> Option<&str> {
    const TYPES: [&str; 5] = ["blackhole", "unreachable", "prohibit", "local", "broadcast"];
    let mut words = line.split_whitespace();
    let first = words.next()?;
    if TYPES.contains(&first) {
        words.next()
    } else {
        Some(first)
    }
}

/// An underlay: a bridge in its own namespace that hosts are plugged into.
#[derive(Debug)]
pub struct Lan {
    pub underlay: Netns,
    ports: u32,
}

impl Lan {
    pub fn new() -> Result<Lan> {
        Lan::named(&unique("ul"))
    }

    /// The underlay namespace gets exactly this name.
    pub fn named(name: &str) -> Result<Lan> {
        let underlay = Netns::create(name)?;
        underlay.ip(&["link", "add", "br0", "type", "bridge"])?;
        underlay.ip(&["link", "set", "br0", "up"])?;
        Ok(Lan { underlay, ports: 0 })
    }

    /// Plugs `ns` into the bridge as `ifname` carrying `cidr`; the bridge end is `port`.
    pub fn plug(&mut self, ns: &Netns, ifname: &str, cidr: Option<&str>) -> Result<()> {
        self.ports += 1;
        let port = format!("p{}", self.ports);
        ip(&[
            "link",
            "add",
            &port,
            "netns",
            &self.underlay.name,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            &ns.name,
        ])?;
        self.underlay
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        if let Some(cidr) = cidr {
            ns.ip(&["addr", "add", cidr, "dev", ifname])?;
        }
        ns.ip(&["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// A new namespace with `eth0` on the bridge carrying `cidr` (e.g.
    /// "172.29.235.101/24"), a default route (proxy ARP for pods needs one) and
    /// forwarding on.
    pub fn host(&mut self, cidr: &str) -> Result<Netns> {
        let ns = Netns::new("h")?;
        self.attach(&ns, cidr)?;
        Ok(ns)
    }

    /// Makes an existing namespace a host of this LAN, as [`Lan::host`] does.
    pub fn attach(&mut self, ns: &Netns, cidr: &str) -> Result<()> {
        self.plug(ns, "eth0", Some(cidr))?;
        ns.ip(&["route", "add", "default", "dev", "eth0"])?;
        ns.sysctl("net.ipv4.ip_forward", "1")
    }

    /// A `tunl0` stand-in in `ns` whose other end is plugged into this LAN's bridge: the
    /// kernel takes `via X dev tunl0 onlink` routes on it as on a real tunnel, and packets
    /// routed that way reach the next hop unencapsulated — enough for pods on different
    /// nodes to ping each other along the routes ipipd installed.
    pub fn add_bridged_tunl0(&mut self, ns: &Netns) -> Result<()> {
        self.plug(ns, "tunl0", None)
    }
}
