#!/bin/sh
# killtest.sh: kill anywhere. SIGKILLs `clasp train` at KILLS random moments (checkpoints every
# step, so many kills land inside a checkpoint write), resumes each time with --resume latest,
# and checks that no checkpoint is ever unreadable and that the final parameters and the logged
# losses equal an uninterrupted run's, bit for bit. Then the same for `clasp shards build`: a
# build killed at random moments and rerun gives shards byte-identical to a clean build.
#
# Usage: sh scripts/killtest.sh [BUILD_DIR] [KILLS]      (default build, 30 kills)
# The moments come from a fixed seed (KILL_SEED, default 1), so a failure replays.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="$(cd "${1:-$ROOT/build}" && pwd)"
KILLS="${2:-30}"
CLASP="$B/cli/clasp"
W="$(mktemp -d /tmp/clasp-kill.XXXXXX)"
trap 'rm -rf "$W"' EXIT INT TERM
export CLASP_LOG=error OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-Haswell}"
STEPS=60
"$CLASP" shards build fmnist -o "$W/data" --limit 1024 --maxcount 256 >/dev/null 2>&1
TRAIN="train --model $ROOT/configs/fmnist-small.json --train $W/data/train-{000000..000003}.tar \
--batch-size 64 --warmup 2 --log-every 1 --no-progress --seed 9 --steps $STEPS --save-every 1 --keep 3"
losses() { grep '"train"' "$1/metrics.jsonl" | grep -o '"loss":[^,]*'; }
# shellcheck disable=SC2086
"$CLASP" $TRAIN --out "$W/straight" >/dev/null 2>&1
# random delays in milliseconds from a fixed seed
delays=$(awk -v n="$KILLS" -v s="${KILL_SEED:-1}" 'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%d ", 150 + int(rand() * 1200) }')
bad=0
kills=0
unreadable=0
for ms in $delays; do
    resume=""
    [ -f "$W/run/checkpoints/latest" ] && resume="--resume latest"
    # shellcheck disable=SC2086
    "$CLASP" $TRAIN $resume --out "$W/run" >>"$W/log" 2>&1 &
    pid=$!
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null || true
    # every checkpoint that has its final name opens
    for c in "$W"/run/checkpoints/step-*; do
        case "$c" in *.tmp) continue ;; esac
        [ -d "$c" ] || continue
        if ! "$CLASP" export "$c" -o "$W/probe" >/dev/null 2>&1; then
            echo "UNREADABLE after kill $kills: $c" >&2
            unreadable=$((unreadable + 1))
        fi
        rm -rf "$W/probe"
    done
    step=$(cat "$W/run/checkpoints/latest" 2>/dev/null || echo none)
    printf 'kill %2d after %4d ms: latest %s\n' "$kills" "$ms" "$step"
done
resume=""
[ -f "$W/run/checkpoints/latest" ] && resume="--resume latest"
# shellcheck disable=SC2086
"$CLASP" $TRAIN $resume --out "$W/run" >>"$W/log" 2>&1 || { echo "final resume failed" >&2; bad=1; }
last=$(printf 'step-%08d' "$STEPS")
if cmp -s "$W/straight/checkpoints/$last/model.safetensors" "$W/run/checkpoints/$last/model.safetensors"; then
    echo "train: $kills kills, final parameters equal the uninterrupted run's bit for bit"
else
    echo "train: final parameters DIFFER from the uninterrupted run's" >&2
    bad=1
fi
[ "$(losses "$W/run")" = "$(losses "$W/straight")" ] || { echo "train: logged losses differ" >&2; bad=1; }
[ "$unreadable" -eq 0 ] || { echo "train: $unreadable unreadable checkpoint(s)" >&2; bad=1; }

# ---- shards build -------------------------------------------------------------------------
SB="shards build fmnist --limit 4000 --maxcount 250"
# shellcheck disable=SC2086
"$CLASP" $SB -o "$W/s0" >/dev/null 2>&1
skills=0
for ms in $(echo "$delays" | cut -d' ' -f1-10); do
    # shellcheck disable=SC2086
    "$CLASP" $SB -o "$W/s" >/dev/null 2>&1 &
    pid=$!
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 4000 }')"
    if kill -9 "$pid" 2>/dev/null; then skills=$((skills + 1)); fi
    wait "$pid" 2>/dev/null || true
    for t in "$W"/s/*.tar; do # a shard under its final name is whole
        [ -f "$t" ] || continue
        cmp -s "$t" "$W/s0/$(basename "$t")" || { echo "shards: partial $(basename "$t") after a kill" >&2; bad=1; }
    done
done
# shellcheck disable=SC2086
"$CLASP" $SB -o "$W/s" >/dev/null 2>&1
same=1
for t in "$W"/s0/*.tar "$W/s0/manifest.json"; do
    cmp -s "$t" "$W/s/$(basename "$t")" || { echo "shards: $(basename "$t") differs" >&2; same=0; bad=1; }
done
[ "$same" -eq 1 ] && echo "shards: $skills kills, the rebuilt shards are byte-identical to a clean build"
exit "$bad"
