#!/bin/sh
# test.sh: installs what the tests need, builds clasp with its default compute backend (oneDNN)
# normally and with AddressSanitizer + UndefinedBehaviorSanitizer, and with the portable backend
# (OpenBLAS), runs the whole test suite in each, and checks that the two backends agree.
# Usage: sh scripts/test.sh        (from anywhere; exit status 0 = every test passed)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
sh scripts/install-deps.sh
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
JOBS="${CLASP_JOBS:-2}"

run_suite() { # $1 = build dir, then cmake options, then optionally -R REGEX for ctest
    dir="$1"
    shift
    opts=""
    filter=""
    while [ $# -gt 0 ]; do
        if [ "$1" = "-R" ]; then filter="$2"; shift 2; else opts="$opts $1"; shift; fi
    done
    # shellcheck disable=SC2086
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release $opts >/dev/null
    if [ -n "$filter" ]; then
        cmake --build "$dir" -j "$JOBS" --target fuzz_all >/dev/null
        (cd "$dir" && ctest -j "$JOBS" --output-on-failure -R "$filter")
    else
        cmake --build "$dir" -j "$JOBS" >/dev/null
        (cd "$dir" && ctest -j "$JOBS" --output-on-failure)
    fi
}

echo "== format: every C file is as .clang-format says" >&2
if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
    # shellcheck disable=SC2046
    clang-format --dry-run --Werror $(git ls-files '*.c' '*.h')
fi
echo "== layers: every include follows scripts/layers.txt" >&2
sh scripts/check-layers.sh
echo "== size: no library or CLI function over 150 lines" >&2
python3 scripts/check-function-length.py 150
echo "== normal build" >&2
run_suite build
echo "== OpenBLAS backend build (the portable one)" >&2
run_suite build-openblas -DCLASP_BACKEND=openblas -DCLASP_BUILD_BENCH=OFF
echo "== backends agree: oneDNN and OpenBLAS train and embed the same within fp32 tolerance" >&2
sh scripts/backends-agree.sh build/cli/clasp build-openblas/cli/clasp
echo "== precision: 200 bf16 steps of fmnist-small track the fp32 loss curve" >&2
sh scripts/precision-track.sh build/cli/clasp 200 256
echo "== sanitizer build (address,undefined)" >&2
export ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1"
run_suite build-asan -DCLASP_SANITIZE=address,undefined -DCLASP_BUILD_BENCH=OFF
# ---- install stage (issue 15): libclasp installed like a library, then as a .deb -------------
# install-test.sh: install into a temporary prefix; pkg-config, find_package and Python programs
# equal `clasp embed`; Python's bad-input tests again on the ASan libclasp.so. deb-test.sh: cpack
# -G DEB, apt-get install, the same tests against /usr, purge (a trap: also on failure). Root.
echo "== install: prefix install, pkg-config, find_package, Python (+ ASan library), .deb" >&2
sh scripts/install-test.sh build build-asan
sh scripts/deb-test.sh build
# ---- end of the install stage ------------------------------------------------------------------
echo "== fuzz: every parser's libFuzzer target under ASan/UBSan, 12 s each (scripts/fuzz.sh: longer)" >&2
run_suite build-fuzz -DCMAKE_C_COMPILER=clang -DCLASP_SANITIZE=address,undefined -DCLASP_FUZZ=ON \
    -DCLASP_WERROR=OFF -DCLASP_BUILD_BENCH=OFF -DCLASP_FUZZ_SECONDS=12 -R '^fuzz_'
# ---- MPI stage (issue 9): data-parallel training over OpenMPI, under ASan/UBSan -------------
# tests/test_mpi.c runs `mpirun --allow-run-as-root --oversubscribe -np 2` (and -np 4) of
# `clasp train`; LSan ignores OpenMPI's own allocations (tests/lsan_mpi.supp, set by
# tests/CMakeLists.txt). Needs libopenmpi-dev and openmpi-bin.
echo "== MPI build (CLASP_MPI=ON, address,undefined): data-parallel tests with mpirun" >&2
cmake -S . -B build-mpi -DCMAKE_BUILD_TYPE=Release -DCLASP_MPI=ON \
    -DCLASP_SANITIZE=address,undefined -DCLASP_BUILD_BENCH=OFF >/dev/null
cmake --build build-mpi -j "$JOBS" --target clasp test_mpi test_engine >/dev/null
(cd build-mpi && ctest --output-on-failure -R 'test_mpi|test_engine')
# ---- end of the MPI stage ----------------------------------------------------------------------
echo "test.sh: all tests passed in the oneDNN, OpenBLAS and sanitizer builds, the backend" \
    "agreement, the fuzz run and the MPI build" >&2
