#!/bin/sh
# install-deps.sh: installs every Debian package clasp's build, tests and main job need.
# Idempotent: installs only what is missing, and says nothing when everything is present.
# Needs root (or sudo) only when something is missing.
set -eu

# build and tests (libdnnl-dev: the default compute backend, oneDNN; libopenblas-dev: the portable
# one; python3-torch/-torchvision regenerate tests/reference; the tests read the committed
# files, except the clasp_torch.py parity tests, which run PyTorch)
PKGS="build-essential cmake pkg-config clang-format python3 time \
libstb-dev libturbojpeg0-dev libopenblas-dev libdnnl-dev libcjson-dev libxxhash-dev libcriterion-dev \
libsndfile1-dev libutf8proc-dev libarchive-dev libsamplerate0-dev libkissfft-dev \
python3-torch python3-torchvision python3-numpy python3-pil valgrind clang libclang-rt-14-dev \
libopenmpi-dev openmpi-bin"
# observability and serving (libmicrohttpd: /metrics and the search server; prometheus: promtool
# checks the exposition; chromium: renders the HTML report in its test), man page and completion
PKGS="$PKGS libmicrohttpd-dev prometheus chromium help2man bash-completion"
# ANN indexes (index/, `clasp index`): FAISS 1.7.3, a static C++ library (with its BLAS/LAPACK
# and OpenMP dependencies)
PKGS="$PKGS libfaiss-dev"
# data sources of the built-in datasets (main job: Fashion-MNIST; speech: Asterisk, espeak-ng)
PKGS="$PKGS dataset-fashion-mnist espeak-ng \
asterisk-core-sounds-en asterisk-core-sounds-en-wav asterisk-core-sounds-es asterisk-core-sounds-es-wav \
asterisk-core-sounds-fr asterisk-core-sounds-fr-wav asterisk-core-sounds-it asterisk-core-sounds-it-wav \
asterisk-core-sounds-ru asterisk-core-sounds-ru-wav"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: need root to install:$missing" >&2
        exit 1
    fi
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
