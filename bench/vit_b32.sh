#!/bin/sh
# bench/vit_b32.sh: the real regime of issue 18: clasp against PyTorch on RGB JPEG shards with
# OpenCLIP's ViT-B/32 (configs/vit-b-32.json), in one run, fp32 and bf16, 1 and 2 threads.
#
#   sh bench/vit_b32.sh [--quick]
#   REPEATS=3 BATCH=64 STEPS=6 EMBED_BATCHES=4 TORCH_WORKERS="0 1 2" sh bench/vit_b32.sh
#   PARTS="embed" THREADS="2" PRECISIONS="bf16" sh bench/vit_b32.sh     (a subset)
#
# Data: JPEG shards of bench/make_jpeg_shards.sh ($JPEG, default data/jpeg256; built when
#   missing): about 5,800 256x256 RGB JPEGs (emoji + Fashion-MNIST) with captions.
# Part 0 (params): clasp's parameter count (from the checkpoint the embed part uses) and the
#   PyTorch model's (bench/vit_b32_torch.py --params; OpenCLIP's ViT-B-32: 151,277,313).
# Part 1 (embed): image embedding throughput at batch BATCH (64), 224x224: `clasp embed
#   --shards` (libjpeg-turbo decode, OpenAI's resize + centre crop, forward) against PyTorch's
#   DataLoader (PIL decode, Resize + CenterCrop + ToTensor + Normalize) + encode_image under
#   inference_mode (bf16: autocast). Both are timed the same way, from outside: two runs over
#   tar files of EMBED_SKIP (2) and EMBED_SKIP + EMBED_BATCHES batches of images; the rate is
#   BATCH x EMBED_BATCHES / (difference of the wall times), which leaves out start-up, model
#   load and the first batches on both sides.
# Part 2 (train): fine-tuning end to end (decode, RandomResizedCrop 224 + flip, forward, backward,
#   AdamW step), STEPS steps at batch BATCH: clasp train --image-augment default (its summary's
#   samples/s, first step left out) against bench/vit_b32_torch.py --mode train (the same, first
#   step left out). Both start from random weights (speed does not depend on their values).
#   The decode share of clasp's step: its summary's data_wait (time the step waited for the
#   loader / step time, train/metrics.c; PyTorch's is measured the same way), and the CPU the
#   data path takes: build/bench/bench_vit_b32 (bench/vit_b32.c) runs the same loader alone
#   (decode + augmentation, no model) and measures CPU ms per sample; times the training
#   samples/s that is the share of one core decoding takes during training.
# Each PyTorch configuration runs with every DataLoader num_workers in TORCH_WORKERS and the
# table keeps the best median; clasp runs with CLASP_WORKERS decode threads (default 1). Runs
# with 2 threads set OMP_WAIT_POLICY=PASSIVE for PyTorch (its fastest 2-thread setting in
# bench/train_fmnist.sh). Peak memory: the whole process tree's PSS (workers included),
# sampled by bench/vit_b32_run.py, and the peak RSS of the largest single process (GNU time's
# figure; for PyTorch with workers it leaves the workers out). TABLE_ONLY=1 reprints the table
# of the last run's results in $CLASP_BENCH_OUT without running anything.
# Medians over REPEATS runs (interleaved); a failed run prints FAILED and names its log.
# Ratios are clasp / PyTorch in the same run, against the issue's targets: embed >= 1.2x with
# peak memory <= 0.7x, train >= 1.2x.
#
# --quick: a 2-layer, width-64 model of the same shape family (224 input, patch 32, the CLIP
# BPE tokenizer, context 77), 256 Fashion-MNIST JPEGs, batch 8, 3 steps, embed 1+24 batches, 1 repeat, 2 threads,
# torch workers 1: checks that the whole script works (its figures are noise). Exit status 1
# when any run failed (a command's error; a "not slower" embed pair is noise and is not).
#
# Time: with the defaults each configuration (precision x threads) costs 1 clasp + 3 PyTorch
# runs per part per repeat; a ViT-B/32 step at batch 64 takes tens of seconds on 2 cores.
# Needs: a clasp build in build/ (targets clasp and bench_vit_b32), python3-torch, python3-torchvision, the emoji
# npm packages (or network for `npm pack`), dataset-fashion-mnist.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
CLASP="$ROOT/build/cli/clasp"
PY=/usr/bin/python3
RUN="$PY $ROOT/bench/vit_b32_run.py"
TORCH="$ROOT/bench/vit_b32_torch.py"
OUT="${CLASP_BENCH_OUT:-/tmp/clasp-bench-vit-b32}"
CONFIG="${CONFIG:-$ROOT/configs/vit-b-32.json}"
if [ "$QUICK" = 1 ]; then
    REPEATS="${REPEATS:-1}" BATCH="${BATCH:-8}" STEPS="${STEPS:-3}" EMBED_BATCHES="${EMBED_BATCHES:-24}"
    EMBED_SKIP="${EMBED_SKIP:-1}" TORCH_WORKERS="${TORCH_WORKERS:-1}" THREADS="${THREADS:-2}"
    JPEG="${JPEG:-$OUT/jpeg-quick}"
else
    REPEATS="${REPEATS:-3}" BATCH="${BATCH:-64}" STEPS="${STEPS:-6}" EMBED_BATCHES="${EMBED_BATCHES:-4}"
    EMBED_SKIP="${EMBED_SKIP:-2}" TORCH_WORKERS="${TORCH_WORKERS:-0 1 2}"
    JPEG="${JPEG:-$ROOT/data/jpeg256}"
fi
CLASP_WORKERS="${CLASP_WORKERS:-1}"
THREADS="${THREADS:-1 2}"
PRECISIONS="${PRECISIONS:-fp32 bf16}"
PARTS="${PARTS:-params embed train}"
TABLE_ONLY="${TABLE_ONLY:-0}"
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
[ -x "$CLASP" ] || { echo "vit_b32: $CLASP missing (cmake --build build --target clasp)" >&2; exit 1; }
mkdir -p "$OUT"
load1() { cut -d' ' -f1 /proc/loadavg; }
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---- data and model config ----
if [ ! -f "$JPEG/manifest.json" ]; then
    if [ "$QUICK" = 1 ]; then
        VENDORS="" FMNIST=256 sh "$ROOT/bench/make_jpeg_shards.sh" "$JPEG" >/dev/null
    else
        sh "$ROOT/bench/make_jpeg_shards.sh" "$JPEG" >/dev/null
    fi
fi
SHARDS=$(ls "$JPEG"/*.tar)
SPEC=$(echo $SHARDS | sed 's/ /::/g')
if [ "$QUICK" = 1 ]; then
    # the same model family, shrunk; the tokenizer path made absolute (the copy lives in $OUT)
    "$PY" - "$CONFIG" "$OUT/quick.json" <<'EOF'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
c = json.load(open(src))
c["embed_dim"] = 64
for t in ("image", "text"):
    c[t].update(width=64, layers=2, heads=2, mlp_width=256)
tk = c["text"]["tokenizer"]
tk["path"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(src)), tk["path"]))
json.dump(c, open(dst, "w"), indent=1)
EOF
    CONFIG="$OUT/quick.json"
fi

# tar files of the first N samples of the shards (the embed part's inputs)
first_n() { # $1 = N, $2 = output tar
    "$PY" - "$1" "$2" $SHARDS <<'EOF'
import os, sys, tarfile
n, out = int(sys.argv[1]), sys.argv[2]
count, last, full = 0, None, False
with tarfile.open(out + ".tmp", "w", format=tarfile.PAX_FORMAT) as w:
    for p in sys.argv[3:]:
        with tarfile.open(p) as r:
            for m in r:
                k = m.name.split(".", 1)[0]
                if k != last:
                    if count == n:
                        full = True
                        break
                    count, last = count + 1, k
                w.addfile(m, r.extractfile(m))
        if full:
            break
os.replace(out + ".tmp", out)
EOF
}

echo "# vit_b32: $(basename "$CONFIG"), batch $BATCH, train $STEPS steps, embed $EMBED_SKIP+$EMBED_BATCHES batches, $REPEATS repeat(s), torch workers {$TORCH_WORKERS}, clasp workers $CLASP_WORKERS, $("$CLASP" --version 2>&1 | head -n 1), $(date -u +%FT%TZ)"
# the CPU decides the ratios (PyTorch's bf16 kernels differ between CPU families): name it
cpu_name=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cpu_bf16=$(grep -qw avx512_bf16 /proc/cpuinfo && echo avx512_bf16 || echo "no avx512_bf16")
cpu_amx=$(grep -qw amx_bf16 /proc/cpuinfo && echo amx_bf16 || echo "no amx")
echo "# cpu: ${cpu_name:-unknown}, $(nproc) cores, $cpu_bf16, $cpu_amx"
echo "# shards: $JPEG ($(echo $SHARDS | wc -w) tar files); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$TABLE_ONLY" = 1 ] || rm -f "$OUT"/*.res
rm -f "$OUT/failed.list"

# one field of a JSON line
jf() { # $1 = json line, $2 = key
    echo "$1" | sed -n "s/.*\"$2\": *\([-0-9.e+]*\).*/\1/p"
}
# the last JSON line of a log
lastj() { grep '^{' "$1" 2>/dev/null | tail -n 1; }

# ---- a model for clasp embed: an export of one training step of the config (random weights;
# an export, as users embed with, not the run folder: that path also reads the checkpoint) ----
MODEL="$OUT/embed-export"
if { has embed || has params; } && [ "$TABLE_ONLY" = 0 ]; then
    rm -rf "$OUT/embed-run" "$MODEL"
    if ! $RUN --log "$OUT/embed-model.log" -- "$CLASP" train --model "$CONFIG" --train "$SPEC" \
        --steps 1 --batch-size 2 --threads 2 --no-progress --out "$OUT/embed-run" >/dev/null ||
        ! "$CLASP" export "$OUT/embed-run" -o "$MODEL" >>"$OUT/embed-model.log" 2>&1; then
        echo "vit_b32: the embed model's training step or export FAILED (see $OUT/embed-model.log)" >&2
        exit 1
    fi
    rm -rf "$OUT/embed-run"
fi

if has params && [ "$TABLE_ONLY" = 0 ]; then
    cp=$("$PY" - "$MODEL/model.safetensors" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
n = 0
for k, v in h.items():
    if k != "__metadata__":
        c = 1
        for s in v["shape"]:
            c *= s
        n += c
print(n)
EOF
) || cp=FAILED
    tp=$("$PY" "$TORCH" --config "$CONFIG" --params 2>/dev/null) || tp=FAILED
    echo "params: clasp $cp, pytorch (OpenCLIP architecture) $tp; OpenCLIP ViT-B-32: 151277313"
    if [ "$cp" != FAILED ] && [ "$tp" != FAILED ] && [ "$cp" != "$tp" ]; then
        echo "params: clasp and pytorch differ by $((cp - tp)) (same config: a bug in one of them)"
    fi
fi

# ---- part 1: embed ----
# a run whose command fails is listed in $OUT/failed.list (the script then exits 1)
failed() { echo "$1" >>"$OUT/failed.list"; }
# one timed run: prints "wall_s peakPSS maxRSS" (or FAILED); $1 = log, rest = command
timed() {
    log=$1
    shift
    if j=$($RUN --log "$log" -- "$@"); then
        echo "$(jf "$j" wall_s) $(jf "$j" peak_tree_pss_mib) $(jf "$j" maxrss_mib)"
    else
        failed "$log"
        echo FAILED
    fi
}
embed_pair() { # $1 = name, $2 = repeat, then a command with @TAR@ for the input
    name=$1 r=$2
    shift 2
    res=""
    for n in "$EMBED_SKIP" "$((EMBED_SKIP + EMBED_BATCHES))"; do
        cmd=$(echo "$@" | sed "s|@TAR@|$OUT/embed-$n.tar|g")
        # shellcheck disable=SC2086
        res="$res $(timed "$OUT/$name.$r.$n.log" $cmd)"
    done
    set -- $res
    if [ "$#" = 6 ]; then
        awk -v a="$1" -v b="$4" -v m="$5" -v rss="$6" -v k="$((BATCH * EMBED_BATCHES))" -v n="$name" -v r="$r" -v l="$(load1)" -v f="$OUT/$name.res" 'BEGIN {
            if (b > a) { printf "%.3f %.0f %.0f\n", k / (b - a), m, rss >> f; printf "#   %s run %d: %.2f images/s, %.0f MiB (load %s)\n", n, r, k / (b - a), m, l }
            else { print "FAILED" >> f; printf "#   %s run %d: FAILED (the longer run was not slower: noise; more EMBED_BATCHES)\n", n, r } }'
    else
        echo FAILED >>"$OUT/$name.res"
        echo "#   $name run $r: FAILED (see $OUT/$name.$r.*.log)"
    fi
}
if has embed && [ "$TABLE_ONLY" = 0 ]; then
    first_n "$((BATCH * EMBED_SKIP))" "$OUT/embed-$EMBED_SKIP.tar"
    first_n "$((BATCH * (EMBED_SKIP + EMBED_BATCHES)))" "$OUT/embed-$((EMBED_SKIP + EMBED_BATCHES)).tar"
fi
tenv() { [ "$1" -gt 1 ] && echo "env OMP_WAIT_POLICY=PASSIVE" || echo "env"; }

# ---- part 2: train ----
# one training run's result: "rate PSS wait RSS" into $OUT/$1.res, or FAILED when $3 is empty
train_record() { # $1 = name, $2 = repeat, $3 = samples/s, $4 = data wait, $5 = runner JSON, $6 = log
    if [ -n "$3" ] && [ -n "$4" ]; then
        mem=$(jf "$5" peak_tree_pss_mib)
        echo "$3 $mem $4 $(jf "$5" maxrss_mib)" >>"$OUT/$1.res"
        printf '#   %s run %d: %.2f samples/s, data wait %.1f%%, %.0f MiB (load %s)\n' "$1" "$2" "$3" \
            "$(awk -v w="$4" 'BEGIN{print 100*w}')" "$mem" "$(load1)"
    else
        echo FAILED >>"$OUT/$1.res"
        failed "$6"
        echo "#   $1 run $2: FAILED (see $6)"
    fi
}
clasp_train() { # $1 = precision, $2 = threads, $3 = repeat
    name="train-clasp-$1-$2T" log="$OUT/train-clasp-$1-$2T.$3.log"
    rm -rf "$OUT/run"
    rate="" wait="" j=""
    if j=$($RUN --log "$log" -- "$CLASP" train --model "$CONFIG" --train "$SPEC" --steps "$STEPS" \
        --batch-size "$BATCH" --threads "$2" --workers "$CLASP_WORKERS" --precision "$1" \
        --image-augment default --lr 1e-5 --warmup 0 --no-progress --json --out "$OUT/run"); then
        s=$(grep '"kind":"summary"' "$OUT/run/metrics.jsonl" | tail -n 1)
        rate=$(echo "$s" | sed -n 's/.*"samples_per_s":\([-0-9.e+]*\).*/\1/p')
        wait=$(echo "$s" | sed -n 's/.*"data_wait":\([-0-9.e+]*\).*/\1/p')
    fi
    train_record "$name" "$3" "$rate" "$wait" "$j" "$log"
    rm -rf "$OUT/run"
}
torch_train() { # $1 = precision, $2 = threads, $3 = workers, $4 = repeat
    name="train-torch-$1-$2T-w$3" log="$OUT/$name.$4.log"
    rate="" wait="" j=""
    # shellcheck disable=SC2046
    if j=$($RUN --log "$log" -- $(tenv "$2") "$PY" "$TORCH" --config "$CONFIG" --mode train \
        --shards $SHARDS --steps "$STEPS" --batch "$BATCH" --threads "$2" --workers "$3" \
        --precision "$1"); then
        s=$(lastj "$log")
        rate=$(jf "$s" samples_per_s) wait=$(jf "$s" data_wait)
    fi
    train_record "$name" "$4" "$rate" "$wait" "$j" "$log"
}

# the CPU cost of clasp's data path alone (bench_vit_b32: loader + augmentation, no model)
DECODE="$ROOT/build/bench/bench_vit_b32"
decode_cost() { # $1 = repeat
    [ -x "$DECODE" ] || return 0
    log="$OUT/decode.$1.log"
    if "$DECODE" "$CONFIG" "$SPEC" "$((BATCH * 8))" "$BATCH" >"$log" 2>&1 && s=$(lastj "$log") && [ -n "$s" ]; then
        echo "$(jf "$s" cpu_ms_per_sample)" >>"$OUT/decode.res"
        echo "#   clasp data path alone run $1: $(jf "$s" cpu_ms_per_sample) CPU ms/sample (load $(load1))"
    else
        echo FAILED >>"$OUT/decode.res"
        failed "$log"
        echo "#   clasp data path alone run $1: FAILED (see $log)"
    fi
}

r=1
[ "$TABLE_ONLY" = 0 ] || r=$((REPEATS + 1))
while [ "$r" -le "$REPEATS" ]; do
    echo "# repeat $r/$REPEATS (load $(load1))"
    has train && decode_cost "$r"
    for p in $PRECISIONS; do
        for t in $THREADS; do
            if has embed; then
                embed_pair "embed-clasp-$p-${t}T" "$r" "$CLASP" embed --model "$MODEL" --shards @TAR@ \
                    -o "$OUT/embed.npy" --batch-size "$BATCH" --threads "$t" --workers "$CLASP_WORKERS" --precision "$p"
                for w in $TORCH_WORKERS; do
                    # shellcheck disable=SC2046 # tenv's words are meant to split
                    embed_pair "embed-torch-$p-${t}T-w$w" "$r" $(tenv "$t") "$PY" "$TORCH" --config "$CONFIG" --mode embed \
                        --shards @TAR@ --batches 1000000 --batch "$BATCH" --threads "$t" --workers "$w" --precision "$p"
                done
            fi
            if has train; then
                clasp_train "$p" "$t" "$r"
                for w in $TORCH_WORKERS; do torch_train "$p" "$t" "$w" "$r"; done
            fi
        done
    done
    r=$((r + 1))
done

# ---- the table ----
# median of column $2 of $OUT/$1.res over the runs that succeeded: "value ok/total" ("FAILED 0/n")
med() {
    [ -f "$OUT/$1.res" ] || { echo "FAILED 0/0"; return; }
    awk -v c="$2" -v fmt='%.4g' -f "$ROOT/bench/median.awk" "$OUT/$1.res"
}
val() { med "$1" "$2" | cut -d' ' -f1; }
# the torch run name with the best median rate over TORCH_WORKERS
best_torch() { # $1 = part, $2 = precision, $3 = threads
    b="" bv=0
    for w in $TORCH_WORKERS; do
        v=$(val "$1-torch-$2-$3T-w$w" 1)
        [ "$v" = FAILED ] && continue
        if [ -z "$b" ] || awk -v a="$v" -v c="$bv" 'BEGIN { exit !(a > c) }'; then b="$1-torch-$2-$3T-w$w" bv=$v; fi
    done
    echo "${b:-$1-torch-$2-$3T-w$(echo $TORCH_WORKERS | cut -d' ' -f1)}"
}
ratio() { # $1 = label, $2 = a, $3 = b, $4 = target, $5 = ge|le
    if [ "$2" = FAILED ] || [ "$3" = FAILED ] || [ -z "$2" ] || [ -z "$3" ]; then
        printf '%-52s %s\n' "$1" FAILED
        return
    fi
    awk -v l="$1" -v a="$2" -v b="$3" -v t="$4" -v d="$5" 'BEGIN {
        r = (b > 0) ? a / b : 0
        if (t == "") { printf "%-52s %.2fx\n", l, r; exit }
        ok = (d == "le") ? (r <= t) : (r >= t)
        printf "%-52s %.2fx (target %s %gx): %s\n", l, r, (d == "le") ? "<=" : ">=", t, ok ? "PASS" : "MISS" }'
}

echo
if has embed; then
    printf '%-34s %12s %8s %14s %14s\n' "embed, batch $BATCH (medians)" "images/s" "ok/runs" "peak PSS MiB" "max RSS MiB"
    for p in $PRECISIONS; do
        for t in $THREADS; do
            for n in "embed-clasp-$p-${t}T" $(for w in $TORCH_WORKERS; do echo "embed-torch-$p-${t}T-w$w"; done); do
                # shellcheck disable=SC2046
                set -- $(med "$n" 1)
                printf '%-34s %12s %8s %14s %14s\n' "$n" "$1" "${2:-}" "$(val "$n" 2)" "$(val "$n" 3)"
            done
        done
    done
    echo
fi
if has train; then
    printf '%-34s %12s %8s %14s %14s %10s\n' "train, batch $BATCH (medians)" "samples/s" "ok/runs" "peak PSS MiB" "max RSS MiB" "data wait"
    for p in $PRECISIONS; do
        for t in $THREADS; do
            for n in "train-clasp-$p-${t}T" $(for w in $TORCH_WORKERS; do echo "train-torch-$p-${t}T-w$w"; done); do
                # shellcheck disable=SC2046
                set -- $(med "$n" 1)
                dw=$(val "$n" 3)
                [ "$dw" = FAILED ] || dw=$(awk -v w="$dw" 'BEGIN { printf "%.1f%%", 100 * w }')
                printf '%-34s %12s %8s %14s %14s %10s\n' "$n" "$1" "${2:-}" "$(val "$n" 2)" "$(val "$n" 4)" "$dw"
            done
        done
    done
    echo
fi
echo "# targets of issue 18: clasp / PyTorch (best num_workers), medians of the same run"
for p in $PRECISIONS; do
    for t in $THREADS; do
        if has embed; then
            b=$(best_torch embed "$p" "$t")
            ratio "embed $p ${t}T images/s (vs ${b##*-})" "$(val "embed-clasp-$p-${t}T" 1)" "$(val "$b" 1)" 1.2 ge
            ratio "embed $p ${t}T peak memory" "$(val "embed-clasp-$p-${t}T" 2)" "$(val "$b" 2)" 0.7 le
        fi
        if has train; then
            b=$(best_torch train "$p" "$t")
            ratio "train $p ${t}T samples/s (vs ${b##*-})" "$(val "train-clasp-$p-${t}T" 1)" "$(val "$b" 1)" 1.2 ge
            ratio "(info) train $p ${t}T peak memory" "$(val "train-clasp-$p-${t}T" 2)" "$(val "$b" 2)" "" ""
        fi
    done
done
if has train; then
    echo "# decode share of clasp's step: data wait (the summary's data_wait: loader wait / step time,"
    echo "# $CLASP_WORKERS decode thread(s)) and decode CPU (bench_vit_b32's CPU per sample of the data path"
    echo "# alone x the training rate: the share of a core decoding takes while training)"
    [ -x "$DECODE" ] || echo "# (decode CPU: $DECODE missing; cmake --build build --target bench_vit_b32)"
    for p in $PRECISIONS; do
        for t in $THREADS; do
            dw=$(val "train-clasp-$p-${t}T" 3)
            [ "$dw" = FAILED ] || dw=$(awk -v w="$dw" 'BEGIN { printf "%.1f%%", 100 * w }')
            printf '%-52s %s\n' "clasp train $p ${t}T data wait" "$dw"
            [ -f "$OUT/decode.res" ] && awk -v ms="$(val decode 1)" -v r="$(val "train-clasp-$p-${t}T" 1)" -v l="clasp train $p ${t}T decode CPU" 'BEGIN {
                if (ms == "FAILED" || r == "FAILED") { printf "%-52s FAILED\n", l; exit }
                printf "%-52s %.2f ms/sample x %.2f samples/s = %.1f%% of one core\n", l, ms, r, ms * r / 10 }'
        done
    done
fi
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$OUT/failed.list" ]; then
    echo "vit_b32: $(wc -l <"$OUT/failed.list") run(s) failed: $(tr '\n' ' ' <"$OUT/failed.list")" >&2
    exit 1
fi
