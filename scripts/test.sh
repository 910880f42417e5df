#!/bin/sh
# test.sh: installs what the tests need, builds clasp twice (normal, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs the whole test suite in both.
# Usage: sh scripts/test.sh        (from anywhere; exit status 0 = every test passed)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
sh scripts/install-deps.sh
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
JOBS="${CLASP_JOBS:-2}"

run_suite() { # $1 = build dir, rest = cmake options
    dir="$1"
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS" >/dev/null
    (cd "$dir" && ctest -j "$JOBS" --output-on-failure)
}

echo "== normal build" >&2
run_suite build
echo "== sanitizer build (address,undefined)" >&2
export ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1"
run_suite build-asan -DCLASP_SANITIZE=address,undefined -DCLASP_BUILD_BENCH=OFF
echo "test.sh: all tests passed in both builds" >&2
