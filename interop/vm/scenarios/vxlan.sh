#!/usr/bin/env bash
# vxlan.mode = "always" over the guest's own vxlan driver: the seed cluster with its pods
# made by ipipd-cni. Checks what a user would check: the device (VNI 4096, port 4789,
# local address, no learning, MTU 1450, the MAC derived from the node address, one /32
# from the node's block), routes `via <node> dev vxlan.calico onlink`, a PERMANENT
# neighbour and a permanent FDB entry per remote node, the pods' MTU 1450, ping ttl=62,
# a full-size ping with DF set and one byte more refused, and on the wire UDP 4789 with
# VNI 4096 between node addresses carrying the pods' packets, no IP protocol 4, and no
# pod address outside.
# vm-timeout: 240
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/ipipd.sh"
require_guest
require_ipipd

DEV=vxlan.calico
CNI_PODS=1
export IPIP_MODE=never
seed_topology
cluster_up '[vxlan]
mode = "always"'

# The VTEP MAC of a node: 66:78 and the four bytes of its address.
vtep_mac() {
    local IFS=.
    # shellcheck disable=SC2086
    printf '66:78:%02x:%02x:%02x:%02x' $1
}

for n in "${SEED_NODES[@]}"; do
    link=$(ip -n "$n" -d -j link show dev "$DEV") || fail "$n: no $DEV"
    got=$(jq -r '.[0] | [.linkinfo.info_kind, .linkinfo.info_data.id, .linkinfo.info_data.port,
        .linkinfo.info_data.local, .linkinfo.info_data.learning, .mtu, .address,
        (.flags | index("UP") != null)] | map(tostring) | join(" ")' <<<"$link")
    want="vxlan 4096 4789 ${ADDR[$n]} false 1450 $(vtep_mac "${ADDR[$n]}") true"
    [[ $got == "$want" ]] || fail "$n: $DEV is [$got], want [$want]: $link"
    addrs=$(ip -n "$n" -4 -o addr show dev "$DEV" | awk '{ print $4 }')
    [[ $addrs == "${TUNADDR[$n]%.*}".*/32 && $(wc -l <<<"$addrs") == 1 ]] ||
        fail "$n: $DEV addresses [$addrs], want one /32 from ${BLOCK[$n]}"
    pass "$n: $DEV vni 4096 port 4789 local ${ADDR[$n]} nolearning mtu 1450 $(vtep_mac "${ADDR[$n]}") $addrs"

    want_routes=$(
        for o in "${SEED_NODES[@]}"; do
            [[ $o == "$n" ]] || echo "${BLOCK[$o]} via ${ADDR[$o]} dev $DEV proto bgp onlink"
        done
        echo "blackhole ${BLOCK[$n]} proto bgp"
        echo "${POD_IP[$n]} dev ${POD_IF[$n]} proto bgp scope link"
    )
    check_kernel_routes "$n" "$want_routes"
    check_json_routes "$n" "$want_routes"

    want_neigh=$(for o in "${SEED_NODES[@]}"; do
        [[ $o == "$n" ]] || echo "${ADDR[$o]} lladdr $(vtep_mac "${ADDR[$o]}") PERMANENT"
    done)
    expect_lines "$n: ip neigh show dev $DEV" "$want_neigh" "$(ip -n "$n" neigh show dev "$DEV")"
    want_fdb=$(for o in "${SEED_NODES[@]}"; do
        [[ $o == "$n" ]] || echo "$(vtep_mac "${ADDR[$o]}") dst ${ADDR[$o]} self permanent"
    done)
    expect_lines "$n: bridge fdb show dev $DEV" "$want_fdb" \
        "$(ip netns exec "$n" bridge fdb show dev "$DEV" | grep -v '^33:33:\|^01:00:5e:')"
    pass "$n: a PERMANENT neighbour and a permanent FDB entry per remote VTEP"

    mtu=$(ip -n "${POD[$n]}" -o link show dev eth0 | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')
    [[ $mtu == 1450 ]] || fail "${POD[$n]}: eth0 MTU $mtu, want the VXLAN device's 1450"
done
pass "every pod's eth0 has MTU 1450"

capture=/tmp/vxlan-br0.pcap
capture_start ul br0 "$capture"
ping_ttl pod-a "${POD_IP[node-b]}" 62
ping_ttl pod-a "${POD_IP[node-c]}" 62
ping_ttl pod-b "${POD_IP[node-c]}" 62
# 1422 bytes of payload + 28 of headers = the pod MTU, DF set.
out=$(ip netns exec pod-a ping -n -M do -s 1422 -c 2 -W 3 "${POD_IP[node-b]}" 2>&1) ||
    fail "ping -M do -s 1422 (the pod MTU) from pod-a failed:"$'\n'"$out"
pass "pod-a -> pod-b: 1450-byte packets with DF cross"
capture_stop "$capture"
if out=$(ip netns exec pod-a ping -n -M do -s 1423 -c 1 -W 2 "${POD_IP[node-b]}" 2>&1); then
    fail "ping -M do -s 1423 (one byte over the pod MTU) passed:"$'\n'"$out"
fi
pass "one byte more with DF is refused: $(grep -m1 -i 'too long\|frag' <<<"$out")"

# expect_vxlan SRC DST INNER_SRC INNER_DST: UDP 4789 with VNI 4096 between the node
# addresses, carrying an echo between the pod addresses.
expect_vxlan() {
    local text
    text=$(capture_text "$capture" "udp dst port 4789 and src host $1 and dst host $2")
    grep -q "vni 4096" <<<"$text" || fail "no VXLAN (VNI 4096) from $1 to $2:"$'\n'"$(head -n 10 <<<"$text")"
    grep -qF "IP $3 > $4: ICMP echo" <<<"$text" ||
        fail "VXLAN from $1 to $2 does not carry $3 > $4:"$'\n'"$(head -n 10 <<<"$text")"
    echo "    $1 > $2: VXLAN vni 4096 carrying $3 > $4"
}
expect_vxlan "${ADDR[node-a]}" "${ADDR[node-b]}" "${POD_IP[node-a]}" "${POD_IP[node-b]}"
expect_vxlan "${ADDR[node-b]}" "${ADDR[node-a]}" "${POD_IP[node-b]}" "${POD_IP[node-a]}"
expect_vxlan "${ADDR[node-a]}" "${ADDR[node-c]}" "${POD_IP[node-a]}" "${POD_IP[node-c]}"
expect_vxlan "${ADDR[node-c]}" "${ADDR[node-b]}" "${POD_IP[node-c]}" "${POD_IP[node-b]}"
[[ ! -s $capture.ipip.txt ]] || fail "IP protocol 4 on the underlay:"$'\n'"$(head -n 5 "$capture.ipip.txt")"
expect_no_outer "$capture" "${POD_IP[@]}"
pass "capture: UDP 4789 between node addresses carrying pod addresses; no IP proto 4, no pod address outside"
log "vxlan: all checks passed"
