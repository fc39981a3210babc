//! Child processes, temporary directories and route monitors for the tests, each stopped
//! or removed on drop (also when a test panics). Network namespaces and the underlay
//! bridge come from the `netns` crate, which the demo lab and the fib tests share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use netns::{ip, route_line_prefix, unique, Lan, Netns};

/// Polls `f` every 50 ms until it returns Some, or fails after `limit` naming `what`.
pub fn wait_until<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> Result<T> {
    Ok(netns::wait_until(limit, what, f)?)
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
    netns::path(name).display().to_string()
}

/// A thread that runs until told to stop: `work` gets the stop flag and checks it
/// between bounded steps; [`Worker::finish`] raises it and returns what `work` did.
pub struct Worker<T> {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Result<T>>,
}

impl<T: Send + 'static> Worker<T> {
    pub fn spawn(
        work: impl FnOnce(&std::sync::atomic::AtomicBool) -> Result<T> + Send + 'static,
    ) -> Worker<T> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || work(&flag));
        Worker { stop, thread }
    }

    /// Whether `work` ended by itself (it failed, or found nothing more to do).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    pub fn finish(self) -> Result<T> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("worker thread panicked"))?
    }
}

/// One route as `ip -j route show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct KernelRoute {
    /// The destination as iproute2 writes it: a host route has no `/32`.
    pub dst: String,
    /// `blackhole`, `unreachable`, ...; absent for unicast routes.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dev: Option<String>,
}

impl KernelRoute {
    pub fn is_blackhole(&self) -> bool {
        self.kind.as_deref() == Some("blackhole")
    }
}

/// `ip -j route show proto bgp` in `ns`: every route ipipd owns there.
pub fn bgp_routes_json(ns: &Netns) -> Result<Vec<KernelRoute>> {
    let text = ns.ip(&["-j", "route", "show", "proto", "bgp"])?;
    serde_json::from_str(&text).with_context(|| format!("parsing `ip -j route`: {text}"))
}

/// The IPv4 addresses on `dev` in `ns` (`ip -j -4 addr show dev DEV`), without prefix lengths.
pub fn ipv4_addresses(ns: &Netns, dev: &str) -> Result<Vec<std::net::Ipv4Addr>> {
    #[derive(serde::Deserialize)]
    struct Link {
        #[serde(default)]
        addr_info: Vec<Addr>,
    }
    #[derive(serde::Deserialize)]
    struct Addr {
        local: std::net::Ipv4Addr,
    }
    let text = ns.ip(&["-j", "-4", "addr", "show", "dev", dev])?;
    let links: Vec<Link> =
        serde_json::from_str(&text).with_context(|| format!("parsing `ip -j addr`: {text}"))?;
    Ok(links
        .into_iter()
        .flat_map(|l| l.addr_info)
        .map(|a| a.local)
        .collect())
}

/// `text` without ANSI escape sequences (the colours of a log written to a file).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
