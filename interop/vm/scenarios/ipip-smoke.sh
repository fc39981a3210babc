#!/usr/bin/env bash
# Proves the VM harness and the topology helpers with plain kernel IPIP, no ipipd: two
# nodes on a bridge, a Calico-style pod on each, static routes into tunl0 the way ipipd
# will install them; pod-a pings pod-b, replies come back with ttl=62, and the bridge sees
# IP protocol 4 with the node addresses outside and the pod addresses inside.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
require_guest

NODE_A=172.29.235.101 NODE_B=172.29.235.130
POD_A=101.76.9.136 POD_B=101.88.228.195
BLOCK_A=101.76.9.128/26 BLOCK_B=101.88.228.192/26
IF_A=cali8d1a8c6f2b3 IF_B=califf66d1cee04

underlay ul br0 172.29.235.1/24
node_add node-a "$NODE_A/24" ul br0 172.29.235.1
node_add node-b "$NODE_B/24" ul br0 172.29.235.1
pod_add node-a pod-a "$POD_A" "$IF_A"
pod_add node-b pod-b "$POD_B" "$IF_B"

# What ipipd installs on a node in ipip.mode = "always", written by hand.
program_node() {
    local node=$1 tunaddr=$2 pod=$3 iface=$4 block=$5 remote_block=$6 remote_node=$7
    ip -n "$node" link set tunl0 up mtu 1480
    ip -n "$node" addr add "$tunaddr/32" dev tunl0
    ip -n "$node" route add "$remote_block" via "$remote_node" dev tunl0 onlink proto bgp
    ip -n "$node" route add blackhole "$block" proto bgp
    ip -n "$node" route add "$pod" dev "$iface" scope link proto bgp
}
program_node node-a 101.76.9.128 "$POD_A" "$IF_A" "$BLOCK_A" "$BLOCK_B" "$NODE_B"
program_node node-b 101.88.228.192 "$POD_B" "$IF_B" "$BLOCK_B" "$BLOCK_A" "$NODE_A"
on_failure 'for n in node-a node-b; do echo "== $n"; ip -n $n route; ip -n $n addr; done'

expect_lines "node-a routes (proto bgp)" "\
$BLOCK_B via $NODE_B dev tunl0 proto bgp onlink
blackhole $BLOCK_A proto bgp
$POD_A dev $IF_A proto bgp scope link" "$(ip -n node-a route show | grep -w 'proto bgp')"
pass "node-a: routes as ipipd would install them"
tunnel_check node-a 101.76.9.128 1480
tunnel_check node-b 101.88.228.192 1480

capture=/tmp/smoke-br0.pcap
if have_tcpdump; then
    capture_start ul br0 "$capture"
else
    log "SKIP: capture checks: tcpdump is not installed on the host (apt-get install tcpdump)"
fi

ping_ttl pod-a "$POD_B" 62 3
ping_ttl pod-b "$POD_A" 62 3

if have_tcpdump; then
    capture_stop "$capture"
    expect_ipip "$capture" "$NODE_A" "$NODE_B" "$POD_A" "$POD_B"
    expect_ipip "$capture" "$NODE_B" "$NODE_A" "$POD_B" "$POD_A"
    expect_no_outer "$capture" "$POD_A" "$POD_B"
    pass "capture: IP proto 4, outer $NODE_A <-> $NODE_B, inner $POD_A <-> $POD_B, no bare pod address"
fi
log "ipip-smoke: all checks passed"
