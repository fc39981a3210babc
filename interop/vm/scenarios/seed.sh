#!/usr/bin/env bash
# The seed scenario end to end over real IPIP, with ipipd doing the routing: three nodes
# in a full iBGP mesh on one underlay bridge, a Calico-style pod on each. Checks what a
# user would check: ping ttl=62 across nodes, `ip route` exactly as the contract says,
# tunl0 up with MTU 1480 and the block's first address, IP protocol 4 on the wire with
# node addresses outside and pod addresses inside, and `show routes --json` agreeing
# with the kernel. The pods are made by the ipipd-cni plugin, as a container runtime would.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/ipipd.sh"
require_guest
require_ipipd

CNI_PODS=1
seed_topology

# A tunl0 left with a wrong MTU and down (as after an earlier, different setup): ipipd
# must set both, not rely on the driver's defaults happening to be right.
ip -n node-c link set tunl0 down mtu 1400

cluster_up

for n in "${SEED_NODES[@]}"; do
    ipipd_cli "$n" show peers --json |
        jq -e 'all(.[]; .kind == "mesh" and (.asn == 64512) and (.since | type == "string"))' >/dev/null ||
        fail "$n: show peers --json: want every peer kind mesh, asn 64512, with since: $(ipipd_cli "$n" show peers --json)"
done
pass "every node has 2 mesh sessions Established"

for n in "${SEED_NODES[@]}"; do
    check_node "$n"
done

capture=/tmp/seed-br0.pcap
capture_start ul br0 "$capture"
ping_ttl pod-a "${POD_IP[node-b]}" 62
ping_ttl pod-a "${POD_IP[node-c]}" 62
ping_ttl pod-b "${POD_IP[node-c]}" 62
capture_stop "$capture"

expect_ipip "$capture" "${ADDR[node-a]}" "${ADDR[node-b]}" "${POD_IP[node-a]}" "${POD_IP[node-b]}"
expect_ipip "$capture" "${ADDR[node-b]}" "${ADDR[node-a]}" "${POD_IP[node-b]}" "${POD_IP[node-a]}"
expect_ipip "$capture" "${ADDR[node-a]}" "${ADDR[node-c]}" "${POD_IP[node-a]}" "${POD_IP[node-c]}"
expect_ipip "$capture" "${ADDR[node-c]}" "${ADDR[node-a]}" "${POD_IP[node-c]}" "${POD_IP[node-a]}"
expect_ipip "$capture" "${ADDR[node-b]}" "${ADDR[node-c]}" "${POD_IP[node-b]}" "${POD_IP[node-c]}"
expect_no_outer "$capture" "${POD_IP[@]}" "${TUNADDR[@]}"
pass "capture: IP proto 4 between node addresses carrying pod addresses; no pod address outside"

# Nothing changed behind ipipd's back while traffic flowed.
for n in "${SEED_NODES[@]}"; do
    check_kernel_routes "$n"
done
log "seed: all checks passed"
