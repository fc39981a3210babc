#!/usr/bin/env bash
# Route reflection instead of the full mesh (needs a working ipipd). node-a reflects
# (bgp.route_reflector_cluster_id, node-b and node-c as rr_client peers); node-b and
# node-c peer only with node-a. node-b must still learn node-c's block with node-c as
# the next hop, so that pod-b <-> pod-c traffic goes straight between node-b and node-c
# and never through node-a. The kernel routes are the same as with the mesh.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/ipipd.sh"
require_guest
require_ipipd

seed_topology

export CLUSTER_MESH=false
client_peer() {
    printf '[[peer]]\naddress = "%s"\nasn = 64512\nrr_client = true\n' "$1"
}
BGP_EXTRA='route_reflector_cluster_id = "172.29.235.101"' \
    ipipd_config node-a "$(client_peer "${ADDR[node-b]}")" "$(client_peer "${ADDR[node-c]}")"
reflector='[[peer]]
address = "172.29.235.101"
asn = 64512
route_reflector = true'
ipipd_config node-b "$reflector"
ipipd_config node-c "$reflector"
EXPECT_PEERS=([node-a]=2 [node-b]=1 [node-c]=1)

for n in "${SEED_NODES[@]}"; do
    ipipd_start "$n"
done
workloads_add "${SEED_NODES[@]}"
wait_converged 90 "${SEED_NODES[@]}"

peers=$(ipipd_cli node-a show peers --json | jq -r '.[] | "\(.address) \(.kind) \(.state)"')
expect_lines "node-a: show peers" "\
${ADDR[node-b]} rr-client Established
${ADDR[node-c]} rr-client Established" "$peers"
for n in node-b node-c; do
    peers=$(ipipd_cli "$n" show peers --json | jq -r '.[] | "\(.address) \(.kind) \(.state)"')
    expect_lines "$n: show peers" "${ADDR[node-a]} route-reflector Established" "$peers"
done
pass "node-a reflects for node-b and node-c; no session between node-b and node-c"

# Reflected routes keep the originator's next hop: the same kernel routes as the mesh.
for n in "${SEED_NODES[@]}"; do
    check_node "$n"
done

capture=/tmp/rr-br0.pcap
capture_start ul br0 "$capture"
ping_ttl pod-b "${POD_IP[node-c]}" 62
ping_ttl pod-c "${POD_IP[node-b]}" 62
ping_ttl pod-a "${POD_IP[node-b]}" 62
capture_stop "$capture"

expect_ipip "$capture" "${ADDR[node-b]}" "${ADDR[node-c]}" "${POD_IP[node-b]}" "${POD_IP[node-c]}"
expect_ipip "$capture" "${ADDR[node-c]}" "${ADDR[node-b]}" "${POD_IP[node-c]}" "${POD_IP[node-b]}"
via_a=$(capture_text "$capture" "ip proto 4 and host ${ADDR[node-a]}" |
    grep -F -e "${POD_IP[node-b]} > ${POD_IP[node-c]}" -e "${POD_IP[node-c]} > ${POD_IP[node-b]}" || true)
[[ -z $via_a ]] || fail "pod-b <-> pod-c traffic went through the reflector:"$'\n'"$(head -n 5 <<<"$via_a")"
expect_no_outer "$capture" "${POD_IP[@]}" "${TUNADDR[@]}"
pass "pod-b <-> pod-c goes node-b <-> node-c directly in IP proto 4"
log "route-reflector: all checks passed"
