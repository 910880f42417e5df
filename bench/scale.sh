#!/bin/sh
# scale.sh: data-parallel scaling of `clasp train` over MPI on this machine: samples/s for 1, 2
# and 4 ranks (one compute thread and one OpenBLAS thread per rank, so ranks do not
# oversubscribe the cores through threads), and per step the time rank 0 spends in all-gathers
# (features) and in reductions (reduce-scatter of feature gradients + all-reduce of parameter
# gradients). Weak scaling: every rank computes PER_RANK rows, the global batch is PER_RANK x
# ranks (shards split by rank). The communication times include waiting for the slowest rank.
#
# Usage: sh bench/scale.sh [BUILD_DIR]   (BUILD_DIR configured with -DCLASP_MPI=ON; default
#        build-mpi-on). Environment: STEPS (30), PER_RANK (64), RANKS ("1 2 4"), TIMEOUT
#        (--dist-timeout: 600 = polled non-blocking collectives, 0 = blocking ones).
# Needs dataset-fashion-mnist and OpenMPI (libopenmpi-dev openmpi-bin).
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build-mpi-on}"
CLASP="$BUILD/cli/clasp"
STEPS="${STEPS:-30}"
PER_RANK="${PER_RANK:-64}"
RANKS="${RANKS:-1 2 4}"
TIMEOUT="${TIMEOUT:-600}"
WORK="$(mktemp -d /tmp/clasp-scale.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
: "${OPENBLAS_CORETYPE:=Haswell}"
export OPENBLAS_CORETYPE

[ -x "$CLASP" ] || { echo "scale.sh: $CLASP not built" >&2; exit 1; }
"$CLASP" shards build fmnist -o "$WORK/data" --limit 5120 --maxcount 256 >/dev/null 2>&1
echo "clasp train fmnist-small, $STEPS steps, $PER_RANK rows per rank, 1 thread per rank," \
    "$(getconf _NPROCESSORS_ONLN) cores, --dist-timeout $TIMEOUT"
printf '%6s %8s %12s %10s %14s %14s\n' ranks batch samples/s speedup allgather_ms allreduce_ms
for n in $RANKS; do
    B=$((PER_RANK * n))
    out="$WORK/run$n"
    if [ "$n" -eq 1 ]; then launch=""; else
        launch="mpirun --allow-run-as-root --oversubscribe --bind-to none -np $n"
    fi
    # shellcheck disable=SC2086
    $launch "$CLASP" train --model "$ROOT/configs/fmnist-small.json" \
        --train "$WORK/data/train-{000000..000019}.tar" --out "$out" --batch-size "$B" \
        --steps "$STEPS" --threads 1 --workers 1 --log-every 1000 --no-progress --check-every 0 \
        --dist-timeout "$TIMEOUT" >"$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
    python3 - "$out/metrics.jsonl" "$n" "$B" "$WORK/base" <<'EOF'
import json, os, sys
path, n, B, basef = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = [json.loads(l) for l in open(path) if '"summary"' in l][-1]
rate = s["samples_per_s"]
if not os.path.exists(basef):
    open(basef, "w").write(repr(rate))
base = float(open(basef).read())
print("%6d %8d %12.0f %10.2f %14.2f %14.2f" % (n, B, rate, rate / base,
      s.get("allgather_ms_per_step", 0.0), s.get("allreduce_ms_per_step", 0.0)))
EOF
done
