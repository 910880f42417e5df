#!/bin/sh
# quickstart.sh: the main job on the built-in default. On a fresh Debian 12 machine it
# installs the dependencies, builds clasp, writes Fashion-MNIST shards from the Debian package
# dataset-fashion-mnist, trains fmnist-small (image CNN + byte-level text transformer) with the
# CLIP loss, evaluates zero-shot accuracy on the 10,000 test images, and prints a summary.
# Usage: sh scripts/quickstart.sh   (env: CLASP_EPOCHS, CLASP_THREADS, CLASP_DATA, CLASP_RUN)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
sh scripts/install-deps.sh
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
EPOCHS="${CLASP_EPOCHS:-3}"
THREADS="${CLASP_THREADS:-2}"
DATA="${CLASP_DATA:-$ROOT/data/fmnist}"
RUN="${CLASP_RUN:-$ROOT/runs/fmnist-small}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCLASP_BUILD_TESTS=OFF >/dev/null
cmake --build build -j 2 --target clasp >/dev/null
CLASP="$ROOT/build/cli/clasp"

if [ ! -f "$DATA/manifest.json" ]; then
    echo "== writing Fashion-MNIST shards to $DATA" >&2
    "$CLASP" shards build fmnist -o "$DATA"
fi
echo "== training fmnist-small for $EPOCHS epochs ($THREADS threads) into $RUN" >&2
rm -rf "$RUN"
"$CLASP" train --model configs/fmnist-small.json \
    --train "$DATA/train-{000000..000005}.tar" \
    --val "$DATA/test-000000.tar" \
    --zeroshot "$DATA/classnames.txt" --templates "$DATA/templates.txt" \
    --epochs "$EPOCHS" --batch-size 256 --threads "$THREADS" --seed 0 --out "$RUN"
