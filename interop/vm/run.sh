#!/usr/bin/env bash
# Runs one dataplane scenario inside a small qemu VM (TCG) with Debian's kernel, because
# the kernel of the development and CI machines has no ipip driver.
#
#   interop/vm/run.sh SCENARIO [ARGS...]
#
# SCENARIO is a name from interop/vm/scenarios/ (with or without .sh) or a path to a
# script inside the repository. The guest sees the host's root filesystem read-only at
# the same paths, so the script, the ipipd binary, ip, tcpdump, ... are the host's own.
#
# Environment:
#   IPIPD_BIN     ipipd binary for the scenario (default: target/release/ipipd in the repo)
#   VM_TIMEOUT    hard limit in seconds for the whole VM run (default: the scenario's
#                 `# vm-timeout: N` line, else 170)
#   VM_SMP        guest CPUs (default 1: with TCG, two were about half as fast here)
#   VM_MEM        guest memory in MiB (default 1024)
#   VM_QUIET=1    do not stream the guest console; print it only on failure
#   VM_CACHE      cache directory (default .vm-cache at the repository root); must not be
#                 under /tmp or /run, which the guest covers with tmpfs
#   VM_PASS_ENV   space-separated names of further variables to hand to the scenario
#
# Exit status: the scenario's own exit status; 124 when the VM run timed out; 125 when
# the VM did not boot or did not report a result; 2 for usage errors.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() { echo "vm: $*" >&2; exit 2; }

[[ $# -ge 1 ]] || die "usage: $0 SCENARIO [ARGS...]"
scenario=$1
shift
if [[ -f $scenario ]]; then
    scenario=$(cd "$(dirname "$scenario")" && pwd)/$(basename "$scenario")
elif [[ -f $here/scenarios/$scenario ]]; then
    scenario=$here/scenarios/$scenario
elif [[ -f $here/scenarios/$scenario.sh ]]; then
    scenario=$here/scenarios/$scenario.sh
else
    die "no scenario '$scenario' (see $here/scenarios/)"
fi

# A scenario may ask for a longer limit with a line `# vm-timeout: SECONDS`.
timeout_s=${VM_TIMEOUT:-$(awk '/^# vm-timeout: *[0-9]+/ && !found++ { print $3 }' "$scenario")}
timeout_s=${timeout_s:-170}
smp=${VM_SMP:-1}
mem=${VM_MEM:-1024}
cache=${VM_CACHE:-$repo/.vm-cache}
ipipd_bin=${IPIPD_BIN:-target/release/ipipd}
[[ $ipipd_bin == /* ]] || ipipd_bin=$repo/$ipipd_bin

# The guest mounts tmpfs over these, so nothing it must read can live there.
guest_hidden() { [[ $1 == /tmp || $1 == /tmp/* || $1 == /run || $1 == /run/* ]]; }
guest_hidden "$cache" && die "VM_CACHE=$cache is under /tmp or /run, which the guest cannot see"
guest_hidden "$repo" && die "the repository ($repo) is under /tmp or /run, which the guest cannot see"
guest_hidden "$ipipd_bin" && die "IPIPD_BIN=$ipipd_bin is under /tmp or /run, which the guest cannot see"

# --- host packages -------------------------------------------------------------------

ensure_packages() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    # The initramfs has no libc, so it needs the static busybox, not just any busybox.
    installed busybox-static || missing+=(busybox-static)
    # What the scenarios run inside the guest (from the host root, shared read-only).
    command -v ip >/dev/null || missing+=(iproute2)
    command -v ping >/dev/null || missing+=(iputils-ping)
    command -v tcpdump >/dev/null || missing+=(tcpdump)
    command -v jq >/dev/null || missing+=(jq)
    command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: this needs a Debian host"
    [[ ${#missing[@]} -eq 0 ]] && return 0
    echo "vm: installing ${missing[*]}"
    # Another apt may be running on this machine: wait for its lock instead of failing.
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"; then
        apt-get -o DPkg::Lock::Timeout=600 update
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
    fi
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

# --- kernel ----------------------------------------------------------------------------

# Prints the name of the versioned kernel package linux-image-amd64 depends on, or
# nothing when apt cannot tell.
kernel_package() {
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !found++ { print $2 }')
    if [[ -z $pkg ]]; then
        apt-get -o DPkg::Lock::Timeout=600 update >&2 || true
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !found++ { print $2 }')
    fi
    echo "$pkg"
}

# Leaves the unpacked kernel package in $cache/kernel/PKG and sets kroot and kver.
ensure_kernel() {
    local pkg deb old
    pkg=$(kernel_package)
    if [[ -z $pkg ]]; then
        # apt cannot resolve it (no package lists, no registry): use what is cached.
        kroot=$(ls -1dt "$cache"/kernel/*/.complete 2>/dev/null | sed -n '1s|/.complete$||p')
        [[ -n $kroot ]] || die "cannot resolve the package behind linux-image-amd64, and none is cached"
        echo "vm: apt cannot resolve linux-image-amd64; using the cached $(basename "$kroot")"
    else
        kroot=$cache/kernel/$pkg
    fi
    if [[ ! -f $kroot/.complete ]]; then
        echo "vm: fetching $pkg"
        mkdir -p "$cache/debs"
        rm -f "$cache/debs/${pkg}_"*.deb
        (cd "$cache/debs" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
        deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | sed -n 1p)
        [[ -n $deb ]] || die "apt-get download $pkg produced no .deb"
        rm -rf "$kroot"
        mkdir -p "$kroot"
        dpkg-deb -x "$deb" "$kroot"
        rm -f "$deb"
        touch "$kroot/.complete"
        # An unpacked kernel is ~400 MB: drop the ones a newer package replaced.
        for old in "$cache"/kernel/*/; do
            [[ ${old%/} == "$kroot" ]] || rm -rf "$old"
        done
    fi
    kver=$(ls "$kroot/lib/modules" | sed -n 1p)
    [[ -n $kver && -f $kroot/boot/vmlinuz-$kver ]] || die "no kernel image in $kroot"
}

# --- initramfs -------------------------------------------------------------------------

declare -A mod_path=()
declare -A mod_seen=()
mod_order=()

index_modules() {
    local f name
    while IFS= read -r -d '' f; do
        name=$(basename "$f")
        name=${name%%.ko*}
        mod_path[${name//-/_}]=$f
    done < <(find "$kroot/lib/modules/$kver" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' | tr '\n' '\0')
}

# Writes module NAME, uncompressed, to DIR/NAME.ko.
unpack_module() {
    local src=$1 dst=$2
    case $src in
        *.ko.xz) xz -dc "$src" > "$dst" ;;
        *.ko.zst) zstd -q -dc "$src" > "$dst" ;;
        *.ko.gz) gzip -dc "$src" > "$dst" ;;
        *) cp "$src" "$dst" ;;
    esac
}

module_depends() {
    local ko=$1
    if command -v objcopy >/dev/null; then
        objcopy -O binary --only-section=.modinfo "$ko" /dev/stdout 2>/dev/null | tr '\0' '\n'
    else
        tr '\0' '\n' < "$ko"
    fi | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
}

# Depth-first: dependencies land in mod_order before the modules that need them.
add_module() {
    local name=${1//-/_} dir=$2 dep
    [[ -n ${mod_seen[$name]:-} ]] && return 0
    mod_seen[$name]=1
    if [[ -z ${mod_path[$name]:-} ]]; then
        if grep -Eq "/${name//_/[-_]}\.ko$" "$kroot/lib/modules/$kver/modules.builtin" 2>/dev/null; then
            return 0
        fi
        die "module $name is neither in $kver's modules nor built in"
    fi
    unpack_module "${mod_path[$name]}" "$dir/$name.ko"
    for dep in $(module_depends "$dir/$name.ko"); do
        add_module "$dep" "$dir"
    done
    mod_order+=("$name")
}

# Builds (or reuses) the initramfs for this kernel and sets initrd.
ensure_initramfs() {
    local key
    key=$( { echo "$kver"; cat "$here/guest/init" "$here/guest/modules.list" /bin/busybox; } |
        sha256sum | cut -c1-16)
    initrd=$cache/initramfs/$kver-$key.cpio.gz
    [[ -f $initrd ]] && return 0
    echo "vm: building the initramfs for $kver"
    local build=$cache/initramfs/build-$$
    rm -rf "$build"
    mkdir -p "$build"/{bin,dev,proc,sys,modules,host}
    cp /bin/busybox "$build/bin/busybox"
    cp "$here/guest/init" "$build/init"
    chmod 755 "$build/init" "$build/bin/busybox"
    index_modules
    local m
    while read -r m; do
        m=${m%%#*}
        m=${m//[[:space:]]/}
        [[ -n $m ]] && add_module "$m" "$build/modules"
    done < "$here/guest/modules.list"
    printf '%s\n' "${mod_order[@]}" > "$build/modules/order"
    (cd "$build" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -1 > "$initrd.part"
    mv "$initrd.part" "$initrd"
    find "$cache/initramfs" -maxdepth 1 -name '*.cpio.gz' ! -path "$initrd" -delete
    rm -rf "$build"
    echo "vm: modules: ${mod_order[*]}"
}

# --- run -------------------------------------------------------------------------------

ensure_packages
mkdir -p "$cache"
exec 9> "$cache/.lock"
flock 9
ensure_kernel
ensure_initramfs
flock -u 9

name=$(basename "$scenario" .sh)
rundir=$cache/runs/$name-$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$rundir"
# Old runs: keep the 20 newest.
ls -1dt "$cache/runs"/*/ 2>/dev/null | tail -n +21 | xargs -r rm -rf

{
    echo '#!/bin/bash'
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    echo 'export HOME=/root TERM=dumb LC_ALL=C'
    echo 'export VM_RESULTS=/run/vm-results VM_GUEST=1'
    printf 'export REPO=%q IPIPD_BIN=%q\n' "$repo" "$ipipd_bin"
    for v in ${VM_PASS_ENV:-}; do
        [[ -n ${!v+x} ]] && printf 'export %s=%q\n' "$v" "${!v}"
    done
    printf 'cd %q\n' "$repo"
    printf 'exec bash %q' "$scenario"
    printf ' %q' "$@"
    echo
} > "$rundir/job.sh"

log=$rundir/console.log
# Drops carriage returns and the terminal escapes the firmware prints.
console_filter='s/\r//g; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' 
: > "$log"
qemu_pid=
tail_pid=
cleanup() {
    [[ -n $qemu_pid ]] && kill -KILL "$qemu_pid" 2>/dev/null || true
    [[ -n $tail_pid ]] && kill "$tail_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "vm: $name: kernel $kver, ${smp} cpu, ${mem} MiB, timeout ${timeout_s}s, log $log"
start=$SECONDS
qemu-system-x86_64 \
    -accel tcg -cpu "${VM_CPU:-max}" -smp "$smp" -m "$mem" \
    -nographic -no-reboot -nic none \
    -kernel "$kroot/boot/vmlinuz-$kver" -initrd "$initrd" \
    -append 'console=ttyS0 quiet panic=-1' \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$rundir,mount_tag=results,security_model=none" \
    < /dev/null > "$log" 2>&1 &
qemu_pid=$!

if [[ ${VM_QUIET:-0} != 1 ]]; then
    # tail stops by itself once qemu is gone; sed ends with it.
    tail -n +1 -f --pid="$qemu_pid" "$log" > >(sed -u "$console_filter") &
    tail_pid=$!
fi

timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
    if (( SECONDS - start >= timeout_s )); then
        timed_out=1
        kill -TERM "$qemu_pid" 2>/dev/null || true
        sleep 2
        kill -KILL "$qemu_pid" 2>/dev/null || true
        break
    fi
    sleep 1
done
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
if [[ -n $tail_pid ]]; then
    # Let tail print what is left, then stop it.
    sleep 0.5
    kill "$tail_pid" 2>/dev/null || true
    wait "$tail_pid" 2>/dev/null || true
    tail_pid=
fi
elapsed=$((SECONDS - start))

rc=
if [[ -f $rundir/rc ]]; then
    rc=$(tr -dc '0-9' < "$rundir/rc")
fi
if [[ -z $rc ]]; then
    rc=$(tr -d '\r' < "$log" | sed -n 's/^VM-SCENARIO-EXIT=\([0-9]*\)$/\1/p' | tail -n1)
fi

show_log() {
    if [[ ${VM_QUIET:-0} == 1 ]]; then
        echo "----- guest console (last 200 lines) -----" >&2
        sed "$console_filter" "$log" | tail -n 200 >&2
        echo "------------------------------------------" >&2
    fi
}

if (( timed_out )); then
    show_log
    echo "vm: $name: FAILED: timed out after ${timeout_s}s (log $log)" >&2
    exit 124
fi
if [[ -z $rc ]]; then
    show_log
    echo "vm: $name: FAILED: the VM stopped without reporting a result after ${elapsed}s (log $log)" >&2
    exit 125
fi
if [[ $rc != 0 ]]; then
    show_log
    echo "vm: $name: FAILED with exit status $rc after ${elapsed}s (log $log)" >&2
    exit "$rc"
fi
echo "vm: $name: passed in ${elapsed}s"
