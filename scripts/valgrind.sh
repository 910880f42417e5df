#!/bin/sh
# valgrind.sh: memcheck over the suites that own memory (core, pipeline and training, export and
# the C API, datasets): every test process (Criterion forks one per test) runs under
# valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect; any error fails.
# Prints one line per suite with its error count and run time.
#
# Usage: sh scripts/valgrind.sh [BUILD_DIR] [SUITE...]
#   (default: test_core test_safetensors test_tar_reader test_loader test_captions
#    test_checkpoint test_runstate test_engine test_export test_datasets test_shardlist
#    test_fuzz_regressions test_security)
# A Release build with -g (the default) is fine; do not use an ASan build. Suites that train
# (test_engine) belong on an OpenBLAS build (-DCLASP_BACKEND=openblas): under valgrind oneDNN
# JIT-compiles AVX2 kernels whose vector tails read past their own buffers (1,391 reports in
# test_engine, every one with its top frame in JIT code); on OpenBLAS the suite is clean.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="$(cd "${1:-$ROOT/build}" && pwd)"
[ $# -gt 0 ] && shift
SUITES="$*"
[ -n "$SUITES" ] || SUITES="test_core test_safetensors test_tar_reader test_loader test_captions \
test_checkpoint test_runstate test_engine test_export test_datasets test_shardlist \
test_fuzz_regressions test_security"
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-Haswell}" OPENBLAS_NUM_THREADS=1
export CLASP_BIN="$B/cli/clasp"
bad=0
for s in $SUITES; do
    exe="$B/tests/$s"
    [ -x "$exe" ] || { echo "valgrind.sh: $exe not built" >&2; bad=1; continue; }
    log="$B/tests/valgrind-$s.log"
    start=$(date +%s)
    # --jobs 1: one test at a time; each forked test process is traced
    (cd "$B/tests" && valgrind --quiet --trace-children=yes --child-silent-after-fork=no \
        --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
        --suppressions="$ROOT/tests/valgrind.supp" --log-file="$log.%p" \
        "$exe" --jobs 1 >/dev/null 2>&1) || true
    errors=$(cat "$log".* 2>/dev/null | grep -c '^==[0-9]*== [A-Z].*\(Invalid\|uninitialised\|definitely lost\|indirectly lost\|Mismatched\|overlap\)' || true)
    printf '%-24s %4s errors  %5ss\n' "$s" "$errors" "$(( $(date +%s) - start ))"
    if [ "$errors" -gt 0 ]; then
        bad=1
        grep -l 'Invalid\|uninitialised\|definitely lost\|indirectly lost' "$log".* | head -3 >&2
    else
        rm -f "$log".*
    fi
done
exit "$bad"
