#!/usr/bin/env bash
# NOT ipipd. A stand-in that speaks ipipd's CLI contract well enough to test the VM
# scenarios themselves (their topology, waits and checks) while the daemon is missing or
# broken: IPIPD_BIN=interop/vm/testing/fake-ipipd.sh interop/vm/run.sh seed
#
# FAKE_BREAK=mtu or FAKE_BREAK=route (pass it with VM_PASS_ENV=FAKE_BREAK) makes it get
# tunl0's MTU or its blackhole route wrong, to see the checks fail.
#
# It speaks no BGP: `run` reads the other nodes' configuration files from the directory
# next to its own and programs the kernel routes the contract describes. A pass with it
# says nothing about ipipd.
set -euo pipefail

die() { echo "fake-ipipd: $*" >&2; exit 1; }

# key FILE NAME: the first `NAME = value` in FILE, quotes and brackets removed.
key() { sed -n "s/^$2 *= *//p" "$1" | head -n1 | tr -d '"[] '; }

socket=/run/ipipd/ipipd.sock
config=/etc/ipipd/ipipd.toml
args=()
while (( $# )); do
    case $1 in
        --socket) socket=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]}"

alive() { [[ -f $socket ]] && kill -0 "$(cat "$socket")" 2>/dev/null; }
need_daemon() { alive || die "no daemon answers at $socket"; }
netns_of() { cat "$(dirname "$socket")/fake.netns"; }

# Programs NODE's routes from every config file in the configuration's directory tree.
program() {
    local cfg=$1 me block mode first other oaddr oblock
    me=$(key "$cfg" address)
    block=$(key "$cfg" blocks)
    mode=$(key "$cfg" mode)
    first=${block%/*}
    ip link set tunl0 up mtu 1480
    ip addr replace "$first/32" dev tunl0
    ip route replace blackhole "$block" proto bgp
    for other in "$(dirname "$(dirname "$cfg")")"/*/*.toml; do
        oaddr=$(key "$other" address)
        [[ $oaddr == "$me" ]] && continue
        oblock=$(key "$other" blocks)
        if [[ $mode == cross-subnet && ${oaddr%.*} == "${me%.*}" ]]; then
            ip route replace "$oblock" via "$oaddr" dev eth0 proto bgp
        else
            ip route replace "$oblock" via "$oaddr" dev tunl0 onlink proto bgp
        fi
    done
    local wl ip ifc
    wl=$(dirname "$socket")/fake.workloads
    [[ -f $wl ]] || return 0
    while read -r ip ifc; do
        ip route replace "$ip" dev "$ifc" proto bgp scope link
    done < "$wl"
}

# "address kind socket" per session: mesh nodes, then explicit peers.
peers() {
    local cfg=$1 base other addr kind
    base=$(dirname "$(dirname "$cfg")")
    {
        if [[ $(key "$cfg" mesh) != false ]]; then
            for other in "$base"/*/*.toml; do
                if [[ $other != "$cfg" ]]; then
                    echo "$(key "$other" address) mesh"
                fi
            done
        fi
        awk -F' *= *' '
            function out() { if (a != "") print a, k; a = "" }
            /^\[/ { out(); inpeer = ($0 == "[[peer]]"); k = "peer"; next }
            inpeer && $1 == "address" { a = $2; gsub(/"/, "", a) }
            inpeer && $1 == "rr_client" && $2 == "true" { k = "rr-client" }
            inpeer && $1 == "route_reflector" && $2 == "true" { k = "route-reflector" }
            END { out() }' "$cfg"
    } | while read -r addr kind; do
        for other in "$base"/*/*.toml; do
            if [[ $(key "$other" address) == "$addr" ]]; then
                echo "$addr $kind $(key "$other" socket)"
            fi
        done
    done
}

case ${1:-} in
    check-config) [[ -f $config ]] || die "$config: not found"; exit 0 ;;
    run)
        socket=$(key "$config" socket)
        mkdir -p "$(dirname "$socket")"
        ip netns identify $$ > "$(dirname "$socket")/fake.netns"
        program "$config"
        # Deliberate faults, to see the scenarios fail: FAKE_BREAK=mtu|route.
        case ${FAKE_BREAK:-} in
            mtu) ip link set tunl0 mtu 1400 ;;
            route) ip route del blackhole "$(key "$config" blocks)" ;;
        esac
        peers "$config" > "$(dirname "$socket")/fake.peers"
        echo $$ > "$socket"
        trap 'exit 0' TERM INT
        while sleep 1; do :; done
        ;;
    workload)
        need_daemon
        [[ ${2:-} == add ]] || die "only workload add"
        echo "$3 $4" >> "$(dirname "$socket")/fake.workloads"
        ip -n "$(netns_of)" route replace "$3" dev "$4" proto bgp scope link
        ;;
    show)
        need_daemon
        dir=$(dirname "$socket")
        case ${2:-} in
            peers)
                while read -r addr kind sock; do
                    state=Active
                    [[ -f $sock ]] && kill -0 "$(<"$sock")" 2>/dev/null && state=Established
                    printf '{"address":"%s","asn":64512,"state":"%s","kind":"%s","since":"2024-01-01T00:00:00Z","received":1,"accepted":1}\n' \
                        "$addr" "$state" "$kind"
                done < "$dir/fake.peers" | jq -s .
                ;;
            routes)
                ip -n "$(netns_of)" -j route show proto bgp | jq '[.[] | {
                    prefix: (if (.dst | test("/")) then .dst else .dst + "/32" end),
                    origin: (if .type == "blackhole" then "local" elif .gateway then "bgp" else "workload" end),
                    next_hop: (.gateway // null),
                    interface: (if .type == "blackhole" then null else .dev end),
                    peer: (.gateway // null), best: true, installed: true }]'
                ;;
            *) die "show peers|routes" ;;
        esac
        ;;
    *) die "unknown command ${1:-}" ;;
esac
