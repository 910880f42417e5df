#!/bin/sh
# soak.sh: a long training run (default 20 minutes) of a small model with shard resampling,
# zero-shot evaluation and checkpoints every few minutes, sampled every second for resident
# memory (VmRSS), open file descriptors and threads. After a warm-up (the first quarter) it
# fits a least-squares line to RSS and prints the slope in KiB per minute, with the fd and
# thread counts' first and last values. A leak shows as a positive slope or growing counts.
#
# Usage: sh scripts/soak.sh [BUILD_DIR] [MINUTES]      (writes /tmp/clasp-soak.tsv)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="$(cd "${1:-$ROOT/build}" && pwd)"
MINUTES="${2:-20}"
CLASP="$B/cli/clasp"
W="$(mktemp -d /tmp/clasp-soak.XXXXXX)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$W"' EXIT INT TERM
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-Haswell}"
"$CLASP" shards build fmnist -o "$W/data" --limit 8000 --maxcount 1000 >/dev/null 2>&1
STEPS=100000000 # the clock ends the run, not the step count
# steps per minute at this machine's speed decide the intervals: about one checkpoint and one
# evaluation every 3 minutes (measured from a 20-step probe)
t0=$(date +%s.%N)
"$CLASP" train --model "$ROOT/configs/fmnist-small.json" --train "$W/data/train-{000000..000007}.tar" \
    --batch-size 128 --steps 20 --no-progress --out "$W/probe" >/dev/null 2>&1
spm=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", 20 * 60 / (b - a) }')
every=$((spm * 3))
[ "$every" -gt 10 ] || every=10
"$CLASP" train --model "$ROOT/configs/fmnist-small.json" \
    --train "$W/data/train-{000000..000007}.tar" --samples-per-epoch 6400 \
    --val "$W/data/test-000000.tar" --zeroshot "$W/data/classnames.txt" --val-every "$every" \
    --save-every "$every" --keep 2 --batch-size 128 --steps "$STEPS" --no-progress \
    --out "$W/run" >"$W/log" 2>&1 &
pid=$!
echo "soak: pid $pid, $MINUTES min, checkpoint and zero-shot every $every steps" >&2
out=/tmp/clasp-soak.tsv
printf 'second\trss_kib\tfds\tthreads\n' >"$out"
s=0
end=$((MINUTES * 60))
while [ "$s" -lt "$end" ] && kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    thr=$(awk '/^Threads/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    printf '%d\t%s\t%s\t%s\n' "$s" "$rss" "$fds" "$thr" >>"$out"
    sleep 1
    s=$((s + 1))
done
kill -0 "$pid" 2>/dev/null || { echo "soak: the run ended early:" >&2; tail -5 "$W/log" >&2; exit 1; }
kill -INT "$pid"
wait "$pid" 2>/dev/null || true
steps=$(grep -c '"train"' "$W/run/metrics.jsonl" || true)
evals=$(grep -c '"eval"' "$W/run/metrics.jsonl" || true)
awk -F'\t' -v m="$MINUTES" -v steps="$steps" -v evals="$evals" 'NR > 1 {
        t[NR] = $1; r[NR] = $2; f[NR] = $3; h[NR] = $4; n = NR }
    END {
        w = int(n / 4)
        maxr = 0; for (i = 2; i <= n; i++) if (r[i] > maxr) maxr = r[i]
        printf "soak: %d min, %s logged steps, %s evaluations\n", m, steps, evals
        printf "soak: RSS after warm-up %d -> %d KiB (peak %d), slope %.1f KiB/min\n", r[w], r[n], maxr, fit(w, n)
        printf "soak: RSS slope over the second half %.1f KiB/min (%d -> %d KiB)\n", fit(int(n / 2), n), r[int(n / 2)], r[n]
        for (i = 3; i <= n; i++) if (r[i] - r[i - 1] >= 1024)
            printf "soak: RSS step of %+d KiB at %d s\n", r[i] - r[i - 1], t[i]
        printf "soak: fds %d -> %d (max over the run %d), threads %d -> %d\n", f[w], f[n], maxf(f, n), h[w], h[n]
    }
    # least-squares slope of RSS (KiB) against minutes over samples a..b
    function fit(a, b,   i, k, x, y, sx, sy, sxx, sxy) {
        for (i = a; i <= b; i++) { x = t[i] / 60; y = r[i]; k++; sx += x; sy += y; sxx += x * x; sxy += x * y }
        return (k * sxy - sx * sy) / (k * sxx - sx * sx)
    }
    function maxf(a, n,   i, m) { m = 0; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }' "$out"
