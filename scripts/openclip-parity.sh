#!/bin/sh
# openclip-parity.sh: by hand (not CI). The full OpenCLIP ViT-B-32 of
# tests/reference/make_openclip.py (random weights, fixed seed, OpenCLIP's names), saved as an
# OpenCLIP training checkpoint (.pt) and as a TorchScript archive, converted with
# tools/openclip_to_safetensors.py, imported with `clasp import openclip --arch ViT-B-32`, then
# `clasp embed` on real images (emoji at 224 px) and captions against the PyTorch reference,
# and tools/clasp_torch.py on the export against the same reference. Prints the max abs
# differences; exits 1 above 1e-4.
#
#     sh scripts/openclip-parity.sh [BUILD_DIR] [WORK_DIR]     (defaults: build, a temp folder)
#
# Needs ~3 GB of disk in WORK_DIR and a few minutes on 2 cores.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
CLASP=$BUILD/cli/clasp
PY=/usr/bin/python3
MERGES=$ROOT/../shared/data/openclip/bpe_simple_vocab_16e6.txt.gz
if [ -n "${2:-}" ]; then
    WORK=$2
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi
[ -x "$CLASP" ] || { echo "openclip-parity: no $CLASP (build the clasp target)" >&2; exit 2; }

echo "== reference ViT-B-32 (PyTorch) -> $WORK"
$PY "$ROOT/tests/reference/make_openclip.py" --full "$ROOT/configs/openclip/ViT-B-32.json" \
    "$WORK" --jit
echo "== convert .pt -> .safetensors"
$PY "$ROOT/tools/openclip_to_safetensors.py" "$WORK/model.pt" "$WORK/model.safetensors"
$PY "$ROOT/tools/openclip_to_safetensors.py" "$WORK/model_jit.pt" "$WORK/model_jit.safetensors"
echo "== import"
cd "$ROOT"
"$CLASP" import openclip "$WORK/model.safetensors" --arch ViT-B-32 --vocab "$MERGES" \
    -o "$WORK/export"
"$CLASP" import openclip "$WORK/model_jit.safetensors" --arch ViT-B-32 --vocab "$MERGES" \
    -o "$WORK/export_jit"
if cmp -s "$WORK/export/model.safetensors" "$WORK/export_jit/model.safetensors"; then
    echo "training checkpoint and TorchScript archive import to identical weights"
else
    echo "openclip-parity: the two imports differ" >&2
    exit 1
fi
echo "== embed"
"$CLASP" embed --model "$WORK/export" --image "$WORK/img_cat.png" "$WORK/img_dog.png" \
    "$WORK/img_apple.png" "$WORK/img_car.png" -o "$WORK/images.npy"
"$CLASP" embed --model "$WORK/export" --text "$WORK/captions.txt" -o "$WORK/texts.npy"
echo "== compare (target <= 1e-4)"
cd "$ROOT/tools"
$PY "$ROOT/tests/reference/make_openclip.py" --compare "$WORK/export" "$WORK/ref.safetensors" \
    "$WORK/images.npy" "$WORK/texts.npy"
