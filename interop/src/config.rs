//! ipipd configuration files for tests, built from typed values and rendered by the
//! TOML serializer, so a test never writes key names or quoting by hand.
//!
//! Every key is optional and left out of the file when unset: a test that does not
//! set a key gets the daemon's default, as an operator who leaves it out would. The
//! sections mirror the file (see the README's configuration reference); the
//! `[control]` table is added by [`crate::ipipd::Ipipd::start`].

use std::path::{Path, PathBuf};

use serde::Serialize;

/// A whole configuration file (without `[control]`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeConfig {
    pub node: Node,
    pub cluster: Cluster,
    pub bgp: Bgp,
    #[serde(rename = "peer", skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
    /// `[[pool]]` tables (instead of `cluster.pools`).
    #[serde(rename = "pool", skip_serializing_if = "Vec::is_empty")]
    pub pool_tables: Vec<Pool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipip: Option<Ipip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Kernel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<Datastore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<Bfd>,
    /// Set only for daemons started without [`crate::ipipd::Ipipd::start`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
}

/// `[node]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Node {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_v6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// `[cluster]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cluster {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
}

/// `[bgp]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bgp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graceful_restart_time: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_retry_time: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_reflector_cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_paths: Option<usize>,
}

/// One `[[peer]]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Peer {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rr_client: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_reflector: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prefixes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<bool>,
}

impl Peer {
    /// A peer at `address` with nothing else set (AS defaults to the node's).
    pub fn new(address: impl ToString) -> Peer {
        Peer {
            address: address.to_string(),
            ..Peer::default()
        }
    }

    pub fn asn(mut self, asn: u32) -> Peer {
        self.asn = Some(asn);
        self
    }

    pub fn name(mut self, name: &str) -> Peer {
        self.name = Some(name.to_owned());
        self
    }

    pub fn passive(mut self, passive: bool) -> Peer {
        self.passive = Some(passive);
        self
    }

    pub fn password(mut self, password: &str) -> Peer {
        self.password = Some(password.to_owned());
        self
    }

    pub fn rr_client(mut self) -> Peer {
        self.rr_client = Some(true);
        self
    }

    pub fn route_reflector(mut self) -> Peer {
        self.route_reflector = Some(true);
        self
    }

    pub fn ttl_security(mut self) -> Peer {
        self.ttl_security = Some(true);
        self
    }

    pub fn max_prefixes(mut self, limit: u32) -> Peer {
        self.max_prefixes = Some(limit);
        self
    }

    pub fn shutdown(mut self) -> Peer {
        self.shutdown = Some(true);
        self
    }
}

/// One `[[pool]]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pool {
    pub cidr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_outgoing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
}

impl Pool {
    /// A pool at `cidr` with every option at its default.
    pub fn new(cidr: &str) -> Pool {
        Pool {
            cidr: cidr.to_owned(),
            ..Pool::default()
        }
    }

    pub fn block_size(mut self, size: u8) -> Pool {
        self.block_size = Some(size);
        self
    }

    pub fn nat_outgoing(mut self) -> Pool {
        self.nat_outgoing = Some(true);
        self
    }

    pub fn disabled(mut self, disabled: bool) -> Pool {
        self.disabled = Some(disabled);
        self
    }

    pub fn node_selector(mut self, selector: &str) -> Pool {
        self.node_selector = Some(selector.to_owned());
        self
    }
}

/// `[ipip]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ipip {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// `[kernel]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kernel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_on_stop: Option<bool>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// `[datastore]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Datastore {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_release_grace: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resync: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// `[bfd]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bfd {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<u8>,
    /// `"spawn"` or `"external"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keeper: Option<String>,
}

/// `[control]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Control {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl NodeConfig {
    /// A node at `address` named `node-A-B-C-D`, announcing `block` (none when empty)
    /// in pool 101.64.0.0/10, in a mesh of no other node yet, with small timers: hold
    /// time 9 s, graceful restart time 30 s and a 1 s connect retry.
    pub fn new(address: &str, block: &str) -> NodeConfig {
        NodeConfig::bare(address, &[block][..usize::from(!block.is_empty())])
            .name(&format!("node-{}", address.replace('.', "-")))
            .pools(&["101.64.0.0/10"])
            .mesh(&[])
            .timers(9, 30, Some(1))
    }

    /// Only `node.address` and `node.blocks`: everything else is the daemon's default.
    pub fn bare(address: &str, blocks: &[&str]) -> NodeConfig {
        NodeConfig {
            node: Node {
                address: Some(address.to_owned()),
                blocks: Some(owned(blocks)),
                ..Node::default()
            },
            ..NodeConfig::default()
        }
    }

    pub fn name(mut self, name: &str) -> NodeConfig {
        self.node.name = Some(name.to_owned());
        self
    }

    pub fn asn(mut self, asn: u32) -> NodeConfig {
        self.node.asn = Some(asn);
        self
    }

    /// Another block (IPv4 or IPv6) announced by the node.
    pub fn block(mut self, block: &str) -> NodeConfig {
        self.node
            .blocks
            .get_or_insert_with(Vec::new)
            .push(block.to_owned());
        self
    }

    /// Replaces the node's blocks.
    pub fn blocks(mut self, blocks: &[&str]) -> NodeConfig {
        self.node.blocks = Some(owned(blocks));
        self
    }

    /// Another pool.
    pub fn pool(mut self, pool: &str) -> NodeConfig {
        self.cluster
            .pools
            .get_or_insert_with(Vec::new)
            .push(pool.to_owned());
        self
    }

    /// Replaces the pools.
    pub fn pools(mut self, pools: &[&str]) -> NodeConfig {
        self.cluster.pools = Some(owned(pools));
        self
    }

    /// Replaces the pools by `[[pool]]` tables.
    pub fn pool_tables(mut self, pools: Vec<Pool>) -> NodeConfig {
        self.cluster.pools = None;
        self.pool_tables = pools;
        self
    }

    /// `node.labels`, which the pools' `node_selector`s read.
    pub fn labels(mut self, labels: &[(&str, &str)]) -> NodeConfig {
        self.node.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self
    }

    pub fn address_v6(mut self, address: &str) -> NodeConfig {
        self.node.address_v6 = Some(address.to_owned());
        self
    }

    pub fn metrics(mut self, listen: &str) -> NodeConfig {
        self.metrics = Some(Metrics {
            listen: Some(listen.to_owned()),
        });
        self
    }

    /// Full mesh with these node addresses (its own may be among them).
    pub fn mesh(mut self, nodes: &[&str]) -> NodeConfig {
        self.cluster.mesh = Some(true);
        self.cluster.nodes = Some(owned(nodes));
        self
    }

    /// No mesh: sessions only with the `[[peer]]`s.
    pub fn no_mesh(mut self) -> NodeConfig {
        self.cluster.mesh = Some(false);
        self.cluster.nodes = None;
        self
    }

    /// Hold time, graceful restart time and connect retry time (None: the default).
    pub fn timers(mut self, hold: u16, graceful_restart: u16, retry: Option<u16>) -> NodeConfig {
        self.bgp.hold_time = Some(hold);
        self.bgp.graceful_restart_time = Some(graceful_restart);
        self.bgp.connect_retry_time = retry;
        self
    }

    /// An explicit `[[peer]]` at `address` in AS 64512, adjusted by `f`.
    pub fn peer(mut self, address: &str, f: impl FnOnce(Peer) -> Peer) -> NodeConfig {
        self.peers.push(f(Peer::new(address).asn(64512)));
        self
    }

    /// `[bfd]` on every mesh session (and every peer without its own `bfd`).
    pub fn bfd(mut self, interval_ms: u32, multiplier: u8) -> NodeConfig {
        self.bfd = Some(Bfd {
            enabled: Some(true),
            interval_ms: Some(interval_ms),
            multiplier: Some(multiplier),
            keeper: None,
        });
        self
    }

    /// `[bfd] keeper = "external"`: the keeper runs apart (a container of its own).
    pub fn external_bfd_keeper(mut self) -> NodeConfig {
        self.bfd.get_or_insert_with(Bfd::default).keeper = Some("external".into());
        self
    }

    /// `[control]`: the socket and state directory of a daemon started by hand.
    pub fn control(mut self, socket: &Path, state_dir: &Path) -> NodeConfig {
        self.control = Some(Control {
            socket: Some(socket.to_owned()),
            state_dir: Some(state_dir.to_owned()),
        });
        self
    }

    /// The file's text.
    pub fn toml(&self) -> String {
        // Only strings, integers, booleans and tables: nothing toml cannot represent.
        toml::to_string(self).unwrap_or_else(|e| panic!("rendering {self:?}: {e}"))
    }
}

/// The `ipipd.toml: |` block of a ConfigMap manifest, de-indented.
pub fn configmap_toml(yaml: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in yaml.lines() {
        if line.trim_start().starts_with("ipipd.toml: |") {
            inside = true;
            continue;
        }
        if inside {
            if line.starts_with("---") || (!line.is_empty() && !line.starts_with("    ")) {
                break;
            }
            out.push_str(line.strip_prefix("    ").unwrap_or(line));
            out.push('\n');
        }
    }
    out
}

/// The configuration file the DaemonSet ships (`deploy/kubernetes/ipipd.yaml`'s
/// ConfigMap), so that tests run exactly what users deploy.
pub fn shipped_configmap_toml() -> anyhow::Result<String> {
    use anyhow::Context;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/ipipd.yaml");
    let yaml =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let text = configmap_toml(&yaml);
    anyhow::ensure!(
        !text.trim().is_empty(),
        "no `ipipd.toml: |` in {}",
        path.display()
    );
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_the_daemon_reads() {
        let c = NodeConfig::new("172.29.235.101", "101.76.9.128/26")
            .mesh(&["172.29.235.101", "172.29.235.130"])
            .peer("172.29.235.200", |p| p.password("x").ttl_security())
            .bfd(300, 3);
        let t = c.toml();
        let v: toml::Value = toml::from_str(&t).unwrap_or_else(|e| panic!("{e}\n{t}"));
        assert_eq!(
            v["node"]["name"].as_str(),
            Some("node-172-29-235-101"),
            "{t}"
        );
        assert_eq!(v["bgp"]["hold_time"].as_integer(), Some(9), "{t}");
        assert_eq!(v["peer"][0]["password"].as_str(), Some("x"), "{t}");
        assert_eq!(v["peer"][0]["asn"].as_integer(), Some(64512), "{t}");
        assert_eq!(v["bfd"]["multiplier"].as_integer(), Some(3), "{t}");
        assert!(v.get("kernel").is_none(), "unset sections stay out: {t}");
        let empty = NodeConfig::new("172.29.235.101", "").toml();
        assert!(empty.contains("blocks = []"), "{empty}");
    }
}
