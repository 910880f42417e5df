#!/bin/sh
# faultinject.sh: every write path of clasp under injected I/O failures. For each path
# (checkpoint while training, export, shards build, embeddings) it counts the file writes,
# fsyncs and renames a clean run makes (K), then reruns the command K times with the shim
# (tests/fault/fault_shim.c, LD_PRELOAD) failing call N = 1..K, and checks each outcome:
#   - the command fails (exit != 0) with a message naming a file (a path in it),
#   - no partial file under a final name (every checkpoint folder opens, every shard is a whole
#     tar, the export and the .npy are the previous ones or absent),
#   - the previous checkpoint/export stays intact and loadable,
#   - after a checkpoint failure, `--resume latest` (without the shim) ends with the same
#     losses, bit for bit, as an uninterrupted run.
# Then the same paths on a full tmpfs (mounted here; needs root) and under RLIMIT_FSIZE, which
# also cover what stdio writes (metrics.jsonl, the progress log) where no preload can reach.
# Prints the matrix (path x failure point -> outcome) and exits 1 on any violation.
#
# Usage: sh scripts/faultinject.sh [BUILD_DIR] [STRIDE]   (STRIDE > 1 tries every STRIDE-th N:
#        CI's short version; default 1 = all)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="$(cd "${1:-$ROOT/build}" && pwd)"
STRIDE="${2:-1}"
CLASP="$B/cli/clasp"
SHIM="$B/tests/libclasp_fault_shim.so"
[ -x "$CLASP" ] && [ -f "$SHIM" ] || { echo "faultinject: build clasp and clasp_fault_shim in $B" >&2; exit 2; }
W="$(mktemp -d /tmp/clasp-fault.XXXXXX)"
MNT="$W/tmpfs"
cleanup() { umount "$MNT" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT INT TERM
export CLASP_LOG=warn OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-Haswell}"
bad=0
fail() { echo "VIOLATION: $*" >&2; bad=$((bad + 1)); }

# ---- data and references ---------------------------------------------------------------------
"$CLASP" shards build fmnist -o "$W/data" --limit 512 --maxcount 128 >/dev/null 2>&1
DATA="$W/data/train-{000000..000003}.tar"
TRAIN="train --model $ROOT/configs/fmnist-small.json --train $DATA --batch-size 64 --warmup 2 \
--log-every 1 --no-progress --seed 3 --steps 6 --save-every 2 --keep 0"
losses() { grep '"train"' "$1/metrics.jsonl" | grep -o '"loss":[^,]*' ; }
# shellcheck disable=SC2086
"$CLASP" $TRAIN --out "$W/straight" >/dev/null 2>&1
# shellcheck disable=SC2086
"$CLASP" $TRAIN --stop-after 2 --out "$W/stopped" >/dev/null 2>&1 || true
[ -d "$W/stopped/checkpoints/step-00000002" ] || { echo "faultinject: no step-2 checkpoint" >&2; exit 2; }
"$CLASP" export "$W/straight" -o "$W/export0" >/dev/null 2>&1

# counted calls of a command: K
count_calls() { # $1 = log, rest = command
    log="$1"
    shift
    rm -f "$W/count"
    CLASP_FAULT_COUNT="$W/count" LD_PRELOAD="$SHIM" "$@" >"$log" 2>&1 || true
    cat "$W/count"
}

# every checkpoint folder of run $1 (final names: step-NNNNNNNN) opens, and no temporary
# folder is left behind
checkpoints_ok() {
    for c in "$1"/checkpoints/step-*.tmp; do
        [ -e "$c" ] && { echo "$c (temporary folder left)"; return 1; }
    done
    for c in "$1"/checkpoints/step-*; do
        [ -d "$c" ] || continue
        "$CLASP" export "$c" -o "$W/probe-export" >/dev/null 2>&1 || { echo "$c"; return 1; }
        rm -rf "$W/probe-export"
    done
    return 0
}

names_a_file() { grep -q '/' "$1"; } # the error message contains a path

# The failure points tried for K counted calls: every STRIDE-th; for K above 120 the first
# 40, the last 40 and 40 spread between (a shard build writes thousands of members alike).
points() { # $1 = K
    awk -v K="$1" -v S="$STRIDE" 'BEGIN {
        for (n = 1; n <= K; n += S) {
            if (K <= 120 || n <= 40 || n > K - 40 || (n - 40) % int((K - 80) / 40 + 1) == 0)
                print n
        } }'
}

printf '%-12s %6s %-8s %s\n' path N exit outcome
# ---- 1. checkpoints while training ----------------------------------------------------------
rm -rf "$W/r"
cp -r "$W/stopped" "$W/r"
# shellcheck disable=SC2086
K=$(count_calls "$W/log" "$CLASP" $TRAIN --resume latest --out "$W/r")
for n in $(points "$K"); do
    rm -rf "$W/r"
    cp -r "$W/stopped" "$W/r"
    rc=0
    # shellcheck disable=SC2086
    CLASP_FAULT_AT=$n LD_PRELOAD="$SHIM" "$CLASP" $TRAIN --resume latest --out "$W/r" \
        >"$W/log" 2>&1 || rc=$?
    out="ok"
    if [ "$rc" -eq 0 ]; then
        fail "checkpoint N=$n: exit 0 although call $n failed"; out="exit 0"
    elif ! names_a_file "$W/log"; then
        fail "checkpoint N=$n: message names no file: $(tail -1 "$W/log")"; out="no file named"
    elif c=$(checkpoints_ok "$W/r"); then
        if "$CLASP" $TRAIN --resume latest --out "$W/r" >"$W/log2" 2>&1; then
            [ "$(losses "$W/r" | tail -4)" = "$(losses "$W/straight" | tail -4)" ] ||
                { fail "checkpoint N=$n: resumed losses differ"; out="losses differ"; }
        else
            fail "checkpoint N=$n: resume failed: $(tail -1 "$W/log2")"; out="resume failed"
        fi
    else
        fail "checkpoint N=$n: unreadable $c"; out="unreadable checkpoint"
    fi
    printf '%-12s %3s/%-3s %-8s %s: %s\n' checkpoint "$n" "$K" "$rc" "$out" \
        "$(grep -o 'fault_shim: failing [a-z]*' "$W/log" | head -1 | cut -d' ' -f3)"
done

# ---- 2. export over a previous export --------------------------------------------------------
sum_dir() { (cd "$1" && cat config.json model.safetensors tokenizer.json | cksum); }
K=$(count_calls "$W/log" "$CLASP" export "$W/stopped" -o "$W/e")
old=$(sum_dir "$W/export0")
for n in $(points "$K"); do
    rm -rf "$W/e" "$W"/e.*
    cp -r "$W/export0" "$W/e"
    rc=0
    CLASP_FAULT_AT=$n LD_PRELOAD="$SHIM" "$CLASP" export "$W/stopped" -o "$W/e" >"$W/log" 2>&1 || rc=$?
    out="ok"
    if [ "$rc" -eq 0 ]; then
        fail "export N=$n: exit 0"; out="exit 0"
    elif ! names_a_file "$W/log"; then
        fail "export N=$n: message names no file"; out="no file named"
    elif [ "$(sum_dir "$W/e" 2>/dev/null)" != "$old" ]; then
        fail "export N=$n: the previous export changed"; out="previous export changed"
    fi
    leftovers=$(find "$W" -maxdepth 1 -name 'e.*' | wc -l)
    [ "$leftovers" -eq 0 ] || { fail "export N=$n: $leftovers temporary folder(s) left"; out="leftovers"; }
    printf '%-12s %3s/%-3s %-8s %s\n' export "$n" "$K" "$rc" "$out"
done

# ---- 3. shards build --------------------------------------------------------------------------
SB="shards build fmnist --limit 300 --maxcount 100"
# shellcheck disable=SC2086
"$CLASP" $SB -o "$W/s0" >/dev/null 2>&1
# shellcheck disable=SC2086
K=$(count_calls "$W/log" "$CLASP" $SB -o "$W/s")
for n in $(points "$K"); do
    rm -rf "$W/s"
    rc=0
    # shellcheck disable=SC2086
    CLASP_FAULT_AT=$n LD_PRELOAD="$SHIM" "$CLASP" $SB -o "$W/s" >"$W/log" 2>&1 || rc=$?
    out="ok"
    if [ "$rc" -eq 0 ]; then
        fail "shards N=$n: exit 0"; out="exit 0"
    elif ! names_a_file "$W/log"; then
        fail "shards N=$n: message names no file"; out="no file named"
    else
        for t in "$W"/s/*.tar; do
            [ -f "$t" ] || continue
            cmp -s "$t" "$W/s0/$(basename "$t")" || { fail "shards N=$n: partial $t"; out="partial shard"; }
        done
        # shellcheck disable=SC2086
        "$CLASP" $SB -o "$W/s" >/dev/null 2>&1 || { fail "shards N=$n: rebuild failed"; out="rebuild failed"; }
        for t in "$W"/s0/*.tar; do
            cmp -s "$t" "$W/s/$(basename "$t")" || { fail "shards N=$n: rebuilt $(basename "$t") differs"; out="rebuild differs"; }
        done
    fi
    printf '%-12s %3s/%-3s %-8s %s\n' shards "$n" "$K" "$rc" "$out"
done

# ---- 4. embeddings -----------------------------------------------------------------------------
EMB="embed --model $W/export0 --shards $W/data/test-000000.tar --threads 1"
# shellcheck disable=SC2086
"$CLASP" $EMB -o "$W/x0.npy" >/dev/null 2>&1
# shellcheck disable=SC2086
K=$(count_calls "$W/log" "$CLASP" $EMB -o "$W/x.npy")
for n in $(points "$K"); do
    rm -f "$W"/x.*
    cp "$W/x0.npy" "$W/x.npy"
    rc=0
    # shellcheck disable=SC2086
    CLASP_FAULT_AT=$n LD_PRELOAD="$SHIM" "$CLASP" $EMB -o "$W/x.npy" >"$W/log" 2>&1 || rc=$?
    out="ok"
    if [ "$rc" -eq 0 ]; then
        fail "embed N=$n: exit 0"; out="exit 0"
    elif ! names_a_file "$W/log"; then
        fail "embed N=$n: message names no file"; out="no file named"
    elif ! cmp -s "$W/x.npy" "$W/x0.npy"; then
        fail "embed N=$n: x.npy is not the previous file"; out="npy changed"
    fi
    [ "$(find "$W" -maxdepth 1 -name 'x.npy?*' | wc -l)" -eq 0 ] || { fail "embed N=$n: temporary left"; out="leftovers"; }
    printf '%-12s %3s/%-3s %-8s %s\n' embed "$n" "$K" "$rc" "$out"
done

# ---- 5. a full disk (tmpfs) and a file-size limit ----------------------------------------------
mkdir -p "$MNT"
if mount -t tmpfs -o size=600k tmpfs "$MNT" 2>/dev/null; then
    cp -r "$W/stopped" "$MNT/r" 2>/dev/null || true
    rm -rf "$MNT/r"
    rc=0
    # shellcheck disable=SC2086
    "$CLASP" $TRAIN --out "$MNT/r" >"$W/log" 2>&1 || rc=$?
    out="ok"
    if [ "$rc" -eq 0 ]; then fail "tmpfs: train exit 0 on a full disk"; out="exit 0"
    elif ! names_a_file "$W/log"; then fail "tmpfs: message names no file: $(tail -1 "$W/log")"; out="no file named"
    elif ! c=$(checkpoints_ok "$MNT/r"); then fail "tmpfs: unreadable $c"; out="unreadable checkpoint"; fi
    printf '%-12s %7s %-8s %s: %s\n' "tmpfs-train" "full" "$rc" "$out" "$(tail -1 "$W/log" | cut -c1-90)"
    umount "$MNT"
else
    echo "faultinject: cannot mount a tmpfs (not root?): full-disk case skipped" >&2
fi
rc=0
rm -rf "$W/f"
# shellcheck disable=SC2086
(ulimit -f 400 && exec "$CLASP" $TRAIN --out "$W/f") >"$W/log" 2>&1 || rc=$?
out="ok"
if [ "$rc" -eq 0 ]; then fail "fsize: train exit 0 above RLIMIT_FSIZE"; out="exit 0"
elif [ "$rc" -gt 128 ]; then fail "fsize: killed by signal $((rc - 128)) (SIGXFSZ not ignored?)"; out="signal"
elif ! names_a_file "$W/log"; then fail "fsize: message names no file"; out="no file named"
elif ! c=$(checkpoints_ok "$W/f"); then fail "fsize: unreadable $c"; out="unreadable checkpoint"; fi
printf '%-12s %7s %-8s %s: %s\n' "fsize-train" "400K" "$rc" "$out" "$(tail -1 "$W/log" | cut -c1-90)"

if [ "$bad" -gt 0 ]; then
    echo "faultinject: $bad violation(s)" >&2
    exit 1
fi
echo "faultinject: every injected failure was reported with its file, left no partial file, and resumed exactly" >&2
