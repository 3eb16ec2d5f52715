#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of untrusted bytes: tape labels,
# the records inside tape files (node header, segments, ABS metadata,
# directory, CATALOG), whole tape images, wire messages, the NBD codec and
# the extent-list parser. libFuzzer through cargo-fuzz, on this machine's
# stable toolchain (RUSTC_BOOTSTRAP lets it pass the sanitizer flags).
#
#   deploy/fuzz.sh [SECONDS] [TARGET...]    default: 60 s per target, every target
#
# Corpora live in fuzz/corpus/TARGET (committed; new finds are added to them);
# a crash is saved in fuzz/artifacts/TARGET and makes the script fail: turn it
# into a regular test, fix it, commit the input to the corpus. Prints
# executions and crashes per target. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
cd fuzz
cargo fuzz build --release
printf '%-14s %14s %10s %8s %s\n' target executions exec/s crashes corpus
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$(mktemp)"
    set +e
    cargo fuzz run --release "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    runs="$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')"
    rate="$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')"
    crashes="$(find "artifacts/$t" -type f | wc -l)"
    printf '%-14s %14s %10s %8s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$crashes" "$(find "corpus/$t" -type f | wc -l)"
    if ((rc != 0)) || ((crashes > 0)); then
        failed=1
        echo "  $t: crash or error (exit $rc); last lines:" >&2
        tail -n 20 "$log" >&2
    fi
    rm -f "$log"
done
exit "$failed"
