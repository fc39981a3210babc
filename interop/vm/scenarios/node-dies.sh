#!/usr/bin/env bash
# A node dies (needs a working ipipd). The seed cluster converges with short timers
# (hold 6 s, graceful restart 5 s); pod-a pings pod-b 10 times a second; node-c's ipipd
# is frozen (SIGSTOP) and its underlay link cut. Once the hold time and then the
# graceful-restart time have run out, node-c's block is gone from node-a and node-b
# (show routes and kernel), while pod-a <-> pod-b traffic never stops.
# vm-timeout: 200
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/ipipd.sh"
require_guest
require_ipipd

seed_topology
BGP_EXTRA=$'hold_time = 6\ngraceful_restart_time = 5\nconnect_retry_time = 1'
export BGP_EXTRA
cluster_up

out=/tmp/ping-node-dies.txt
ip netns exec pod-a ping -n -i 0.1 -W 2 "${POD_IP[node-b]}" > "$out" 2>&1 &
ping_pid=$!
register_pid "$ping_pid"
sleep 1

kill -STOP "${IPIPD_PID[node-c]}"
ip -n ul link set ul-node-c down
on_failure "kill -CONT ${IPIPD_PID[node-c]}"
log "node-c frozen and cut off at $(date +%T)"

gone_from() {
    local n=$1
    ! ip -n "$n" route show proto bgp | grep -qF "${BLOCK[node-c]} " &&
        ! ipipd_cli "$n" show routes --json | jq -e --arg p "${BLOCK[node-c]}" 'any(.[]; .prefix == $p)' >/dev/null
}
started=$(date +%s)
for n in node-a node-b; do
    wait_until 60 "${BLOCK[node-c]} gone from $n" gone_from "$n"
done
took=$(( $(date +%s) - started ))
(( took >= 6 )) || fail "node-c's block went after ${took}s, before the hold time: it must be kept until then"
pass "node-c's block gone from node-a and node-b (show routes and kernel) after ${took}s (hold 6 s + graceful restart 5 s)"
for n in node-a node-b; do
    ipipd_cli "$n" show peers --json |
        jq -e --arg c "${ADDR[node-c]}" --arg o "$( [[ $n == node-a ]] && echo "${ADDR[node-b]}" || echo "${ADDR[node-a]}")" \
            'any(.[]; .address == $o and .state == "Established") and any(.[]; .address == $c and .state != "Established")' >/dev/null ||
        fail "$n: want the session to the live node Established and to node-c down: $(ipipd_cli "$n" show peers --json)"
done
pass "node-a <-> node-b session stayed Established"

sleep 1
stop_pid "$ping_pid" INT
read -r sent got missing <<<"$(ping_unanswered "$out")"
[[ -n ${got:-} ]] || fail "pod-a -> pod-b: no ping summary:"$'\n'"$(tail -n 5 "$out")"
[[ -z ${missing:-} ]] || fail "pod-a -> pod-b: no reply to icmp_seq $missing ($got of $sent answered)"
pass "pod-a -> pod-b: $got of $sent echoes answered while node-c died"
kill -CONT "${IPIPD_PID[node-c]}" 2>/dev/null || true
log "node-dies: all checks passed"
