#!/bin/sh
# Runs every fuzz target for a few seconds each; fails on the first crash.
#
# usage: fuzz/smoke.sh [seconds per target, default 30]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz needs nightly-only compiler
# flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them for this build only.
set -eu
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-30}
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked
fi
cargo fuzz build
for target in $(cargo fuzz list); do
    echo "== $target (${SECONDS_PER_TARGET}s)" >&2
    mkdir -p "corpus/$target"
    # libFuzzer exits non-zero and leaves artifacts/<target>/crash-* on a crash.
    cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1
done
