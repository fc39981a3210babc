#!/usr/bin/env bash
# Route reflection by BIRD 2 (needs a working ipipd and bird). The mesh is off; a fourth
# namespace on the underlay runs BIRD as the route reflector, every node's ipipd peers
# only with it (route_reflector = true). Pods still reach each other directly over IPIP:
# the reflected routes keep the originating node as next hop, so the kernel routes are
# exactly those of the full mesh.
# vm-timeout: 200
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/ipipd.sh"
require_guest
require_ipipd
command -v bird >/dev/null || fail "bird (Debian package bird2) is not installed"

seed_topology
RR=172.29.235.200
node_add rr "$RR/24" ul br0 "$UNDERLAY_GW"

conf=/tmp/bird-rr.conf
{
    printf 'router id %s;\nprotocol device {}\n' "$RR"
    printf 'template bgp rrc {\n  local %s as 64512;\n  rr client;\n  rr cluster id 1.1.1.1;\n' "$RR"
    printf '  ipv4 { import all; export all; };\n}\n'
    for n in "${SEED_NODES[@]}"; do
        printf 'protocol bgp c_%s from rrc { neighbor %s as 64512; }\n' "${n//-/_}" "${ADDR[$n]}"
    done
} > "$conf"
ip netns exec rr bird -c "$conf" -s /tmp/bird-rr.ctl -P /tmp/bird-rr.pid
register_pid "$(cat /tmp/bird-rr.pid)"
log "BIRD reflector running at $RR"

export CLUSTER_MESH=false
reflector="[[peer]]
address = \"$RR\"
asn = 64512
route_reflector = true"
EXPECT_PEERS=([node-a]=1 [node-b]=1 [node-c]=1)
cluster_up "$reflector"

for n in "${SEED_NODES[@]}"; do
    peers=$(ipipd_cli "$n" show peers --json | jq -r '.[] | "\(.address) \(.kind) \(.state)"')
    expect_lines "$n: show peers" "$RR route-reflector Established" "$peers"
    check_node "$n"
done
pass "every node learns the others' blocks through BIRD, next hop the originating node"

capture=/tmp/bird-rr-br0.pcap
capture_start ul br0 "$capture"
ping_ttl pod-a "${POD_IP[node-b]}" 62
ping_ttl pod-b "${POD_IP[node-c]}" 62
capture_stop "$capture"
expect_ipip "$capture" "${ADDR[node-a]}" "${ADDR[node-b]}" "${POD_IP[node-a]}" "${POD_IP[node-b]}"
expect_ipip "$capture" "${ADDR[node-b]}" "${ADDR[node-c]}" "${POD_IP[node-b]}" "${POD_IP[node-c]}"
expect_no_outer "$capture" "${POD_IP[@]}" "${TUNADDR[@]}"
pass "pods talk directly node to node in IP proto 4, never through the reflector"
log "bird-reflector: all checks passed"
