#!/bin/sh
# backends-agree.sh CLASP_A CLASP_B [FMNIST_SHARDS]: do two clasp builds with different compute
# backends (oneDNN and OpenBLAS) compute the same results within fp32 tolerance?
#   1. Both train fmnist-small in fp32 for 30 steps (batch 64, 2 threads, a loss line every
#      step) from the same seed: every step's loss must agree to 1e-4 relative (products summed
#      in another order drift apart slowly through Adam; measured: 1.3e-6).
#   2. Both embed the test shard's images and the class names with the SAME export (A's run):
#      the embeddings must agree to 1e-5 (one forward pass; measured: 2.5e-7).
# Exit 0 when both hold; prints the largest differences. FMNIST_SHARDS defaults to shards built
# with CLASP_A into a temporary folder.
set -eu
[ $# -ge 2 ] || { echo "usage: sh scripts/backends-agree.sh CLASP_A CLASP_B [FMNIST_SHARDS]" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
D="${3:-$T/fmnist}"
[ -f "$D/test-000000.tar" ] || "$1" shards build fmnist -o "$D" >/dev/null 2>&1
M="$ROOT/configs/fmnist-small.json"
for x in a b; do
    if [ "$x" = a ]; then B="$1"; else B="$2"; fi
    "$B" --version >"$T/$x.version"
    "$B" train --model "$M" --train "$D/train-{000000..000005}.tar" --steps 30 --batch-size 64 \
        --threads 2 --seed 5 --log-every 1 --precision fp32 --no-progress --out "$T/run-$x" \
        2>"$T/train-$x.log" || { cat "$T/train-$x.log" >&2; exit 1; }
done
"$1" export "$T/run-a" -o "$T/exp" 2>/dev/null
for x in a b; do
    if [ "$x" = a ]; then B="$1"; else B="$2"; fi
    "$B" embed --model "$T/exp" --shards "$D/test-000000.tar" -o "$T/img-$x.npy" 2>/dev/null
    "$B" embed --model "$T/exp" --text "$D/classnames.txt" -o "$T/txt-$x.npy" 2>/dev/null
done
/usr/bin/python3 - "$T" <<'EOF'
import json, sys
import numpy as np
t = sys.argv[1]
def losses(x):
    return [json.loads(l)["loss"] for l in open(f"{t}/run-{x}/metrics.jsonl")
            if '"kind":"train"' in l]
la, lb = np.array(losses("a")), np.array(losses("b"))
ok = len(la) == 30 and len(lb) == 30
rel = float(np.max(np.abs(la - lb) / np.abs(la))) if ok else float("inf")
print(f"backends-agree: {open(t + '/a.version').read().strip()} vs "
      f"{open(t + '/b.version').read().strip()}", file=sys.stderr)
print(f"  train: {len(la)}/{len(lb)} loss lines, max relative difference {rel:.2e} "
      f"(limit 1e-4); last {la[-1]:.6f} vs {lb[-1]:.6f}", file=sys.stderr)
ok = ok and rel <= 1e-4
for kind in ("img", "txt"):
    a, b = np.load(f"{t}/{kind}-a.npy"), np.load(f"{t}/{kind}-b.npy")
    d = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
    print(f"  embed {kind}: {a.shape} max abs difference {d:.2e} (limit 1e-5)", file=sys.stderr)
    ok = ok and d <= 1e-5
sys.exit(0 if ok else 1)
EOF
