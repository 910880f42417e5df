#!/usr/bin/env bash
# bind.sh: audio, images and text in one space (ImageBind-style emergent alignment): spoken
# emoji names retrieve the right emoji image although no audio-image pair is ever trained.
#
#   1. shards: emoji images + English labels (`clasp shards build emoji`, google and twitter;
#      split by emoji) and espeak-ng speaking the same labels (`clasp shards build espeak --from
#      emoji --variants 2`; split by the same emoji split id, so a val emoji is unheard and
#      unseen in training);
#   2. configs/bind-small.json (emoji-small's ViT + BPE text tower, speech-small's audio CNN)
#      trained on two sources with the text tower shared: image-text (emoji train) and
#      audio-text (espeak emoji-name train), mixed 1:1 per step (MODE=joint, default); or
#      MODE=locked: an image-text model is trained first (or taken from INIT=EXPORT|RUN), then
#      only the audio tower is trained into its frozen space (--init ... --freeze image,text);
#   3. `clasp eval --data AUDIO --gallery IMAGES`: each val clip queries the val images (both
#      vendors: 2 images per emoji), relevant = images whose label equals the clip's
#      transcript; R@1/5/10 with the chance level; plus audio<->text and image<->text on val.
#
# Usage: scripts/bind.sh [WORK]   (WORK default: /tmp/clasp-bind; CLASP=path/to/clasp)
# Environment: MODE (joint|locked), STEPS (500), BATCH (128), THREADS (2), WORKERS (2), INIT.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLASP="${CLASP:-$ROOT/build/cli/clasp}"
WORK="${1:-/tmp/clasp-bind}"
MODE="${MODE:-joint}"
STEPS="${STEPS:-500}"
BATCH="${BATCH:-128}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-2}"
CONFIG="$ROOT/configs/bind-small.json"
mkdir -p "$WORK"
now() { date +%s; }

if [ ! -f "$WORK/emoji/manifest.json" ]; then
    "$CLASP" shards build emoji -o "$WORK/emoji" >&2
fi
if [ ! -f "$WORK/espeak/manifest.json" ]; then
    "$CLASP" shards build espeak -o "$WORK/espeak" --from emoji --variants 2 >&2
fi
spec() { # DIR SPLIT
    local n
    n=$(ls "$1/$2"-*.tar | wc -l)
    printf '%s/%s-{000000..%06d}.tar' "$1" "$2" $((n - 1))
}
IMG_TRAIN="$(spec "$WORK/emoji" train)"
IMG_VAL="$(spec "$WORK/emoji" validation)"
AUD_TRAIN="$(spec "$WORK/espeak" train)"
AUD_VAL="$(spec "$WORK/espeak" validation)"
COMMON=(--batch-size "$BATCH" --lr 1e-3 --warmup 30 --multi-positive --threads "$THREADS"
    --workers "$WORKERS" --log-every 50 --no-progress --seed 0)

RUN="$WORK/run-$MODE"
rm -rf "$RUN"
t0=$(now)
if [ "$MODE" = joint ]; then
    "$CLASP" train --model "$CONFIG" --out "$RUN" --steps "$STEPS" "${COMMON[@]}" \
        --train "image-text=$IMG_TRAIN" --weight 1 \
        --train "audio-text=$AUD_TRAIN" --weight 1 >&2
else
    INIT="${INIT:-}"
    if [ -z "$INIT" ]; then
        INIT="$WORK/run-image-text"
        rm -rf "$INIT"
        "$CLASP" train --model "$CONFIG" --out "$INIT" --steps "$STEPS" "${COMMON[@]}" \
            --train "image-text=$IMG_TRAIN" >&2
    fi
    "$CLASP" train --model "$CONFIG" --out "$RUN" --steps "$STEPS" "${COMMON[@]}" \
        --init "$INIT" --freeze image,text --train "audio-text=$AUD_TRAIN" >&2
fi
echo "== training ($MODE): $(($(now) - t0)) s wall" >&2

echo "== audio->image on unseen emoji (val clips vs val images)" >&2
"$CLASP" eval --model "$RUN" --data "$AUD_VAL" --gallery "$IMG_VAL" --threads "$THREADS" \
    --workers "$WORKERS" --json >"$WORK/eval-$MODE-audio-image.json"
echo "== audio<->text on val" >&2
"$CLASP" eval --model "$RUN" --pair audio-text --data "$AUD_VAL" --threads "$THREADS" \
    --workers "$WORKERS" --json >"$WORK/eval-$MODE-audio-text.json"
echo "== image<->text on val" >&2
"$CLASP" eval --model "$RUN" --data "$IMG_VAL" --retrieval --threads "$THREADS" \
    --workers "$WORKERS" --json >"$WORK/eval-$MODE-image-text.json"
