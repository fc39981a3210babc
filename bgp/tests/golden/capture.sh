#!/bin/sh
# Records real BGP messages from BIRD 2 and GoBGP into *.txt next to this script.
#
# Two network namespaces made here (and removed on exit, also on failure) joined by a veth
# pair: "a" (10.255.0.1, fd00:255::1) runs listener.py, a passive recording BGP speaker;
# "b" (10.255.0.2, fd00:255::2) runs the daemon under test, which connects to it.
# Needs root, iproute2, python3, bird (Debian bird2) and gobgpd/gobgp (Debian gobgpd).
#
# usage: sudo sh capture.sh [scenario...]   (default: all)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TAG=$$
NS_A=ipipd-golden-a-$TAG
NS_B=ipipd-golden-b-$TAG
WORK=$(mktemp -d)
PIDS=""

cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add "gva$TAG" type veth peer name "gvb$TAG"
ip link set "gva$TAG" netns "$NS_A"
ip link set "gvb$TAG" netns "$NS_B"
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
ip -n "$NS_A" addr add 10.255.0.1/24 dev "gva$TAG"
ip -n "$NS_B" addr add 10.255.0.2/24 dev "gvb$TAG"
ip -n "$NS_A" addr add fd00:255::1/64 dev "gva$TAG" nodad
ip -n "$NS_B" addr add fd00:255::2/64 dev "gvb$TAG" nodad
ip -n "$NS_A" link set "gva$TAG" up
ip -n "$NS_B" link set "gvb$TAG" up

A="ip netns exec $NS_A"
B="ip netns exec $NS_B"

bird_conf() { # $1 = extra channel options
    cat <<EOF
log "$WORK/bird.log" all;
router id 10.255.0.2;
protocol device {}
protocol static s4 {
    ipv4;
    route 101.76.9.128/26 blackhole;
    route 101.76.9.192/26 blackhole;
    route 101.76.10.0/26 blackhole;
}
protocol static s6 {
    ipv6;
    route fd00:101:76::40/122 blackhole;
    route fd00:101:76::80/122 blackhole;
}
filter export_static {
    if source != RTS_STATIC then reject;
    bgp_med = 50;
    bgp_community.add((65001, 100));
    bgp_ext_community.add((rt, 65001, 7));
    bgp_large_community.add((4200000001, 1, 2));
    accept;
}
protocol bgp peer1 {
    local 10.255.0.2 as 4200000001;
    neighbor 10.255.0.1 as 65001;
    hold time 90;
    connect retry time 1;
    graceful restart on;
    enable extended messages on;
    ipv4 { import all; export filter export_static; $1 };
    ipv6 { import all; export filter export_static; next hop address fd00:255::2; $1 };
}
EOF
}

run_bird() { # $1 = name, $2 = BIRD channel options, rest = listener options
    name=$1 opts=$2
    shift 2
    bird_conf "$opts" >"$WORK/bird.conf"
    $A python3 "$HERE/listener.py" --listen 10.255.0.1 --asn 65001 --router-id 10.255.0.1 \
        --out "$HERE/$name.txt" --timeout 40 \
        --then "birdc -s $WORK/bird.ctl reload in peer1" \
        --then "birdc -s $WORK/bird.ctl disable peer1 '\"maintenance\"'" "$@" &
    lpid=$!
    PIDS="$PIDS $lpid"
    sleep 0.5
    $B bird -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid" -f &
    bpid=$!
    PIDS="$PIDS $bpid"
    wait "$lpid" || true
    kill "$bpid" 2>/dev/null || true
    wait "$bpid" 2>/dev/null || true
}

run_gobgp() { # $1 = name, rest = listener options
    name=$1
    shift
    cat >"$WORK/gobgp.toml" <<EOF
[global.config]
  as = 4200000002
  router-id = "10.255.0.2"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.255.0.1"
    peer-as = 65001
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 90
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
EOF
    $B gobgpd -f "$WORK/gobgp.toml" --api-hosts 127.0.0.1:50077 --pprof-disable -l warn &
    gpid=$!
    PIDS="$PIDS $gpid"
    sleep 2
    gob="$B gobgp -p 50077"
    $gob global rib add 101.88.228.192/26 -a ipv4 community 65001:100 med 50
    $gob global rib add 101.88.229.0/26 -a ipv4 community 65001:100 med 50
    $gob global rib add fd00:101:88::40/122 -a ipv6 nexthop fd00:255::2
    $A python3 "$HERE/listener.py" --listen 10.255.0.1 --asn 65001 --router-id 10.255.0.1 \
        --out "$HERE/$name.txt" --timeout 40 \
        --then "$gob neighbor 10.255.0.1 shutdown --reason maintenance" "$@"
    kill "$gpid" 2>/dev/null || true
    wait "$gpid" 2>/dev/null || true
}

scenarios=${*:-"bird_ebgp bird_two_octet bird_add_path gobgp_ebgp"}
for s in $scenarios; do
    echo "== $s" >&2
    case $s in
    bird_ebgp) run_bird bird_ebgp "" --send-refresh ;;
    bird_two_octet) run_bird bird_two_octet "" --no-four-octet ;;
    bird_add_path) run_bird bird_add_path "add paths tx;" --add-path ipv4,ipv6 ;;
    gobgp_ebgp) run_gobgp gobgp_ebgp --graceful-restart ;;
    *) echo "unknown scenario $s" >&2; exit 1 ;;
    esac
done
