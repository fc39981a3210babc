//! Every key of the configuration file, described once: its default, what it means and
//! what a reload does with it. `ipipd example-config`, the README's table and the
//! `ipipd.toml(5)` man page are all made from [`TABLES`]; tests hold it to the parser
//! (the same keys), to validation (the same defaults) and to the daemon's reload (the
//! same restart keys).

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDefault {
    /// This TOML value; a test checks that validation fills in exactly it.
    Value(&'static str),
    /// Unset unless given; the text says what that means. A test checks it stays unset.
    Unset(&'static str),
    /// Worked out from something else (the host name, another key).
    Derived(&'static str),
}

/// What a configuration reload (SIGHUP, `ipipd reload`, a changed file) does with a
/// changed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Takes effect at once.
    Applied,
    /// The reload is refused, naming the key; the running configuration stays until
    /// ipipd restarts with the new file.
    Restart,
}

impl Reload {
    pub fn name(self) -> &'static str {
        match self {
            Reload::Applied => "applied",
            Reload::Restart => "restart",
        }
    }
}

/// One key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub default: KeyDefault,
    /// The value `example-config` writes.
    pub example: &'static str,
    /// `example-config` writes the key commented out (`# key = value`).
    pub commented: bool,
    pub reload: Reload,
    pub meaning: &'static str,
}

/// One table (`[bgp]`) or array of tables (`[[peer]]`).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub array: bool,
    /// `example-config` writes the whole table commented out (it is one way of two to
    /// say something, as `[[pool]]` beside `cluster.pools`).
    pub commented: bool,
    /// One line above the table in `example-config`.
    pub about: &'static str,
    pub keys: &'static [Key],
}

impl Table {
    /// `[bgp]`, `[[peer]]`.
    pub fn header(&self) -> String {
        if self.array {
            format!("[[{}]]", self.name)
        } else {
            format!("[{}]", self.name)
        }
    }

    /// How the README and the man page name a key: `bgp.port`, `[[peer]] port`.
    pub fn full_name(&self, key: &Key) -> String {
        if self.array {
            format!("[[{}]] {}", self.name, key.name)
        } else {
            format!("{}.{}", self.name, key.name)
        }
    }
}

use KeyDefault::{Derived, Unset, Value};
use Reload::{Applied, Restart};

const fn set(
    name: &'static str,
    default: KeyDefault,
    example: &'static str,
    reload: Reload,
    meaning: &'static str,
) -> Key {
    Key {
        name,
        default,
        example,
        commented: false,
        reload,
        meaning,
    }
}

const fn opt(
    name: &'static str,
    default: KeyDefault,
    example: &'static str,
    reload: Reload,
    meaning: &'static str,
) -> Key {
    Key {
        commented: true,
        ..set(name, default, example, reload, meaning)
    }
}

/// Every table and key, in the order `example-config` prints them.
pub const TABLES: &[Table] = &[
    Table {
        name: "node",
        array: false,
        commented: false,
        about: "This node.",
        keys: &[
            set("name", Derived("the host name"), "\"node-172-29-235-101\"", Restart,
                "Shown to peers (FQDN capability), in logs and as the datastore key. IPIPD_NODE_NAME or --node-name overrides it."),
            set("address", Derived("required, unless IPIPD_NODE_ADDRESS or --node-address gives it"), "\"172.29.235.101\"", Restart,
                "IPv4 node address: router id, BGP source address, the next hop other nodes tunnel to."),
            opt("address_v6", Unset("none"), "\"fd00::101\"", Restart,
                "IPv6 next hop for IPv6 blocks; IPv6 BFD sessions start from it."),
            set("asn", Value("64512"), "64512", Restart,
                "AS number (4-octet supported)."),
            opt("labels", Value("{}"), "{ rack = \"r1\" }", Applied,
                "Labels that pools' `node_selector` matches. IPIPD_NODE_LABELS=\"rack=r1,zone=a\" or --node-labels replaces them."),
            set("blocks", Value("[]"), "[\"101.76.9.128/26\"]", Applied,
                "This node's pod blocks (IPv4 /26s, IPv6 /122s), inside `cluster.pools` and aligned. Leave out with `datastore.kind = \"etcd\"`: blocks are claimed."),
        ],
    },
    Table {
        name: "cluster",
        array: false,
        commented: false,
        about: "The cluster this node belongs to.",
        keys: &[
            set("pools", Derived("none; with `[[pool]]` tables, their CIDRs"), "[\"101.64.0.0/10\"]", Restart,
                "Pod address pools: nothing outside them is announced, accepted or installed. The same as `[[pool]]` tables with their defaults; one or the other."),
            set("mesh", Value("true"), "true", Applied,
                "Full-mesh iBGP with every address in `cluster.nodes` (with etcd: every registered node)."),
            set("nodes", Value("[]"), "[\"172.29.235.101\", \"172.29.235.130\"]", Applied,
                "The mesh; the node's own address may be listed (it is skipped). Leave out with `datastore.kind = \"etcd\"`: nodes register themselves."),
            opt("mesh_password", Unset("none"), "\"secret\"", Applied,
                "TCP-MD5 on mesh sessions (at most 80 bytes)."),
            opt("block_size", Value("26"), "26", Restart,
                "Length of the IPv4 blocks a node claims from the pools (`datastore.kind = \"etcd\"`)."),
            opt("block_size_v6", Value("122"), "122", Restart,
                "Length of the IPv6 blocks a node claims from the pools."),
        ],
    },
    Table {
        name: "pool",
        array: true,
        commented: true,
        about: "Pools as tables, instead of `cluster.pools`: one table per pool, with its options.",
        keys: &[
            set("cidr", Derived("required"), "\"10.244.0.0/16\"", Restart,
                "The pool."),
            opt("block_size", Derived("`cluster.block_size` (IPv6: `block_size_v6`)"), "26", Restart,
                "Length of the blocks a node claims from this pool."),
            opt("nat_outgoing", Value("false"), "true", Applied,
                "Masquerade pod traffic from this pool to destinations outside every pool, in an nftables table `ipipd` of its own (see Outbound NAT)."),
            opt("disabled", Value("false"), "false", Applied,
                "No new blocks or addresses from this pool; the ones in use stay."),
            opt("node_selector", Value("\"all()\""), "\"all()\"", Applied,
                "Which nodes may take blocks from this pool, by their labels: `all()`, `k == \"v\"`, `k != \"v\"`, `has(k)`, `!has(k)`, `&&`, `||`, parentheses."),
        ],
    },
    Table {
        name: "bgp",
        array: false,
        commented: false,
        about: "BGP sessions.",
        keys: &[
            set("port", Value("179"), "179", Restart,
                "Port to listen on and to connect to."),
            set("hold_time", Value("90"), "90", Restart,
                "Seconds, 0 or at least 3; keepalives go at a third of it unless `keepalive_time` is set."),
            opt("keepalive_time", Unset("a third of the negotiated hold time"), "30", Restart,
                "Seconds; less than `hold_time`."),
            set("graceful_restart_time", Value("120"), "120", Restart,
                "Seconds peers keep this node's routes over a restart (RFC 4724); 0 turns graceful restart off; at most 4095."),
            opt("route_reflector_cluster_id", Unset("none"), "\"1.1.1.1\"", Restart,
                "Set: this node reflects routes for its `rr_client` peers."),
            set("max_paths", Value("4"), "4", Restart,
                "ECMP next hops installed per prefix; 1 turns ECMP off."),
            set("connect_retry_time", Value("5"), "5", Restart,
                "Seconds before the first retry of a connection; doubles up to 30 s. A refused connect (the peer's host answers, its daemon is not listening yet) and a connection lost to collision resolution retry after about 1 s instead; every retry is jittered (RFC 4271 §10). `ipipd status` gives a new peer twice this (at least 10 s) to come up."),
            set("listen", Value("true"), "true", Restart,
                "false: accept no incoming session (only connect out)."),
        ],
    },
    Table {
        name: "peer",
        array: true,
        commented: false,
        about: "Explicit peers: route reflectors, switches, tests. One table per peer.",
        keys: &[
            set("address", Derived("required"), "\"172.29.235.200\"", Applied,
                "The peer's address."),
            set("asn", Derived("`node.asn`"), "64512", Applied,
                "The peer's AS number."),
            opt("name", Unset("none"), "\"tor-1\"", Applied,
                "A label shown by `show peers` (`name` in `--json`) and `status`."),
            opt("port", Derived("`bgp.port`"), "179", Applied,
                "Port to connect to."),
            opt("passive", Value("false"), "false", Applied,
                "Wait for the peer to connect."),
            opt("password", Unset("none"), "\"secret\"", Applied,
                "TCP-MD5 (RFC 2385)."),
            opt("rr_client", Value("false"), "false", Applied,
                "This node is the reflector, that peer its client."),
            opt("route_reflector", Value("false"), "false", Applied,
                "That peer is the reflector, this node its client."),
            opt("ttl_security", Value("false"), "false", Applied,
                "GTSM (RFC 5082)."),
            opt("max_prefixes", Unset("no limit"), "100000", Applied,
                "Prefixes held from the peer, refused ones included; above it: Cease 6/1 and a 30 s hold-down."),
            opt("shutdown", Value("false"), "false", Applied,
                "Configured but administratively down."),
            opt("bfd", Derived("`bfd.enabled`"), "true", Applied,
                "BFD on this session (overrides `bfd.enabled`)."),
        ],
    },
    Table {
        name: "ipip",
        array: false,
        commented: false,
        about: "The tunnel.",
        keys: &[
            set("mode", Derived("`always`; `never` when `vxlan.mode` is not `never`"), "\"always\"", Restart,
                "`always`, `cross-subnet` (tunnel only to other subnets, plain routes inside this one) or `never`. At most one of `ipip.mode` and `vxlan.mode` is not `never`."),
            set("device", Value("\"tunl0\""), "\"tunl0\"", Restart,
                "The tunnel device."),
            opt("mtu", Derived("the MTU of the interface holding `node.address`, minus 20"), "1480", Restart,
                "Tunnel MTU; pods get it too."),
        ],
    },
    Table {
        name: "vxlan",
        array: false,
        commented: false,
        about: "VXLAN encapsulation instead of IPIP (for networks that drop IP protocol 4).",
        keys: &[
            set("mode", Value("\"never\""), "\"never\"", Restart,
                "`always`, `cross-subnet` (VXLAN only to other subnets, plain routes inside this one) or `never`. With the file datastore each node's VTEP MAC is derived from its address (`66:78:` and its four octets), so nodes need nothing more to find each other; with etcd each node chooses its MAC (kept over restarts) and writes it in its node record, where the others read it. A next hop that is no ipipd node (`cluster.nodes`, or registered, mesh or not) is routed without encapsulation and logged once."),
            set("device", Value("\"vxlan.calico\""), "\"vxlan.calico\"", Restart,
                "The VXLAN device."),
            set("vni", Value("4096"), "4096", Restart,
                "VXLAN network identifier; the same on every node."),
            set("port", Value("4789"), "4789", Restart,
                "UDP port of the encapsulated traffic; the same on every node."),
            opt("mtu", Derived("the MTU of the interface holding `node.address`, minus 50"), "1450", Restart,
                "VXLAN device MTU; pods get it too."),
        ],
    },
    Table {
        name: "kernel",
        array: false,
        commented: false,
        about: "The kernel's routing table.",
        keys: &[
            opt("protocol", Value("186"), "186", Restart,
                "rtm_protocol of every route ipipd owns (186 is `proto bgp` in `ip route`); ipipd touches no route of another protocol."),
            opt("table", Value("254"), "254", Restart,
                "Routing table (254 is `main`)."),
            opt("install", Value("true"), "true", Restart,
                "false: compute routes, never write the kernel."),
            opt("flush_on_stop", Value("false"), "false", Applied,
                "true: a stop removes every route ipipd owns and sends a Cease (leaving for good)."),
        ],
    },
    Table {
        name: "datastore",
        array: false,
        commented: false,
        about: "Where nodes and blocks live.",
        keys: &[
            set("kind", Value("\"file\""), "\"file\"", Restart,
                "`file`: blocks and nodes come from this file. `etcd`: nodes, pools and block ownership live in etcd v3 (3.4 API)."),
            opt("endpoints", Value("[\"http://127.0.0.1:2379\"]"), "[\"https://10.0.0.11:2379\"]", Restart,
                "etcd client URLs."),
            opt("prefix", Value("\"/ipipd\""), "\"/ipipd\"", Restart,
                "Every key ipipd writes starts with it."),
            opt("ca_file", Unset("the system's roots"), "\"/etc/ipipd/etcd/ca.crt\"", Restart,
                "CA certificate for etcd's TLS."),
            opt("cert_file", Unset("none"), "\"/etc/ipipd/etcd/client.crt\"", Restart,
                "Client certificate for etcd (with `key_file`)."),
            opt("key_file", Unset("none"), "\"/etc/ipipd/etcd/client.key\"", Restart,
                "Client key for etcd (with `cert_file`)."),
            opt("dial_timeout_ms", Value("2000"), "2000", Restart,
                "Longest wait for a connection to etcd."),
            opt("request_timeout_ms", Value("5000"), "5000", Restart,
                "Longest wait for an answer from etcd."),
            opt("block_release_grace", Value("300"), "300", Restart,
                "Seconds a claimed block stays empty before the node gives it back."),
            opt("resync", Value("30"), "30", Restart,
                "Seconds with nothing on etcd's watch before the node checks its view against etcd (the key count and the latest write; a full read of the prefix only if they differ); a full read at the latest ten times this after the last."),
        ],
    },
    Table {
        name: "ipam",
        array: false,
        commented: false,
        about: "How a node gets addresses once its blocks are full (datastore mode).",
        keys: &[
            set("strict_affinity", Value("false"), "false", Applied,
                "A node uses only its own blocks. `false` (as Calico): a node whose blocks are full and that can claim no block borrows a free address from another node's block and announces its /32."),
            set("max_blocks_per_node", Value("20"), "20", Applied,
                "Most blocks a node claims (Calico's `maxBlocksPerHost`); 0: no limit."),
        ],
    },
    Table {
        name: "bfd",
        array: false,
        commented: false,
        about: "BFD (RFC 5880/5881, single hop): a dead node's routes leave in interval_ms x multiplier.",
        keys: &[
            set("enabled", Value("false"), "false", Applied,
                "BFD on every mesh session and every `[[peer]]` without its own `bfd` key."),
            set("interval_ms", Value("300"), "300", Applied,
                "Desired min TX and required min RX, 10 to 4294967."),
            set("multiplier", Value("3"), "3", Applied,
                "Detect multiplier: detection takes `interval_ms` x `multiplier`."),
            opt("keeper", Value("\"spawn\""), "\"spawn\"", Restart,
                "`spawn`: the daemon starts `ipipd bfd-keeper` itself. `external`: something else runs it (a container of its own in the pod); the daemon only connects."),
        ],
    },
    Table {
        name: "control",
        array: false,
        commented: false,
        about: "The daemon's own files.",
        keys: &[
            opt("socket", Value("\"/run/ipipd/ipipd.sock\""), "\"/run/ipipd/ipipd.sock\"", Restart,
                "Control socket (mode 0660). IPIPD_SOCKET or --socket overrides it."),
            opt("state_dir", Value("\"/var/lib/ipipd\""), "\"/var/lib/ipipd\"", Restart,
                "Persisted workloads, the IPAM record (`state_dir/ipam.json`) and restart state. IPIPD_STATE_DIR or --state-dir overrides it."),
        ],
    },
    Table {
        name: "metrics",
        array: false,
        commented: false,
        about: "Prometheus metrics.",
        keys: &[
            opt("listen", Unset("none (off)"), "\"127.0.0.1:9179\"", Restart,
                "`ADDRESS:PORT` of the Prometheus endpoint `GET /metrics`."),
        ],
    },
];

/// Every key with its table, in order.
pub fn keys() -> impl Iterator<Item = (&'static Table, &'static Key)> {
    TABLES
        .iter()
        .flat_map(|t| t.keys.iter().map(move |k| (t, k)))
}

/// The default as the README and the man page show it.
pub fn default_text(key: &Key) -> String {
    match key.default {
        Value(v) => format!("`{v}`"),
        Unset(t) | Derived(t) => t.to_owned(),
    }
}

/// The README's configuration table (markdown).
pub fn markdown_table() -> String {
    let mut out = String::from("| key | default | meaning | by reload |\n|---|---|---|---|\n");
    for (t, k) in keys() {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            t.full_name(k),
            default_text(k).replace('|', "\\|"),
            k.meaning.replace('|', "\\|"),
            k.reload.name()
        ));
    }
    out
}

/// Words wrapped into `# ` comment lines of at most `width` characters.
fn comment(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > width && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `ipipd example-config`: every key, commented; `all_set` writes the commented ones
/// out too (a test checks that file is valid).
pub fn example(all_set: bool) -> String {
    let mut out = String::from(
        "# ipipd configuration (TOML). `ipipd check-config --config PATH` validates it.\n\
         # Every key follows, with its default and what a reload (SIGHUP, `ipipd reload`, a\n\
         # changed file) does when it changes: \"applied\" at once, or \"restart\": the reload\n\
         # is refused and the running configuration stays until ipipd restarts.\n",
    );
    for t in TABLES {
        out.push('\n');
        out.push_str(&comment(t.about, 88));
        let table_hash = if t.commented { "# " } else { "" };
        out.push_str(&format!("{table_hash}{}\n", t.header()));
        for k in t.keys {
            let default = match k.default {
                Value(v) => v.to_owned(),
                Unset(t) | Derived(t) => t.replace('`', ""),
            };
            let text = format!(
                "{} Default: {default}. Reload: {}.",
                k.meaning.replace('`', ""),
                k.reload.name()
            );
            out.push_str(&comment(&text, 88));
            let hash = if t.commented || (k.commented && !all_set) {
                "# "
            } else {
                ""
            };
            out.push_str(&format!("{hash}{} = {}\n", k.name, k.example));
        }
    }
    out
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
