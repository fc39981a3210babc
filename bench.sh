#!/usr/bin/env bash
# Runs every benchmark: ipipd side by side with BIRD 2, GoBGP and FRR on this machine
# (root; everything happens in network namespaces the run creates and removes).
# Prints the tables and writes them to interop/bench/results.md.
#
#   ./bench.sh                  # the full run (about 20 minutes on 2 cores)
#   ./bench.sh --quick          # a few minutes: small sizes, one run each
#   ./bench.sh --only throughput --sizes 10x10000,10x100000,20x100000 --runs 5
#
# Any argument goes to ipipd-bench (`ipipd-bench --help` lists them).
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v bird >/dev/null 2>&1 || missing+=(bird2)
command -v gobgpd >/dev/null 2>&1 || missing+=(gobgpd)
[ -x /usr/lib/frr/bgpd ] || missing+=(frr)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin ipipd
cargo build --release -p interop --bin loadgen --bin ipipd-bench
cargo build --release -p fib --example install_bench

exec "$target/release/ipipd-bench" \
    --ipipd "$target/release/ipipd" \
    --loadgen "$target/release/loadgen" \
    --install-bench "$target/release/examples/install_bench" \
    --out interop/bench/results.md \
    --command "./bench.sh${*:+ $*}" \
    "$@"
