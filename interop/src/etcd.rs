//! A real etcd v3 cluster (Debian's `etcd-server`), one member per network namespace,
//! and ipipd nodes that all run from one datastore configuration file.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{Datastore, NodeConfig, Pool};
use crate::harness::{have, wait_until, Lan, Netns, Proc, TempDir};
use crate::ipipd::{BfdJson, BlockJson, NodeJson, PeerJson, RouteJson, WorkloadJson};

/// Fails (never skips) when etcd is not installed.
pub fn require_etcd() {
    assert!(
        have("etcd") && have("etcdctl"),
        "etcd and etcdctl are needed: apt-get install -y etcd-server etcd-client"
    );
}

pub struct Member {
    pub ns: Netns,
    pub address: String,
    pub name: String,
    dir: TempDir,
    proc: Option<Proc>,
    tls: Option<Arc<Tls>>,
}

/// A CA made for one test, a server certificate for every member's address and a
/// client certificate, all written by `openssl` into a temporary directory.
pub struct Tls {
    _dir: TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Tls {
    /// Certificates for servers at `addresses` (as IP subject alternative names).
    pub fn generate(addresses: &[&str]) -> Result<Tls> {
        let dir = TempDir::new("etcd-tls")?;
        let p = |n: &str| dir.join(n);
        let openssl = |args: &[&str]| -> Result<()> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir.path)
                .output()
                .context("running openssl")?;
            if !out.status.success() {
                bail!(
                    "openssl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(())
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=ipipd test CA",
        ])?;
        let sans: Vec<String> = addresses.iter().map(|a| format!("IP:{a}")).collect();
        for (name, cn, usage, san) in [
            ("server", "etcd", "serverAuth,clientAuth", sans.join(",")),
            ("client", "ipipd", "clientAuth", String::new()),
        ] {
            let mut ext = format!("basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n");
            if !san.is_empty() {
                ext.push_str(&format!("subjectAltName={san}\n"));
            }
            std::fs::write(p(&format!("{name}.ext")), ext)?;
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ])?;
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ])?;
        }
        Ok(Tls {
            ca: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_cert: p("client.crt"),
            client_key: p("client.key"),
            _dir: dir,
        })
    }
}

/// Three (or more) members on the LAN, started together.
pub struct EtcdCluster {
    pub members: Vec<Member>,
    initial: String,
    token: String,
    /// Clients must speak TLS with a certificate of this CA.
    pub tls: Option<Arc<Tls>>,
}

impl Member {
    /// The member's process id (`ip netns exec` execs etcd: the same process).
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    fn spawn(&mut self, initial: &str, token: &str, state: &str) -> Result<()> {
        let a = &self.address;
        let mut cmd = self.ns.command("etcd");
        cmd.args(["--name", &self.name])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &format!("http://{a}:2380")])
            .args(["--initial-advertise-peer-urls", &format!("http://{a}:2380")])
            .args(["--initial-cluster", initial])
            .args(["--initial-cluster-token", token])
            .args(["--initial-cluster-state", state])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        self.proc = Some(Proc::spawn(
            cmd,
            &format!("etcd-{}", self.name),
            &self.dir.join("etcd.log"),
        )?);
        Ok(())
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:2379", self.address)
    }
}

impl EtcdCluster {
    /// Members at `addresses` (each a /24 host address on the LAN).
    pub fn start(lan: &mut Lan, addresses: &[&str]) -> Result<EtcdCluster> {
        EtcdCluster::start_with(lan, addresses, None)
    }

    /// As [`EtcdCluster::start`], clients over TLS with client certificates.
    pub fn start_tls(lan: &mut Lan, addresses: &[&str]) -> Result<EtcdCluster> {
        let tls = Arc::new(Tls::generate(addresses)?);
        EtcdCluster::start_with(lan, addresses, Some(tls))
    }

    fn start_with(lan: &mut Lan, addresses: &[&str], tls: Option<Arc<Tls>>) -> Result<EtcdCluster> {
        require_etcd();
        let token = crate::harness::unique("ipipd-etcd");
        let initial: Vec<String> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| format!("m{i}=http://{a}:2380"))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (i, a) in addresses.iter().enumerate() {
            let ns = lan.host(&format!("{a}/24"))?;
            ns.ip(&["link", "set", "lo", "up"])?;
            let mut m = Member {
                ns,
                address: (*a).to_owned(),
                name: format!("m{i}"),
                dir: TempDir::new("etcd")?,
                proc: None,
                tls: tls.clone(),
            };
            m.spawn(&initial, &token, "new")?;
            members.push(m);
        }
        let c = EtcdCluster {
            members,
            initial,
            token,
            tls,
        };
        // A write needs a leader and a quorum.
        wait_until(
            Duration::from_secs(30),
            "etcd cluster accepting writes",
            || c.etcdctl(&["put", "/ipipd-test-health", "ok"]).ok(),
        )?;
        Ok(c)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        let m = self.members.get_mut(i).context("no such member")?;
        crate::harness::stop_slot(&mut m.proc, "KILL")
    }

    pub fn restart(&mut self, i: usize) -> Result<()> {
        let (initial, token) = (self.initial.clone(), self.token.clone());
        let m = self.members.get_mut(i).context("no such member")?;
        m.spawn(&initial, &token, "existing")
    }

    /// `etcdctl` against every live member, from the first member's namespace.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String> {
        let eps = self.endpoints().join(",");
        let ns = &self.members.first().context("no members")?.ns;
        let mut cmd = ns.command("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &eps, "--command-timeout=5s"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.client_cert)
                .arg("--key")
                .arg(&t.client_key);
        }
        let out = cmd.args(args).output().context("running etcdctl")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "etcdctl {}: {}{}",
                args.join(" "),
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }

    /// Every key under `prefix` with its value, as etcd holds them.
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let text = self.etcdctl(&["get", "--prefix", prefix])?;
        let lines: Vec<&str> = text.lines().collect();
        Ok(lines
            .chunks(2)
            .filter_map(|c| Some((c.first()?.to_string(), c.get(1)?.to_string())))
            .collect())
    }

    /// Puts `key` = `value` `times` times (each put a revision of its own, an event for
    /// every watch on the key) through member `i`'s JSON gateway, from its namespace:
    /// one process for all of them, where `etcdctl` would be one per put.
    pub fn put_repeatedly(&self, i: usize, key: &str, value: &str, times: usize) -> Result<()> {
        let m = self.members.get(i).context("no such member")?;
        let addr = format!("{}:2379", m.address);
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            B64.encode(key),
            B64.encode(value)
        );
        m.ns.in_netns(|| -> Result<()> {
            for n in 0..times {
                let mut s = std::net::TcpStream::connect(&addr)
                    .with_context(|| format!("connecting to {addr}"))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                write!(
                    s,
                    "POST /v3/kv/put HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                let mut answer = String::new();
                s.read_to_string(&mut answer)?;
                if !answer.starts_with("HTTP/1.0 200") && !answer.starts_with("HTTP/1.1 200") {
                    bail!("put {n} of {times}: {answer}");
                }
            }
            Ok(())
        })?
    }

    /// Compacts the history up to the current revision.
    pub fn compact(&self) -> Result<()> {
        let status = self.etcdctl(&["endpoint", "status", "-w", "json"])?;
        let v: Value = serde_json::from_str(&status)?;
        let rev = v[0]["Status"]["header"]["revision"]
            .as_i64()
            .context("no revision in endpoint status")?;
        self.etcdctl(&["compact", &rev.to_string(), "--physical"])?;
        Ok(())
    }
}

/// The one configuration file every node of a test cluster runs from: no node name,
/// address or blocks (they come from the environment and the datastore).
pub fn cluster_config(endpoints: &[String], pool: &str, tls: Option<&Tls>) -> String {
    cluster_config_sized(endpoints, pool, 26, tls)
}

/// [`cluster_config`] with blocks of `block_size`.
pub fn cluster_config_sized(
    endpoints: &[String],
    pool: &str,
    block_size: u8,
    tls: Option<&Tls>,
) -> String {
    let mut c = cluster_node_config(endpoints, tls).pools(&[pool]);
    c.cluster.block_size = Some(block_size);
    c.toml()
}

/// [`cluster_config`] as a [`NodeConfig`], for a test to change more of it.
pub fn cluster_node(endpoints: &[String], pool: &str) -> NodeConfig {
    cluster_node_config(endpoints, None).pools(&[pool])
}

/// [`cluster_config`] with `[[pool]]` tables.
pub fn cluster_config_pools(endpoints: &[String], pools: Vec<Pool>) -> String {
    cluster_node_config(endpoints, None)
        .pool_tables(pools)
        .toml()
}

/// What every node of a test cluster shares, but the pools.
fn cluster_node_config(endpoints: &[String], tls: Option<&Tls>) -> NodeConfig {
    let mut c = NodeConfig::default().asn(64512);
    c.bgp.connect_retry_time = Some(1);
    c.datastore = Some(Datastore {
        kind: Some("etcd".to_owned()),
        endpoints: Some(endpoints.to_vec()),
        prefix: Some("/ipipd".to_owned()),
        request_timeout_ms: Some(2000),
        dial_timeout_ms: Some(1000),
        ..Datastore::default()
    });
    if let (Some(d), Some(tls)) = (c.datastore.as_mut(), tls) {
        d.ca_file = Some(tls.ca.display().to_string());
        d.cert_file = Some(tls.client_cert.display().to_string());
        d.key_file = Some(tls.client_key.display().to_string());
    }
    c
}

/// What reaches a node from outside its processes: its namespace, identity and control
/// socket. [`NodeCtl::handle`] copies it for threads that watch or load a node while the
/// test thread restarts it.
pub struct NodeCtl {
    pub ns: Netns,
    pub name: String,
    pub address: String,
    pub socket: PathBuf,
    /// The daemon's and the keeper's logs.
    pub log: PathBuf,
    pub keeper_log: PathBuf,
}

impl NodeCtl {
    /// Another handle on the same node; it does not delete the namespace on drop.
    pub fn handle(&self) -> NodeCtl {
        NodeCtl {
            ns: self.ns.handle(),
            name: self.name.clone(),
            address: self.address.clone(),
            socket: self.socket.clone(),
            log: self.log.clone(),
            keeper_log: self.keeper_log.clone(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the daemon's log, for failure messages (colours removed).
    pub fn log_tail(&self, n: usize) -> String {
        let text = crate::harness::strip_ansi(&self.log());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn cli(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new(crate::ipipd::binary())
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .context("running ipipd CLI")
    }

    /// `ipipd ARGS` (a `--json` command) parsed into the control API's types.
    pub fn typed<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "{}: ipipd {}: {}",
                self.name,
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "{}: parsing `ipipd {}`: {}",
                self.name,
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `show peers --json`.
    pub fn peers(&self) -> Result<Vec<PeerJson>> {
        self.typed(&["show", "peers", "--json"])
    }

    /// `show routes --json`.
    pub fn routes(&self) -> Result<Vec<RouteJson>> {
        self.typed(&["show", "routes", "--json"])
    }

    /// `show blocks --json`.
    pub fn blocks(&self) -> Result<Vec<BlockJson>> {
        self.typed(&["show", "blocks", "--json"])
    }

    /// `show nodes --json`.
    pub fn nodes(&self) -> Result<Vec<NodeJson>> {
        self.typed(&["show", "nodes", "--json"])
    }

    /// `show bfd --json`.
    pub fn bfd(&self) -> Result<Vec<BfdJson>> {
        self.typed(&["show", "bfd", "--json"])
    }

    /// `workload list --json`: the pod allocations the daemon holds.
    pub fn workloads(&self) -> Result<Vec<WorkloadJson>> {
        self.typed(&["workload", "list", "--json"])
    }

    /// `show nodes --json`: name → state.
    pub fn node_states(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .nodes()?
            .into_iter()
            .map(|n| (n.name, n.state))
            .collect())
    }

    /// The CNI configuration for pods of this node.
    pub fn cni_conf(&self) -> String {
        crate::cni::conf(&self.socket, "1.0.0")
    }
}

/// One ipipd started from the shared file, identity from the environment; with
/// `[bfd] keeper = "external"`, its `ipipd bfd-keeper` beside it, as the DaemonSet's
/// two containers.
pub struct Node {
    ctl: NodeCtl,
    pub dir: TempDir,
    config: PathBuf,
    /// More of the node's environment (`IPIPD_NODE_LABELS`), for its next start.
    env: Vec<(String, String)>,
    proc: Option<Proc>,
    keeper: Option<Proc>,
}

impl std::ops::Deref for Node {
    type Target = NodeCtl;
    fn deref(&self) -> &NodeCtl {
        &self.ctl
    }
}

impl Node {
    /// A node on the LAN running ipipd.
    pub fn start(
        lan: &mut Lan,
        config: &std::path::Path,
        name: &str,
        address: &str,
    ) -> Result<Node> {
        let mut n = Node::new(lan, config, name, address)?;
        n.restart()?;
        Ok(n)
    }

    /// A node on the LAN with its stand-in tunl0, nothing running yet.
    pub fn new(lan: &mut Lan, config: &std::path::Path, name: &str, address: &str) -> Result<Node> {
        let ns = lan.host(&format!("{address}/24"))?;
        ns.add_standin_tunl0()?;
        let dir = TempDir::new("dsnode")?;
        Ok(Node {
            ctl: NodeCtl {
                ns,
                name: name.to_owned(),
                address: address.to_owned(),
                socket: dir.join("ipipd.sock"),
                log: dir.join("ipipd.log"),
                keeper_log: dir.join("keeper.log"),
            },
            dir,
            config: config.to_owned(),
            env: Vec::new(),
            proc: None,
            keeper: None,
        })
    }

    /// `ipipd ARGS --config FILE` in the node's namespace, with the node's identity,
    /// socket and state directory from the environment, as the DaemonSet passes them.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.ns.command(crate::ipipd::binary());
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .env("IPIPD_NODE_NAME", &self.name)
            .env("IPIPD_NODE_ADDRESS", &self.address)
            .env("IPIPD_SOCKET", &self.socket)
            .env("IPIPD_STATE_DIR", self.dir.join("state"))
            .env(
                "RUST_LOG",
                std::env::var("IPIPD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Sets `key` in the node's environment from its next start on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    pub fn restart(&mut self) -> Result<()> {
        let cmd = self.command(&["run"]);
        self.proc = Some(Proc::spawn(cmd, &self.ctl.name, &self.ctl.log)?);
        let r = wait_until(Duration::from_secs(20), "the control socket", || {
            self.cli(&["show", "nodes", "--json"])
                .ok()
                .filter(|o| o.status.success())
        });
        if let Err(e) = r {
            bail!("{}: {e}; log:\n{}", self.name, self.log());
        }
        Ok(())
    }

    /// Starts `ipipd bfd-keeper --config FILE` (for `[bfd] keeper = "external"`): before
    /// the daemon, as the DaemonSet's native sidecar.
    pub fn start_keeper(&mut self) -> Result<()> {
        // Its socket goes into the state directory, which the DaemonSet's hostPath
        // volume provides before either container starts.
        std::fs::create_dir_all(self.dir.join("state"))?;
        let cmd = self.command(&["bfd-keeper"]);
        let name = format!("{} bfd-keeper", self.ctl.name);
        self.keeper = Some(Proc::spawn(cmd, &name, &self.ctl.keeper_log)?);
        Ok(())
    }

    pub fn stop(&mut self, sig: &str) -> Result<()> {
        crate::harness::stop_slot(&mut self.proc, sig)
    }

    pub fn stop_keeper(&mut self, sig: &str) -> Result<()> {
        crate::harness::stop_slot(&mut self.keeper, sig)
    }

    /// Sends a signal without waiting for an exit (SIGSTOP, SIGCONT).
    pub fn signal(&self, sig: &str) -> Result<()> {
        self.proc.as_ref().context("not running")?.signal(sig)
    }

    pub fn signal_keeper(&self, sig: &str) -> Result<()> {
        self.keeper.as_ref().context("no keeper")?.signal(sig)
    }

    /// Whether the daemon is still running (false when it exited without being told to).
    pub fn daemon_alive(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::alive)
    }

    /// Whether the keeper is still running.
    pub fn keeper_alive(&mut self) -> bool {
        self.keeper.as_mut().is_some_and(Proc::alive)
    }

    /// A handle on the node for other threads.
    pub fn handle(&self) -> NodeCtl {
        self.ctl.handle()
    }
}
