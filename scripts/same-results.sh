#!/bin/sh
# same-results.sh OLD_CLASP NEW_CLASP [FMNIST_SHARDS]: do two clasp binaries compute the same
# bits? Each trains fmnist-small for 4 steps twice (batch 256 on 2 threads; batch 64 with
# --chunks 2 --accum-steps 2 --clip-norm 1 --multi-positive), exports, evaluates zero-shot and
# embeds texts and the test shard; the sha256 of every checkpoint, export, embedding and the
# eval JSON (paths and timings removed) must be equal. For refactors that promise bit-identical
# results. FMNIST_SHARDS defaults to shards built with OLD_CLASP into a temporary folder.
set -eu
[ $# -ge 2 ] || { echo "usage: sh scripts/same-results.sh OLD_CLASP NEW_CLASP [FMNIST_SHARDS]" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
D="${3:-$T/fmnist}"
[ -f "$D/test-000000.tar" ] || "$1" shards build fmnist -o "$D" >/dev/null 2>&1
M="$ROOT/configs/fmnist-small.json"
printf 'a photo of a shirt\na boot\n' >"$T/texts.txt"
hashes() { # $1 = clasp, $2 = output folder
    B="$1"
    O="$2"
    mkdir -p "$O"
    "$B" train --model "$M" --train "$D/train-{000000..000005}.tar" --steps 4 --batch-size 256 \
        --threads 2 --seed 0 --out "$O/run4" 2>/dev/null
    "$B" train --model "$M" --train "$D/train-{000000..000005}.tar" --steps 4 --batch-size 64 \
        --threads 1 --chunks 2 --accum-steps 2 --clip-norm 1 --seed 3 --multi-positive \
        --out "$O/run4b" 2>/dev/null
    "$B" export "$O/run4" -o "$O/exp" 2>/dev/null
    "$B" eval --model "$O/exp" --data "$D/test-000000.tar" --zeroshot "$D/classnames.txt" \
        --templates "$D/templates.txt" --json 2>/dev/null |
        sed 's/"seconds":[0-9.e+-]*//g; s/"[a-z_]*per_s[a-z_]*":[0-9.e+-]*//g' |
        sed "s#$O#OUT#g" >"$O/eval.json"
    "$B" embed --model "$O/exp" --text "$T/texts.txt" -o "$O/t.npy" 2>/dev/null
    "$B" embed --model "$O/exp" --shards "$D/test-000000.tar" -o "$O/i.npy" 2>/dev/null
    (cd "$O" && find . -name '*.safetensors' -o -name '*.npy' -o -name eval.json | sort |
        xargs sha256sum)
}
hashes "$1" "$T/old" >"$T/old.sha"
hashes "$2" "$T/new" >"$T/new.sha"
if diff "$T/old.sha" "$T/new.sha" >&2; then
    echo "same-results: identical ($(wc -l <"$T/new.sha") files)" >&2
else
    echo "same-results: the binaries differ (above: old < > new)" >&2
    exit 1
fi
