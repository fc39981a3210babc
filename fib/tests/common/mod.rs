//! Network namespaces for tests and the benchmark: created per test, removed on drop (also
//! when the test panics).
#![allow(dead_code)]

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A uniquely named network namespace with `lo` up.
pub struct Netns {
    pub name: String,
    /// Removed on drop (false for a second handle to the same namespace).
    owned: bool,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("fib-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name, owned: true };
        // Onlink routes are refused while lo is down.
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Another handle to the same namespace, one that does not remove it (for use inside
    /// [`Netns::run`]).
    pub fn handle(&self) -> Netns {
        Netns {
            name: self.name.clone(),
            owned: false,
        }
    }

    /// `ip -n NAME ARGS...`; panics with stderr when it fails; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip -n NAME ARGS...`, whether it fails or not: (success, stdout + stderr).
    pub fn try_ip(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A veth pair, both ends up; `name` is the end the routes use.
    pub fn veth(&self, name: &str, peer: &str) {
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", peer]);
        self.ip(&["link", "set", name, "up"]);
        self.ip(&["link", "set", peer, "up"]);
    }

    /// The kernel here has no ipip driver: one end of a veth pair named tunl0 stands in.
    pub fn stand_in_tunnel(&self) {
        self.veth("tunl0", "tunl0-peer");
    }

    /// `eth0` with 172.29.235.101/24 (and fd00::1/64), MTU `mtu`.
    pub fn underlay(&self, mtu: u32) {
        self.veth("eth0", "eth0-peer");
        self.ip(&["link", "set", "eth0", "mtu", &mtu.to_string()]);
        self.ip(&["addr", "add", "172.29.235.101/24", "dev", "eth0"]);
        self.ip(&["-6", "addr", "add", "fd00::1/64", "dev", "eth0", "nodad"]);
    }

    /// Run `body` on a thread inside this namespace, on a current-thread tokio runtime.
    pub fn run<F, Fut, T>(&self, body: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let name = self.name.clone();
        let thread = std::thread::spawn(move || {
            fib::netns::enter(&name).expect("enter the test namespace");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(body())
        });
        match thread.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A child process stopped (by pid) on drop.
pub struct Process(pub Child);

impl Process {
    pub fn spawn(cmd: &mut Command) -> Process {
        Process(cmd.stdin(Stdio::null()).spawn().expect("spawn"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
