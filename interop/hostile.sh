#!/usr/bin/env bash
# Hostile peers and bad input: ipipd against a scripted raw BGP peer in network
# namespaces (interop/src/rawpeer.rs).
#
#   interop/hostile.sh [TEST_TARGET...]
#
# Builds the release ipipd, then runs every interop/tests/hostile_*.rs target (or the
# ones named), one test at a time: the RFC 7606 matrix, header/OPEN/FSM errors,
# CVE-shaped inputs, TCP-MD5/GTSM/control-socket access, max-prefix and floods, and
# session flaps. Each test builds its own namespaces and removes them, and stops the
# daemons it started, also on failure. Needs root and iproute2; util-linux's setpriv
# for the control-socket permission test.
#
# Environment:
#   HOSTILE_FLAPS             flaps in hostile_flaps (default 3000)
#   HOSTILE_FLAPS_WINDOW      flaps per memory-measurement window (default 1000)
#   HOSTILE_HOLD_EXPIRIES     of which hold-timer expiries (default 12)
#   HOSTILE_FLOOD_SECONDS     duration of the UPDATE flood in hostile_limits (default 15)
#   IPIPD_TEST_LOG            RUST_LOG of the ipipd under test (default info)
#   IPIPD_KEEP_TEST_DIRS=1    keep each daemon's config and log under /run/ipipd-test-*
#
# Exit status: 0 when every test passed, non-zero otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

if [ "$(id -u)" != 0 ]; then
    echo "hostile: needs root (network namespaces)" >&2
    exit 1
fi
for p in ip setpriv; do
    if ! command -v "$p" >/dev/null 2>&1; then
        echo "hostile: missing program: $p (Debian packages iproute2, util-linux)" >&2
        exit 1
    fi
done

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in interop/tests/hostile_*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

target_dir=${CARGO_TARGET_DIR:-$repo/target}
cargo build --release -q --bin ipipd
export IPIPD_BIN="$target_dir/release/ipipd"
export RUST_BACKTRACE=0

start=$(date +%s)
failed=()
for t in "${targets[@]}"; do
    t0=$(date +%s)
    if cargo test -p interop --release -q --test "$t" -- --test-threads=1 --nocapture; then
        echo "hostile: $t ok in $(( $(date +%s) - t0 )) s"
    else
        echo "hostile: $t FAILED" >&2
        failed+=("$t")
    fi
done
echo "hostile: ${#targets[@]} test targets in $(( $(date +%s) - start )) s: $([ ${#failed[@]} = 0 ] && echo ok || echo "FAILED: ${failed[*]}")"
[ ${#failed[@]} = 0 ]
