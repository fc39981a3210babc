#!/usr/bin/env bash
# `ipipd lab` on a machine as bare as a fresh Debian 12: no ping (iputils-ping), no
# procps, nothing on PATH but iproute2's `ip`. The lab must either work or say in its
# last line what is missing, with an exit status that says which stage failed.
#
#   tests/lab_path.sh [IPIPD_BINARY]     (root; after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/ipipd}")
ip_bin=$(command -v ip) || { echo "lab_path: this machine has no ip (iproute2)" >&2; exit 1; }
bare=$(mktemp -d /tmp/ipipd-lab-path.XXXXXX)
trap 'rm -rf "$bare"' EXIT
mkdir "$bare/only-ip" "$bare/empty"
ln -s "$ip_bin" "$bare/only-ip/ip"
failed=0

# Runs the lab with PATH=$1; checks its exit status ($2) and that its last line
# contains $3.
check() {
    local path=$1 want_rc=$2 want_last=$3 rc=0
    shift 3
    env -i PATH="$path" "$bin" lab --once "$@" >"$bare/out" 2>&1 || rc=$?
    local last
    last=$(grep -v '^$' "$bare/out" | tail -n 1)
    if [ "$rc" = "$want_rc" ] && [[ $last == *"$want_last"* ]]; then
        echo "lab_path: ok: PATH=$path lab $*: exit $rc, last line: $last"
    else
        echo "lab_path: FAILED: PATH=$path lab $*: exit $rc (want $want_rc), last line: $last" >&2
        echo "  (want it to contain: $want_last); the whole output:" >&2
        sed 's/^/  | /' "$bare/out" >&2
        failed=$((failed + 1))
    fi
}

# Only `ip`: the lab works, echoes included (it sends them itself).
check "$bare/only-ip" 0 "ipipd lab: OK"
grep -q "3 of 3 echo replies" "$bare/out" ||
    { echo "lab_path: FAILED: no echo replies in the output" >&2; failed=$((failed + 1)); }
# Not even `ip`: stopped before anything is made, naming what to install.
check "$bare/empty" 2 "\`ip\` is not on PATH"
grep -q "apt-get install iproute2" "$bare/out" ||
    { echo "lab_path: FAILED: the failure does not say what to install" >&2; failed=$((failed + 1)); }
# etcd asked for but absent.
check "$bare/only-ip" 2 "apt-get install etcd-server" --datastore etcd
echo "$((5 - failed)) passed, $failed failed"
[ "$failed" = 0 ]
