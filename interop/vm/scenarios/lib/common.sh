# shellcheck shell=bash
# Helpers shared by the dataplane scenarios: network namespaces, Calico-style pods,
# pings, captures and cleanup. Sourced by a scenario; runs inside the VM guest.
#
# Every process a scenario starts is registered here and stopped on exit, also on
# failure; outside the VM (VM_ALLOW_HOST=1 on a kernel with ipip) the namespaces are
# removed too. Inside it they go with the VM.

set -euo pipefail

# Calico's fixed next hop for pods: the host side answers ARP for it by proxy ARP.
readonly POD_GATEWAY=169.254.1.1

_started=$(date +%s)
_pids=()
_netns=()
_on_failure=()

log() { printf '[%4ss] %s\n' "$(( $(date +%s) - _started ))" "$*"; }
pass() { log "PASS: $*"; }
_failure=
fail() {
    _failure=$*
    log "FAIL: $*" >&2
    exit 1
}

# Commands to run (for diagnostics) when the scenario fails.
on_failure() { _on_failure+=("$*"); }

_cleanup() {
    local rc=$? i
    trap - EXIT
    if (( rc != 0 )); then
        for i in "${_on_failure[@]}"; do
            echo "----- $i" >&2
            eval "$i" >&2 || true
        done
    fi
    # Quietly: bash reports every job that a signal ended. All at once, then reap.
    {
        for i in "${_pids[@]}"; do
            kill -TERM "$i"
        done
        for (( i = ${#_pids[@]} - 1; i >= 0; i-- )); do
            stop_pid "${_pids[i]}" TERM
        done
        # The VM is powered off right after; deleting namespaces there only costs time.
        if [[ ${VM_GUEST:-} != 1 ]]; then
            for (( i = ${#_netns[@]} - 1; i >= 0; i-- )); do
                ip netns del "${_netns[i]}"
            done
        fi
    } 2>/dev/null || true
    # Again after the diagnostics, so that the end of the log says what went wrong.
    [[ -n $_failure ]] && echo "FAILED: ${_failure%%$'\n'*}" >&2
    exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

register_pid() { _pids+=("$1"); }

# stop_pid PID [SIGNAL]: signals one process we started and reaps it.
stop_pid() {
    local pid=$1 sig=${2:-TERM} n
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for (( n = 0; n < 100; n++ )); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# The scenarios need the guest's kernel (real ipip); refuse to make a mess elsewhere.
require_guest() {
    if [[ ${VM_GUEST:-} != 1 && ${VM_ALLOW_HOST:-} != 1 ]]; then
        fail "run this through interop/vm/run.sh (or set VM_ALLOW_HOST=1 on a kernel with ipip)"
    fi
    [[ $(id -u) == 0 ]] || fail "needs root"
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_until() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        (( $(date +%s) < deadline )) || fail "timed out after ${limit}s waiting for $what"
        sleep 0.5
    done
}

# sysctl_ns NS KEY=VALUE...: each KEY a /proc/sys path below net/ (e.g. ipv4/ip_forward).
sysctl_ns() {
    local ns=$1 kv script=""
    shift
    for kv in "$@"; do
        script+="echo ${kv#*=} > /proc/sys/net/${kv%%=*}; "
    done
    ip netns exec "$ns" sh -c "$script"
}

netns_add() {
    ip netns add "$1"
    _netns+=("$1")
    ip -n "$1" link set lo up
}

# underlay NS BRIDGE ADDR/PLEN: a bridge (the node network) in namespace NS; ADDR is the
# gateway the nodes' default routes point at.
underlay() {
    local ns=$1 br=$2 addr=$3
    [[ -e /run/netns/$ns ]] || netns_add "$ns"
    ip -n "$ns" -batch - <<EOF
link add $br type bridge
link set $br up
addr add $addr dev $br
EOF
}

# node_add NODE ADDR/PLEN UL_NS BRIDGE GATEWAY: a node namespace whose eth0 sits on the
# bridge. Real nodes have a default route; proxy ARP for 169.254.1.1 needs one too.
node_add() {
    local node=$1 addr=$2 ulns=$3 br=$4 gw=$5 port="ul-$1"
    netns_add "$node"
    ip link add eth0 netns "$node" type veth peer name "$port" netns "$ulns"
    ip -n "$ulns" link set "$port" master "$br" up
    ip -n "$node" -batch - <<EOF
addr add $addr dev eth0
link set eth0 up
route add default via $gw dev eth0
EOF
    sysctl_ns "$node" ipv4/ip_forward=1
}

# pod_add NODE POD IP IFACE: a pod wired the way Calico wires it. The host side (IFACE,
# `cali` + 11 hex digits) has no address and answers ARP for 169.254.1.1 by proxy; the
# pod has IP/32 on eth0 and exactly two routes. The node's /32 route to the pod is left
# to the caller (the scenario or ipipd).
pod_add() {
    local node=$1 pod=$2 ip=$3 iface=$4
    netns_add "$pod"
    ip link add "$iface" netns "$node" type veth peer name eth0 netns "$pod"
    sysctl_ns "$node" "ipv4/conf/$iface/proxy_arp=1" "ipv4/neigh/$iface/proxy_delay=0"
    ip -n "$node" link set "$iface" up
    ip -n "$pod" -batch - <<EOF
addr add $ip/32 dev eth0
link set eth0 up
route add $POD_GATEWAY dev eth0 scope link
route add default via $POD_GATEWAY dev eth0
EOF
    expect_lines "$pod routes" "default via $POD_GATEWAY dev eth0
$POD_GATEWAY dev eth0 scope link" "$(ip -n "$pod" -4 route show)"
}

# expect_lines WHAT WANT GOT: the same lines in any order (trailing blanks and empty
# lines aside); on failure, says which lines are missing and which are extra. Pure bash:
# every process costs tens of milliseconds in the emulated guest.
expect_lines() {
    local what=$1 line missing="" extra="" n
    local -A count=()
    while IFS= read -r line; do
        line=${line%"${line##*[![:space:]]}"}
        [[ -n $line ]] && count[$line]=$(( ${count[$line]:-0} + 1 ))
    done <<<"$2"
    while IFS= read -r line; do
        line=${line%"${line##*[![:space:]]}"}
        [[ -z $line ]] && continue
        n=${count[$line]:-0}
        if (( n > 0 )); then
            count[$line]=$(( n - 1 ))
        else
            extra+="  + $line"$'\n'
        fi
    done <<<"$3"
    for line in "${!count[@]}"; do
        (( ${count[$line]} > 0 )) && missing+="  - $line"$'\n'
    done
    if [[ -n $missing || -n $extra ]]; then
        printf '%s differs (- wanted but missing, + present but not wanted):\n%s%s' \
            "$what" "$missing" "$extra" >&2
        printf 'all of it:\n%s\n' "$3" >&2
        fail "$what differs"
    fi
}

# ping_ttl FROM_NS DST TTL [COUNT]: every echo is answered, every reply with TTL.
ping_ttl() {
    local from=$1 dst=$2 ttl=$3 want=${4:-3} out replies bad
    out=$(ip netns exec "$from" ping -n -c "$want" -i 0.2 -W 3 "$dst" 2>&1) ||
        fail "ping from $from to $dst failed:"$'\n'"$out"
    replies=$(grep -c 'ttl=' <<<"$out" || true)
    bad=$(grep 'ttl=' <<<"$out" | grep -vc "ttl=$ttl " || true)
    (( replies >= want )) || fail "ping from $from to $dst: $replies of $want replies:"$'\n'"$out"
    (( bad == 0 )) || fail "ping from $from to $dst: replies without ttl=$ttl:"$'\n'"$out"
    grep 'ttl=' <<<"$out" | head -n1 | sed "s/^/    $from: /"
    pass "$from -> $dst: $replies/$want replies, ttl=$ttl"
}

have_tcpdump() { command -v tcpdump >/dev/null; }

# capture_start NS IFACE FILE: tcpdump in the background until capture_stop. Returns once
# tcpdump listens, so that nothing sent afterwards is missed. Immediate mode: otherwise
# the kernel hands packets over in blocks, and those of the last second before
# capture_stop could be lost with the block.
capture_start() {
    local ns=$1 iface=$2 file=$3 pid
    ip netns exec "$ns" tcpdump -nn -U --immediate-mode -Z root -i "$iface" -w "$file" 2>"$file.err" &
    pid=$!
    register_pid "$pid"
    echo "$pid" > "$file.pid"
    wait_until 30 "tcpdump on $ns/$iface" grep -q 'listening on' "$file.err"
}

# capture_stop FILE: stops tcpdump and decodes the capture once: FILE.txt (every packet)
# and FILE.ipip.txt (IP protocol 4 only), which the checks below read.
capture_stop() {
    local file=$1
    # tcpdump writes its last packets and the file trailer on SIGINT.
    stop_pid "$(cat "$file.pid")" INT
    tcpdump -nn -r "$file" > "$file.txt" 2>/dev/null
    tcpdump -nn -r "$file" 'ip proto 4' > "$file.ipip.txt" 2>/dev/null
}

# capture_text FILE [FILTER]: the capture as tcpdump prints it.
capture_text() {
    local file=$1
    shift
    if [[ $# -eq 0 ]]; then
        cat "$file.txt"
    else
        tcpdump -nn -r "$file" "$@" 2>/dev/null
    fi
}

# expect_ipip FILE OUTER_SRC OUTER_DST INNER_SRC INNER_DST: the capture holds an echo
# request (or reply, for swapped addresses) in IP protocol 4 with these addresses.
expect_ipip() {
    local file=$1 osrc=$2 odst=$3 isrc=$4 idst=$5 pat line
    pat="IP $osrc > $odst: IP $isrc > $idst: ICMP echo"
    line=$(grep -F -m1 "$pat" "$file.ipip.txt") ||
        fail "no IPIP packet '$pat' on the wire; IPIP packets seen:"$'\n'"$(head -n 20 "$file.ipip.txt")"
    echo "    $line"
}

# expect_plain FILE SRC DST: an unencapsulated echo between these addresses.
expect_plain() {
    local file=$1 src=$2 dst=$3 pat line
    pat="IP $src > $dst: ICMP echo"
    line=$(grep -E -m1 "^[0-9:.]+ $pat" "$file.txt") ||
        fail "no plain '$pat' on the wire; seen:"$'\n'"$(grep -F ICMP "$file.txt" | head -n 20)"
    echo "    $line"
}

# expect_no_outer FILE ADDR...: none of ADDR is the outer source or destination of any
# IPv4 packet in the capture (pod addresses must never reach the underlay bare).
expect_no_outer() {
    local file=$1 hits
    shift
    hits=$(awk -v addrs="$*" '
        BEGIN { n = split(addrs, a, " ") }
        $2 == "IP" {
            src = $3; dst = $5; sub(/:$/, "", dst)
            for (i = 1; i <= n; i++)
                if (index(src ".", a[i] ".") == 1 || index(dst ".", a[i] ".") == 1) { print; break }
        }' "$file.txt")
    [[ -z $hits ]] || fail "pod addresses as outer addresses on the underlay:"$'\n'"$(head -n 10 <<<"$hits")"
}

# tunnel_check NODE ADDR MTU: tunl0 is up, has MTU and exactly ADDR/32.
tunnel_check() {
    local node=$1 addr=$2 mtu=$3 link addrs
    link=$(ip -n "$node" -o link show dev tunl0)
    [[ $link =~ \<([A-Z_,]*)\> ]] && [[ ,${BASH_REMATCH[1]}, == *,UP,* ]] ||
        fail "$node: tunl0 is not up: $link"
    [[ $link == *" mtu $mtu "* ]] || fail "$node: tunl0 MTU is not $mtu: $link"
    addrs=$(ip -n "$node" -4 -o addr show dev tunl0 | awk '{ print $4 }')
    [[ $addrs == "$addr/32" ]] || fail "$node: tunl0 addresses are [$addrs], want [$addr/32]"
    pass "$node: tunl0 up, mtu $mtu, $addr/32"
}

# ping_unanswered FILE: the icmp_seq numbers without a reply in an iputils ping log
# stopped by SIGINT (the echo in flight at that moment does not count), printed as
# "SENT GOT MISSING..."; nothing when the log has no summary.
ping_unanswered() {
    local out=$1 sent got
    sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$out")
    got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$out")
    [[ -n $sent && -n $got ]] || return 0
    printf '%s %s ' "$sent" "$got"
    awk -v sent="$sent" '
        /ttl=/ { for (i = 1; i <= NF; i++) if ($i ~ /^icmp_seq=/) { split($i, a, "="); seen[a[2]] = 1 } }
        END { for (s = 1; s < sent; s++) if (!(s in seen)) printf "%s ", s; print "" }' "$out"
}
