#!/bin/sh
# finetune-emoji.sh: the fine-tuning walk-through of docs/finetune.md, end to end. Starts from an
# emoji export (EXPORT, made by scripts/emoji.sh + clasp export, trained with
# configs/emoji-small.json), evaluates it, fine-tunes it on the google emoji train split four
# ways (LiT = --freeze image, and --lr-scale image=0.1; each in fp32 and bf16) plus a plain
# fine-tune for reference, exports and evaluates each (image<->text retrieval R@1 on the
# validation split, unseen emoji, and on the train split), and checks which towers' tensors are
# byte-identical to the starting export.
#
# Usage: sh scripts/finetune-emoji.sh EXPORT
#        (env: CLASP (a built clasp; default build/cli/clasp), CLASP_DATA (google emoji shards;
#        default data/emoji/google), CLASP_RUNS (default runs/finetune), CLASP_STEPS (300),
#        CLASP_THREADS (2), CLASP_ONLY ("lit-fp32 lit-bf16 scale-fp32 scale-bf16 full-fp32"))
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EXPORT="$(cd "${1:?usage: finetune-emoji.sh EXPORT}" && pwd)"
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
CLASP="${CLASP:-$ROOT/build/cli/clasp}"
DATA="${CLASP_DATA:-$ROOT/data/emoji/google}"
RUNS="${CLASP_RUNS:-$ROOT/runs/finetune}"
STEPS="${CLASP_STEPS:-300}"
THREADS="${CLASP_THREADS:-2}"
ONLY="${CLASP_ONLY:-lit-fp32 lit-bf16 scale-fp32 scale-bf16 full-fp32}"
TRAIN="$DATA/train-{000000..000001}.tar"
VAL="$DATA/validation-000000.tar"
mkdir -p "$RUNS"

evaluate() { # MODEL NAME: retrieval on val and train into RUNS/eval_NAME_{val,train}.json
    "$CLASP" eval --model "$1" --data "$VAL" --retrieval --threads "$THREADS" --json \
        2>/dev/null >"$RUNS/eval_$2_val.json"
    "$CLASP" eval --model "$1" --data "$TRAIN" --retrieval --threads "$THREADS" --json \
        2>/dev/null >"$RUNS/eval_$2_train.json"
}

echo "== evaluating $EXPORT" >&2
evaluate "$EXPORT" before
for run in $ONLY; do
    case $run in
    lit-*) flags="--freeze image" ;;
    scale-*) flags="--lr-scale image=0.1" ;;
    full-*) flags="" ;;
    *)
        echo "finetune-emoji.sh: unknown run '$run'" >&2
        exit 2
        ;;
    esac
    echo "== $run: clasp train --init $EXPORT $flags --precision ${run#*-}" >&2
    rm -rf "${RUNS:?}/$run" "${RUNS:?}/$run.export"
    # shellcheck disable=SC2086 # flags is a word list
    "$CLASP" train --model "$ROOT/configs/emoji-small.json" --init "$EXPORT" --train "$TRAIN" \
        --out "$RUNS/$run" --steps "$STEPS" --batch-size 128 --lr 1e-4 --warmup 20 --seed 0 \
        --threads "$THREADS" --log-every 50 --no-progress --precision "${run#*-}" $flags \
        2>"$RUNS/$run.log"
    "$CLASP" export "$RUNS/$run" -o "$RUNS/$run.export" 2>>"$RUNS/$run.log"
    evaluate "$RUNS/$run.export" "$run"
done

/usr/bin/python3 - "$EXPORT" "$RUNS" $ONLY <<'PY'
import json, re, struct, sys

import numpy as np

export, runs, names = sys.argv[1], sys.argv[2], sys.argv[3:]

def tensors(path):  # name -> raw bytes of a safetensors file
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    head.pop("__metadata__", None)
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items()}

def r1(name, split):
    r = json.load(open(f"{runs}/eval_{name}_{split}.json"))["retrieval"]
    return ["%.1f%%" % (100 * r[d]["r1"]) for d in ("text_to_image", "image_to_text")]

print("| model | val t2i R@1 | val i2t R@1 | train t2i R@1 | train i2t R@1 | final loss |")
print("|---|---|---|---|---|---|")
print("| " + " | ".join(["before"] + r1("before", "val") + r1("before", "train") + [""]) + " |")
for n in names:
    m = re.search(r"final loss ([0-9.]+)", open(f"{runs}/{n}.log").read())
    print("| " + " | ".join([n] + r1(n, "val") + r1(n, "train") + [m.group(1) if m else "?"]) + " |")
print()
a = tensors(f"{export}/model.safetensors")
for n in names:
    b = tensors(f"{runs}/{n}.export/model.safetensors")
    parts = []
    for prefix in ("image.", "text.", "logit_scale"):
        keys = sorted(k for k in a if k.startswith(prefix))
        same = sum(1 for k in keys if a[k] == b.get(k))
        va = np.concatenate([np.frombuffer(a[k], np.float32) for k in keys]).astype(np.float64)
        vb = np.concatenate([np.frombuffer(b[k], np.float32) for k in keys]).astype(np.float64)
        rel = np.linalg.norm(vb - va) / np.linalg.norm(va)
        parts.append(f"{prefix} {same}/{len(keys)} identical (change {rel:.3g})")
    print(f"{n}: " + ", ".join(parts))
PY
