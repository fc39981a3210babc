#!/usr/bin/env bash
# Runs every test tier of ipipd on a Debian 12 machine, as root, installing the
# Debian packages it needs first. Usage: ./test.sh [TIER...]
# Tiers: unit lint lab fuzz interop dataplane (default: all, in that order).
# IPIPD_SKIP_TIERS="a b" skips tiers explicitly (they are reported as skipped).
set -euo pipefail
cd "$(dirname "$0")"

TIERS=("$@")
[ ${#TIERS[@]} -eq 0 ] && TIERS=(unit lint lab fuzz interop dataplane)
SKIP=" ${IPIPD_SKIP_TIERS:-} "
PACKAGES=(iproute2 bird2 gobgpd frr tcpdump qemu-system-x86 busybox-static procps psmisc)

log() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "test.sh needs root (network namespaces, packages)" >&2
        exit 1
    fi
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

tier_unit() {
    log "unit, property and netns tests (cargo test, all crates but the interop scenarios)"
    # The interop crate's scenario tests run in their own tier.
    cargo test --workspace --release --exclude interop
    cargo test --release -p interop --lib
}

tier_lint() {
    log "clippy (-D warnings)"
    cargo clippy --workspace --all-targets --release -q -- -D warnings
}

tier_lab() {
    log "ipipd lab --once (3 nodes in network namespaces)"
    cargo build --release -q
    ./target/release/ipipd lab --once
}

tier_fuzz() {
    log "fuzz smoke (each target for ${FUZZ_SECONDS:-30} s)"
    if [ -x fuzz/smoke.sh ]; then
        fuzz/smoke.sh "${FUZZ_SECONDS:-30}"
    else
        echo "fuzz/smoke.sh missing" >&2
        return 1
    fi
}

tier_interop() {
    log "interop with BIRD 2, GoBGP and FRR; hostile peers"
    for script in interop/run.sh interop/hostile.sh; do
        if [ ! -x "$script" ]; then
            echo "$script missing" >&2
            return 1
        fi
    done
    interop/run.sh
    interop/hostile.sh
}

tier_dataplane() {
    log "dataplane: the seed scenario in a VM with real IPIP"
    if [ -x interop/vm/all.sh ]; then
        cargo build --release -q
        interop/vm/all.sh
    else
        echo "interop/vm/all.sh missing" >&2
        return 1
    fi
}

need_root
install_packages
declare -A RESULT
failed=0
for t in "${TIERS[@]}"; do
    if [[ "$SKIP" == *" $t "* ]]; then
        RESULT[$t]="skipped (IPIPD_SKIP_TIERS)"
        continue
    fi
    start=$(date +%s)
    if "tier_$t"; then
        RESULT[$t]="ok ($(( $(date +%s) - start )) s)"
    else
        RESULT[$t]="FAILED ($(( $(date +%s) - start )) s)"
        failed=1
    fi
done
log "summary"
for t in "${TIERS[@]}"; do printf '  %-10s %s\n' "$t" "${RESULT[$t]}"; done
exit $failed
