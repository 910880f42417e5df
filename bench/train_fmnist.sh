#!/bin/sh
# bench/train_fmnist.sh: clasp against the PyTorch reference (../shared/bench/ref_clip_fmnist.py)
# on the same model (fmnist-small), batch (256), data (Fashion-MNIST) and thread count.
#
#   sh bench/train_fmnist.sh [STEPS] [EPOCHS]
#
# Part 1 (speed): STEPS steps (default 120) at 1 and 2 threads; PyTorch also at 2 threads with
# OMP_WAIT_POLICY=PASSIVE (its fastest setting here). Prints steady-state samples/s, the
# ratio clasp/PyTorch and peak RSS of each. Part 2 (quality, when EPOCHS > 0): both train
# EPOCHS full epochs at 2 threads and report zero-shot top-1 on the 10k test images.
# Needs: a clasp build in build/ (cmake -B build), python3-torch, dataset-fashion-mnist.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REF="${CLASP_REF:-$ROOT/../shared/bench/ref_clip_fmnist.py}"
STEPS="${1:-120}"
EPOCHS="${2:-0}"
CLASP="$ROOT/build/cli/clasp"
DATA="${CLASP_DATA:-$ROOT/data/fmnist}"
OUT="${CLASP_BENCH_OUT:-/tmp/clasp-bench-train}"
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
mkdir -p "$OUT"
[ -f "$DATA/manifest.json" ] || "$CLASP" shards build fmnist -o "$DATA" >&2
[ -f "$REF" ] || { echo "train_fmnist: reference script not found: $REF" >&2; exit 1; }

# peak RSS (MiB) of a command, from GNU time's %M; its stdout/stderr go to $2
rss_run() { # $1 = log file, rest = command
    log="$1"
    shift
    /usr/bin/time -f "%M" -o "$log.rss" "$@" >"$log" 2>&1
    echo $(( $(cat "$log.rss") / 1024 ))
}

clasp_rate() { # $1 = threads -> "samples/s rss"
    rm -rf "$OUT/clasp-$1T"
    rss=$(rss_run "$OUT/clasp-$1T.log" "$CLASP" train --model "$ROOT/configs/fmnist-small.json" \
        --train "$DATA/train-{000000..000005}.tar" --steps "$STEPS" --batch-size 256 \
        --threads "$1" --workers 1 --no-progress --json --out "$OUT/clasp-$1T")
    rate=$(grep '^{' "$OUT/clasp-$1T.log" | sed 's/.*"samples_per_s":\([0-9.]*\).*/\1/' | awk '{printf "%.1f", $1}')
    echo "$rate $rss"
}

torch_rate() { # $1 = threads, $2 = extra env -> "samples/s rss"
    name="torch-$1T${2:+-passive}"
    rss=$(rss_run "$OUT/$name.log" env ${2:-} /usr/bin/python3 "$REF" --threads "$1" \
        --max-steps "$STEPS" --eval-epochs "" --json "$OUT/$name.json")
    rate=$(/usr/bin/python3 -c "import json;print(round(json.load(open('$OUT/$name.json'))['samples_per_s_steady'],1))")
    echo "$rate $rss"
}

command -v /usr/bin/time >/dev/null || { echo "train_fmnist: needs GNU time (apt-get install time)" >&2; exit 1; }
echo "# train_fmnist: $STEPS steps, batch 256, OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, $(date -u +%FT%TZ)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
set -- $(clasp_rate 1); c1=$1; c1m=$2
set -- $(clasp_rate 2); c2=$1; c2m=$2
set -- $(torch_rate 1); t1=$1; t1m=$2
set -- $(torch_rate 2); t2=$1; t2m=$2
set -- $(torch_rate 2 OMP_WAIT_POLICY=PASSIVE); tp=$1; tpm=$2
printf '%-34s %12s %10s\n' "run" "samples/s" "peak MiB"
printf '%-34s %12s %10s\n' "clasp 1 thread" "$c1" "$c1m"
printf '%-34s %12s %10s\n' "clasp 2 threads" "$c2" "$c2m"
printf '%-34s %12s %10s\n' "pytorch 1 thread" "$t1" "$t1m"
printf '%-34s %12s %10s\n' "pytorch 2 threads" "$t2" "$t2m"
printf '%-34s %12s %10s\n' "pytorch 2 threads PASSIVE" "$tp" "$tpm"
awk -v c1="$c1" -v c2="$c2" -v t1="$t1" -v t2="$t2" -v tp="$tp" -v cm="$c2m" -v tm="$tpm" 'BEGIN {
    printf "ratio clasp/pytorch: 1T %.2f, 2T %.2f, 2T vs pytorch PASSIVE %.2f (target >= 1.25)\n", c1/t1, c2/t2, c2/tp
    printf "peak RSS clasp/pytorch (2T): %.2f (target < 0.25)\n", cm/tm }'
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$EPOCHS" -gt 0 ]; then
    rm -rf "$OUT/clasp-q"
    "$CLASP" train --model "$ROOT/configs/fmnist-small.json" --train "$DATA/train-{000000..000005}.tar" \
        --val "$DATA/test-000000.tar" --zeroshot "$DATA/classnames.txt" --templates "$DATA/templates.txt" \
        --epochs "$EPOCHS" --batch-size 256 --threads 2 --no-progress --json --out "$OUT/clasp-q" \
        >"$OUT/clasp-q.log" 2>&1
    cz=$(grep '^{' "$OUT/clasp-q.log" | sed 's/.*"zeroshot_top1":\([0-9.]*\).*/\1/')
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$REF" --threads 2 --epochs "$EPOCHS" \
        --eval-epochs "$EPOCHS" --max-minutes 60 --json "$OUT/torch-q.json" >"$OUT/torch-q.log" 2>&1
    tz=$(/usr/bin/python3 -c "import json;print(json.load(open('$OUT/torch-q.json'))['evals'][-1]['zeroshot_top1'])")
    echo "zero-shot top-1 after $EPOCHS epoch(s) (cosine schedule over $EPOCHS): clasp $cz, pytorch $tz"
fi
