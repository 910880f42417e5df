#!/bin/sh
# bench/train_speech.sh: audio-text training samples/s, clasp against PyTorch on the same model
# (configs/speech-small.json: audio CNN over a 64 x 301 log-mel + byte-level text transformer),
# the same data (the Asterisk English train recordings, 8 kHz WAV + transcript), the same batch
# and thread count, in one run.
#
#   sh bench/train_speech.sh [STEPS] [THREADS]      (defaults 30, 2)
#
# clasp: `clasp train` decodes, resamples and computes the log-mels in its loader threads while
# training (the rate counts steps after the first; data wait is printed). PyTorch
# (bench/train_speech_torch.py): the same towers built by tools/clasp_torch.py from an export
# of clasp's initial model, trained on log-mels precomputed once by clasp_torch.py's front-end
# (not timed: PyTorch gets its inputs for free). Prints both samples/s and the ratio.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="${1:-30}"
THREADS="${2:-2}"
CLASP="${CLASP:-$ROOT/build/cli/clasp}"
OUT="${CLASP_BENCH_OUT:-/tmp/clasp-bench-speech}"
DATA="${CLASP_DATA:-$OUT/asterisk}"
BATCH=128
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
mkdir -p "$OUT"
[ -f "$DATA/manifest.json" ] || "$CLASP" shards build asterisk -o "$DATA" --langs en >&2
SPEC="$DATA/train-000000.tar"

echo "# train_speech: speech-small, batch $BATCH, $STEPS steps, $THREADS threads, $(date -u +%FT%TZ)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$OUT/clasp"
"$CLASP" train --model "$ROOT/configs/speech-small.json" --train "$SPEC" --steps "$STEPS" \
    --batch-size "$BATCH" --threads "$THREADS" --workers 1 --no-progress --json \
    --out "$OUT/clasp" >"$OUT/clasp.log" 2>&1
c=$(grep '^{' "$OUT/clasp.log" | sed 's/.*"samples_per_s":\([0-9.]*\).*/\1/')
w=$(grep '^{' "$OUT/clasp.log" | sed 's/.*"data_wait_frac":\([0-9.e-]*\).*/\1/')

# the torch side starts from the same initial parameters: an export of a 1-step-free run
rm -rf "$OUT/init" "$OUT/init-export"
"$CLASP" train --model "$ROOT/configs/speech-small.json" --train "$SPEC" --steps 1 --lr 0 \
    --batch-size "$BATCH" --threads "$THREADS" --no-progress --out "$OUT/init" >/dev/null 2>&1
"$CLASP" export "$OUT/init" -o "$OUT/init-export" >/dev/null 2>&1
OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$ROOT/bench/train_speech_torch.py" "$OUT/init-export" \
    "$SPEC" --steps "$STEPS" --batch-size "$BATCH" --threads "$THREADS" >"$OUT/torch.json"
t=$(/usr/bin/python3 -c "import json;print(round(json.load(open('$OUT/torch.json'))['samples_per_s'],1))")
printf '%-44s %10s\n' "run" "samples/s"
printf '%-44s %10s\n' "clasp train (loader decodes WAV + log-mel)" "$c"
printf '%-44s %10s\n' "PyTorch (log-mels precomputed)" "$t"
/usr/bin/python3 -c "print('ratio clasp/PyTorch: %.2f   (clasp data wait %.1f%%)' % ($c / $t, 100 * $w))"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
