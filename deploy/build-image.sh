#!/usr/bin/env bash
# Builds the ipipd container image offline: no registry, no network. The image holds
# the dist-profile binaries of this tree (IPIPD_PROFILE=release for the release build), the shared libraries they load (found with ldd),
# and the example configuration — nothing else.
#
#   deploy/build-image.sh [TAG] [-- PODMAN-OPTIONS...]   (default tag ipipd:latest)
#
# Needs `cargo build --profile dist` first, and podman. PODMAN-OPTIONS go before `build`
# (e.g. --root/--runroot/--storage-driver for a private store).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-ipipd:latest}
shift || true
[ "${1:-}" = "--" ] && shift
target=${CARGO_TARGET_DIR:-$repo/target}
profile=${IPIPD_PROFILE:-dist}
ctx="$target/image"
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/ipipd"
for bin in ipipd ipipd-cni; do
    [ -x "$target/$profile/$bin" ] || { echo "build-image: $target/$profile/$bin missing: cargo build --profile $profile" >&2; exit 1; }
    cp "$target/$profile/$bin" "$ctx/rootfs/usr/bin/"
    strip "$ctx/rootfs/usr/bin/$bin" 2>/dev/null || true
done
cp "$repo/deploy/examples/ipipd.toml" "$ctx/rootfs/etc/ipipd/ipipd.toml"
# The libraries each binary loads, the dynamic loader included, at the same paths.
libs=$(for bin in ipipd ipipd-cni; do
    ldd "$target/$profile/$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u)
for lib in $libs; do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
done
cp "$repo/deploy/Containerfile" "$ctx/Containerfile"
podman "$@" build --network none -f "$ctx/Containerfile" -t "$tag" "$ctx"
