#!/usr/bin/env bash
# The dataplane tier: every VM scenario, one VM each, one after the other.
#
#   interop/vm/all.sh [SCENARIO...]     (default: all of them, in the order below)
#
# Prints one line per scenario and a summary; exits non-zero if any failed. The same
# environment as run.sh applies (IPIPD_BIN, VM_TIMEOUT, VM_QUIET, ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $# -eq 0 ]]; then
    # ipip-smoke needs no ipipd; the others drive it.
    set -- ipip-smoke seed vxlan restarts cross-subnet route-reflector bird-reflector node-dies \
        node-dies-bfd restarts-bfd
fi

failed=()
start=$SECONDS
for s in "$@"; do
    t=$SECONDS
    if "$here/run.sh" "$s"; then
        echo "dataplane: $s: ok ($((SECONDS - t))s)"
    else
        rc=$?
        echo "dataplane: $s: FAILED with status $rc ($((SECONDS - t))s)" >&2
        failed+=("$s")
    fi
done
echo "dataplane: $(( $# - ${#failed[@]} )) of $# scenarios passed in $((SECONDS - start))s"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "dataplane: failed: ${failed[*]}" >&2
    exit 1
fi
