#!/usr/bin/env bash
# ipip.mode = "cross-subnet" (needs a working ipipd). node-a and node-b share the subnet
# 172.29.235.0/24; node-c sits in 172.29.236.0/24 behind a router namespace. Routes to a
# same-subnet node's block go straight over the underlay device, as Calico installs them
# (`<block> via <node> dev eth0 proto bgp`); routes to the other subnet go into tunl0.
# The captures show pod-a <-> pod-b bare on the first bridge, and pod-a <-> pod-c in IP
# protocol 4 on both bridges, with node addresses outside.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/ipipd.sh"
require_guest
require_ipipd

ADDR[node-c]=172.29.236.140
GW_A=172.29.235.1 GW_C=172.29.236.1

# Two bridges; the router namespace has a leg on each and forwards between them.
underlay ul br0 172.29.235.254/24
underlay ul br1 172.29.236.254/24
netns_add router
ip link add eth0 netns router type veth peer name ul-router0 netns ul
ip link add eth1 netns router type veth peer name ul-router1 netns ul
ip -n ul link set ul-router0 master br0 up
ip -n ul link set ul-router1 master br1 up
ip -n router addr add "$GW_A/24" dev eth0
ip -n router addr add "$GW_C/24" dev eth1
ip -n router link set eth0 up
ip -n router link set eth1 up
sysctl_ns router ipv4/ip_forward=1

node_add node-a "${ADDR[node-a]}/24" ul br0 "$GW_A"
node_add node-b "${ADDR[node-b]}/24" ul br0 "$GW_A"
node_add node-c "${ADDR[node-c]}/24" ul br1 "$GW_C"
for n in "${SEED_NODES[@]}"; do
    pod_add "$n" "${POD[$n]}" "${POD_IP[$n]}" "${POD_IF[$n]}"
done
on_failure "ipipd_dump ${SEED_NODES[*]}"

export IPIP_MODE=cross-subnet
cluster_up

# route N BLOCK_OF: the route on N to BLOCK_OF's block, direct in the same subnet.
route() {
    local n=$1 o=$2
    if [[ ${ADDR[$n]%.*} == "${ADDR[$o]%.*}" ]]; then
        echo "${BLOCK[$o]} via ${ADDR[$o]} dev eth0 proto bgp"
    else
        echo "${BLOCK[$o]} via ${ADDR[$o]} dev tunl0 proto bgp onlink"
    fi
}
for n in "${SEED_NODES[@]}"; do
    want=$(
        for o in "${SEED_NODES[@]}"; do
            [[ $o == "$n" ]] || route "$n" "$o"
        done
        echo "blackhole ${BLOCK[$n]} proto bgp"
        echo "${POD_IP[$n]} dev ${POD_IF[$n]} proto bgp scope link"
    )
    check_node "$n" "$want"
done

cap0=/tmp/xs-br0.pcap cap1=/tmp/xs-br1.pcap
capture_start ul br0 "$cap0"
capture_start ul br1 "$cap1"
ping_ttl pod-a "${POD_IP[node-b]}" 62
ping_ttl pod-a "${POD_IP[node-c]}" 62
ping_ttl pod-b "${POD_IP[node-c]}" 62
capture_stop "$cap0"
capture_stop "$cap1"

# Same subnet: bare, and never encapsulated.
expect_plain "$cap0" "${POD_IP[node-a]}" "${POD_IP[node-b]}"
expect_plain "$cap0" "${POD_IP[node-b]}" "${POD_IP[node-a]}"
ipip_ab=$(capture_text "$cap0" "ip proto 4 and host ${ADDR[node-a]} and host ${ADDR[node-b]}")
[[ -z $ipip_ab ]] || fail "same-subnet traffic was encapsulated:"$'\n'"$(head -n 5 <<<"$ipip_ab")"
pass "same subnet: pod-a <-> pod-b unencapsulated on the underlay"

# Across subnets: encapsulated on both sides of the router.
for cap in "$cap0" "$cap1"; do
    expect_ipip "$cap" "${ADDR[node-a]}" "${ADDR[node-c]}" "${POD_IP[node-a]}" "${POD_IP[node-c]}"
    expect_ipip "$cap" "${ADDR[node-c]}" "${ADDR[node-a]}" "${POD_IP[node-c]}" "${POD_IP[node-a]}"
    expect_ipip "$cap" "${ADDR[node-b]}" "${ADDR[node-c]}" "${POD_IP[node-b]}" "${POD_IP[node-c]}"
done
expect_no_outer "$cap1" "${POD_IP[@]}" "${TUNADDR[@]}"
expect_no_outer "$cap0" "${POD_IP[node-c]}" "${TUNADDR[@]}"
pass "cross subnet: IP proto 4 between node addresses on both bridges; node-c's pod never bare"
log "cross-subnet: all checks passed"
