#!/usr/bin/env bash
# Proves that ./test.sh cannot hide a failing step: it runs test.sh with injected
# tiers (IPIPD_EXTRA_TIERS) whose failing command is followed by passing ones, and
# checks that the tier is reported FAILED, that the rest of the tier did not run, and
# that test.sh exits non-zero; and that a tier whose steps all pass is ok.
set -euo pipefail
# The checks below set what they need; nothing of the caller's run may leak in.
unset IPIPD_ALLOW_SKIP IPIPD_SKIP_TIERS IPIPD_EXTRA_TIERS
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/tiers.sh" <<'TIERS'
helper_fails() { false; }
# The shape of the old defect: a failing cargo test followed by a passing one.
tier_inject_first() { false; echo "REACHED after a failed step"; true; }
# A failing step inside a helper function, then a passing step.
tier_inject_helper() { helper_fails; echo "REACHED after a failed helper"; }
# A pipeline whose first command fails.
tier_inject_pipe() { false | cat; echo "REACHED after a failed pipeline"; }
# A failing build followed by a run of whatever binary is there.
tier_inject_build() { (exit 101); echo "REACHED a stale binary"; }
tier_inject_ok() { true; echo "ok-tier-ran"; }
TIERS

failures=0
checks=0
check() { # name, expected exit (0 or nonzero), tiers...
    local name=$1 want=$2; shift 2
    local rc=0
    checks=$((checks + 1))
    IPIPD_EXTRA_TIERS="$work/tiers.sh" IPIPD_NO_INSTALL=1 "$repo/test.sh" "$@" \
        >"$work/$name.out" 2>&1 || rc=$?
    local ok=1
    if [ "$want" = 0 ] && [ "$rc" != 0 ]; then ok=0; fi
    if [ "$want" != 0 ] && [ "$rc" = 0 ]; then ok=0; fi
    if grep -q REACHED "$work/$name.out"; then ok=0; fi
    for t in "$@"; do
        local expect=ok
        [ "$t" != inject_ok ] && expect=FAILED
        grep -Eq "^  $t +$expect" "$work/$name.out" || ok=0
    done
    if [ $ok = 1 ]; then
        echo "selftest: $name: exit $rc as expected"
    else
        echo "selftest: $name: WRONG (exit $rc); test.sh printed:" >&2
        sed 's/^/    /' "$work/$name.out" >&2
        failures=$((failures + 1))
    fi
}

check first-step 1 inject_first inject_ok
check helper 1 inject_ok inject_helper
check pipeline 1 inject_pipe
check stale-build 1 inject_build inject_ok
check all-pass 0 inject_ok
# The failing command is named in the output.
checks=$((checks + 1))
grep -q '`false` failed' "$work/first-step.out" || {
    echo "selftest: the failing command is not named" >&2; failures=$((failures + 1)); }
# An unknown tier is an error, not a silent pass.
checks=$((checks + 1))
rc=0; IPIPD_NO_INSTALL=1 "$repo/test.sh" no_such_tier >/dev/null 2>&1 || rc=$?
if [ $rc = 0 ]; then echo "selftest: unknown tier passed" >&2; failures=$((failures + 1)); fi
# A skipped tier does not make a green run.
checks=$((checks + 1))
rc=0; IPIPD_EXTRA_TIERS="$work/tiers.sh" IPIPD_NO_INSTALL=1 IPIPD_SKIP_TIERS=inject_first \
    "$repo/test.sh" inject_first inject_ok >/dev/null 2>&1 || rc=$?
if [ $rc = 0 ]; then echo "selftest: a skipped tier gave exit 0" >&2; failures=$((failures + 1)); fi

echo "selftest: $((checks - failures)) passed, $failures failed"
[ $failures = 0 ]
