#!/bin/sh
# bench/train_fmnist.sh: clasp against the PyTorch reference (../shared/bench/ref_clip_fmnist.py)
# on the same model (fmnist-small), batch (256), data (Fashion-MNIST) and thread counts, in fp32
# and bf16, with the targets of issue 13 as ratios measured in the same run.
#
#   sh bench/train_fmnist.sh [STEPS] [EPOCHS]          (defaults 120, 0)
#   REPEATS=3 PRECISION="fp32 bf16" SEEDS="0" PEAK_ARGS=--cpu-time WAIT_QUIET=0 sh bench/train_fmnist.sh 120 3
#
# Part 0 (peaks): build/bench/bench_matmul_peak (cmake --build build --target
#   bench_matmul_peak) measures this build's matmul peaks through clasp_gemm: fp32 and bf16,
#   large squares and fmnist-small's own GEMM shapes, 1 and 2 threads. PEAK_ARGS (default
#   --cpu-time: each thread's CPU clock, so that another process taking a core on this shared
#   machine does not lower the peak and so inflate the MFU; PEAK_ARGS="" for wall time; add
#   --quick for a shorter run).
# Part 1 (speed): STEPS steps, REPEATS times each (interleaved), medians of the steady-state
#   samples/s: clasp fp32 and bf16 (--precision) at 1 and 2 threads; PyTorch fp32 1T, fp32 2T
#   with OMP_WAIT_POLICY=PASSIVE (its fastest 2T setting here), --amp bf16 1T and 2T PASSIVE.
#   Prints the issue's targets as ratios (bf16 2T >= 1.5x torch amp 2T PASSIVE; bf16 1T >= 1.3x
#   torch amp 1T; fp32 2T >= 2.0x torch fp32 2T PASSIVE), the MFU of every clasp run (the
#   trainer's --json "gflops": model FLOPs per sample from encoders' clasp_model_forward_macs,
#   x3 for fwd+bwd, times samples/s) against the peaks of part 0 of the same precision and
#   thread count (target: bf16 2T >= 45% of the large-square peak), and each clasp run's peak
#   RSS from GNU time (target: fmnist-small 2T <= 240 MiB).
# Part 2 (quality, when EPOCHS > 0): for each precision in PRECISION (default "fp32 bf16") and
#   each seed in SEEDS (default "0"; the issue's bar is 3 seeds: SEEDS="0 1 2"), clasp and
#   PyTorch (--amp off / bf16) train EPOCHS full epochs at 2 threads; zero-shot top-1 on the
#   10k test images and the mean over seeds. The default (2 precisions x 1 seed x 2 programs)
#   trains 4 x EPOCHS x 234 steps, at the 2-thread speeds part 1 prints.
# A run that fails prints FAILED (its log is named); medians use the runs that succeeded and
# say how many did. Needs: a clasp build in build/, python3-torch, dataset-fashion-mnist, GNU
# time.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REF="${CLASP_REF:-$ROOT/../shared/bench/ref_clip_fmnist.py}"
STEPS="${1:-120}"
EPOCHS="${2:-0}"
REPEATS="${REPEATS:-3}"
PRECISION="${PRECISION:-fp32 bf16}"
SEEDS="${SEEDS:-0}"
PEAK_ARGS="${PEAK_ARGS---cpu-time}"
WAIT_QUIET="${WAIT_QUIET:-0}"
CLASP="$ROOT/build/cli/clasp"
PEAK="$ROOT/build/bench/bench_matmul_peak"
DATA="${CLASP_DATA:-$ROOT/data/fmnist}"
OUT="${CLASP_BENCH_OUT:-/tmp/clasp-bench-train}"
PY=/usr/bin/python3
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE
mkdir -p "$OUT"
[ -f "$DATA/manifest.json" ] || "$CLASP" shards build fmnist -o "$DATA" >&2
[ -f "$REF" ] || { echo "train_fmnist: reference script not found: $REF" >&2; exit 1; }
[ -x "$PEAK" ] || { echo "train_fmnist: $PEAK missing (cmake --build build --target bench_matmul_peak)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "train_fmnist: needs GNU time (apt-get install time)" >&2; exit 1; }
TRAIN="$DATA/train-{000000..000005}.tar"

# WAIT_QUIET=S: before each timed run, wait up to S seconds for the other processes on this
# shared machine to go idle (../shared/bench/wait_quiet.py); every run line shows the load.
quiet() {
    [ "$WAIT_QUIET" -gt 0 ] || return 0
    "$PY" "$ROOT/../shared/bench/wait_quiet.py" --max-wait "$WAIT_QUIET" 2>&1 | sed 's/^/#   /'
}
load1() { cut -d' ' -f1 /proc/loadavg; }

# one field of the last --json summary line of a clasp log ("" when absent)
json_field() { # $1 = log, $2 = key
    grep '^{' "$1" 2>/dev/null | tail -n 1 | sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p"
}

# clasp train, STEPS steps: appends "samples/s gflops rssMiB" (or FAILED) to $OUT/<name>.res
clasp_run() { # $1 = precision, $2 = threads, $3 = repeat
    name="clasp-$1-$2T"
    log="$OUT/$name.$3.log"
    rm -rf "$OUT/$name.run"
    rate="" gf="" rss=0
    quiet
    if /usr/bin/time -f "%M" -o "$log.rss" "$CLASP" train --model "$ROOT/configs/fmnist-small.json" \
        --train "$TRAIN" --steps "$STEPS" --batch-size 256 --threads "$2" --workers 1 \
        --precision "$1" --no-progress --json --out "$OUT/$name.run" >"$log" 2>&1; then
        rate=$(json_field "$log" samples_per_s)
        gf=$(json_field "$log" gflops)
        rss=$(tail -n 1 "$log.rss")
    fi
    if [ -n "$rate" ] && [ -n "$gf" ]; then
        echo "$rate $gf $((rss / 1024))" >>"$OUT/$name.res"
        echo "#   $name run $3: $(printf '%.1f' "$rate") samples/s, $(printf '%.1f' "$gf") GFLOP/s, $((rss / 1024)) MiB (load $(load1))"
    else
        echo "FAILED" >>"$OUT/$name.res"
        echo "#   $name run $3: FAILED (see $log)"
    fi
    rm -rf "$OUT/$name.run"
}

# the PyTorch reference, STEPS steps: appends "samples/s rssMiB" (or FAILED)
torch_run() { # $1 = amp (off|bf16), $2 = threads, $3 = repeat; 2 threads run PASSIVE
    name="torch-$1-$2T"
    wait=""
    [ "$2" -gt 1 ] && wait="OMP_WAIT_POLICY=PASSIVE" && name="$name-passive"
    log="$OUT/$name.$3.log"
    rm -f "$OUT/$name.json"
    rate="" rss=0
    quiet
    if /usr/bin/time -f "%M" -o "$log.rss" env $wait "$PY" "$REF" --threads "$2" --amp "$1" \
        --max-steps "$STEPS" --eval-epochs "" --json "$OUT/$name.json" >"$log" 2>&1; then
        rate=$("$PY" -c "import json;print(json.load(open('$OUT/$name.json'))['samples_per_s_steady'])" 2>/dev/null || true)
        rss=$(tail -n 1 "$log.rss")
    fi
    if [ -n "$rate" ]; then
        echo "$rate 0 $((rss / 1024))" >>"$OUT/$name.res"
        echo "#   $name run $3: $(printf '%.1f' "$rate") samples/s, $((rss / 1024)) MiB (load $(load1))"
    else
        echo "FAILED" >>"$OUT/$name.res"
        echo "#   $name run $3: FAILED (see $log)"
    fi
}

# median of column $2 of $OUT/$1.res over the runs that succeeded: "value ok/total" ("FAILED 0/n")
med() {
    awk -v c="$2" -v fmt='%.1f' -f "$ROOT/bench/median.awk" "$OUT/$1.res"
}
val() { med "$1" "$2" | cut -d' ' -f1; }

# "a / b" against a target: "ratio (target >= t): PASS|MISS" or FAILED
ratio() { # $1 = label, $2 = a, $3 = b, $4 = target, $5 = unit (x or %)
    if [ "$2" = FAILED ] || [ "$3" = FAILED ] || [ -z "$2" ] || [ -z "$3" ]; then
        printf '%-58s %s\n' "$1" "FAILED"
        return
    fi
    awk -v l="$1" -v a="$2" -v b="$3" -v t="$4" -v u="$5" 'BEGIN {
        r = (b > 0) ? a / b : 0
        if (u == "%") { r *= 100; s = sprintf("%.1f%%", r); ts = sprintf("%g%%", t) }
        else { s = sprintf("%.2fx", r); ts = sprintf("%gx", t) }
        if (t == "") { printf "%-58s %s\n", l, s; exit }
        printf "%-58s %s (target >= %s): %s\n", l, s, ts, (r >= t) ? "PASS" : "MISS" }'
}

echo "# train_fmnist: $STEPS steps x $REPEATS repeats, batch 256, $("$CLASP" --version 2>&1 | head -n 1), OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, $(date -u +%FT%TZ)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- part 0: the peaks of this build, in this run ----
quiet
echo "# matmul peaks: $PEAK $PEAK_ARGS (log $OUT/peak.log)"
if "$PEAK" $PEAK_ARGS >"$OUT/peak.log" 2>&1; then :; else echo "# bench_matmul_peak FAILED (see $OUT/peak.log)"; fi
grep '^peak ' "$OUT/peak.log" || true
peak() { # $1 = precision, $2 = square|model, $3 = 1T|2T -> GFLOP/s or FAILED
    v=$(awk -v p="$1" -v k="$2" -v t="$3" '$1 == "peak" && $2 == p && $3 == k {
        for (i = 4; i < NF; i++) if ($i == t) print $(i + 1) }' "$OUT/peak.log")
    echo "${v:-FAILED}"
}

# ---- part 1: speed ----
rm -f "$OUT"/*.res
r=1
while [ "$r" -le "$REPEATS" ]; do
    echo "# repeat $r/$REPEATS (load $(cut -d' ' -f1 /proc/loadavg))"
    for p in fp32 bf16; do
        clasp_run "$p" 1 "$r"
        clasp_run "$p" 2 "$r"
    done
    for a in off bf16; do
        torch_run "$a" 1 "$r"
        torch_run "$a" 2 "$r"
    done
    r=$((r + 1))
done

printf '\n%-34s %12s %9s %10s %9s\n' "run (medians)" "samples/s" "ok/runs" "GFLOP/s" "peak MiB"
for n in clasp-fp32-1T clasp-fp32-2T clasp-bf16-1T clasp-bf16-2T torch-off-1T torch-off-2T-passive \
    torch-bf16-1T torch-bf16-2T-passive; do
    set -- $(med "$n" 1)
    rate=$1 ok=${2:-}
    gf=$(val "$n" 2) rss=$(val "$n" 3)
    case $n in torch-*) gf="-" ;; esac
    printf '%-34s %12s %9s %10s %9s\n' "$n" "$rate" "$ok" "$gf" "$rss"
done

echo
echo "# targets of issue 13 (medians, same run)"
ratio "clasp bf16 2T / torch amp bf16 2T PASSIVE" "$(val clasp-bf16-2T 1)" "$(val torch-bf16-2T-passive 1)" 1.5 x
ratio "clasp bf16 1T / torch amp bf16 1T" "$(val clasp-bf16-1T 1)" "$(val torch-bf16-1T 1)" 1.3 x
ratio "clasp fp32 2T / torch fp32 2T PASSIVE" "$(val clasp-fp32-2T 1)" "$(val torch-off-2T-passive 1)" 2.0 x
ratio "(info) clasp fp32 1T / torch fp32 1T" "$(val clasp-fp32-1T 1)" "$(val torch-off-1T 1)" "" x
ratio "(info) clasp bf16 2T / clasp fp32 2T" "$(val clasp-bf16-2T 1)" "$(val clasp-fp32-2T 1)" "" x
echo "# MFU: the trainer's model GFLOP/s against bench_matmul_peak's peaks (same precision, threads)"
for p in bf16 fp32; do
    for t in 2T 1T; do
        tgt=""
        [ "$p$t" = bf162T ] && tgt=45
        ratio "MFU clasp $p $t / large-square peak $(peak "$p" square "$t") GF/s" "$(val "clasp-$p-$t" 2)" "$(peak "$p" square "$t")" "$tgt" %
        ratio "MFU clasp $p $t / model-shape peak $(peak "$p" model "$t") GF/s" "$(val "clasp-$p-$t" 2)" "$(peak "$p" model "$t")" "" %
    done
done
echo "# peak RSS of clasp 2T (GNU time, median of runs)"
for p in fp32 bf16; do
    rss=$(val "clasp-$p-2T" 3)
    if [ "$rss" = FAILED ]; then
        printf '%-58s %s\n' "peak RSS clasp $p 2T" FAILED
    else
        awk -v p="$p" -v m="$rss" 'BEGIN { printf "%-58s %d MiB (target <= 240): %s\n", "peak RSS clasp " p " 2T", m, (m <= 240) ? "PASS" : "MISS" }'
    fi
done
ratio "(info) peak RSS clasp bf16 2T / torch amp bf16 2T" "$(val clasp-bf16-2T 3)" "$(val torch-bf16-2T-passive 3)" "" x
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- part 2: quality ----
if [ "$EPOCHS" -gt 0 ]; then
    echo
    echo "# quality: $EPOCHS epoch(s) at 2 threads (cosine schedule over $EPOCHS), zero-shot top-1 on 10k test images, seeds: $SEEDS"
    for p in $PRECISION; do
        amp=off
        [ "$p" = bf16 ] && amp=bf16
        cz_all="" tz_all=""
        for s in $SEEDS; do
            log="$OUT/clasp-q-$p-s$s.log"
            rm -rf "$OUT/clasp-q-$p-s$s"
            cz=FAILED
            if "$CLASP" train --model "$ROOT/configs/fmnist-small.json" --train "$TRAIN" \
                --val "$DATA/test-000000.tar" --zeroshot "$DATA/classnames.txt" \
                --templates "$DATA/templates.txt" --epochs "$EPOCHS" --batch-size 256 --threads 2 \
                --precision "$p" --seed "$s" --no-progress --json --out "$OUT/clasp-q-$p-s$s" >"$log" 2>&1; then
                cz=$(json_field "$log" zeroshot_top1)
                [ -n "$cz" ] || cz=FAILED
            fi
            tj="$OUT/torch-q-$amp-s$s.json"
            rm -f "$tj"
            tz=FAILED
            if OMP_WAIT_POLICY=PASSIVE "$PY" "$REF" --threads 2 --amp "$amp" --seed "$s" --epochs "$EPOCHS" \
                --eval-epochs "$EPOCHS" --max-minutes 60 --json "$tj" >"$OUT/torch-q-$amp-s$s.log" 2>&1; then
                tz=$("$PY" -c "import json;print(json.load(open('$tj'))['evals'][-1]['zeroshot_top1'])" 2>/dev/null || echo FAILED)
            fi
            echo "zero-shot top-1 $p seed $s: clasp $cz, pytorch (amp $amp) $tz"
            [ "$cz" = FAILED ] || cz_all="$cz_all $cz"
            [ "$tz" = FAILED ] || tz_all="$tz_all $tz"
        done
        mean() { echo "$1" | awk '{ for (i = 1; i <= NF; i++) s += $i; if (NF) printf "%.2f (%d runs)", s / NF, NF; else print "FAILED" }'; }
        echo "mean zero-shot top-1 $p: clasp $(mean "$cz_all"), pytorch $(mean "$tz_all")"
    done
fi
