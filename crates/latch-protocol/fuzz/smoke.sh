#!/usr/bin/env bash
# Bounded fuzz smoke run: builds every cargo-fuzz target of latch-protocol and runs each for a
# few seconds. Exits non-zero on any crash. Stable rustc only: RUSTC_BOOTSTRAP enables the
# nightly-only sanitizer flags cargo-fuzz passes.
#
# Usage: crates/latch-protocol/fuzz/smoke.sh [seconds-per-target]   (default 8)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-8}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# AddressSanitizer needs nightly-only runtime bits; fall back to no sanitizer if it fails.
SANITIZER="${LATCH_FUZZ_SANITIZER:-address}"
if ! cargo fuzz build --sanitizer "$SANITIZER" >/dev/null 2>&1; then
    echo "fuzz: sanitizer '$SANITIZER' unavailable, using --sanitizer none" >&2
    SANITIZER=none
    cargo fuzz build --sanitizer none
fi

mkdir -p fuzz/corpus
# Crash files from an earlier run would fail this one even after the bug is fixed; the
# corpus is kept, since it only makes the next run start further in.
rm -rf fuzz/artifacts
for target in $(cargo fuzz list); do
    echo "fuzz: $target for ${SECS}s"
    mkdir -p "fuzz/corpus/$target"
    log="$(mktemp)"
    status=0
    cargo fuzz run --sanitizer "$SANITIZER" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECS" -max_len=8192 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
    grep -E '^Done [0-9]+ runs' "$log" || true
    if [ "$status" -ne 0 ] || compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target failed (exit $status); see fuzz/artifacts/$target" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
done
echo "fuzz: all targets ran without crashes"
