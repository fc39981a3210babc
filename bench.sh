#!/usr/bin/env bash
# Runs every benchmark: ipipd side by side with BIRD 2, GoBGP and FRR on this machine
# (root; everything happens in network namespaces the run creates and removes).
# Prints the tables and writes them to interop/bench/results.md.
#
#   ./bench.sh                  # the full run (about 20 minutes on 2 cores)
#   ./bench.sh --quick          # a few minutes: small sizes, one run each
#   ./bench.sh --only throughput --sizes 10x10000,10x100000,20x100000 --runs 5
#   ./bench.sh --baseline REV   # also an ipipd built from git revision REV: before/after rows
#   ./bench.sh --profile dist   # the daemon (and the baseline) built as shipped: the dist
#                               # profile (LTO, one codegen unit, stripped) instead of release
#   ./bench.sh --only datastore # the etcd datastore: claim and join latency at 50 nodes, idle load
#   ./bench.sh --only datastore-scale  # the etcd datastore with 1,000 simulated nodes (ipipd's
#                               # datastore code in one process): first pod, join → every view,
#                               # etcd CPU and requests idle and in a 100-node join storm
#                               # (--ds-scale-nodes 200,1000 --ds-scale-modes apply,reread)
#   ./bench.sh --only rr-fib    # the route reflector with every route written to the kernel,
#                               # vs BIRD 2 with a kernel protocol (100k and 1M routes)
#   ./bench.sh --only cni       # CNI ADD/DEL latency, each plugin's peak RSS and start time:
#                               # ipipd-cni vs ptp + host-local
#   ./bench.sh --only bfd       # CPU of 100 BFD sessions at 100 ms: ipipd vs BIRD 2
#   ./bench.sh --only nat       # new pod → outside connections per second through ipipd's
#                               # NAT vs one hand-written masquerade rule
#   ./bench.sh --only vxlan     # pod-to-pod TCP throughput and CPU per GB (iperf3) through
#                               # VXLAN vs no encapsulation, two nodes in namespaces
#   ./bench.sh --only rr-clients  # a route-reflector cluster: 2 reflectors, 1,000 clients with
#                               # one block each (the load generator's `clients` mode);
#                               # ipipd vs BIRD 2 as the reflectors (--rr-clients N to resize)
#
# A run of some parts (--only) replaces those parts' sections of results.md and keeps
# the others, each section saying which run measured it.
#
# Any other argument goes to ipipd-bench (`ipipd-bench --help` lists them).
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v bird >/dev/null 2>&1 || missing+=(bird2)
command -v gobgpd >/dev/null 2>&1 || missing+=(gobgpd)
[ -x /usr/lib/frr/bgpd ] || missing+=(frr)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
# GNU time: the CNI part's peak RSS of each plugin process.
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
target=$(cd "$target" && pwd)

shown="./bench.sh${*:+ $*}"
args=()
baseline=()
profile=release
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="${2:?--profile needs a cargo profile}"; shift 2 ;;
        --profile=*) profile="${1#*=}"; shift ;;
        --baseline) rev="${2:?--baseline needs a git revision}"; shift 2 ;;
        --baseline=*) rev="${1#*=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -n "${rev:-}" ]; then
    # The revision's tree, built on its own: the working tree is left alone.
    src="$target/baseline-src"
    rm -rf "$src"
    mkdir -p "$src"
    git archive "$rev" | tar -x -C "$src"
    # A target directory per revision: git archive gives every file the commit's time,
    # so in a directory shared with another revision's build cargo would take the
    # other revision's crates for fresh.
    built="$target/baseline-$(git rev-parse --short "$rev")"
    (cd "$src" && CARGO_TARGET_DIR="$built" cargo build --profile "$profile" --bin ipipd --bin ipipd-cni)
    baseline=(--ipipd-baseline "$built/$profile/ipipd"
        --baseline-label "$(git rev-parse --short "$rev")")
fi

cargo build --release
# The daemon and plugin under test (the cni part takes the plugin beside the daemon);
# with --profile release this is the build above.
cargo build --profile "$profile" --bin ipipd --bin ipipd-cni
cargo build --release -p interop --bin loadgen --bin ipipd-bench
cargo build --release -p fib --example install_bench

exec "$target/release/ipipd-bench" \
    --ipipd "$target/$profile/ipipd" \
    --loadgen "$target/release/loadgen" \
    --install-bench "$target/release/examples/install_bench" \
    --out interop/bench/results.md \
    --command "$shown" \
    ${baseline[@]+"${baseline[@]}"} \
    ${args[@]+"${args[@]}"}
