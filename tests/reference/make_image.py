"""make_image.py: reference tensors for tests/test_image.c.

fmnist_norm: the 256 possible Fashion-MNIST input values, computed exactly as
../shared/bench/ref_clip_fmnist.py load_split() does: (x.astype(float32) / 255.0 - MEAN) / STD
with numpy's float32 arithmetic. The C preprocessing must reproduce them bit for bit.

resize_longest: OpenCLIP's eval transform for resize_mode "longest" (src/open_clip/transform.py
image_transform: ResizeKeepRatio(size, longest=1) then CenterCropOrPad(size, fill=0), ToTensor,
Normalize) on smooth RGB gradients of a wide and a tall image, with PIL's bicubic resize through
torchvision. The geometry (new size, pad split) must match exactly; pixel values within the
difference between stb's Catmull-Rom and PIL's bicubic (test_image.c states the tolerance).

Run: /usr/bin/python3 tests/reference/make_image.py   (writes tests/reference/image/*.safetensors)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

MEAN, STD = 0.2860, 0.3530
LONGEST_SIZE = 16
LONGEST_MEAN, LONGEST_STD = (0.5, 0.25, 0.125), (0.5, 0.25, 2.0)
LONGEST_SHAPES = [(40, 22), (18, 40)]  # (w, h): odd pad split on rows, then on columns


def gradient(w, h):
    """(h, w, 3) uint8: red along x, green along y, blue along x + y."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = x * 255.0 / (w - 1)
    g = y * 255.0 / (h - 1)
    b = (x + y) * 255.0 / (w + h - 2)
    return np.rint(np.stack([r, g, b], axis=-1)).astype(np.uint8)


def longest_ref(px, size):
    """ResizeKeepRatio(size, longest=1) + CenterCropOrPad(size, fill=0) + ToTensor + Normalize,
    as open_clip's transform.py (get_params and center_crop_or_pad restated here)."""
    import torch
    import torchvision.transforms.functional as F
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    img = Image.fromarray(px, "RGB")
    h, w = px.shape[:2]
    ratio = max(h / size, w / size)  # longest = 1
    nh, nw = round(h / ratio), round(w / ratio)
    img = F.resize(img, [nh, nw], InterpolationMode.BICUBIC)
    pad = [(size - nw) // 2, (size - nh) // 2, (size - nw + 1) // 2, (size - nh + 1) // 2]
    img = F.pad(img, pad, fill=0)
    t = F.to_tensor(img)
    assert t.shape == (3, size, size)
    t = F.normalize(t, LONGEST_MEAN, LONGEST_STD)
    return t.numpy().astype(np.float32), (nw, nh, pad[0], pad[1]), torch.__version__


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "image")
    os.makedirs(out, exist_ok=True)
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    y = (x.astype(np.float32) / 255.0 - MEAN) / STD
    assert y.dtype == np.float32
    stio.save(os.path.join(out, "fmnist_norm.safetensors"), {"pixels": x, "normalized": y},
              metadata={"numpy": np.__version__, "mean": MEAN, "std": STD})
    import PIL
    import torchvision
    for w, h in LONGEST_SHAPES:
        px = gradient(w, h)
        ref, (nw, nh, left, top), tv = longest_ref(px, LONGEST_SIZE)
        geo = np.array([nw, nh, left, top], dtype=np.int32)
        stio.save(os.path.join(out, f"resize_longest_{w}x{h}.safetensors"),
                  {"pixels": px, "preprocessed": ref, "geometry": geo},
                  metadata={"torch": tv, "torchvision": torchvision.__version__,
                            "PIL": PIL.__version__, "size": LONGEST_SIZE,
                            "mean": list(LONGEST_MEAN), "std": list(LONGEST_STD),
                            "geometry": "new_w, new_h, pad_left, pad_top"})


if __name__ == "__main__":
    main()
