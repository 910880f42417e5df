#!/bin/sh
# fuzz.sh: runs every libFuzzer target (tests/fuzz/fuzz_NAME.c) for MINUTES minutes each under
# ASan + UBSan, two at a time (the machine's two cores), and prints one line per target:
# executions, coverage (libFuzzer's cov: edges and ft: features), corpus size, and findings.
# The corpus grows across runs in build-fuzz/tests/fuzz_corpus/NAME (seeded from
# tests/fuzz/corpus and tests/fuzz/regressions). A finding is saved as
# build-fuzz/tests/fuzz_out/NAME/crash-* (or leak-, oom-, timeout-): fix it, then copy the input
# to tests/fuzz/regressions/NAME/ and replay it in tests/test_fuzz_regressions.c.
#
# Usage: sh scripts/fuzz.sh [MINUTES] [TARGET...]     (default 1 minute, every target)
#        FUZZ_JOBS=1 sh scripts/fuzz.sh 15 image audio
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
MINUTES="${1:-1}"
[ $# -gt 0 ] && shift
TARGETS="$*"
[ -n "$TARGETS" ] || TARGETS="tar image audio text tokenizer safetensors config state shardspec npy tsv index clip_bpe serve_request"
JOBS="${FUZZ_JOBS:-2}"
B=build-fuzz
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
    -DCLASP_SANITIZE=address,undefined -DCLASP_FUZZ=ON -DCLASP_WERROR=OFF \
    -DCLASP_BUILD_BENCH=OFF >/dev/null
cmake --build "$B" -j 2 --target fuzz_all >/dev/null
export LSAN_OPTIONS="suppressions=$ROOT/tests/fuzz/lsan.supp:print_suppressions=0"
SECONDS_EACH=$((MINUTES * 60))

run_one() { # $1 = target; writes $B/tests/fuzz_out/$1/log
    t="$1"
    out="$B/tests/fuzz_out/$t"
    mkdir -p "$out" "$B/tests/fuzz_corpus/$t"
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    seeds=""
    for d in corpus regressions; do [ -d "tests/fuzz/$d/$t" ] && seeds="$seeds tests/fuzz/$d/$t"; done
    # shellcheck disable=SC2086
    "$B/tests/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$out/" $dict \
        "$B/tests/fuzz_corpus/$t" $seeds >"$out/log" 2>&1 || true
}

summary() { # $1 = target
    t="$1"
    log="$B/tests/fuzz_out/$t/log"
    execs=$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -a -o '[0-9]*$' || echo "?")
    last=$(grep -a -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | grep -a -o 'cov: [0-9]*' | grep -a -o '[0-9]*' || echo "?")
    ft=$(echo "$last" | grep -a -o 'ft: [0-9]*' | grep -a -o '[0-9]*' || echo "?")
    corp=$(echo "$last" | grep -a -o 'corp: [0-9]*' | grep -a -o '[0-9]*' || echo "?")
    finds=$(find "$B/tests/fuzz_out/$t" -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' \
        -o -name 'timeout-*' | wc -l)
    printf '%-12s %8s min %12s execs %7s cov %8s ft %7s corpus %3s findings\n' \
        "$t" "$MINUTES" "$execs" "$cov" "$ft" "$corp" "$finds"
}

echo "fuzz.sh: $MINUTES min per target, $JOBS at a time: $TARGETS" >&2
set -- $TARGETS
while [ $# -gt 0 ]; do
    pids=""
    batch=""
    i=0
    while [ $# -gt 0 ] && [ $i -lt "$JOBS" ]; do
        run_one "$1" &
        pids="$pids $!"
        batch="$batch $1"
        shift
        i=$((i + 1))
    done
    # shellcheck disable=SC2086
    wait $pids
    for t in $batch; do summary "$t"; done
done
found=$(find "$B/tests/fuzz_out" -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
[ "$found" -eq 0 ] || { echo "fuzz.sh: $found finding(s) under $B/tests/fuzz_out" >&2; exit 1; }
