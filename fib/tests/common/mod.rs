//! The shared `netns` crate with the conveniences the fib tests and the install benchmark
//! want: calls that panic with the command's error (a test fails there), the stand-in
//! devices, and an async body run inside the namespace.
#![allow(dead_code)]

use std::future::Future;
use std::process::{Child, Command, Stdio};

/// A uniquely named network namespace with `lo` up, deleted on drop.
pub struct Netns(pub netns::Netns);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        Netns(netns::Netns::new(&format!("fib-{tag}-")).expect("create a test namespace"))
    }

    /// Another handle to the same namespace, one that does not remove it (for use inside
    /// [`Netns::run`]).
    pub fn handle(&self) -> Netns {
        Netns(self.0.handle())
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// `ip -n NAME ARGS...`; panics with stderr when it fails; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        self.0.ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n NAME ARGS...`, whether it fails or not: (success, stdout or the error).
    pub fn try_ip(&self, args: &[&str]) -> (bool, String) {
        match self.0.ip(args) {
            Ok(out) => (true, out),
            Err(e) => (false, e.to_string()),
        }
    }

    /// A veth pair, both ends up; `name` is the end the routes use.
    pub fn veth(&self, name: &str, peer: &str) {
        self.0.veth(name, peer).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The kernel here has no ipip driver: one end of a veth pair named tunl0 stands in.
    pub fn stand_in_tunnel(&self) {
        self.0.add_standin_tunl0().unwrap_or_else(|e| panic!("{e}"));
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
        self.0
            .in_netns(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(body())
            })
            .unwrap_or_else(|e| panic!("{e}"))
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
