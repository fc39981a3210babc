#!/usr/bin/env bash
# The interop tier: ipipd against real BIRD 2, GoBGP and FRR in network namespaces.
#
#   interop/run.sh [TEST_TARGET...]
#
# Builds the release ipipd, then runs the interop test targets (default: every
# interop/tests/peers_*.rs) with at most two test threads. Each test builds its
# own namespaces and removes them, and stops every daemon it started, also on
# failure. Needs root and the Debian packages bird2, gobgpd and frr; fails (never
# skips) when they are missing.
#
# Environment:
#   IPIPD_TEST_LOG            RUST_LOG of the ipipd daemons under test (default info)
#   IPIPD_KEEP_TEST_DIRS=1    keep each daemon's config and log under /run/ipipd-test-*
#   INTEROP_THREADS           test threads (default 2)
#
# Exit status: 0 when every test passed, non-zero otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

if [ "$(id -u)" != 0 ]; then
    echo "interop: needs root (network namespaces)" >&2
    exit 1
fi
missing=()
for p in ip bird birdc gobgpd gobgp vtysh /usr/lib/frr/zebra /usr/lib/frr/bgpd /usr/lib/frr/bfdd; do
    command -v "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "interop: missing programs: ${missing[*]} (Debian packages iproute2 bird2 gobgpd frr)" >&2
    exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in interop/tests/peers_*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi
args=()
for t in "${targets[@]}"; do
    args+=(--test "$t")
done

target_dir=${CARGO_TARGET_DIR:-$repo/target}
cargo build --release -q --bin ipipd
export IPIPD_BIN="$target_dir/release/ipipd"
export RUST_BACKTRACE=0

start=$(date +%s)
status=0
cargo test -p interop --release -q --no-fail-fast "${args[@]}" -- --test-threads="${INTEROP_THREADS:-2}" || status=$?
echo "interop: ${#targets[@]} test targets (${targets[*]}) in $(( $(date +%s) - start )) s: $([ $status = 0 ] && echo ok || echo FAILED)"
exit $status
