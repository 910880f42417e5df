#!/bin/sh
# bench/make_jpeg_shards.sh: RGB JPEG WebDataset shards for bench/vit_b32.sh (issue 18, "the real
# regime"): every image the builders reach here, re-encoded as a 256x256 RGB JPEG with its
# caption, written by `clasp shards build folder` (manifest.json + jpeg-NNNNNN.tar).
#
#   sh bench/make_jpeg_shards.sh [OUT]            (default data/jpeg256)
#   FMNIST=0 VENDORS=google QUALITY=90 SIZE=256 sh bench/make_jpeg_shards.sh /tmp/jpeg
#
# Sources (each built with `clasp shards build` into $WORK when not already there):
#   emoji   the google and twitter emoji of `clasp shards build emoji` (train and validation
#           splits; 64-px RGBA PNGs composited on white, upscaled bicubic; caption: the
#           English CLDR label). The emoji builder fetches its npm packages into $CLASP_CACHE
#           (or ~/.cache/clasp) with `npm pack` when they are not cached. VENDORS (default
#           "google twitter") picks the vendors; data/emoji/VENDOR is reused when present.
#   fmnist  the first FMNIST (default 2000) Fashion-MNIST training images (28-px grey made RGB,
#           upscaled bicubic; caption: the builder's templated caption), from the Debian package
#           dataset-fashion-mnist. FMNIST=0 leaves them out.
# About 5,800 samples with the defaults (1,911 google + 1,911 twitter emoji + 2,000 fmnist).
# Keys are "<8 hex digits of crc32(source key)>_<source>_<key>", so that the byte order the
# folder builder writes mixes the sources. JPEGs are written by PIL (python3-pil, which
# python3-torchvision depends on) at QUALITY (default 90, 4:2:0 chroma), SIZE x SIZE (default 256).
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/data/jpeg256}"
CLASP="${CLASP:-$ROOT/build/cli/clasp}"
VENDORS="${VENDORS:-google twitter}"
FMNIST="${FMNIST:-2000}"
QUALITY="${QUALITY:-90}"
SIZE="${SIZE:-256}"
MAXCOUNT="${MAXCOUNT:-1000}"
WORK="${WORK:-$OUT.src}"
PY=/usr/bin/python3
[ -x "$CLASP" ] || { echo "make_jpeg_shards: $CLASP missing (cmake --build build --target clasp)" >&2; exit 1; }
mkdir -p "$WORK"

srcs=""
for v in $VENDORS; do
    if [ -f "$ROOT/data/emoji/$v/manifest.json" ]; then
        d="$ROOT/data/emoji/$v"
    else
        d="$WORK/emoji-$v"
        [ -f "$d/manifest.json" ] || "$CLASP" shards build emoji --vendors "$v" -o "$d" >&2
    fi
    srcs="$srcs emoji-$v=$d"
done
if [ "$FMNIST" -gt 0 ]; then
    d="$WORK/fmnist-$FMNIST"
    [ -f "$d/manifest.json" ] || "$CLASP" shards build fmnist --limit "$FMNIST" -o "$d" >&2
    srcs="$srcs fmnist=$d"
fi

rm -rf "$WORK/jpeg"
mkdir -p "$WORK/jpeg"
# shellcheck disable=SC2086
"$PY" - "$WORK/jpeg" "$SIZE" "$QUALITY" $srcs <<'EOF'
import io, os, sys, tarfile, zlib
from PIL import Image

out, size, quality = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
total = 0
for arg in sys.argv[4:]:
    name, folder = arg.split("=", 1)
    n = 0
    for shard in sorted(f for f in os.listdir(folder) if f.endswith(".tar")):
        if name == "fmnist" and not shard.startswith("train-"):
            continue  # the test split of --limit N: same images' kind, fewer is enough
        samples = {}
        with tarfile.open(os.path.join(folder, shard)) as tf:
            for m in tf:
                if not m.isfile():
                    continue
                base = os.path.basename(m.name)
                key, ext = base.split(".", 1)
                samples.setdefault(key, {})[ext.lower()] = tf.extractfile(m).read()
        for key, f in samples.items():
            img = f.get("png") or f.get("jpg") or f.get("jpeg")
            if img is None or "txt" not in f:
                continue
            im = Image.open(io.BytesIO(img))
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            im = im.convert("RGB").resize((size, size), Image.BICUBIC)
            k = "%08x_%s_%s" % (zlib.crc32(("%s/%s" % (name, key)).encode()), name, key)
            im.save(os.path.join(out, k + ".jpg"), quality=quality)
            with open(os.path.join(out, k + ".txt"), "wb") as t:
                t.write(f["txt"])
            n += 1
    print("make_jpeg_shards: %s: %d images" % (name, n), file=sys.stderr)
    total += n
print("make_jpeg_shards: %d images, %dx%d RGB JPEG quality %d" % (total, size, size, quality),
      file=sys.stderr)
EOF

rm -rf "$OUT.tmp"
"$CLASP" shards build folder "$WORK/jpeg" -o "$OUT.tmp" --prefix jpeg --maxcount "$MAXCOUNT" >&2
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
rm -rf "$WORK/jpeg"
ls "$OUT"/jpeg-*.tar | sed 's/^/make_jpeg_shards: /' >&2
echo "$OUT"
