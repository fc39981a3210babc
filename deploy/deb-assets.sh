#!/usr/bin/env bash
# Generates what the Debian package ships beside the binaries: the man pages and the
# shell completions, made by the built ipipd from its own command and configuration
# definitions (Cargo.toml's [package.metadata.deb] assets point here). Run it after the
# build and before `cargo deb`:
#
#   deploy/deb-assets.sh target/dist/ipipd     # writes target/assets/{man,completions}
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/dist/ipipd}
out=${2:-target/assets}
[ -x "$bin" ] || { echo "deb-assets: $bin is not built (cargo build --profile dist)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
"$bin" man "$out/man" >/dev/null
"$bin" completions bash >"$out/completions/ipipd"
"$bin" completions zsh >"$out/completions/_ipipd"
"$bin" completions fish >"$out/completions/ipipd.fish"
bash -n "$out/completions/ipipd"
echo "deb-assets: $(ls "$out/man" | wc -l) man pages and 3 completion scripts in $out"
