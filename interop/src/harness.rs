//! Network namespaces, an underlay bridge, and child processes, each removed
//! or stopped on drop (also when a test panics).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Runs `ip ARGS` and returns stdout, failing with stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// Polls `f` every 50 ms until it returns Some, or fails after `limit` with `what`.
pub fn wait_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("timed out after {:?} waiting for {what}", limit);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A network namespace with `lo` up, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Result<Netns> {
        let name = unique(prefix);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        ip(&v)
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn run(&self, args: &[&str]) -> Result<std::process::Output> {
        let (prog, rest) = args.split_first().context("empty command")?;
        self.command(prog)
            .args(rest)
            .output()
            .with_context(|| format!("running {args:?} in {}", self.name))
    }

    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let out = self.run(&["sh", "-c", &format!("echo {value} > {path}")])?;
        if !out.status.success() {
            bail!(
                "sysctl {key}={value} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Adds a stand-in `tunl0`: one end of a veth pair, both ends up. The host
    /// kernel has no ipip driver; onlink routes via this device are real.
    pub fn add_standin_tunl0(&self) -> Result<()> {
        self.ip(&[
            "link",
            "add",
            "tunl0",
            "type",
            "veth",
            "peer",
            "name",
            "tunl0-peer",
        ])?;
        self.ip(&["link", "set", "tunl0-peer", "up"])?;
        Ok(())
    }

    /// `ip route show proto bgp` in this namespace.
    pub fn bgp_routes(&self) -> String {
        self.ip(&["route", "show", "proto", "bgp"])
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill anything still running inside before deleting the namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = ip(&["netns", "del", &self.name]);
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
        let underlay = Netns::new("ul")?;
        underlay.ip(&["link", "add", "br0", "type", "bridge"])?;
        underlay.ip(&["link", "set", "br0", "up"])?;
        Ok(Lan { underlay, ports: 0 })
    }

    /// A new namespace with `eth0` on the bridge carrying `cidr`
    /// (e.g. "172.29.235.101/24"), a default route and forwarding on.
    pub fn host(&mut self, cidr: &str) -> Result<Netns> {
        let ns = Netns::new("h")?;
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
            "eth0",
            "netns",
            &ns.name,
        ])?;
        self.underlay
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        ns.ip(&["addr", "add", cidr, "dev", "eth0"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        ns.ip(&["route", "add", "default", "dev", "eth0"])?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        Ok(ns)
    }
}

/// A child process, stopped on drop (SIGTERM, then SIGKILL after 3 s).
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, name: &str, log: &Path) -> Result<Proc> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            child: Some(child),
            name: name.to_string(),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends a signal by name (e.g. "TERM", "KILL", "STOP", "CONT", "HUP").
    pub fn signal(&self, sig: &str) -> Result<()> {
        let pid = self.pid().context("process already reaped")?;
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()?;
        if !st.success() {
            bail!("kill -{sig} {pid} failed");
        }
        Ok(())
    }

    /// Waits for the process to exit (up to `limit`), returning its exit code.
    pub fn wait(&mut self, limit: Duration) -> Result<Option<i32>> {
        let child = self.child.as_mut().context("no child")?;
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait()? {
                self.child = None;
                return Ok(st.code());
            }
            if start.elapsed() > limit {
                bail!("{} did not exit within {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last `n` lines of its log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Stops the process in `slot` (if any) with a signal and waits for it to exit.
pub fn stop_slot(slot: &mut Option<Proc>, sig: &str) -> Result<()> {
    if let Some(mut p) = slot.take() {
        p.signal(sig)?;
        p.wait(Duration::from_secs(10))?;
    }
    Ok(())
}

/// A temporary directory removed on drop. Lives under /run so daemons that
/// bind sockets there work, and outside /tmp so a VM guest can share it.
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        let path = PathBuf::from("/run").join(unique(&format!("ipipd-test-{prefix}-")));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("IPIPD_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fails a test that needs root when not root: tiers are never skipped silently.
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .map(str::to_owned)
        });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "this test needs root (network namespaces)"
    );
}

impl Netns {
    /// Waits until `ip route show proto bgp` has exactly the line `line`
    /// (e.g. `101.88.228.192/26 via 172.29.235.130 dev tunl0 onlink`).
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
        .with_context(|| {
            format!(
                "ip route show proto bgp in {}:\n{}",
                self.name,
                self.bgp_routes()
            )
        })
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
        .with_context(|| {
            format!(
                "ip route show proto bgp in {}:\n{}",
                self.name,
                self.bgp_routes()
            )
        })
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

/// `ip -n NS monitor route` recorded to a file from start until drop.
#[derive(Debug)]
pub struct RouteMonitor {
    proc: Proc,
}

impl RouteMonitor {
    /// Starts recording; returns once the monitor is running.
    pub fn start(ns: &Netns, dir: &TempDir) -> Result<RouteMonitor> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &ns.name, "monitor", "route"]);
        let log = dir.join(&unique("route-monitor-"));
        let proc = Proc::spawn(cmd, "ip monitor route", &log)?;
        // Let it subscribe before the caller changes anything.
        std::thread::sleep(Duration::from_millis(200));
        Ok(RouteMonitor { proc })
    }

    /// Everything recorded so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.proc.log).unwrap_or_default()
    }

    /// Recorded `Deleted` lines for `prefix`.
    pub fn deleted(&self, prefix: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("Deleted "))
            .filter(|l| route_line_prefix(l) == Some(prefix))
            .map(str::to_owned)
            .collect()
    }
}

/// Polls a condition in a scoped thread every `every` until told to stop, and
/// reports every moment it did not hold: for "never missing" checks that run
/// while the test thread restarts something.
pub struct Sampler {
    stop: std::sync::atomic::AtomicBool,
}

/// What a [`Sampler`] saw.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub total: usize,
    /// Milliseconds since the start of sampling at which the check failed, with what it said.
    pub misses: Vec<(u128, String)>,
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler {
            stop: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs `check` (Ok = holds, Err = what was seen instead) every `every`
    /// in `scope` until [`Sampler::finish`].
    pub fn run<'scope, 'env, F>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        every: Duration,
        check: F,
    ) -> std::thread::ScopedJoinHandle<'scope, Samples>
    where
        F: Fn() -> std::result::Result<(), String> + Send + 'scope,
    {
        scope.spawn(move || {
            let start = Instant::now();
            let mut s = Samples::default();
            while !self.stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                s.total += 1;
                if let Err(seen) = check() {
                    s.misses.push((start.elapsed().as_millis(), seen));
                }
                std::thread::sleep(every.saturating_sub(t.elapsed()));
            }
            s
        })
    }

    /// Tells every sampler of this [`Sampler`] to stop after its current check.
    pub fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::new()
    }
}

/// Where `ip netns add NAME` keeps the namespace (what a runtime passes as CNI_NETNS).
pub fn netns_path(name: &str) -> String {
    format!("/var/run/netns/{name}")
}

impl Lan {
    /// A `tunl0` stand-in in `ns` whose other end is plugged into this LAN's bridge: the
    /// kernel takes `via X dev tunl0 onlink` routes on it as on a real tunnel, and packets
    /// routed that way reach the next hop unencapsulated — enough for pods on different
    /// nodes to ping each other along the routes ipipd installed.
    pub fn add_bridged_tunl0(&mut self, ns: &Netns) -> Result<()> {
        self.ports += 1;
        let port = format!("t{}", self.ports);
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
            "tunl0",
            "netns",
            &ns.name,
        ])?;
        self.underlay
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        Ok(())
    }
}
