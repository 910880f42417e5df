#!/bin/sh
# check-layers.sh: fails when a file includes a header its folder may not include
# (scripts/layers.txt: the one place the arrows are written) or another folder's private
# header (internal.h). Usage: sh scripts/check-layers.sh [TREE]   (a git checkout; default: this
# repository; exit 0 = clean)
set -eu
ROOT="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$ROOT"
RULES=scripts/layers.txt
bad=0
# Every project include of every tracked C file: "file<TAB>included/header.h"
git ls-files '*.c' '*.h' | while read -r f; do
    sed -n 's|^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*/[A-Za-z0-9_.]*\)".*|\1|p' "$f" |
        while read -r inc; do printf '%s\t%s\n' "$f" "$inc"; done
done >"${TMPDIR:-/tmp}/clasp-includes.$$"
while IFS="$(printf '\t')" read -r f inc; do
    from="${f%%/*}"
    to="${inc%%/*}"
    [ "$from" = "$to" ] && continue
    case "$inc" in
    */internal.h)
        echo "check-layers: $f includes $inc, private to $to/" >&2
        bad=1
        continue
        ;;
    esac
    allowed="$(sed -n "s/^$from:[[:space:]]*//p" "$RULES")"
    if ! grep -q "^$from:" "$RULES"; then
        echo "check-layers: $f: folder $from/ has no line in $RULES" >&2
        bad=1
        continue
    fi
    [ "$allowed" = "*" ] && continue
    case " $allowed " in
    *" $to "*) ;;
    *)
        echo "check-layers: $f includes $inc, but $from/ may include only: ${allowed:-nothing} ($RULES)" >&2
        bad=1
        ;;
    esac
done <"${TMPDIR:-/tmp}/clasp-includes.$$"
rm -f "${TMPDIR:-/tmp}/clasp-includes.$$"
if [ "$bad" -ne 0 ]; then exit 1; fi
echo "check-layers: every include follows $RULES" >&2
