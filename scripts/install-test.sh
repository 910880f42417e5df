#!/bin/sh
# install-test.sh: clasp installed like a library, tested from outside the tree.
#
#   sh scripts/install-test.sh BUILD [ASAN_BUILD]     install BUILD into a temporary prefix
#   sh scripts/install-test.sh --system BUILD         test the copy installed under /usr
#                                                     (scripts/deb-test.sh, after the .deb)
#
# Checks: the installed files (bin/clasp, libclasp.so.MAJOR with its SONAME and symlinks,
# libclasp.a, include/clasp.h alone, clasp.pc, the CMake package, clasp.1, bash completion);
# libclasp.so exports exactly the functions clasp.h declares (nm -D); a C program built with
# `pkg-config --cflags --libs clasp`, the same linked statically (pkg-config --static), and one
# built by a CMake project with find_package(clasp) (tests/install/) embed as `clasp embed`
# does (1e-6) on exports made by BUILD/tests/make_inputs; the Python package installs offline
# into a venv and passes python/tests. With ASAN_BUILD (a -DCLASP_SANITIZE=address,undefined
# build), python/tests' BadInput runs again on its libclasp.so (LD_PRELOAD of libasan).
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SYSTEM=0
if [ "${1:-}" = "--system" ]; then SYSTEM=1; shift; fi
BUILD="$(cd "$1" && pwd)"
ASAN_BUILD="${2:+$(cd "$2" && pwd)}"
PY=/usr/bin/python3
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT INT TERM
fail() { echo "install-test: $*" >&2; exit 1; }

VERSION="$(sed -n 's/^project(clasp VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")"
MAJOR="${VERSION%%.*}"
[ -n "$VERSION" ] || fail "no project(clasp VERSION ...) in CMakeLists.txt"

if [ "$SYSTEM" = 1 ]; then
    P=/usr
    LIBDIR="$(pkg-config --variable=libdir clasp)" || fail "pkg-config finds no clasp under /usr"
else
    P="$TMP/prefix"
    cmake --install "$BUILD" --prefix "$P" >/dev/null
    LIBDIR="$P/lib"
    export PKG_CONFIG_PATH="$LIBDIR/pkgconfig" LD_LIBRARY_PATH="$LIBDIR"
fi

echo "-- installed files ($P)" >&2
for f in bin/clasp include/clasp.h share/man/man1/clasp.1 share/bash-completion/completions/clasp; do
    [ -f "$P/$f" ] || fail "$P/$f is missing"
done
for f in "libclasp.so.$VERSION" "libclasp.so.$MAJOR" libclasp.so libclasp.a pkgconfig/clasp.pc \
    cmake/clasp/claspConfig.cmake cmake/clasp/claspConfigVersion.cmake; do
    [ -e "$LIBDIR/$f" ] || fail "$LIBDIR/$f is missing"
done
if [ "$SYSTEM" = 0 ]; then
    hdrs="$(cd "$P/include" && find . -type f | sort | tr '\n' ' ')"
    [ "$hdrs" = "./clasp.h " ] || fail "include/ holds more than clasp.h: $hdrs"
fi
[ "$(readlink "$LIBDIR/libclasp.so")" = "libclasp.so.$MAJOR" ] || fail "libclasp.so -> $(readlink "$LIBDIR/libclasp.so")"
soname="$(readelf -d "$LIBDIR/libclasp.so.$VERSION" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')"
[ "$soname" = "libclasp.so.$MAJOR" ] || fail "SONAME is '$soname', want libclasp.so.$MAJOR"
[ "$(pkg-config --modversion clasp)" = "$VERSION" ] || fail "clasp.pc says $(pkg-config --modversion clasp)"
"$P/bin/clasp" --version | grep -q "^clasp $VERSION " || fail "clasp --version: $("$P/bin/clasp" --version)"
"$P/bin/clasp" --version | grep -q "^formats: manifest [0-9]*, checkpoint [0-9]*, run [0-9]*, export [0-9]*$" ||
    fail "clasp --version does not list the format versions"
grep -q "^\.SH COMMANDS" "$P/share/man/man1/clasp.1" || fail "clasp.1 has no COMMANDS section"
bash -c ". '$P/share/bash-completion/completions/clasp'; COMP_WORDS=(clasp embed --prec); COMP_CWORD=2; _clasp; [ \"\${COMPREPLY[*]}\" = --precision ]" ||
    fail "bash completion does not complete 'clasp embed --prec'"

echo "-- libclasp.so exports exactly clasp.h's functions" >&2
sed -n 's/^[a-z].*[ *]\(clasp_[a-z0-9_]*\)(.*/\1/p' "$P/include/clasp.h" | sort >"$TMP/api"
nm -D --defined-only "$LIBDIR/libclasp.so" | awk '{print $3}' | sort >"$TMP/exported"
[ "$(wc -l <"$TMP/api")" -gt 10 ] || fail "found only $(wc -l <"$TMP/api") functions in clasp.h"
diff "$TMP/api" "$TMP/exported" >&2 || fail "libclasp.so exports differ from clasp.h (< clasp.h, > nm -D)"

echo "-- C programs against the installed library, compared with clasp embed" >&2
"$BUILD/tests/make_inputs" "$TMP/data" >/dev/null
D="$TMP/data"
mkdir "$TMP/want"
"$P/bin/clasp" embed --model "$D/image" --image "$D/in/a.pgm" "$D/in/b.ppm" "$D/in/c.png" \
    -o "$TMP/want/images.npy" >/dev/null
"$P/bin/clasp" embed --model "$D/image" --text "$D/in/texts.txt" -o "$TMP/want/texts.npy" >/dev/null
"$P/bin/clasp" embed --model "$D/audio" --audio "$D/in/a.wav" "$D/in/b.wav" \
    -o "$TMP/want/audio.npy" >/dev/null
same_as_clasp_embed() { # $1 = a folder of embed_check outputs
    "$PY" - "$TMP/want" "$1" <<'PYEOF'
import sys, numpy as np
want, got = sys.argv[1], sys.argv[2]
for name in ("images", "texts", "audio"):
    w = np.load(f"{want}/{name}.npy")
    g = np.fromfile(f"{got}/{name}.f32", dtype=np.float32).reshape(w.shape)
    d = float(np.abs(w - g).max())
    if not d <= 1e-6:
        sys.exit(f"{got}/{name}.f32 differs from clasp embed by {d}")
PYEOF
}
for how in shared static; do
    mkdir "$TMP/$how"
    if [ "$how" = shared ]; then
        # shellcheck disable=SC2046
        cc -std=c11 -Wall -Werror "$ROOT/tests/install/embed_check.c" -o "$TMP/$how/embed_check" \
            $(pkg-config --cflags --libs clasp)
        readelf -d "$TMP/$how/embed_check" | grep -q "NEEDED.*libclasp.so.$MAJOR" ||
            fail "the pkg-config program does not link libclasp.so.$MAJOR"
    else
        # shellcheck disable=SC2046
        cc -std=c11 -Wall -Werror "$ROOT/tests/install/embed_check.c" -o "$TMP/$how/embed_check" \
            $(pkg-config --cflags clasp) "$LIBDIR/libclasp.a" \
            $(pkg-config --static --libs clasp | sed 's/-lclasp//')
        ! readelf -d "$TMP/$how/embed_check" | grep -q "libclasp" || fail "the static program links libclasp.so"
    fi
    "$TMP/$how/embed_check" "$D" "$TMP/$how" | grep -q "^libclasp $VERSION " || fail "$how embed_check"
    same_as_clasp_embed "$TMP/$how"
done
cmake -S "$ROOT/tests/install" -B "$TMP/fp" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$TMP/fp" >/dev/null
"$TMP/fp/embed_check" "$D" "$TMP/fp" >/dev/null
same_as_clasp_embed "$TMP/fp"

echo "-- Python package: offline pip install into a venv, python/tests" >&2
mkdir "$TMP/src"
cp -r "$ROOT/python" "$ROOT/CMakeLists.txt" "$TMP/src/"
rm -f "$TMP/src/python/clasp/_version.py"
"$PY" -m venv --system-site-packages "$TMP/venv"
"$TMP/venv/bin/pip" install -q --no-build-isolation --no-index --no-cache-dir "$TMP/src/python" >&2
[ "$("$TMP/venv/bin/python" -c 'import clasp; print(clasp.__version__)')" = "$VERSION" ] ||
    fail "the Python package's version is not $VERSION"
(cd "$TMP" && CLASP_TEST_DATA="$D" CLASP_BIN="$P/bin/clasp" \
    "$TMP/venv/bin/python" -m unittest discover -s "$ROOT/python/tests" 2>&1) >&2 || fail "python/tests"
if [ -n "$ASAN_BUILD" ]; then
    echo "-- Python BadInput on the AddressSanitizer build of libclasp.so" >&2
    [ -f "$ASAN_BUILD/libclasp.so" ] || cmake --build "$ASAN_BUILD" --target libclasp >/dev/null
    (cd "$TMP" && LD_PRELOAD="$(cc -print-file-name=libasan.so)" CLASP_LIBRARY="$ASAN_BUILD/libclasp.so" \
        ASAN_OPTIONS=detect_leaks=0 CLASP_TEST_DATA="$D" CLASP_BIN="$P/bin/clasp" \
        "$TMP/venv/bin/python" -m unittest discover -s "$ROOT/python/tests" -k BadInput 2>&1) >&2 ||
        fail "python/tests BadInput under ASan"
fi
echo "install-test: ok ($P)" >&2
