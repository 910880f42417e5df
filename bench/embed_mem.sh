#!/bin/sh
# bench/embed_mem.sh: peak memory of `clasp embed` (a check, not a timing): an export of
# configs/vit-b-32.json (or CONFIG) embeds BATCH images at batch BATCH in fp32 and bf16 with 1 and
# 2 threads under GNU time; prints each run's "Maximum resident set size" next to the size of the
# export's parameters, and fails when a run holds more than the parameters plus SLACK_MIB
# (default 320: in fp32, activations bounded by train/engine.h CLASP_ENGINE_INFER_ARENA_BYTES,
# 128 MiB; in bf16, whole chunks (bit-identical features; train/engine.h) of one transformer
# block's activations; plus the batch's pixels, the libraries and the decoder). Only the image
# tower is read (clasp_embedder_open_lazy), so a CLIP's text tower is slack too.
#
#   sh bench/embed_mem.sh                       # builds the export from the emoji shards
#   EXPORT=runs/x/export IMAGES=dir sh bench/embed_mem.sh
#
# Needs build/cli/clasp, /usr/bin/time (GNU), and for the export one RGB shard (SHARD, default
# data/emoji/google/train-000000.tar) and IMAGES (a folder of images, default: that shard's
# PNGs unpacked into $OUT). Issue 18's target: peak RSS <= 0.7x PyTorch's (bench/vit_b32.sh
# measures PyTorch's).
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLASP="${CLASP:-$ROOT/build/cli/clasp}"
CONFIG="${CONFIG:-$ROOT/configs/vit-b-32.json}"
SHARD="${SHARD:-$ROOT/data/emoji/google/train-000000.tar}"
OUT="${OUT:-/tmp/clasp-embed-mem}"
BATCH="${BATCH:-64}"
SLACK_MIB="${SLACK_MIB:-320}"
mkdir -p "$OUT"
if [ -z "${EXPORT:-}" ]; then
    EXPORT="$OUT/export"
    if [ ! -f "$EXPORT/model.safetensors" ]; then
        rm -rf "$OUT/run"
        "$CLASP" train --model "$CONFIG" --train "$SHARD" --steps 1 --batch-size 2 --no-progress \
            --out "$OUT/run" >"$OUT/train.log" 2>&1
        "$CLASP" export "$OUT/run" -o "$EXPORT" >>"$OUT/train.log" 2>&1
        rm -rf "$OUT/run"
    fi
fi
if [ -z "${IMAGES:-}" ]; then
    IMAGES="$OUT/images"
    mkdir -p "$IMAGES"
    [ -n "$(ls "$IMAGES")" ] || tar -xf "$SHARD" -C "$IMAGES" --wildcards '*.png'
fi
FILES=$(find "$IMAGES" -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.jpeg' \) | sort |
    head -n "$BATCH")
PARAM_MIB=$(($(stat -c %s "$EXPORT/model.safetensors") / 1048576))
echo "# embed_mem: $(basename "$CONFIG"), $(echo "$FILES" | wc -l) images, batch $BATCH, parameters $PARAM_MIB MiB"
echo "# command: /usr/bin/time -v $CLASP embed --model EXPORT --image FILES --batch-size $BATCH --threads T --precision P -o OUT.npy"
fail=0
for p in fp32 bf16; do
    for t in 1 2; do
        # shellcheck disable=SC2086
        /usr/bin/time -v "$CLASP" embed --model "$EXPORT" --image $FILES --batch-size "$BATCH" \
            --threads "$t" --precision "$p" -o "$OUT/z-$p-$t.npy" >/dev/null 2>"$OUT/time-$p-$t.log"
        kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$OUT/time-$p-$t.log")
        mib=$((kb / 1024))
        if [ "$mib" -le $((PARAM_MIB + SLACK_MIB)) ]; then
            verdict="ok (<= parameters + $SLACK_MIB MiB)"
        else
            verdict="TOO MUCH (> parameters + $SLACK_MIB MiB)"
            fail=1
        fi
        echo "$p threads $t: peak RSS $mib MiB = $(awk -v a="$mib" -v b="$PARAM_MIB" 'BEGIN { printf "%.2f", a / b }')x parameters: $verdict"
    done
done
exit $fail
