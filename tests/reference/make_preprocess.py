"""make_preprocess.py: OpenAI CLIP's image preprocessing by PIL + torchvision, the reference for
tests/test_preprocess_pil.c.

OpenAI's transform (clip/clip.py _transform) is
    Resize(S, interpolation=BICUBIC), CenterCrop(S), convert("RGB"), ToTensor(),
    Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)).
The training crop of OpenCLIP is RandomResizedCrop(S, interpolation=BICUBIC): the crop box
(drawn by clasp's own RNG, so given here) is cut out and resized, img.crop(box).resize((S, S)).

The script makes a handful of small inputs (deterministic synthetic pictures: gradients, noise,
hard-edged shapes; saved as the PNG/JPEG files the test decodes with clasp) and writes, per case,
tests/reference/preprocess/case_NAME.safetensors:
    pil_u8  (S, S, 3) uint8    PIL's resized and cropped pixels
    tensor  (3, S, S) float32  after ToTensor + Normalize (not for the large JPEG: size)
    params  (6,) int32         S, crop x, y, w, h (-1: center crop), 1 if the input is a JPEG
    input   (n,) uint8         the encoded input file

Cases: an upscale (37x29 -> 64), a downscale by 2.3 (147x115 -> 50), an odd aspect ratio
(301x67 -> 32), a grayscale PNG (83x120 -> 40), an RGB JPEG (160x120 -> 48, 4:2:0), a random
resized crop of the JPEG, and a 1000x750 JPEG to 224 (the DCT-scaling test compares clasp's
scaled decode with PIL's full decode + resize).

Run: /usr/bin/python3 tests/reference/make_preprocess.py
"""
import io
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision import transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preprocess")
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def picture(w, h, seed, gray=False, noise=12.0):
    """A deterministic photo-like picture: smooth colour gradients, noise, hard-edged shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / max(w, 1) * 5.0 + seed)
    g = 128 + 100 * np.cos(y / max(h, 1) * 4.0 - seed)
    b = 255 * (x + y) / (w + h)
    px = np.stack([r, g, b], -1) + rng.normal(0, noise, (h, w, 3))
    im = Image.fromarray(np.clip(np.rint(px), 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(1, w // 2 + 2)), y0 + int(rng.integers(1, h // 2 + 2))
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if rng.integers(0, 2) else d.rectangle)([x0, y0, x1, y1], fill=col)
    return im.convert("L") if gray else im


def encode(im, fmt):
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=90, subsampling=2)  # 4:2:0, libjpeg-turbo's default
    else:
        im.save(buf, "PNG")
    return buf.getvalue()


def openai_transform(S):
    return T.Compose([T.Resize(S, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(S),
                      lambda im: im.convert("RGB")])


def write_case(name, data, S, crop=None):
    im = Image.open(io.BytesIO(data))
    im.load()
    if crop is None:
        out = openai_transform(S)(im)
    else:
        x, y, w, h = crop
        out = im.crop((x, y, x + w, y + h)).resize((S, S), Image.BICUBIC).convert("RGB")
    u8 = np.asarray(out, dtype=np.uint8).copy()
    assert u8.shape == (S, S, 3), u8.shape
    tensor = T.Normalize(MEAN, STD)(T.ToTensor()(out)).numpy().astype(np.float32)
    params = np.array([S] + (list(crop) if crop else [-1, -1, -1, -1]) + [int(data[:2] == b"\xff\xd8")],
                      dtype=np.int32)
    tensors = {"pil_u8": u8, "params": params, "input": np.frombuffer(data, dtype=np.uint8)}
    if S < 100:
        tensors["tensor"] = tensor
    stio.save(os.path.join(OUT, f"case_{name}.safetensors"), tensors,
              {"source": "tests/reference/make_preprocess.py", "case": name})
    print(f"case_{name}: input {im.size[0]}x{im.size[1]} {im.mode}, S={S}, crop={crop}, "
          f"{len(data)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    jpeg = encode(picture(160, 120, 5), "JPEG")
    cases = [
        ("upscale", encode(picture(37, 29, 1), "PNG"), 64, None),
        ("down2_3", encode(picture(147, 115, 2), "PNG"), 50, None),
        ("odd_aspect", encode(picture(301, 67, 3), "PNG"), 32, None),
        ("gray_png", encode(picture(83, 120, 4, gray=True), "PNG"), 40, None),
        ("rgb_jpeg", jpeg, 48, None),
        ("crop_jpeg", jpeg, 48, (23, 17, 97, 71)),
        ("large_jpeg", encode(picture(1000, 750, 6, noise=3.0), "JPEG"), 224, None),
    ]
    for name, data, S, crop in cases:
        write_case(name, data, S, crop)


if __name__ == "__main__":
    main()
