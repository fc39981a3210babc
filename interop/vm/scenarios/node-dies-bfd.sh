#!/usr/bin/env bash
# A node dies, with BFD on (300 ms × 3). The seed cluster converges with BFD sessions Up
# between every pair of nodes; pod-a pings pod-b 10 times a second; every process of
# node-c (ipipd and its BFD keeper) is frozen and its underlay link cut. node-c's block
# must leave node-a and node-b (show routes and kernel) in about the BFD detection time
# (0.9 s) — far before the hold time (6 s) — while pod-a <-> pod-b never loses an echo.
# The measured time is printed; the check only requires that BFD, not the hold timer,
# removed the routes (under 3 s in this emulated guest).
# vm-timeout: 200
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/ipipd.sh"
require_guest
require_ipipd

seed_topology
BGP_EXTRA=$'hold_time = 6\ngraceful_restart_time = 5\nconnect_retry_time = 1'
export BGP_EXTRA
cluster_up $'[bfd]\nenabled = true\ninterval_ms = 300\nmultiplier = 3'

bfd_up() {
    ipipd_cli "$1" show bfd --json | jq -e 'length == 2 and all(.[]; .state == "Up")' >/dev/null
}
for n in "${SEED_NODES[@]}"; do
    wait_until 30 "BFD Up on $n with both other nodes" bfd_up "$n"
done
pass "BFD sessions Up between every pair of nodes"

out=/tmp/ping-node-dies-bfd.txt
ip netns exec pod-a ping -n -i 0.1 -W 2 "${POD_IP[node-b]}" > "$out" 2>&1 &
ping_pid=$!
register_pid "$ping_pid"
sleep 1

frozen=$(ip netns pids node-c | tr '\n' ' ')
[[ -n $frozen ]] || fail "no process in node-c to freeze"
# shellcheck disable=SC2086
kill -STOP $frozen
ip -n ul link set ul-node-c down
on_failure "kill -CONT $frozen"
started=$(date +%s%N)
log "node-c (pids $frozen) frozen and cut off at $(date +%T.%N)"

gone_from() {
    local n=$1
    ! ip -n "$n" route show proto bgp | grep -qF "${BLOCK[node-c]} " &&
        ! ipipd_cli "$n" show routes --json | jq -e --arg p "${BLOCK[node-c]}" 'any(.[]; .prefix == $p)' >/dev/null
}
declare -A took_ms=()
deadline=$(( $(date +%s) + 30 ))
while (( ${#took_ms[@]} < 2 )); do
    for n in node-a node-b; do
        [[ -n ${took_ms[$n]:-} ]] && continue
        ip -n "$n" route show proto bgp | grep -qF "${BLOCK[node-c]} " ||
            took_ms[$n]=$(( ($(date +%s%N) - started) / 1000000 ))
    done
    (( $(date +%s) < deadline )) || fail "node-c's block still in a kernel 30 s after it died"
    sleep 0.05
done
for n in node-a node-b; do
    gone_from "$n" || fail "$n: node-c's block left the kernel but not show routes"
    (( took_ms[$n] < 3000 )) ||
        fail "$n: node-c's block went after ${took_ms[$n]} ms: that is the hold timer, not BFD"
done
pass "node-c's block gone from node-a's kernel after ${took_ms[node-a]} ms and node-b's after ${took_ms[node-b]} ms (BFD 300 ms × 3; hold time 6 s)"
for n in node-a node-b; do
    ipipd_cli "$n" show bfd --json |
        jq -e --arg c "${ADDR[node-c]}" 'any(.[]; .peer == $c and .state == "Down")' >/dev/null ||
        fail "$n: BFD to node-c should be listed Down: $(ipipd_cli "$n" show bfd --json)"
done
pass "BFD to node-c listed Down on node-a and node-b"

sleep 1
stop_pid "$ping_pid" INT
read -r sent got missing <<<"$(ping_unanswered "$out")"
[[ -n ${got:-} ]] || fail "pod-a -> pod-b: no ping summary:"$'\n'"$(tail -n 5 "$out")"
[[ -z ${missing:-} ]] || fail "pod-a -> pod-b: no reply to icmp_seq $missing ($got of $sent answered)"
pass "pod-a -> pod-b: $got of $sent echoes answered while node-c died"
# shellcheck disable=SC2086
kill -CONT $frozen 2>/dev/null || true
log "node-dies-bfd: all checks passed"
