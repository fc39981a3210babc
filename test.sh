#!/usr/bin/env bash
# Runs every test tier of ipipd on a Debian 12 machine, as root, installing the
# Debian packages it needs first. Usage: ./test.sh [TIER...]
# Tiers: selftest unit lint lab runtime datastore soak package fuzz interop dataplane (default: all, in that order).
# IPIPD_SKIP_TIERS="a b" skips tiers explicitly (they are reported as skipped, and the
# run still exits non-zero unless IPIPD_ALLOW_SKIP=1: a skipped tier is not a pass).
#
# Every tier runs in its own bash process with `set -euo pipefail` in force, so the
# first failing command of a tier fails the tier, and a failed tier fails the run.
# (A tier function called as `if tier_x` would run with errexit silently off.)
# IPIPD_EXTRA_TIERS=FILE sources FILE for more tier_* functions; the selftest tier
# uses it to prove that an injected failing step fails the run.
set -euo pipefail
cd "$(dirname "$0")"

ALL_TIERS=(selftest unit lint lab runtime datastore soak package fuzz interop dataplane)
PACKAGES=(iproute2 etcd-server etcd-client bird2 gobgpd frr tcpdump qemu-system-x86 busybox-static procps psmisc
          iputils-ping jq podman runc containernetworking-plugins util-linux systemd prometheus curl openssl
          nftables)

log() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "test.sh needs root (network namespaces, packages)" >&2
        exit 1
    fi
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

tier_selftest() {
    log "selftest: a failing step inside a tier fails the run"
    tests/testsh_selftest.sh
}

tier_unit() {
    log "unit, property and netns tests (cargo test, all crates but the interop scenarios)"
    # tests/cni.rs runs the ipipd-cni binary of this build: build it first.
    cargo build --release
    # The interop crate's scenario tests run in their own tier.
    cargo test --workspace --release --exclude interop
    cargo test --release -p interop --lib
}

tier_lint() {
    log "clippy (-D warnings), rustfmt"
    cargo clippy --workspace --all-targets --release -q -- -D warnings
    cargo fmt --all --check
}

tier_lab() {
    log "ipipd lab --once (3 nodes in network namespaces)"
    cargo build --release -q
    ./target/release/ipipd lab --once
    log "ipipd lab as on a fresh Debian 12: nothing on PATH but ip (no ping), then not even ip"
    tests/lab_path.sh target/release/ipipd
    log "ipipd lab --once --datastore etcd (one etcd member, one config for every node)"
    ./target/release/ipipd lab --once --datastore etcd
    log "ipipd lab --once --encapsulation vxlan (pods ping through real VXLAN devices)"
    ./target/release/ipipd lab --once --encapsulation vxlan
}

tier_runtime() {
    log "real programs around ipipd: podman runs pods through ipipd-cni and builds and runs the image (the DaemonSet pair: daemon and BFD keeper); Prometheus scrapes ipipd"
    cargo build --release -q
    # The image ships the dist profile (deploy/build-image.sh).
    cargo build --profile dist -q -p ipipd -p ipipd-cni
    cargo test --release -p interop --test runtime_podman --test runtime_prometheus --test runtime_image --test runtime_pod_bfd -- --test-threads=1
}

tier_datastore() {
    log "etcd datastore: a real 3-member etcd cluster in namespaces, nodes from one config"
    cargo build --release -q
    cargo test --release -p interop --test datastore_etcd
}

tier_soak() {
    log "soak: the shipped ConfigMap on 6 nodes with a real etcd, pods through ipipd-cni, restarts, freezes, reloads, a join and a removal; invariants checked all along (IPIPD_SOAK_S, IPIPD_SOAK_SEED)"
    cargo build --release -q
    cargo test --release -p interop --test soak -- --nocapture
}

tier_package() {
    log "Debian package: build with cargo-deb (dist profile), dpkg -i, check, remove and purge"
    tests/package.sh
}

tier_fuzz() {
    log "fuzz smoke (each target for ${FUZZ_SECONDS:-30} s)"
    fuzz/smoke.sh "${FUZZ_SECONDS:-30}"
}

tier_interop() {
    log "interop with BIRD 2, GoBGP and FRR; hostile peers"
    interop/run.sh
    interop/hostile.sh
}

tier_dataplane() {
    log "dataplane: the seed scenario in a VM with real IPIP and VXLAN"
    cargo build --release -q
    interop/vm/all.sh
}

if [ -n "${IPIPD_EXTRA_TIERS:-}" ]; then
    # shellcheck source=/dev/null
    . "$IPIPD_EXTRA_TIERS"
fi

# Child mode: one tier, errexit in force (this process is not in a condition context).
if [ "${1:-}" = "--run-tier" ]; then
    tier=$2
    set -E
    trap 'echo "test.sh: tier $tier: \`$BASH_COMMAND\` failed with status $? (line $LINENO)" >&2' ERR
    "tier_$tier"
    exit 0
fi

TIERS=("$@")
[ ${#TIERS[@]} -eq 0 ] && TIERS=("${ALL_TIERS[@]}")
for t in "${TIERS[@]}"; do
    if ! declare -F "tier_$t" >/dev/null; then
        echo "test.sh: unknown tier '$t' (tiers: ${ALL_TIERS[*]})" >&2
        exit 2
    fi
done
SKIP=" ${IPIPD_SKIP_TIERS:-} "

need_root
[ "${IPIPD_NO_INSTALL:-}" = 1 ] || install_packages
declare -A RESULT
failed=0
skipped=0
run_start=$(date +%s)
for t in "${TIERS[@]}"; do
    if [[ "$SKIP" == *" $t "* ]]; then
        RESULT[$t]="skipped (IPIPD_SKIP_TIERS)"
        skipped=1
        continue
    fi
    start=$(date +%s)
    rc=0
    "$BASH" "$0" --run-tier "$t" || rc=$?
    if [ "$rc" = 0 ]; then
        RESULT[$t]="ok ($(( $(date +%s) - start )) s)"
    else
        RESULT[$t]="FAILED with status $rc ($(( $(date +%s) - start )) s)"
        failed=1
    fi
done
log "summary ($(( $(date +%s) - run_start )) s)"
for t in "${TIERS[@]}"; do printf '  %-10s %s\n' "$t" "${RESULT[$t]}"; done
if [ "$failed" = 0 ] && [ "$skipped" = 1 ] && [ "${IPIPD_ALLOW_SKIP:-}" != 1 ]; then
    echo "test.sh: tiers were skipped; set IPIPD_ALLOW_SKIP=1 to accept that" >&2
    exit 3
fi
exit $failed
