#!/bin/sh
# faultinject.sh: every write path of clasp under injected I/O failures. For each path
# (checkpoint while training, export, shards build, embeddings, the HTML report) it counts
# the file writes, fsyncs and renames a clean run makes (K), then reruns the command K times with the shim
# (tests/fault/fault_shim.c, LD_PRELOAD) failing call N = 1..K, and checks each outcome:
#   - the command fails (exit != 0) with a message naming a file (a path in it),
#   - no partial file under a final name (every checkpoint folder opens, every shard is a whole
#     tar, the export and the .npy are the previous ones or absent),
#   - the previous checkpoint/export stays intact and loadable,
#   - after a checkpoint failure, `--resume latest` (without the shim) ends with the same
#     losses, bit for bit, as an uninterrupted run.
# Then every command on a full tmpfs (mounted here, 16 KiB left; needs root) and under
# RLIMIT_FSIZE (16 KiB), which also cover what stdio writes (metrics.jsonl, the progress log)
# where no preload can reach.
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
# One output file over a previous one (embed's .npy, the report's HTML): every failure point
# must leave the previous file byte-identical and no temporary beside it.
# $1 = path name, $2 = output file, $3 = the previous file, rest = the command (without -o)
one_file() {
    name="$1" outf="$2" prev="$3"
    shift 3
    K=$(count_calls "$W/log" "$@" -o "$outf")
    for n in $(points "$K"); do
        rm -f "$outf" "$outf".*
        cp "$prev" "$outf"
        rc=0
        CLASP_FAULT_AT=$n LD_PRELOAD="$SHIM" "$@" -o "$outf" >"$W/log" 2>&1 || rc=$?
        out="ok"
        if [ "$rc" -eq 0 ]; then
            fail "$name N=$n: exit 0"; out="exit 0"
        elif ! names_a_file "$W/log"; then
            fail "$name N=$n: message names no file"; out="no file named"
        elif ! cmp -s "$outf" "$prev"; then
            fail "$name N=$n: $(basename "$outf") is not the previous file"; out="file changed"
        fi
        [ "$(find "$(dirname "$outf")" -maxdepth 1 -name "$(basename "$outf")?*" | wc -l)" -eq 0 ] ||
            { fail "$name N=$n: temporary left"; out="leftovers"; }
        printf '%-12s %3s/%-3s %-8s %s\n' "$name" "$n" "$K" "$rc" "$out"
    done
}
# shellcheck disable=SC2086
one_file embed "$W/x.npy" "$W/x0.npy" "$CLASP" $EMB

# ---- 5. the HTML report over a previous report -----------------------------------------------
REP="report $W/straight --data $W/data/test-000000.tar --zeroshot $W/data/classnames.txt --threads 1"
# shellcheck disable=SC2086
"$CLASP" $REP -o "$W/rep0.html" >/dev/null 2>&1
# shellcheck disable=SC2086
one_file report "$W/rep.html" "$W/rep0.html" "$CLASP" $REP

# ---- 6. a full disk (tmpfs with 16 KiB left) and a file-size limit, every command ------------
# $1 = case name, $2 = output folder, $3 = the output path, then the command's arguments
# (the output path last). Each must fail naming a file, and leave at the final name either
# nothing or a whole, loadable result.
whole() { # $1 = kind, $2 = path: the result at a final name is whole (or absent)
    case "$1" in
    train | metrics) checkpoints_ok "$2" >/dev/null ;;
    export) [ ! -e "$2" ] || "$CLASP" embed --model "$2" --shards "$W/data/test-000000.tar" \
        --threads 1 -o "$W/probe.npy" >/dev/null 2>&1 ;;
    shards) for t in "$2"/*.tar; do [ -f "$t" ] || continue
            cmp -s "$t" "$W/s0/$(basename "$t")" || return 1; done ;;
    embed) [ ! -e "$2" ] || cmp -s "$2" "$W/x0.npy" ;;
    report) [ ! -e "$2" ] || cmp -s "$2" "$W/rep0.html" ;;
    esac
}
full_case() { # $1 = how (tmpfs|fsize), $2 = kind, $3 = output, rest = command
    how="$1" kind="$2" outp="$3"
    shift 3
    rc=0
    if [ "$how" = tmpfs ]; then # empty the disk, then fill all but 16 KiB
        rm -rf "${MNT:?}"/*
        free=$(df -k --output=avail "$MNT" | tail -1)
        dd if=/dev/zero of="$MNT/fill" bs=1k count=$((free - 16)) 2>/dev/null || true
        "$@" >"$W/log" 2>&1 || rc=$?
    else
        # 32 blocks of 512 bytes in dash
        (ulimit -f 32 && exec "$@") >"$W/log" 2>&1 || rc=$?
    fi
    out="ok"
    if [ "$rc" -eq 0 ]; then fail "$how-$kind: exit 0"; out="exit 0"
    elif [ "$rc" -gt 128 ]; then fail "$how-$kind: killed by signal $((rc - 128))"; out="signal"
    elif ! names_a_file "$W/log"; then fail "$how-$kind: message names no file: $(tail -1 "$W/log")"; out="no file named"
    elif ! whole "$kind" "$outp"; then fail "$how-$kind: partial result at $outp"; out="partial result"; fi
    printf '%-14s %5s %-8s %s: %s\n' "$how-$kind" "$how" "$rc" "$out" "$(tail -1 "$W/log" | cut -c1-90)"
}
every_command() { # $1 = how, $2 = output folder
    how="$1" o="$2"
    # shellcheck disable=SC2086
    full_case "$how" train "$o/r" "$CLASP" $TRAIN --out "$o/r"
    # metrics.jsonl alone (no checkpoint before the disk is full: about 600 bytes per step)
    # shellcheck disable=SC2086
    full_case "$how" metrics "$o/m" "$CLASP" $TRAIN --steps 60 --save-every 1000 --out "$o/m"
    full_case "$how" export "$o/e" "$CLASP" export "$W/stopped" -o "$o/e"
    # shellcheck disable=SC2086
    full_case "$how" shards "$o/s" "$CLASP" $SB -o "$o/s"
    # shellcheck disable=SC2086
    full_case "$how" embed "$o/x.npy" "$CLASP" $EMB -o "$o/x.npy"
    # shellcheck disable=SC2086
    full_case "$how" report "$o/rep.html" "$CLASP" $REP -o "$o/rep.html"
}
mkdir -p "$MNT"
if mount -t tmpfs -o size=8m tmpfs "$MNT" 2>/dev/null; then
    every_command tmpfs "$MNT"
    umount "$MNT"
else
    echo "faultinject: cannot mount a tmpfs (not root?): full-disk cases skipped" >&2
fi
mkdir -p "$W/f"
every_command fsize "$W/f"

if [ "$bad" -gt 0 ]; then
    echo "faultinject: $bad violation(s)" >&2
    exit 1
fi
echo "faultinject: every injected failure was reported with its file, left no partial file, and resumed exactly" >&2
