#!/bin/sh
# serve-load.sh: the load test of `clasp serve` (docs/serve.md), run by hand, 127.0.0.1 only.
# Embeds N_TEXTS texts with EXPORT, builds an HNSW index of them, starts `clasp serve` on a free
# port and runs bench/serve.c: text /search QPS and p50/p99 at 1/2/8 clients, 1,000 malformed
# requests (each must be a 4xx, the server still answering), then SECONDS of searches while the
# index is rebuilt in a loop and reloaded every 100 ms (failed requests must be 0).
#
# Usage: sh scripts/serve-load.sh EXPORT [SECONDS] [N_TEXTS]     (build tree $BUILD, default build)
set -eu
[ $# -ge 1 ] || { echo "usage: $0 EXPORT [SECONDS] [N_TEXTS]" >&2; exit 2; }
E=$1
S=${2:-5}
N=${3:-2000}
B=${BUILD:-build}
C=$B/cli/clasp
W=$(mktemp -d)
SRV=
cleanup() { [ -z "$SRV" ] || kill "$SRV" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT INT TERM
i=0
while [ $i -lt "$N" ]; do echo "item $i: a photo of a thing number $((i * 7919 % 1000))"; i=$((i + 1)); done > "$W/texts.txt"
"$C" embed --model "$E" --text "$W/texts.txt" -o "$W/t.npy" 2>/dev/null
"$C" index build --model "$E" --embeddings "$W/t.npy" -o "$W/idx" --type hnsw >/dev/null 2>&1
"$C" serve --model "$E" --index "$W/idx" --addr 127.0.0.1:0 --workers "${WORKERS:-2}" \
    2> "$W/serve.log" &
SRV=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$W/serve.log")
    [ -n "$PORT" ] && break
    sleep 0.2
done
[ -n "$PORT" ] || { cat "$W/serve.log" >&2; exit 1; }
rc=0
"$B/bench/bench_serve" load "$PORT" "$S" || rc=1
"$B/bench/bench_serve" malformed "$PORT" || rc=1
( end=$(($(date +%s) + S)); while [ "$(date +%s)" -lt "$end" ]; do
      "$C" index build --model "$E" --embeddings "$W/t.npy" -o "$W/idx" --type hnsw >/dev/null 2>&1
  done ) &
REB=$!
"$B/bench/bench_serve" reload "$PORT" "$S" || rc=1
wait "$REB"
echo "index generation at the end: $(readlink "$W/idx/current")"
exit $rc
