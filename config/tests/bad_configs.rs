//! Each bad file gives exactly these messages, all at once, at these positions.

use config::Config;

const NODE: &str = "[node]\naddress = \"172.29.235.101\"\n";

fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, "t.toml") {
        Ok(c) => panic!("accepted:\n{text}\nas {c:?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn check(text: &str, expected: &[&str]) {
    assert_eq!(errors(text), expected, "for:\n{text}");
}

fn with_node(rest: &str) -> String {
    format!("{NODE}{rest}")
}

#[test]
fn syntax_errors_have_a_position_and_no_ascii_art() {
    check(
        "[node\n",
        &["t.toml:1:6: invalid table header: expected `.`, `]`"],
    );
    check("a = \"é\" b\n", &["t.toml:1:9: expected newline, `#`"]);
    check(
        "[node]\naddress = \"1.2.3.4\"\naddress = \"1.2.3.5\"\n",
        &["t.toml:3:1: duplicate key `address` in table `node`"],
    );
}

#[test]
fn unknown_keys_suggest_the_closest_valid_key() {
    check(
        &with_node("[bgp]\nhold_tme = 5\n"),
        &["t.toml:4:1: unknown key `hold_tme` in [bgp]; did you mean `hold_time`?"],
    );
    check(
        "[node]\naddr = \"1.2.3.4\"\n",
        &["t.toml:2:1: unknown key `addr` in [node]; did you mean `address`?"],
    );
    check(
        &with_node("[bgpp]\nport = 5\n"),
        &["t.toml:3:2: unknown key `bgpp` at the top level; did you mean `bgp`?"],
    );
    check(
        &with_node("[[peer]]\naddress = \"10.0.0.1\"\nrr-client = true\n"),
        &["t.toml:5:1: unknown key `rr-client` in [[peer]]; did you mean `rr_client`?"],
    );
    check(
        &with_node("[bgp]\ncompletely_else = 5\n"),
        &[
            "t.toml:4:1: unknown key `completely_else` in [bgp] (valid keys: `port`, `hold_time`, \
           `keepalive_time`, `graceful_restart_time`, `route_reflector_cluster_id`, `max_paths`, \
           `connect_retry_time`, `listen`)",
        ],
    );
    check(
        "node.address = \"1.2.3.4\"\nnode.bogus = 1\n",
        &["t.toml:2:6: unknown key `bogus` in [node] (valid keys: `name`, `address`, `address_v6`, `asn`, `blocks`, `labels`)"],
    );
}

#[test]
fn wrong_types() {
    check(
        &with_node("[bgp]\nport = \"x\"\n"),
        &["t.toml:4:8: `port` in [bgp] must be an integer from 0 to 65535, got string \"x\""],
    );
    check(
        &with_node("[bgp]\nport = 70000\n"),
        &["t.toml:4:8: `port` in [bgp] must be an integer from 0 to 65535, got integer 70000"],
    );
    check(
        &with_node("[bgp]\nmax_paths = -1\nlisten = \"yes\"\n"),
        &[
            "t.toml:4:13: `max_paths` in [bgp] must be a non-negative integer, got integer -1",
            "t.toml:5:10: `listen` in [bgp] must be a boolean (true or false), got string \"yes\"",
        ],
    );
    check(
        "[node]\naddress = 1.2\n",
        &["t.toml:2:11: `address` in [node] must be a string, got floating point 1.2"],
    );
    check(
        "[node]\naddress = \"1.2.3.4\"\nblocks = [\"10.0.0.0/24\", 5]\n[cluster]\npools = [\"10.0.0.0/8\"]\n",
        &["t.toml:3:26: element 2 of `blocks` in [node] must be a string, got integer 5"],
    );
    check(
        &with_node("[cluster]\npools = \"101.64.0.0/10\"\n"),
        &["t.toml:4:9: `pools` in [cluster] must be an array, got string \"101.64.0.0/10\""],
    );
    check(
        &with_node("[ipip]\nmode = \"cross_subnet\"\n"),
        &[
            "t.toml:4:8: `mode` in [ipip] must be one of `always`, `cross-subnet`, `never`, got \
           `cross_subnet`; did you mean `cross-subnet`?",
        ],
    );
    check(
        &with_node("[ipip]\nmode = 3\n"),
        &["t.toml:4:8: `mode` in [ipip] must be a string"],
    );
}

#[test]
fn wrong_shapes_of_sections() {
    check(
        &with_node("[peer]\naddress = \"1.2.3.5\"\n"),
        &["t.toml:3:2: `peer` must be an array of tables: write each peer as [[peer]]"],
    );
    check(
        "[[node]]\naddress = \"1.2.3.4\"\n",
        &["t.toml:1:3: `node` must be a table, written [node], got an array of tables"],
    );
    check(
        "bgp = 5\n[node]\naddress = \"1.2.3.4\"\n",
        &["t.toml:1:1: `bgp` must be a table, written [bgp], got an integer"],
    );
    check(
        "peer = 5\n[node]\naddress = \"1.2.3.4\"\n",
        &["t.toml:1:1: `peer` must be an array of tables, written [[peer]], got an integer"],
    );
}

#[test]
fn missing_keys() {
    check(
        "[node]\nname = \"x\"\n",
        &["t.toml:1:1: missing key `address` in [node] (this node's IPv4 address)"],
    );
    check(
        "bgp.port = 5\n",
        &["t.toml:1:1: missing table [node] (it needs at least `address`, this node's IPv4 address)"],
    );
    check(
        &with_node("[[peer]]\naddress = \"10.0.0.1\"\n\n[[peer]]\nasn = 65000\n"),
        &["t.toml:6:1: missing key `address` in [[peer]]"],
    );
    // A key already reported as misspelt or mistyped is not also reported missing.
    check(
        "[nod]\naddress = \"1.2.3.4\"\n",
        &["t.toml:1:2: unknown key `nod` at the top level; did you mean `node`?"],
    );
    check(
        &with_node("[[peer]]\naddres = \"10.0.0.1\"\n"),
        &["t.toml:4:1: unknown key `addres` in [[peer]]; did you mean `address`?"],
    );
}

#[test]
fn addresses() {
    check(
        "[node]\naddress = \"172.29.235.3OO\"\n",
        &["t.toml:2:11: invalid IP address \"172.29.235.3OO\""],
    );
    check(
        "[node]\naddress = \"fd00::1\"\naddress_v6 = \"10.0.0.1\"\n",
        &[
            "t.toml:2:11: address must be IPv4 (it is the BGP router id), got fd00::1; put an IPv6 address in address_v6",
            "t.toml:3:14: address_v6 must be an IPv6 address, got 10.0.0.1",
        ],
    );
    check(
        "[node]\naddress = \"0.0.0.0\"\n",
        &["t.toml:2:11: node address 0.0.0.0 is not a unicast address"],
    );
    check(
        &with_node("[[peer]]\naddress = \"10.1.1.1/32\"\n"),
        &["t.toml:4:11: invalid IP address \"10.1.1.1/32\" (an address here, without a prefix length)"],
    );
    check(
        &with_node("[bgp]\nroute_reflector_cluster_id = \"::1\"\n"),
        &["t.toml:4:30: route_reflector_cluster_id must be an IPv4 address, got ::1"],
    );
}

#[test]
fn blocks_and_pools() {
    check(
        "[node]\naddress = \"172.29.235.101\"\nblocks = [\"101.76.9.130/26\", \"10.0.0.0/26\"]\n\
         [cluster]\npools = [\"101.64.0.0/10\"]\n",
        &[
            "t.toml:3:11: block 101.76.9.130/26 is not aligned: did you mean 101.76.9.128/26?",
            "t.toml:3:30: block 10.0.0.0/26 is outside every cluster pool (101.64.0.0/10)",
        ],
    );
    check(
        "[node]\naddress = \"172.29.235.101\"\nblocks = [\"101.76.9.128/26\"]\n",
        &["t.toml:3:11: block 101.76.9.128/26 is outside every cluster pool (no pools configured in [cluster])"],
    );
    check(
        "[node]\naddress = \"172.29.235.101\"\nblocks = [\"101.76.9.0\", \"101.76.9.0/33\"]\n",
        &[
            "t.toml:3:11: invalid block \"101.76.9.0\": not a CIDR prefix (ADDRESS/LENGTH, e.g. 10.0.0.0/26)",
            "t.toml:3:25: invalid block \"101.76.9.0/33\": not a CIDR prefix",
        ],
    );
    check(
        "[node]\naddress = \"172.29.235.101\"\nblocks = [\"101.76.9.0/24\",\n  \"101.76.9.128/26\",\n  \"101.76.9.0/24\"]\n\
         [cluster]\npools = [\"101.64.0.0/10\", \"101.64.0.0/16\", \"101.65.0.0/10\"]\n",
        &[
            "t.toml:4:3: block 101.76.9.128/26 overlaps block 101.76.9.0/24 (line 3)",
            "t.toml:5:3: block 101.76.9.0/24 is listed twice (first at line 3)",
            "t.toml:7:27: pool 101.64.0.0/16 overlaps pool 101.64.0.0/10 (line 7)",
            "t.toml:7:44: pool 101.65.0.0/10 is not aligned: did you mean 101.64.0.0/10?",
        ],
    );
}

#[test]
fn bgp_timers_and_limits() {
    check(
        &with_node("[bgp]\nport = 0\nhold_time = 2\n"),
        &[
            "t.toml:4:8: port must be from 1 to 65535, got 0",
            "t.toml:5:13: hold_time must be 0 or at least 3 seconds (RFC 4271), got 2",
        ],
    );
    check(
        &with_node("[bgp]\nhold_time = 30\nkeepalive_time = 30\n"),
        &["t.toml:5:18: keepalive_time must be less than hold_time (30), got 30"],
    );
    check(
        &with_node("[bgp]\nkeepalive_time = 0\n"),
        &["t.toml:4:18: keepalive_time 0 sends no keepalives, so peers would drop the session after hold_time (90)"],
    );
    check(
        &with_node("[bgp]\ngraceful_restart_time = 5000\nmax_paths = 0\nconnect_retry_time = 0\n"),
        &[
            "t.toml:4:25: graceful_restart_time must be at most 4095 seconds (a 12-bit field, RFC 4724), got 5000",
            "t.toml:5:13: max_paths must be at least 1 (1 turns ECMP off), got 0",
            "t.toml:6:22: connect_retry_time must be at least 1 second, got 0",
        ],
    );
}

#[test]
fn asns() {
    check(
        "[node]\naddress = \"1.2.3.4\"\nasn = 0\n",
        &["t.toml:3:7: asn 0 is reserved (RFC 7607)"],
    );
    check(
        "[node]\naddress = \"1.2.3.4\"\nasn = 23456\n",
        &["t.toml:3:7: asn 23456 is AS_TRANS (RFC 6793), not a usable AS number"],
    );
    check(
        "[node]\naddress = \"1.2.3.4\"\nasn = 4294967295\n",
        &["t.toml:3:7: asn 4294967295 is reserved (RFC 7300)"],
    );
}

#[test]
fn peers() {
    check(
        &with_node(
            "[[peer]]\naddress = \"172.29.235.101\"\n[[peer]]\naddress = \"10.0.0.1\"\n\
             [[peer]]\naddress = \"10.0.0.1\"\n",
        ),
        &[
            "t.toml:4:11: peer 172.29.235.101 is this node's own address",
            "t.toml:8:11: peer 10.0.0.1 is listed twice (first at line 6)",
        ],
    );
    check(
        &with_node(
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 65000\nport = 0\nrr_client = true\n\
             route_reflector = true\nmax_prefixes = 0\nname = \" \"\npassword = \"\"\n",
        ),
        &[
            "t.toml:6:8: port must be from 1 to 65535, got 0",
            "t.toml:7:13: rr_client needs an iBGP peer (asn 64512), but this peer has asn 65000",
            "t.toml:8:19: route_reflector needs an iBGP peer (asn 64512), but this peer has asn 65000",
            "t.toml:8:19: a peer cannot be both rr_client and route_reflector",
            "t.toml:9:16: max_prefixes must be at least 1 (remove the key for no limit), got 0",
            "t.toml:10:8: name must not be empty",
            "t.toml:11:12: password must not be empty (remove the key to turn TCP-MD5 off)",
        ],
    );
}

#[test]
fn mesh() {
    check(
        &with_node(
            "[cluster]\nnodes = [\"172.29.235.130\", \"172.29.235.131\", \"172.29.235.130\", \"224.0.0.1\"]\n",
        ),
        &[
            "t.toml:4:46: node 172.29.235.130 is listed twice in `nodes` (first at line 4)",
            "t.toml:4:64: node 224.0.0.1 is not a unicast address",
        ],
    );
    let long = "x".repeat(81);
    check(
        &with_node(&format!("[cluster]\nmesh_password = \"{long}\"\n")),
        &["t.toml:4:17: mesh_password must be at most 80 bytes (TCP_MD5SIG_MAXKEYLEN), got 81"],
    );
}

#[test]
fn vxlan_and_ipip_are_not_both_on() {
    check(
        &with_node("[ipip]\nmode = \"always\"\n[vxlan]\nmode = \"cross-subnet\"\n"),
        &[
            "t.toml:4:8: ipip.mode = \"always\" beside vxlan.mode = \"cross-subnet\": a node \
           encapsulates one way; set one of them to \"never\" (ipip.mode defaults to \"never\" \
           when vxlan.mode is set)",
        ],
    );
    check(
        &with_node("[vxlan]\nvni = 16777216\nport = 0\ndevice = \"\"\nmtu = 70000\n"),
        &[
            "t.toml:4:7: vni must be from 1 to 16777215 (24 bits), got 16777216",
            "t.toml:5:8: port must be from 1 to 65535, got 0",
            "t.toml:6:10: device \"\" must not be empty",
            "t.toml:7:7: mtu must be from 576 to 65515, got 70000",
        ],
    );
}

#[test]
fn ipip_kernel_control() {
    check(
        &with_node("[ipip]\ndevice = \"a-very-long-device-name\"\nmtu = 70000\n"),
        &[
            "t.toml:4:10: device \"a-very-long-device-name\" is 23 bytes; Linux interface names are at most 15",
            "t.toml:5:7: mtu must be from 576 to 65515, got 70000",
        ],
    );
    check(
        &with_node("[ipip]\ndevice = \"tun/0\"\nmtu = 500\n"),
        &[
            "t.toml:4:10: device \"tun/0\" is not a valid interface name (no '/', ':' or spaces)",
            "t.toml:5:7: mtu must be from 576 to 65515, got 500",
        ],
    );
    check(
        &with_node("[kernel]\nprotocol = 2\ntable = 0\n"),
        &[
            "t.toml:4:12: protocol 2 is reserved (RTPROT_KERNEL, routes the kernel adds itself); ipipd owns \
             every route with its protocol, so use a value above 4, e.g. 186 (bgp)",
            "t.toml:5:9: table 0 is RT_TABLE_UNSPEC; the main table is 254",
        ],
    );
    check(
        &with_node("[kernel]\nprotocol = 256\ntable = 255\ninstall = 1\n"),
        &[
            "t.toml:4:12: `protocol` in [kernel] must be an integer from 0 to 255, got integer 256",
            "t.toml:5:9: table 255 is the local table, which the kernel manages; the main table is 254",
            "t.toml:6:11: `install` in [kernel] must be a boolean (true or false), got integer 1",
        ],
    );
    let long = "s".repeat(120);
    check(
        &with_node(&format!(
            "[control]\nsocket = \"/{long}\"\nstate_dir = \"\"\n"
        )),
        &[
            "t.toml:4:10: socket path is 121 bytes; a Unix socket path is at most 107 bytes",
            "t.toml:5:13: state_dir must not be empty",
        ],
    );
}

#[test]
fn bfd() {
    check(
        &with_node("[bfd]\nenabled = true\ninterval_ms = 5\nmultiplier = 0\n"),
        &[
            "t.toml:5:15: interval_ms must be from 10 to 4294967, got 5",
            "t.toml:6:14: multiplier must be at least 1 (RFC 5880: detect multiplier 0 is invalid), got 0",
        ],
    );
    check(
        &with_node("[[peer]]\naddress = \"10.0.0.2\"\nbfd = \"yes\"\n"),
        &["t.toml:5:7: `bfd` in [[peer]] must be a boolean (true or false), got string \"yes\""],
    );
    check(
        &with_node("[bfd]\ninterval = 300\n"),
        &["t.toml:4:1: unknown key `interval` in [bfd]; did you mean `interval_ms`?"],
    );
    check(
        &with_node("[bfd]\nkeeper = \"sidecar\"\n"),
        &["t.toml:4:10: bfd keeper must be \"spawn\" or \"external\", got \"sidecar\""],
    );
}

#[test]
fn datastore_resync_is_at_least_a_second() {
    check(
        &with_node("[datastore]\nresync = 0\n"),
        &["t.toml:4:10: resync must be at least 1 second, got 0"],
    );
}

/// One file with problems of every kind: all are reported, in file order.
#[test]
fn every_error_at_once() {
    let text = r#"[node]
address = "172.29.235.3OO"
asn = 0
blocks = ["101.76.9.130/26", "10.0.0.0/26"]

[cluster]
pools = ["101.64.0.0/10"]
nodez = []

[bgp]
hold_tme = 90
hold_time = 2
port = "179"

[[peer]]
address = "172.29.235.200"

[[peer]]
address = "172.29.235.200"
passive = "no"

[ipip]
mode = "alway"
mtu = 9

[kernel]
protocol = 3
"#;
    check(
        text,
        &[
            "t.toml:2:11: invalid IP address \"172.29.235.3OO\"",
            "t.toml:3:7: asn 0 is reserved (RFC 7607)",
            "t.toml:4:11: block 101.76.9.130/26 is not aligned: did you mean 101.76.9.128/26?",
            "t.toml:4:30: block 10.0.0.0/26 is outside every cluster pool (101.64.0.0/10)",
            "t.toml:8:1: unknown key `nodez` in [cluster]; did you mean `nodes`?",
            "t.toml:11:1: unknown key `hold_tme` in [bgp]; did you mean `hold_time`?",
            "t.toml:12:13: hold_time must be 0 or at least 3 seconds (RFC 4271), got 2",
            "t.toml:13:8: `port` in [bgp] must be an integer from 0 to 65535, got string \"179\"",
            "t.toml:19:11: peer 172.29.235.200 is listed twice (first at line 16)",
            "t.toml:20:11: `passive` in [[peer]] must be a boolean (true or false), got string \"no\"",
            "t.toml:23:8: `mode` in [ipip] must be one of `always`, `cross-subnet`, `never`, got `alway`; \
             did you mean `always`?",
            "t.toml:24:7: mtu must be from 576 to 65515, got 9",
            "t.toml:27:12: protocol 3 is reserved (RTPROT_BOOT, routes added by `ip route` without `proto`); \
             ipipd owns every route with its protocol, so use a value above 4, e.g. 186 (bgp)",
        ],
    );
}

#[test]
fn errors_display_one_per_line() {
    let e = Config::parse(
        "[node]\naddress = \"x\"\nasn = 0\n",
        "/etc/ipipd/ipipd.toml",
    )
    .expect_err("invalid");
    assert_eq!(
        e.to_string(),
        "/etc/ipipd/ipipd.toml:2:11: invalid IP address \"x\"\n/etc/ipipd/ipipd.toml:3:7: asn 0 is reserved (RFC 7607)"
    );
    let first = e.iter().next().expect("one error");
    assert_eq!((first.line, first.col), (2, 11));
    assert_eq!(first.origin, "/etc/ipipd/ipipd.toml");
}

#[test]
fn metrics_listen_must_be_an_address_and_port() {
    check(
        &with_node("[metrics]\nlisten = \"localhost\"\n"),
        &["t.toml:4:10: listen: expected ADDRESS:PORT (e.g. \"127.0.0.1:9179\" or \"[::1]:9179\"), found \"localhost\""],
    );
}

/// TLS files next to an `http://` endpoint: a typo would mean plaintext to etcd, the
/// files silently unused. The error points at the endpoint.
#[test]
fn plaintext_etcd_endpoints_are_refused_next_to_tls_files() {
    let etcd = "[cluster]\npools = [\"101.64.0.0/10\"]\n[datastore]\nkind = \"etcd\"\n";
    check(
        &with_node(&format!(
            "{etcd}endpoints = [\"https://10.0.0.11:2379\", \"http://10.0.0.12:2379\"]\n\
             ca_file = \"/etc/ipipd/etcd/ca.crt\"\n"
        )),
        &[
            "t.toml:7:40: endpoint \"http://10.0.0.12:2379\" is plaintext, but ca_file is set: \
           TLS applies to https:// endpoints only; did you mean \"https://10.0.0.12:2379\"?",
        ],
    );
    check(
        &with_node(&format!(
            "{etcd}endpoints = [\"http://10.0.0.11:2379\"]\n\
             cert_file = \"/etc/ipipd/etcd/client.crt\"\nkey_file = \"/etc/ipipd/etcd/client.key\"\n"
        )),
        &["t.toml:7:14: endpoint \"http://10.0.0.11:2379\" is plaintext, but cert_file and \
           key_file are set: TLS applies to https:// endpoints only; did you mean \
           \"https://10.0.0.11:2379\"?"],
    );
    // No endpoints: the default one is plaintext; the error points at the TLS file.
    check(
        &with_node(&format!("{etcd}ca_file = \"/etc/ipipd/etcd/ca.crt\"\n")),
        &[
            "t.toml:7:11: the default endpoint \"http://127.0.0.1:2379\" is plaintext, but \
           ca_file is set: TLS applies to https:// endpoints only; list the https:// \
           endpoints in datastore.endpoints",
        ],
    );
    // The reverse is fine: https without ca_file trusts the system's roots.
    let ok = with_node(&format!(
        "{etcd}endpoints = [\"https://etcd.example:2379\"]\n"
    ));
    assert!(Config::parse(&ok, "t.toml").is_ok(), "{ok}");
    let plain = with_node(&format!("{etcd}endpoints = [\"http://10.0.0.11:2379\"]\n"));
    assert!(Config::parse(&plain, "t.toml").is_ok(), "{plain}");
}

#[test]
fn pools_as_tables() {
    check(
        &with_node("[cluster]\npools = [\"101.64.0.0/10\"]\n[[pool]]\ncidr = \"10.0.0.0/16\"\n"),
        &[
            "t.toml:5:1: pools are listed both in cluster.pools and as [[pool]] tables: keep one \
           (cluster.pools = [...] stands for [[pool]] tables with the defaults)",
        ],
    );
    check(
        &with_node("[[pool]]\ncidr = \"10.0.0.0/16\"\n[[pool]]\ncidr = \"10.0.128.0/17\"\n"),
        &["t.toml:6:8: pool 10.0.128.0/17 overlaps pool 10.0.0.0/16 (line 4)"],
    );
    check(
        &with_node(
            "[[pool]]\ncidr = \"10.0.0.0/16\"\nblock_size = 31\n\
             [[pool]]\ncidr = \"fd00::/64\"\nblock_size = 26\n\
             [[pool]]\ncidr = \"10.1.0.0/24\"\nblock_size = 20\n",
        ),
        &[
            "t.toml:5:14: block_size must be from 16 to 30 for an IPv4 pool, got 31",
            "t.toml:8:14: block_size must be from 96 to 126 for an IPv6 pool, got 26",
            "t.toml:11:14: block_size 20 is shorter than the pool 10.1.0.0/24 itself: a block \
             cannot be larger than its pool (use at least 24)",
        ],
    );
    check(
        &with_node("[[pool]]\nblock_size = 26\nbogus = 1\n"),
        &[
            "t.toml:3:1: missing key `cidr` in [[pool]]",
            "t.toml:5:1: unknown key `bogus` in [[pool]] (valid keys: `cidr`, `block_size`, \
             `nat_outgoing`, `disabled`, `node_selector`)",
        ],
    );
    check(
        &with_node("[[pool]]\ncidr = \"10.0.0.0/16\"\nnat_outgoin = true\n"),
        &["t.toml:5:1: unknown key `nat_outgoin` in [[pool]]; did you mean `nat_outgoing`?"],
    );
    check(
        &with_node("[pool]\ncidr = \"10.0.0.0/16\"\n"),
        &["t.toml:3:2: `pool` must be an array of tables: write each pool as [[pool]]"],
    );
}

/// The column points into the selector's text where it can (no escapes in the string).
#[test]
fn invalid_selectors_point_at_their_column() {
    check(
        &with_node("[[pool]]\ncidr = \"10.0.0.0/16\"\nnode_selector = \"rack = 'r1'\"\n"),
        &[
            "t.toml:5:23: invalid node_selector: expected == or != after the label \"rack\" \
           (ipipd's selectors know ==, !=, has(), all(), !, &&, || and parentheses)",
        ],
    );
    check(
        &with_node(
            "[[pool]]\ncidr = \"10.0.0.0/16\"\nnode_selector = 'has(rack) && zone == \"a'\n",
        ),
        &["t.toml:5:39: invalid node_selector: this value has no closing quote"],
    );
    // Escapes: the text and the value no longer line up; the value's start is shown.
    check(
        &with_node("[[pool]]\ncidr = \"10.0.0.0/16\"\nnode_selector = \"rack == \\\"r1\"\n"),
        &["t.toml:5:17: invalid node_selector: this value has no closing quote"],
    );
    check(
        &with_node("[[pool]]\ncidr = \"10.0.0.0/16\"\nnode_selector = \"\"\n"),
        &["t.toml:5:18: invalid node_selector: node_selector is empty; \"all()\" selects every node"],
    );
}

#[test]
fn node_labels() {
    check(
        "[node]\naddress = \"172.29.235.101\"\nlabels = { \"a b\" = \"x\", rack = \"r 1\" }\n",
        &[
            "t.toml:3:12: label name \"a b\" must be 1 to 317 letters, digits, '-', '_', '.' or '/'",
            "t.toml:3:32: label rack: value \"r 1\" must be at most 63 letters, digits, '-', '_' \
             or '.' (as a Kubernetes label value)",
        ],
    );
    let overrides = config::Overrides {
        node_labels: Some("rack=r1,zone,rack=r2".into()),
        ..config::Overrides::default()
    };
    let e = Config::parse_with(NODE, "t.toml", &overrides).expect_err("invalid");
    let got: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "t.toml:1:1: IPIPD_NODE_LABELS / --node-labels: \"zone\" is not KEY=VALUE",
            "t.toml:1:1: IPIPD_NODE_LABELS / --node-labels: label \"rack\" is set twice",
        ]
    );
}
