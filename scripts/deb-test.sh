#!/bin/sh
# deb-test.sh: the Debian package. Builds clasp_VERSION_ARCH.deb with `cpack -G DEB` in BUILD
# (Depends from dpkg-shlibdeps), installs it with apt-get, runs `clasp --version` and the tests
# of scripts/install-test.sh --system against /usr (pkg-config, find_package, Python), and
# purges the package on the way out, also when a step fails, so an installed clasp.h or
# libclasp never shadows the tree's in later builds. Needs root and apt.
#
#   sh scripts/deb-test.sh BUILD
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$(cd "$1" && pwd)"
fail() { echo "deb-test: $*" >&2; exit 1; }
VERSION="$(sed -n 's/^project(clasp VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")"
ARCH="$(dpkg --print-architecture)"
DEB="$BUILD/clasp_${VERSION}_$ARCH.deb"

if dpkg -s clasp >/dev/null 2>&1; then fail "a package named clasp is already installed"; fi
for f in /usr/include/clasp.h /usr/lib/libclasp.so /usr/local/include/clasp.h; do
    [ ! -e "$f" ] || fail "$f exists before the test: it would shadow the tree's"
done
rm -f "$DEB"
(cd "$BUILD" && cpack -G DEB >/dev/null) || fail "cpack -G DEB failed"
[ -f "$DEB" ] || fail "no $DEB"
depends="$(dpkg-deb -f "$DEB" Depends)"
echo "-- $DEB: Depends: $depends" >&2
for lib in libc6 libcjson1 libsndfile1 libarchive13 libxxhash0; do
    case "$depends" in *"$lib"*) ;; *) fail "Depends lacks $lib: $depends" ;; esac
done

purge() { apt-get purge -y clasp >/dev/null 2>&1 || dpkg --purge clasp >/dev/null 2>&1 || true; }
trap purge EXIT
trap 'purge; exit 1' INT TERM
apt-get install -y "$DEB" >/dev/null 2>&1 || fail "apt-get install $DEB failed"
[ "$(command -v clasp)" = /usr/bin/clasp ] || fail "clasp is $(command -v clasp), not /usr/bin/clasp"
/usr/bin/clasp --version | grep -q "^clasp $VERSION " || fail "clasp --version: $(/usr/bin/clasp --version)"
/usr/bin/clasp --version >&2
sh "$ROOT/scripts/install-test.sh" --system "$BUILD"
purge
trap - EXIT INT TERM
for f in /usr/bin/clasp /usr/include/clasp.h /usr/lib/libclasp.so /usr/lib/pkgconfig/clasp.pc; do
    [ ! -e "$f" ] || fail "$f is still there after the purge"
done
echo "deb-test: ok ($DEB installed, tested and purged)" >&2
