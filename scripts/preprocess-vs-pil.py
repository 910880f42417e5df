#!/usr/bin/python3
"""preprocess-vs-pil.py: how far clasp's image preprocessing is from PIL + torchvision (OpenAI
CLIP's Resize(S, BICUBIC) + CenterCrop(S)), over many real images. Run by hand; prints, per
filter and decode mode, the max, mean and 99th-percentile absolute difference in 0..255 levels
over every output pixel, and how many images came out identical.

    cmake --build build --target clasp_modalities clasp_core
    /usr/bin/python3 scripts/preprocess-vs-pil.py [--build build] [--size 224] [--limit 400]

Images: PNG/JPEG members of the tar shards under data/ (emoji, Fashion-MNIST), PNG/JPEG files
under /usr/share, and JPEG re-encodings (quality 90, 4:2:0) of the larger RGB ones at about
1000 and 256 pixels a side (the DCT-scaling figures use those). clasp's side is a small C
program built here against build/'s static libraries, calling clasp_image_decode(_scaled) and
clasp_image_resize_interp as clasp_image_load does.

Known differences left in (not the resampler's): images with alpha are composited on white on
both sides (clasp's documented rule; PIL's convert("RGB") would drop the alpha instead);
16-bit, CMYK and palette-with-alpha edge cases are skipped.
"""
import argparse
import glob
import io
import os
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
from PIL import Image
from torchvision import transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HELPER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "modalities/image.h"
/* stdin lines "PATH S INTERP DCT CX CY CW CH" (CW 0: center crop, else that crop box resized);
 * stdout per line: a status byte, then S*S*3 pixels if 0. */
int main(void) {
    char line[8192], path[8000];
    int S, interp, dct, cx, cy, cw, ch;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "%7999s %d %d %d %d %d %d %d", path, &S, &interp, &dct, &cx, &cy, &cw,
                   &ch) != 8)
            return 2;
        FILE *f = fopen(path, "rb");
        if (!f) return 3;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        unsigned char *d = malloc((size_t)n + 1);
        if (fread(d, 1, (size_t)n, f) != (size_t)n) return 4;
        fclose(f);
        clasp_image img;
        int w = 0, h = 0, ok;
        clasp_image_config cfg = clasp_image_default_config();
        cfg.size = S;
        if (dct && clasp_image_jpeg_size(d, (size_t)n, &w, &h))
            ok = clasp_image_decode_scaled(d, (size_t)n, 3, cfg.max_pixels, S,
                                           clasp_image_resize_region_px(&cfg, w, h), &img) == 0;
        else
            ok = clasp_image_decode(d, (size_t)n, 3, cfg.max_pixels, &img) == 0;
        unsigned char *px = malloc((size_t)S * S * 3);
        if (ok && cw > 0)
            ok = clasp_image_crop_resize(&img, (clasp_image_interp)interp, cx, cy, cw, ch, px, S,
                                         S) == 0;
        else if (ok)
            ok = clasp_image_resize_interp(&img, CLASP_IMAGE_RESIZE_SHORTEST,
                                           (clasp_image_interp)interp, S, px) == 0;
        if (!ok) fprintf(stderr, "%s: %s\n", path, clasp_last_error());
        fputc(ok ? 0 : 1, stdout);
        if (ok) fwrite(px, 1, (size_t)S * S * 3, stdout);
        fflush(stdout);
        if (ok) clasp_image_free(&img);
        free(px);
        free(d);
    }
    return 0;
}
"""


def build_helper(build, tmp):
    src, exe = os.path.join(tmp, "pp.c"), os.path.join(tmp, "pp")
    with open(src, "w") as f:
        f.write(HELPER)
    libs = [os.path.join(build, "modalities", "libclasp_modalities.a"),
            os.path.join(build, "core", "libclasp_core.a")]
    for lib in libs:
        if not os.path.exists(lib):
            sys.exit(f"{lib} missing: cmake --build {build} --target clasp_modalities clasp_core")
    subprocess.run(["cc", "-O2", "-std=c11", "-I", ROOT, "-o", exe, src] + libs +
                   ["-lturbojpeg", "-lcjson", "-lxxhash", "-lm", "-lpthread"], check=True)
    return exe


def reference(data, S, crop=None):
    """PIL + torchvision's OpenAI transform, alpha composited on white as clasp does; with a
    crop box (x, y, w, h), torchvision's resized_crop on a PIL image instead."""
    im = Image.open(io.BytesIO(data))
    im.load()
    if im.mode in ("I", "I;16", "I;16B", "F", "CMYK", "1") or getattr(im, "n_frames", 1) > 1:
        return None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        a = np.asarray(im.convert("RGBA"), dtype=np.uint32)
        rgb = (a[..., :3] * a[..., 3:] + 255 * (255 - a[..., 3:]) + 127) // 255
        im = Image.fromarray(rgb.astype(np.uint8), "RGB")
    elif im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    if crop:
        x, y, w, h = crop
        out = im.crop((x, y, x + w, y + h)).resize((S, S), Image.BICUBIC)
    else:
        t = T.Compose([T.Resize(S, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(S)])
        out = t(im)
    return np.asarray(out.convert("RGB"), dtype=np.uint8)


def random_box(size, rng):
    """A RandomResizedCrop-like box (area 8..100 %, ratio 3/4..4/3) inside a w x h image."""
    w, h = size
    for _ in range(10):
        area = w * h * rng.uniform(0.08, 1.0)
        ar = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * ar))), int(round(np.sqrt(area / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch
    return 0, 0, w, h


def gather(limit):
    """(name, bytes) of real images, at most `limit` per source."""
    out = []
    for pattern in ("data/emoji/*/*.tar", "data/fmnist/*.tar"):
        n = 0
        for path in sorted(glob.glob(os.path.join(ROOT, pattern)) +
                           glob.glob(os.path.join("/work/main", pattern))):
            with tarfile.open(path) as tf:
                for m in tf:
                    if n < limit and m.isfile() and m.name.lower().endswith((".png", ".jpg", ".jpeg")):
                        out.append((f"{os.path.basename(path)}:{m.name}", tf.extractfile(m).read()))
                        n += 1
            if n >= limit:
                break
    files = sorted(glob.glob("/usr/share/**/*.png", recursive=True) +
                   glob.glob("/usr/share/**/*.jp*g", recursive=True))
    n = 0
    for path in files:
        if n >= limit:
            break
        with open(path, "rb") as f:
            data = f.read()
        try:
            im = Image.open(io.BytesIO(data))
            if min(im.size) < 8:
                continue
        except Exception:
            continue
        out.append((path, data))
        n += 1
    # JPEG re-encodings of the larger RGB pictures, at ~1000 and ~256 px on the long side
    n = 0
    for name, data in list(out):
        if n >= limit:
            break
        im = Image.open(io.BytesIO(data))
        if min(im.size) < 48 or im.mode not in ("RGB", "RGBA", "P"):
            continue
        rgb = im.convert("RGB")
        for side in (1000, 256):
            s = side / max(rgb.size)
            big = rgb.resize((max(1, round(rgb.size[0] * s)), max(1, round(rgb.size[1] * s))),
                             Image.BICUBIC)
            buf = io.BytesIO()
            big.save(buf, "JPEG", quality=90, subsampling=2)
            out.append((f"{name}@jpeg{side}", buf.getvalue()))
        n += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--limit", type=int, default=400, help="images per source")
    args = ap.parse_args()
    S = args.size
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_helper(args.build, tmp)
        images, refs, crops, crop_refs = [], [], [], []
        rng = np.random.default_rng(0)
        for i, (name, data) in enumerate(gather(args.limit)):
            try:
                ref = reference(data, S)
                box = random_box(Image.open(io.BytesIO(data)).size, rng)
                crop_ref = reference(data, S, box)
            except Exception:
                ref = None
            if ref is None:
                continue
            crops.append(box)
            crop_refs.append(crop_ref)
            path = os.path.join(tmp, f"{i}.img")
            with open(path, "wb") as f:
                f.write(data)
            images.append((name, path, data[:2] == b"\xff\xd8"))
            refs.append(ref)
        print(f"{len(images)} images ({sum(j for _, _, j in images)} JPEG), output {S}x{S}")
        modes = [("catmullrom", 0, 0, False, False), ("bicubic", 1, 0, False, False),
                 ("catmullrom + DCT scaling", 0, 1, True, False),
                 ("bicubic + DCT scaling", 1, 1, True, False),
                 ("catmullrom, random crop", 0, 0, False, True),
                 ("bicubic, random crop", 1, 0, False, True)]
        for label, interp, dct, jpeg_only, crop in modes:
            todo = [(k, im) for k, im in enumerate(images) if im[2] or not jpeg_only]
            box = (lambda k: " ".join(map(str, crops[k]))) if crop else (lambda k: "0 0 0 0")
            lines = "".join(f"{im[1]} {S} {interp} {dct} {box(k)}\n" for k, im in todo)
            res = subprocess.run([exe], input=lines.encode(), capture_output=True, check=True)
            out, pos, diffs, same, failed, worst = res.stdout, 0, [], 0, 0, (0, "")
            for k, im in todo:
                status = out[pos]
                pos += 1
                if status:
                    failed += 1
                    continue
                got = np.frombuffer(out[pos:pos + S * S * 3], dtype=np.uint8).reshape(S, S, 3)
                pos += S * S * 3
                want = crop_refs[k] if crop else refs[k]
                d = np.abs(got.astype(np.int16) - want.astype(np.int16))
                diffs.append(d.ravel())
                same += int(d.max() == 0)
                if d.max() > worst[0]:
                    worst = (int(d.max()), im[0])
            d = np.concatenate(diffs) if diffs else np.zeros(1)
            print(f"{label:25s}: {len(diffs)} images, max {int(d.max())}, mean {d.mean():.4f}, "
                  f"p99 {np.percentile(d, 99):.0f}, p99.9 {np.percentile(d, 99.9):.0f} levels; "
                  f"{same} identical; {failed} failed to decode; worst {worst[1]}")


if __name__ == "__main__":
    main()
