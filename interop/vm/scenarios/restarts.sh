#!/usr/bin/env bash
# Restarts lose nothing (needs a working ipipd). The seed cluster converges; pods ping
# one another every 0.1 s while each node's ipipd in turn is stopped with SIGTERM and
# started again, then killed with SIGKILL and started again. Graceful restart on the
# peers and leaving the kernel routes in place on the restarting node must keep every
# packet flowing: no echo may go unanswered, and `ip monitor route` on every node must
# record no deletion of a route ipipd wants. Workloads are not added again after a
# restart: ipipd keeps them in its state_dir.
#
# Six restarts with convergence in between take longer than the other scenarios:
# vm-timeout: 300
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/ipipd.sh"
require_guest
require_ipipd

seed_topology
# RESTARTS_EXTRA: more configuration for every node (restarts-bfd.sh turns BFD on).
cluster_up ${RESTARTS_EXTRA:+"$RESTARTS_EXTRA"}
for n in "${SEED_NODES[@]}"; do
    check_kernel_routes "$n"
done

# Route events on every node from here on.
for n in "${SEED_NODES[@]}"; do
    ip -n "$n" monitor route > "/tmp/monitor-$n.txt" 2>&1 &
    register_pid $!
    echo $! > "/tmp/monitor-$n.pid"
done
# A probe route (never used for traffic) proves each monitor records deletions.
monitor_sees_probe() {
    ip -n "$1" route add blackhole 198.51.100.1/32 proto static
    ip -n "$1" route del blackhole 198.51.100.1/32 proto static
    grep -q '^Deleted blackhole 198.51.100.1 ' "/tmp/monitor-$1.txt"
}
for n in "${SEED_NODES[@]}"; do
    wait_until 20 "ip monitor route on $n" monitor_sees_probe "$n"
done

# Traffic across every node pair, 10 echoes a second each.
declare -A PING_PID=()
flows=("pod-a ${POD_IP[node-b]}" "pod-a ${POD_IP[node-c]}" "pod-b ${POD_IP[node-c]}")
for f in "${flows[@]}"; do
    read -r from dst <<<"$f"
    ip netns exec "$from" ping -n -i 0.1 -W 2 "$dst" > "/tmp/ping-$from-$dst.txt" 2>&1 &
    register_pid $!
    PING_PID[$f]=$!
done
sleep 2

for n in "${SEED_NODES[@]}"; do
    for sig in TERM KILL; do
        ipipd_stop "$n" "$sig"
        # With the daemon gone its routes stay, so traffic goes on meanwhile.
        check_kernel_routes "$n"
        sleep 1
        ipipd_start "$n"
        wait_converged 90 "${SEED_NODES[@]}"
    done
done
sleep 2

# iputils ping prints its summary on SIGINT. An echo in flight at that moment counts as
# lost, so one missing reply at the very end is allowed; a gap anywhere else is not.
for f in "${flows[@]}"; do
    read -r from dst <<<"$f"
    stop_pid "${PING_PID[$f]}" INT
    out=/tmp/ping-$from-$dst.txt
    read -r sent got missing <<<"$(ping_unanswered "$out")"
    [[ -n ${got:-} ]] || fail "$from -> $dst: no ping summary:"$'\n'"$(tail -n 5 "$out")"
    [[ -z ${missing:-} ]] || fail "$from -> $dst: no reply to icmp_seq $missing ($got of $sent answered)"
    grep -q 'ttl=62 ' "$out" || fail "$from -> $dst: no reply with ttl=62"
    pass "$from -> $dst: $got of $sent echoes answered across 6 restarts, none lost before the last"
done

for n in "${SEED_NODES[@]}"; do
    stop_pid "$(cat "/tmp/monitor-$n.pid")"
    deleted=$(expected_routes "$n" | awk '
        NR == FNR { p = ($1 == "blackhole") ? $2 : $1; want[p] = 1; next }
        $1 == "Deleted" { p = ($2 == "blackhole") ? $3 : $2; if (p in want) print }' - "/tmp/monitor-$n.txt")
    [[ -z $deleted ]] || fail "$n: desired routes were deleted during the restarts:"$'\n'"$deleted"
    pass "$n: no desired route deleted ($(grep -c . "/tmp/monitor-$n.txt" || true) route events seen)"
done

for n in "${SEED_NODES[@]}"; do
    check_node "$n"
done
log "restarts: all checks passed"
