#!/usr/bin/env bash
# The Debian package as a user meets it: built with cargo-deb from the dist build,
# installed with dpkg -i on this machine, checked (the binaries run, the packaged example
# configuration is valid, systemd accepts the unit, the CNI plugin answers VERSION, the
# man pages open and the completions load), then removed and purged — leaving none of
# its files behind.
#
#   tests/package.sh        (root; builds the dist profile; installs cargo-deb)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "package: installing cargo-deb from crates.io" >&2
    cargo install cargo-deb --locked
fi
if dpkg-query -W -f='${Status}' ipipd 2>/dev/null | grep -q "install ok installed"; then
    echo "package: an ipipd package is installed already; refusing to replace it" >&2
    exit 1
fi

rm -rf target/debian
cargo build --profile dist -q -p ipipd -p ipipd-cni
deploy/deb-assets.sh target/dist/ipipd target/assets
cargo deb --profile dist --no-build --strip -q 2>&1 | grep -v '^warning: ' || true
deb=$(ls target/debian/ipipd_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "package: cargo deb made no package" >&2; exit 1; }
echo "package: built $deb ($(du -h "$deb" | cut -f1))"

files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' | grep -v '/$')
for want in /usr/bin/ipipd /usr/lib/cni/ipipd-cni /usr/share/doc/ipipd/examples/ipipd.toml; do
    grep -qx "$want" <<<"$files" || { echo "package: $want missing from the package" >&2; exit 1; }
done
grep -q 'systemd/system/ipipd.service$' <<<"$files" ||
    { echo "package: the systemd unit is missing from the package" >&2; exit 1; }
# The command reference: a man page per command (cargo-deb may compress them), the
# configuration page, and a completion script per shell.
for page in ipipd.1 ipipd-status.1 ipipd-show-peers.1 ipipd-completions.1; do
    grep -Eq "^/usr/share/man/man1/$page(\.gz)?$" <<<"$files" ||
        { echo "package: man page $page missing from the package" >&2; exit 1; }
done
grep -Eq '^/usr/share/man/man5/ipipd\.toml\.5(\.gz)?$' <<<"$files" ||
    { echo "package: man page ipipd.toml.5 missing from the package" >&2; exit 1; }
for want in /usr/share/bash-completion/completions/ipipd /usr/share/zsh/vendor-completions/_ipipd \
            /usr/share/fish/vendor_completions.d/ipipd.fish; do
    grep -qx "$want" <<<"$files" || { echo "package: $want missing from the package" >&2; exit 1; }
done

cleanup() { dpkg -P ipipd >/dev/null 2>&1 || true; }
trap cleanup EXIT
dpkg -i "$deb"
/usr/bin/ipipd --version
/usr/bin/ipipd --help | grep -q "check-config" || { echo "package: --help lacks the commands" >&2; exit 1; }
/usr/bin/ipipd check-config --config /usr/share/doc/ipipd/examples/ipipd.toml
unit=$(dpkg -L ipipd | grep 'systemd/system/ipipd.service$')
systemd-analyze verify "$unit"
echo '{"cniVersion":"1.0.0","name":"ipipd","type":"ipipd-cni"}' |
    CNI_COMMAND=VERSION /usr/lib/cni/ipipd-cni | grep -q '"supportedVersions"' ||
    { echo "package: ipipd-cni VERSION failed" >&2; exit 1; }
"$BASH" -c 'source /usr/share/bash-completion/completions/ipipd && complete -p ipipd' |
    grep -q ipipd || { echo "package: the bash completion does not register" >&2; exit 1; }
man_page=$(dpkg -L ipipd | grep -E '/man1/ipipd-status\.1(\.gz)?$')
if [[ $man_page == *.gz ]]; then zcat "$man_page"; else cat "$man_page"; fi | grep -q 'ipipd\\-status' ||
    { echo "package: $man_page is not the status page" >&2; exit 1; }
echo "package: installed and checked: $(dpkg-query -W -f='${Package} ${Version}' ipipd)"

installed=$(dpkg -L ipipd | while read -r f; do [ -f "$f" ] && echo "$f"; done)
dpkg --purge ipipd
trap - EXIT
left=""
for f in $installed; do
    [ -e "$f" ] && left+=" $f"
done
[ -z "$left" ] || { echo "package: files left after purge:$left" >&2; exit 1; }
if dpkg-query -W ipipd >/dev/null 2>&1 && dpkg-query -W -f='${Status}' ipipd | grep -q installed; then
    echo "package: still registered with dpkg after purge" >&2
    exit 1
fi
echo "package: removed and purged, nothing left: 1 passed, 0 failed"
