#!/usr/bin/env bash
# Bounded fuzz smoke run: builds every cargo-fuzz target of one crate (latch-protocol unless
# another crate's directory is given; each library crate keeps its fuzz crate in `fuzz/`) and
# runs each for a few seconds. Exits non-zero on any crash, and when the crate's targets
# cannot be listed or any of them did not run. Stable rustc only: RUSTC_BOOTSTRAP enables
# the nightly-only sanitizer flags cargo-fuzz passes.
#
# Usage: crates/latch-protocol/fuzz/smoke.sh [seconds-per-target] [crate-dir]
#        (defaults: 8 seconds, crates/latch-protocol)
set -euo pipefail
SECS="${1:-8}"
if [ -n "${2:-}" ]; then
    cd "$2"
else
    cd "$(dirname "$0")/.."
fi
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

# Every target file must be a target cargo-fuzz lists, and none may be missing: a failed or
# empty listing would otherwise run nothing and pass.
targets="$(cargo fuzz list)"
expected="$(find fuzz/fuzz_targets -maxdepth 1 -name '*.rs' -printf '%f\n' | sed 's/\.rs$//' | sort)"
if [ -z "$targets" ] || [ "$(sort <<<"$targets")" != "$expected" ]; then
    echo "fuzz: cargo fuzz list gave [$(echo $targets)], the target files are [$(echo $expected)]" >&2
    exit 1
fi

mkdir -p fuzz/corpus
# Crash files from an earlier run would fail this one even after the bug is fixed; the
# corpus is kept, since it only makes the next run start further in.
rm -rf fuzz/artifacts
ran=0
for target in $targets; do
    echo "fuzz: $target for ${SECS}s"
    mkdir -p "fuzz/corpus/$target"
    log="$(mktemp)"
    status=0
    cargo fuzz run --sanitizer "$SANITIZER" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECS" -max_len=8192 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
    # libFuzzer's summary of a run that reached its time limit; without it nothing ran.
    done_line=0
    grep -E '^Done [0-9]+ runs' "$log" || done_line=$?
    if [ "$status" -ne 0 ] || [ "$done_line" -ne 0 ] \
        || compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target failed (exit $status); see fuzz/artifacts/$target" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    ran=$((ran + 1))
done
if [ "$ran" -ne "$(wc -l <<<"$targets")" ]; then
    echo "fuzz: ran $ran targets of $(wc -l <<<"$targets")" >&2
    exit 1
fi
echo "fuzz: all $ran targets of $(basename "$PWD") ran without crashes"
