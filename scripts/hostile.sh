#!/bin/sh
# hostile.sh: bounded memory on hostile shards. Streams each case of
# tests/hostile/make_hostile.py through `clasp shards inspect --decode` (a pipe: shard, so
# nothing hostile is ever written to disk), and checks from getrusage (GNU time's %M: the
# largest resident set of clasp and its children) that memory stays under BOUND_MIB, that the
# hostile sample is skipped with its reason and that the ordinary sample after it survives.
# Prints one table row per case.
#
# Usage: sh scripts/hostile.sh [BUILD_DIR] [full|ci]
#   full: the issue's sizes (a 2 GiB member, 1,000,000 members, 10,000 members of 100 KiB under
#         one key, a 2-hour WAV, a 10 MB caption); ci: smaller streams of the same shapes.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="$(cd "${1:-$ROOT/build}" && pwd)"
MODE="${2:-full}"
CLASP="$B/cli/clasp"
GEN="/usr/bin/python3 $ROOT/tests/hostile/make_hostile.py"
BOUND_MIB="${BOUND_MIB:-300}"
W="$(mktemp -d /tmp/clasp-hostile.XXXXXX)"
trap 'rm -rf "$W"' EXIT INT TERM
if [ "$MODE" = ci ]; then
    CASES="big_member:300:image,text:too_large many_members:50:image,text:missing_field
shared_key:3:text:too_large huge_png:1:image,text:bad_image long_wav:20:audio,text:ok
long_caption:10:image,text:ok"
else
    CASES="big_member:2048:image,text:too_large many_members:1000:image,text:missing_field
shared_key:10:text:too_large huge_png:1:image,text:bad_image long_wav:120:audio,text:ok
long_caption:10:image,text:ok"
fi
bad=0
printf '%-13s %6s %9s %8s  %-15s %s\n' case scale rss_MiB seconds skipped ok_samples
for c in $CASES; do
    name=${c%%:*}; rest=${c#*:}; scale=${rest%%:*}; rest=${rest#*:}; req=${rest%%:*}; want=${rest#*:}
    /usr/bin/time -f '%M %e' -o "$W/time" "$CLASP" shards inspect "pipe:$GEN $name $scale" \
        --decode --require "$req" --json >"$W/out" 2>"$W/err" || true
    rss=$(awk '{ printf "%d", $1 / 1024 }' "$W/time")
    secs=$(awk '{ print $2 }' "$W/time")
    ok=$(grep -o '"samples_ok":[^,]*' "$W/out" | grep -o '[0-9]*' || echo 0)
    why=$(grep -o '"first_skips":[^]]*' "$W/out" | grep -o '\["[a-z_]*' | tr -d '["' || true)
    printf '%-13s %6s %9s %8s  %-15s %s\n' "$name" "$scale" "$rss" "$secs" "${why:-none}" "$ok"
    [ "$rss" -le "$BOUND_MIB" ] || { echo "VIOLATION: $name: $rss MiB above $BOUND_MIB" >&2; bad=1; }
    [ "${ok:-0}" -ge 1 ] || { echo "VIOLATION: $name: the ordinary sample did not survive" >&2; bad=1; }
    if [ "$want" = ok ]; then
        [ -z "$why" ] || { echo "VIOLATION: $name: skipped ($why) although usable" >&2; bad=1; }
    else
        [ "$why" = "$want" ] || { echo "VIOLATION: $name: skip reason '$why', want $want" >&2; bad=1; }
    fi
done
exit "$bad"
