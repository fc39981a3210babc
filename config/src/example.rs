//! A complete, commented configuration: documentation that the tests keep valid.

/// Every key, with its default or a typical value, as `ipipd` documents it.
pub const EXAMPLE: &str = r#"# ipipd configuration (TOML). `ipipd check-config --config PATH` validates it.

[node]
name = "node-172-29-235-101"        # default: the host name
address = "172.29.235.101"          # node IP: router id, BGP source address, next hop
# address_v6 = "fd00::101"          # IPv6 next hop for IPv6 blocks
asn = 64512                         # default 64512
blocks = ["101.76.9.128/26"]        # this node's pod blocks (IPv4 and/or IPv6)
# labels = { rack = "r1" }          # read by pools' node_selector; IPIPD_NODE_LABELS="rack=r1,zone=a" overrides

[cluster]
pools = ["101.64.0.0/10"]           # pod address pools: nothing outside them is announced, accepted or installed
                                    # (or [[pool]] tables with cidr, block_size, nat_outgoing, disabled, node_selector)
mesh = true                         # full-mesh iBGP with every address in `nodes`
nodes = ["172.29.235.101", "172.29.235.130"]   # the node's own address may be listed; it is skipped
# mesh_password = "secret"          # TCP-MD5 on mesh sessions (at most 80 bytes)

[bgp]
port = 179                          # port to listen on and to connect to
hold_time = 90                      # seconds, 0 or at least 3; keepalive is a third of it unless keepalive_time is set
# keepalive_time = 30               # less than hold_time
graceful_restart_time = 120         # 0 turns graceful restart off; at most 4095
# route_reflector_cluster_id = "1.1.1.1"   # this node reflects routes for its rr_client peers
max_paths = 4                       # ECMP next hops per prefix; 1 turns ECMP off
connect_retry_time = 5              # seconds between connection attempts
listen = true                       # accept incoming sessions on `port`

[[peer]]                            # explicit peers: route reflectors, switches, tests
address = "172.29.235.200"
asn = 64512                         # default: node.asn
# name = "tor-1"                    # shown by `ipipd show peers`
# port = 179                        # default: bgp.port
# passive = false                   # wait for the peer to connect
# password = "secret"               # TCP-MD5
# rr_client = false                 # this node is the reflector, that peer its client
# route_reflector = false           # that peer is the reflector, this node its client
# ttl_security = false              # GTSM (RFC 5082)
# max_prefixes = 100000
# shutdown = false                  # administratively down
# bfd = true                        # BFD on this session (overrides [bfd].enabled)

[ipip]
mode = "always"                     # always | cross-subnet | never
device = "tunl0"
# mtu = 1480                        # default: MTU of the interface holding node.address, minus 20

[kernel]
# protocol = 186                    # rtm_protocol of every route ipipd owns ("bgp" in `ip route`)
# table = 254
# install = true                    # false: compute routes but never write the kernel FIB
# flush_on_stop = false             # remove ipipd's routes when it stops

[bfd]
enabled = false                     # BFD (RFC 5880/5881, single hop) on every mesh session
interval_ms = 300                   # desired min TX and required min RX
multiplier = 3                      # detection time: interval_ms x multiplier
# keeper = "spawn"                  # "external": a container of its own runs `ipipd bfd-keeper`

[control]
# socket = "/run/ipipd/ipipd.sock"
# state_dir = "/var/lib/ipipd"      # persisted workloads, pod addresses (ipam.json), restart state

[metrics]
# listen = "127.0.0.1:9179"         # Prometheus endpoint GET /metrics; off unless set
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, IpipMode};

    #[test]
    fn example_parses() {
        let c = match Config::parse(EXAMPLE, "example.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.node.name, "node-172-29-235-101");
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.ipip.mode, IpipMode::Always);
        assert_eq!(c.cluster.nodes.len(), 2);
    }

    /// Uncommenting every optional line still gives a valid file: the comments document
    /// real keys with acceptable values.
    #[test]
    fn example_with_every_key_parses() {
        let all: String = EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = match Config::parse(&all, "example.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}\n{all}"),
        };
        assert_eq!(c.bgp.keepalive_time, Some(30));
        assert_eq!(
            c.peers.first().and_then(|p| p.name.clone()).as_deref(),
            Some("tor-1")
        );
        assert_eq!(c.cluster.mesh_password.as_deref(), Some("secret"));
    }
}
