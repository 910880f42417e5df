#!/usr/bin/env bash
# speech.sh: audio-text (CLAP-style) training end to end on 2 CPU cores.
#
#   1. shards: the real Asterisk English prompts (`clasp shards build asterisk --langs en`,
#      split by hash of the prompt name: val = recordings never seen in training) and the same
#      transcripts spoken by espeak-ng (`clasp shards build espeak --from asterisk`, 4 of the
#      voice x speed x pitch cells per transcript; split by the same source key, so every voice
#      of a val transcript is in espeak's val split too);
#   2. a check that no Asterisk val transcript reaches training through espeak;
#   3. configs/speech-small.json trained on two sources mixed 1:1 per step (Asterisk train
#      recordings, espeak train clips), both audio-text, sharing one text tower;
#   4. audio->text and text->audio retrieval on the held-out Asterisk val recordings
#      (R@1/5/10, mean/median rank, chance levels), and on espeak val for comparison.
#
# Usage: scripts/speech.sh [WORK]   (WORK default: /tmp/clasp-speech; CLASP=path/to/clasp)
# Environment: STEPS (400), BATCH (128), THREADS (2), WORKERS (2), LR (1e-3), PRECISION (fp32).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLASP="${CLASP:-$ROOT/build/cli/clasp}"
WORK="${1:-/tmp/clasp-speech}"
STEPS="${STEPS:-400}"
BATCH="${BATCH:-128}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-2}"
LR="${LR:-1e-3}"
PRECISION="${PRECISION:-fp32}"
CONFIG="$ROOT/configs/speech-small.json"
mkdir -p "$WORK"
now() { date +%s; }

# ---- shards
if [ ! -f "$WORK/asterisk/manifest.json" ]; then
    "$CLASP" shards build asterisk -o "$WORK/asterisk" --langs en >&2
fi
if [ ! -f "$WORK/espeak/manifest.json" ]; then
    "$CLASP" shards build espeak -o "$WORK/espeak" --from asterisk --variants 4 >&2
fi
spec() { # DIR SPLIT -> brace spec over the split's shards
    local n
    n=$(ls "$1/$2"-*.tar | wc -l)
    printf '%s/%s-{000000..%06d}.tar' "$1" "$2" $((n - 1))
}
AST_TRAIN="$(spec "$WORK/asterisk" train)"
AST_VAL="$(spec "$WORK/asterisk" validation)"
ESP_TRAIN="$(spec "$WORK/espeak" train)"
ESP_VAL="$(spec "$WORK/espeak" validation)"

# ---- no Asterisk val transcript in espeak's train split (espeak splits by source key)
/usr/bin/python3 - "$WORK" <<'EOF'
import glob, json, sys, tarfile
work = sys.argv[1]
val = set()
for p in glob.glob(f"{work}/asterisk/validation-*.tar"):
    with tarfile.open(p) as t:
        val |= {m.name.rsplit(".", 1)[0] for m in t if m.name.endswith(".txt")}
seen = set()
for p in glob.glob(f"{work}/espeak/train-*.tar"):
    with tarfile.open(p) as t:
        for m in t:
            if m.name.endswith(".json"):
                seen.add(json.load(t.extractfile(m))["split_id"])
leak = val & seen
print(f"== split check: {len(val)} Asterisk val recordings; {len(seen)} espeak train "
      f"transcripts; {len(leak)} val transcripts spoken in espeak train", file=sys.stderr)
sys.exit(1 if leak else 0)
EOF

# ---- training
RUN="$WORK/run"
rm -rf "$RUN"
t0=$(now)
"$CLASP" train --model "$CONFIG" --out "$RUN" \
    --train "audio-text=$AST_TRAIN" --weight 1 \
    --train "audio-text=$ESP_TRAIN" --weight 1 \
    --steps "$STEPS" --batch-size "$BATCH" --lr "$LR" --warmup 40 --threads "$THREADS" \
    --workers "$WORKERS" --log-every 50 --no-progress --seed 0 --precision "$PRECISION" >&2
echo "== training: $(($(now) - t0)) s wall" >&2

# ---- evaluation on held-out recordings
for what in "asterisk-val:$AST_VAL" "espeak-val:$ESP_VAL"; do
    name="${what%%:*}"
    data="${what#*:}"
    echo "== $name" >&2
    "$CLASP" eval --model "$RUN" --pair audio-text --data "$data" --threads "$THREADS" \
        --workers "$WORKERS" --json >"$WORK/eval-$name.json"
done
