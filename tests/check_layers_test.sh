#!/bin/sh
# check_layers_test.sh SRC: scripts/check-layers.sh passes on the repository and fails on a copy
# of its rules given a file that breaks each kind of rule (an upward include, a private header).
set -eu
SRC="$1"
sh "$SRC/scripts/check-layers.sh" "$SRC"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/scripts" "$T/encoders" "$T/bench" "$T/datasets"
cp "$SRC/scripts/layers.txt" "$T/scripts/"
cd "$T" && git init -q .
printf '#include "core/status.h"\n' >encoders/ok.c
git add -A
sh "$SRC/scripts/check-layers.sh" "$T" 2>/dev/null || { echo "a clean tree was refused" >&2; exit 1; }
printf '#include "train/engine.h"\n' >encoders/up.c
git add -A
if sh "$SRC/scripts/check-layers.sh" "$T" 2>"$T/err"; then echo "encoders -> train passed" >&2; exit 1; fi
grep -q 'encoders/up.c includes train/engine.h' "$T/err"
git rm -q --cached encoders/up.c && rm encoders/up.c
printf '#include "datasets/internal.h"\n' >bench/priv.c
git add -A
if sh "$SRC/scripts/check-layers.sh" "$T" 2>"$T/err"; then echo "private header passed" >&2; exit 1; fi
grep -q 'bench/priv.c includes datasets/internal.h, private to datasets/' "$T/err"
echo "check_layers_test: passed" >&2
