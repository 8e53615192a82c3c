#!/usr/bin/env bash
# Fuzzing in CI (issue 13 finding 8): checks that the seeds reach what they
# are for, then runs every fuzz target briefly from its seeds. Long
# campaigns are run by hand (README.md). Needs cargo-fuzz from crates.io;
# the machine's one (stable) toolchain builds the targets, RUSTC_BOOTSTRAP=1
# letting it take cargo-fuzz's unstable flags. Without a sanitizer (-s none):
# the code under test has no unsafe (that is all in src/sys/, which these
# paths reach only for read/write on a socketpair) and it runs several times
# faster. -a keeps debug assertions and overflow checks on.
#
# Budget: CI gives this step 5 minutes on a 2-core machine. Measured from a
# clean clone (2026-12-03, CPU time): installing cargo-fuzz 47 s, the seed
# tests' debug build 83 s, the fuzz targets' release build 160 s; so the
# runs get 10 s each by default (7 targets: 77 s with start-up), about 4
# minutes in all on an idle machine. Each phase prints its wall and CPU time.
#
# FUZZ_SECONDS: run time per target (default 10).
set -euo pipefail
cd "$(dirname "$0")"
secs=${FUZZ_SECONDS:-10}
export PATH=/root/.cargo/bin:$PATH
export RUSTC_BOOTSTRAP=1
# fuzz/target, whatever the main build uses (the targets run as root).
unset CARGO_TARGET_DIR
work=$(mktemp -d /var/tmp/rlnet-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
TIMEFORMAT='   %0R s wall, %0U s user, %0S s sys'
start=$SECONDS

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== install cargo-fuzz 0.13.2 (crates.io)"
    time cargo install cargo-fuzz --locked --version 0.13.2
fi
echo "== seed tests"
time cargo test --locked
echo "== build the fuzz targets"
time cargo fuzz build -s none -a
for t in $(cargo fuzz list); do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    echo "== fuzz $t: ${secs}s"
    log="$work/$t.log"
    rc=0
    cargo fuzz run -s none -a "$t" "$work/corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1 || rc=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$log" || true
    # A slow unit is not a finding here: on a loaded or paused machine any
    # input can take longer than libFuzzer's 10 s; crashes, leaks, timeouts
    # and out-of-memory inputs are.
    found=$(find "$work/artifacts/$t" -type f ! -name 'slow-unit-*' | head -1)
    if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
        tail -n 60 "$log" >&2
        echo "fuzz target $t failed (status $rc); inputs, base64:" >&2
        for f in "$work/artifacts/$t"/*; do
            [ -e "$f" ] && echo "$f: $(base64 -w0 "$f")" >&2
        done
        exit 1
    fi
done
echo "fuzzing done in $((SECONDS - start))s"
