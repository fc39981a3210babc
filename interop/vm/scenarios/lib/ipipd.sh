# shellcheck shell=bash
# Helpers for the scenarios that run ipipd: the seed cluster, configuration files, start
# and stop, waiting for convergence, and the checks every such scenario makes. Sourced
# after common.sh. Drives ipipd only through its outside contract (CLI, TOML, JSON).

IPIPD_BIN=${IPIPD_BIN:-${REPO:-.}/target/release/ipipd}
# The CNI plugin built next to ipipd; scenarios with CNI_PODS=1 make their pods with it.
IPIPD_CNI_BIN=${IPIPD_CNI_BIN:-$(dirname "$IPIPD_BIN")/ipipd-cni}
CNI_PODS=${CNI_PODS:-0}
# Under /run, which is a tmpfs in the guest (the host root is read-only there).
IPIPD_DIR=/run/ipipd-vm

# The seed cluster (ARCHITECTURE.md): three nodes, one /26 block and one pod each.
SEED_NODES=(node-a node-b node-c)
declare -A ADDR=([node-a]=172.29.235.101 [node-b]=172.29.235.130 [node-c]=172.29.235.140)
declare -A BLOCK=([node-a]=101.76.9.128/26 [node-b]=101.88.228.192/26 [node-c]=101.99.1.0/26)
# First address of the block: what ipipd puts on tunl0.
declare -A TUNADDR=([node-a]=101.76.9.128 [node-b]=101.88.228.192 [node-c]=101.99.1.0)
declare -A POD=([node-a]=pod-a [node-b]=pod-b [node-c]=pod-c)
declare -A POD_IP=([node-a]=101.76.9.136 [node-b]=101.88.228.195 [node-c]=101.99.1.5)
declare -A POD_IF=([node-a]=cali8d1a8c6f2b3 [node-b]=califf66d1cee04 [node-c]=cali3e7b0c19a5d)
POOL=101.64.0.0/10
UNDERLAY_GW=172.29.235.1

declare -A IPIPD_PID=()
# The nodes in one another's [cluster] nodes list; a scenario may narrow it.
CLUSTER_NODES=("${SEED_NODES[@]}")
# Sessions each node should have Established; default: one per other seed node.
declare -A EXPECT_PEERS=()

require_ipipd() {
    [[ -x $IPIPD_BIN ]] ||
        fail "no ipipd binary at $IPIPD_BIN (cargo build --release, or set IPIPD_BIN to one outside /tmp and /run)"
    log "ipipd: $IPIPD_BIN"
}

ipipd_dir() { echo "$IPIPD_DIR/$1"; }
ipipd_socket() { echo "$IPIPD_DIR/$1/ipipd.sock"; }

# ipipd_cli NODE ARGS...: one CLI command against NODE's daemon.
ipipd_cli() {
    local node=$1
    shift
    "$IPIPD_BIN" "$@" --socket "$(ipipd_socket "$node")"
}

# ipipd_config NODE [TOML...]: writes NODE's configuration. The [cluster] comes from
# CLUSTER_NODES, CLUSTER_MESH (default true); [ipip] mode from
# IPIP_MODE (default always). Further arguments are appended verbatim (e.g. [[peer]]s).
ipipd_config() {
    local node=$1 dir nodes=() n
    shift
    dir=$(ipipd_dir "$node")
    mkdir -p "$dir/state"
    for n in "${CLUSTER_NODES[@]}"; do
        nodes+=("\"${ADDR[$n]}\"")
    done
    {
        cat <<EOF
[node]
name = "$node"
address = "${ADDR[$node]}"
asn = 64512
blocks = ["${BLOCK[$node]}"]

[cluster]
pools = ["$POOL"]
mesh = ${CLUSTER_MESH:-true}
nodes = [$(IFS=,; echo "${nodes[*]}" | sed 's/,/, /g')]

[bgp]
${BGP_EXTRA:-}

[ipip]
mode = "${IPIP_MODE:-always}"
device = "tunl0"

[control]
socket = "$(ipipd_socket "$node")"
state_dir = "$dir/state"
EOF
        local extra
        for extra in "$@"; do
            printf '\n%s\n' "$extra"
        done
    } > "$dir/$node.toml"
}

# ipipd_start NODE: starts ipipd in NODE's namespace and waits for its control socket.
ipipd_start() {
    local node=$1 dir cfg out pid
    dir=$(ipipd_dir "$node")
    cfg=$dir/$node.toml
    out=$("$IPIPD_BIN" check-config --config "$cfg" 2>&1) ||
        fail "ipipd check-config rejects $cfg:"$'\n'"$out"$'\n'"$(cat "$cfg")"
    echo "===== start $(date +%T)" >> "$dir/ipipd.log"
    RUST_LOG=${RUST_LOG:-info} ip netns exec "$node" "$IPIPD_BIN" run --config "$cfg" \
        >> "$dir/ipipd.log" 2>&1 &
    pid=$!
    register_pid "$pid"
    IPIPD_PID[$node]=$pid
    local limit=${IPIPD_START_TIMEOUT:-60} deadline
    deadline=$(( $(date +%s) + limit ))
    until ipipd_cli "$node" show peers --json >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null ||
            fail "ipipd on $node exited at start:"$'\n'"$(tail -n 30 "$dir/ipipd.log")"
        (( $(date +%s) < deadline )) || fail "ipipd on $node: no control socket after ${limit}s"
        sleep 0.3
    done
    log "ipipd on $node running (pid $pid)"
}

# ipipd_stop NODE SIGNAL: signals NODE's ipipd and waits until it has exited.
ipipd_stop() {
    local node=$1 sig=$2 pid=${IPIPD_PID[$1]} n
    kill "-$sig" "$pid" 2>/dev/null || fail "ipipd on $node (pid $pid) is not running"
    for (( n = 0; n < 300; n++ )); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "ipipd on $node still runs 30s after SIG$sig"
    wait "$pid" 2>/dev/null || true
    log "ipipd on $node stopped by SIG$sig"
}

# Prints what a failed scenario needs to be understood, for every node given.
ipipd_dump() {
    local n
    for n in "$@"; do
        echo "===== $n: ip route"
        ip -n "$n" route show 2>&1 || true
        echo "===== $n: ip link tunl0 / addr"
        ip -n "$n" -d link show tunl0 2>&1 || true
        ip -n "$n" -4 addr show 2>&1 || true
        echo "===== $n: show peers --json"
        ipipd_cli "$n" show peers --json 2>&1 || true
        echo
        echo "===== $n: show routes --json"
        ipipd_cli "$n" show routes --json 2>&1 || true
        echo
        echo "===== $n: ipipd log (last 40 lines)"
        tail -n 40 "$(ipipd_dir "$n")/ipipd.log" 2>&1 || true
    done
}

# The seed topology without ipipd: underlay bridge, nodes, Calico-style pods.
seed_topology() {
    local n
    underlay ul br0 "$UNDERLAY_GW/24"
    for n in "${SEED_NODES[@]}"; do
        node_add "$n" "${ADDR[$n]}/24" ul br0 "$UNDERLAY_GW"
    done
    if [[ $CNI_PODS != 1 ]]; then
        for n in "${SEED_NODES[@]}"; do
            pod_add "$n" "${POD[$n]}" "${POD_IP[$n]}" "${POD_IF[$n]}"
        done
    fi
    on_failure "ipipd_dump ${SEED_NODES[*]}"
    log "topology ready: ${SEED_NODES[*]} on ul/br0, pods ${POD[*]}"
}

# workloads_add NODE...: registers each node's pod with its ipipd.
workloads_add() {
    local n out
    for n in "$@"; do
        out=$(ipipd_cli "$n" workload add "${POD_IP[$n]}" "${POD_IF[$n]}" 2>&1) ||
            fail "ipipd workload add ${POD_IP[$n]} ${POD_IF[$n]} on $n failed: $out"
    done
}

# pods_add_cni NODE...: each node's pod made by ipipd-cni exactly as a container runtime
# calls it (CNI_* variables, the network configuration on stdin, inside the node's
# namespace). The pod's address and host interface come from the plugin's result.
pods_add_cni() {
    local n out conf
    [[ -x $IPIPD_CNI_BIN ]] || fail "no CNI plugin at $IPIPD_CNI_BIN (cargo build --release)"
    for n in "$@"; do
        netns_add "${POD[$n]}"
        conf="{\"cniVersion\":\"1.0.0\",\"name\":\"ipipd\",\"type\":\"ipipd-cni\",\"socket\":\"$(ipipd_socket "$n")\"}"
        out=$(ip netns exec "$n" env CNI_COMMAND=ADD CNI_CONTAINERID="vm-${POD[$n]}" \
            CNI_NETNS="/var/run/netns/${POD[$n]}" CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin \
            CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=${POD[$n]}" \
            "$IPIPD_CNI_BIN" <<<"$conf") || fail "CNI ADD of ${POD[$n]} on $n failed: $out"
        POD_IP[$n]=$(jq -r '.ips[0].address | split("/")[0]' <<<"$out")
        POD_IF[$n]=$(jq -r '.interfaces[0].name' <<<"$out")
        [[ ${POD_IP[$n]} == "${TUNADDR[$n]%.*}".* ]] || fail "$n: pod address ${POD_IP[$n]} outside ${BLOCK[$n]}: $out"
        expect_lines "${POD[$n]} routes" "default via $POD_GATEWAY dev eth0
$POD_GATEWAY dev eth0 scope link" "$(ip -n "${POD[$n]}" -4 route show)"
        log "$n: ipipd-cni made ${POD[$n]} with ${POD_IP[$n]} on ${POD_IF[$n]}"
    done
}

# True once every peer of NODE is Established (and there are COUNT of them).
peers_established() {
    local node=$1 count=$2
    ipipd_cli "$node" show peers --json |
        jq -e --argjson n "$count" 'length == $n and all(.[]; .state == "Established")' >/dev/null
}

# True once NODE's ipipd reports each PREFIX installed and the kernel has it.
routes_installed() {
    local node=$1 json kernel p
    shift
    json=$(ipipd_cli "$node" show routes --json) || return 1
    jq -e '. as $r | $ARGS.positional | all(. as $p | $r | any(.[]; .prefix == $p and .installed == true))' \
        --args "$@" <<<"$json" >/dev/null || return 1
    kernel=$'\n'$(ip -n "$node" route show proto bgp)
    for p in "$@"; do
        [[ $kernel == *$'\n'"$p "* ]] || return 1
    done
}

# The other nodes' blocks, as NODE should learn them.
remote_blocks() {
    local node=$1 n
    for n in "${CLUSTER_NODES[@]}"; do
        [[ $n == "$node" ]] || echo "${BLOCK[$n]}"
    done
}

# wait_converged SECONDS NODE...: every session up and every remote block installed.
wait_converged() {
    local limit=$1 n peers
    shift
    for n in "$@"; do
        peers=${EXPECT_PEERS[$n]:-$(( ${#SEED_NODES[@]} - 1 ))}
        wait_until "$limit" "$n: $peers sessions Established" peers_established "$n" "$peers"
        # shellcheck disable=SC2046
        wait_until "$limit" "$n: remote blocks installed" routes_installed "$n" $(remote_blocks "$n")
    done
    log "converged: $*"
}

# The kernel routes ipipd owns on NODE (ipip.mode = "always"), as `ip route` prints them.
expected_routes() {
    local node=$1 n
    for n in "${CLUSTER_NODES[@]}"; do
        [[ $n == "$node" ]] && continue
        echo "${BLOCK[$n]} via ${ADDR[$n]} dev tunl0 proto bgp onlink"
    done
    echo "blackhole ${BLOCK[$node]} proto bgp"
    echo "${POD_IP[$node]} dev ${POD_IF[$node]} proto bgp scope link"
}

# check_kernel_routes NODE [EXPECTED]: `ip route` on NODE is exactly the contract's.
check_kernel_routes() {
    local node=$1 want=${2:-$(expected_routes "$1")} all mine=() line
    all=$(ip -n "$node" route show)
    while IFS= read -r line; do
        [[ $line == *" proto bgp "* || $line == *" proto bgp" ]] && mine+=("$line")
    done <<<"$all"
    expect_lines "$node: ip route (the proto bgp lines)" "$want" "$(printf '%s\n' "${mine[@]}")"
    # `ip route show proto bgp` leaves out the protocol it filters on.
    expect_lines "$node: ip route show proto bgp" "${want// proto bgp/}" \
        "$(ip -n "$node" route show proto bgp)"
    pass "$node: kernel routes are exactly the contract's (${#mine[@]} routes)"
}

# check_json_routes NODE [EXPECTED]: the routes `show routes --json` marks installed are
# exactly the kernel's, with the right origin, next hop and interface.
check_json_routes() {
    local node=$1 want=${2:-$(expected_routes "$1")} json got exp
    json=$(ipipd_cli "$node" show routes --json) || fail "$node: show routes --json failed"
    got=$(jq -r 'if type == "array" and all(.[]; has("prefix") and has("origin") and has("next_hop")
            and has("interface") and has("peer") and has("best") and has("installed"))
        then .[] | select(.installed == true)
            | (.prefix | if test("/") then . else . + "/32" end) as $p
            | if .origin == "workload" then "\($p) workload \(.interface)"
              elif .origin == "bgp" then "\($p) bgp \(.next_hop)"
              else "\($p) \(.origin)" end
        else "show routes --json lacks contract fields" end' <<<"$json") ||
        fail "$node: show routes --json is not JSON: $json"
    # The same facts derived from the expected kernel routes.
    exp=$(awk '
        $1 == "blackhole" { print $2 " local"; next }
        $2 == "via" { print $1 " bgp " $3; next }
        $2 == "dev" { p = $1; if (p !~ /\//) p = p "/32"; print p " workload " $3 }' <<<"$want")
    expect_lines "$node: show routes --json (installed)" "$exp" "$got"
    pass "$node: show routes --json agrees with the kernel"
}

# check_node NODE: tunl0 and both route views.
check_node() {
    local node=$1
    local ul_mtu
    ul_mtu=$(ip -n "$node" -o link show dev eth0 | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')
    [[ $ul_mtu == 1500 ]] || fail "$node: underlay MTU is $ul_mtu, the scenario expects 1500"
    tunnel_check "$node" "${TUNADDR[$node]}" 1480
    check_kernel_routes "$node" "${2:-}"
    check_json_routes "$node" "${2:-}"
}

# cluster_up [TOML...]: configures every seed node (the arguments appended to each
# configuration), starts their ipipd, registers the pods and waits for convergence.
cluster_up() {
    local n
    for n in "${SEED_NODES[@]}"; do
        ipipd_config "$n" "$@"
    done
    for n in "${SEED_NODES[@]}"; do
        ipipd_start "$n"
    done
    if [[ $CNI_PODS == 1 ]]; then
        pods_add_cni "${SEED_NODES[@]}"
    else
        workloads_add "${SEED_NODES[@]}"
    fi
    wait_converged 90 "${SEED_NODES[@]}"
}
