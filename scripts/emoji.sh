#!/bin/sh
# emoji.sh: the emoji workload of issue 7, end to end. Builds emoji shards (google and twitter
# images, 64 px RGBA, English CLDR labels as captions; split by emoji, so an emoji's images are
# all in train or all in validation, for both vendors alike), checks the BPE tokenizer of
# configs/emoji-small.json against the train labels, trains configs/emoji-small.json three times
# and prints image<->text retrieval R@1/5/10 with the chance level K/N:
#
#   run "both"    : google + twitter train split -> google val, twitter val (unseen emoji)
#   run "google"  : google train split           -> google val   (unseen emoji, same vendor)
#                                                 -> twitter val  (unseen emoji, unseen vendor)
#                                                 -> twitter train (seen emoji, unseen vendor)
#   run "twitter" : the same with the vendors swapped
#
# Each evaluation set holds one vendor, so every caption names exactly one image (labels are
# unique within a vendor; the two vendors share all 1911 labels, hence --multi-positive for the
# two-vendor run, where a batch may hold both images of one label).
#
# Usage: sh scripts/emoji.sh   (env: CLASP (a built clasp; default: build it into build/),
#        CLASP_DATA (default data/emoji), CLASP_RUNS (default runs/emoji), CLASP_THREADS (2),
#        CLASP_EPOCHS_BOTH (12), CLASP_EPOCHS_ONE (24), CLASP_ONLY ("both google twitter"),
#        CLASP_PRECISION (fp32))
# The tokenizer configs/emoji-bpe.json was made by
#   clasp tokenizer train 'DATA/google/train-{000000..000001}.tar' -o configs/emoji-bpe.json \
#       --vocab 4096
# (the google and twitter train labels are the same; with the default --min-count 2 training
# stops at 1770 tokens, when no pair occurs in two labels). The script rebuilds it into the runs
# folder and says whether it still matches (it would not if the npm packages changed).
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
THREADS="${CLASP_THREADS:-2}"
DATA="${CLASP_DATA:-$ROOT/data/emoji}"
RUNS="${CLASP_RUNS:-$ROOT/runs/emoji}"
EPOCHS_BOTH="${CLASP_EPOCHS_BOTH:-12}"
EPOCHS_ONE="${CLASP_EPOCHS_ONE:-24}"
ONLY="${CLASP_ONLY:-both google twitter}"
PRECISION="${CLASP_PRECISION:-fp32}"
CONFIG="$ROOT/configs/emoji-small.json"

if [ -z "${CLASP:-}" ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCLASP_BUILD_TESTS=OFF >/dev/null
    cmake --build build -j 2 --target clasp >/dev/null
    CLASP="$ROOT/build/cli/clasp"
fi
mkdir -p "$RUNS"
now() { date +%s; }

# ---- shards: one set per vendor, and both vendors together
for v in google twitter both; do
    if [ ! -f "$DATA/$v/manifest.json" ]; then
        vendors=$v
        [ "$v" = both ] && vendors=google,twitter
        echo "== emoji shards ($vendors) -> $DATA/$v" >&2
        "$CLASP" shards build emoji -o "$DATA/$v" --vendors "$vendors"
    fi
done
# shard spec of a split: every shard of DIR named PREFIX-*.tar, joined by '::'
spec() {
    ls "$1"/"$2"-*.tar | tr '\n' ' ' | sed 's/ $//; s/ /::/g'
}

# ---- tokenizer: rebuilt from the google train labels and compared with the committed one
"$CLASP" tokenizer train "$(spec "$DATA/google" train)" -o "$RUNS/emoji-bpe.json" --vocab 4096 \
    2>/dev/null >/dev/null
if cmp -s "$RUNS/emoji-bpe.json" "$ROOT/configs/emoji-bpe.json"; then
    echo "== tokenizer: configs/emoji-bpe.json equals the one rebuilt from the train labels" >&2
else
    echo "== WARNING: configs/emoji-bpe.json differs from $RUNS/emoji-bpe.json (rebuilt from" \
        "these shards' train labels); copy it over to use it" >&2
fi

# ---- training
train() { # NAME SPEC EPOCHS
    echo "== training $1 ($3 epochs) into $RUNS/$1" >&2
    rm -rf "${RUNS:?}/$1"
    t0=$(now)
    "$CLASP" train --model "$CONFIG" --train "$2" --out "$RUNS/$1" --epochs "$3" \
        --batch-size 128 --lr 1e-3 --warmup 30 --multi-positive --seed 0 --threads "$THREADS" \
        --log-every 50 --no-progress --precision "$PRECISION"
    echo "$1 $(($(now) - t0))" >>"$RUNS/train_seconds.txt"
}

# ---- evaluation: one line "RUN<TAB>LABEL<TAB>eval JSON" per (run, evaluation set)
EVALS="$RUNS/evals.tsv"
: >"$EVALS"
evaluate() { # RUN LABEL SPEC
    out="$RUNS/$1/eval-$(echo "$2" | tr -c 'a-z0-9\n' _).json"
    "$CLASP" eval --model "$RUNS/$1" --data "$3" --retrieval --threads "$THREADS" --json \
        2>/dev/null >"$out"
    printf '%s\t%s\t%s\n' "$1" "$2" "$out" >>"$EVALS"
}

: >"$RUNS/train_seconds.txt"
for run in $ONLY; do
    case $run in
    both)
        train both "$(spec "$DATA/both" train)" "$EPOCHS_BOTH"
        evaluate both "google val (unseen emoji)" "$(spec "$DATA/google" validation)"
        evaluate both "twitter val (unseen emoji)" "$(spec "$DATA/twitter" validation)"
        evaluate both "google train (seen)" "$(spec "$DATA/google" train)"
        ;;
    google | twitter)
        other=twitter
        [ "$run" = twitter ] && other=google
        train "$run" "$(spec "$DATA/$run" train)" "$EPOCHS_ONE"
        evaluate "$run" "$run val (unseen emoji)" "$(spec "$DATA/$run" validation)"
        evaluate "$run" "$other val (unseen emoji+vendor)" "$(spec "$DATA/$other" validation)"
        evaluate "$run" "$other train (unseen vendor)" "$(spec "$DATA/$other" train)"
        evaluate "$run" "$run train (seen)" "$(spec "$DATA/$run" train)"
        ;;
    *)
        echo "emoji.sh: unknown run '$run' in CLASP_ONLY" >&2
        exit 2
        ;;
    esac
done

echo "== retrieval in % (R@K: the true partner among the top K of N; chance = K/N)" >&2
python3 - "$EVALS" "$RUNS/results.tsv" <<'PY'
import json, sys
head = ["run", "eval set", "N", "t2i R@1", "R@5", "R@10", "i2t R@1", "R@5", "R@10",
        "chance R@1", "R@5", "R@10"]
rows = []
for line in open(sys.argv[1]):
    run, label, path = line.rstrip("\n").split("\t")
    r = json.load(open(path))["retrieval"]
    n = r["n_images"]
    t, i = r["text_to_image"], r["image_to_text"]
    rows.append([run, label, str(n)] +
                ["%.1f" % (100 * d[k]) for d in (t, i) for k in ("r1", "r5", "r10")] +
                ["%.2f" % (100.0 * k / n) for k in (1, 5, 10)])
with open(sys.argv[2], "w") as f:
    for r in [head] + rows:
        f.write("\t".join(r) + "\n")
w = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
for r in [head] + rows:
    print("  ".join(x.ljust(w[c]) if c < 2 else x.rjust(w[c]) for c, x in enumerate(r)))
PY
echo "== training wall time (s):" $(tr '\n' ' ' <"$RUNS/train_seconds.txt") >&2
echo "== results: $RUNS/results.tsv; runs: $RUNS/{$(echo "$ONLY" | tr ' ' ',')}" >&2
