"""make_image.py: reference tensors for tests/test_image.c.

fmnist_norm: the 256 possible Fashion-MNIST input values, computed exactly as
../shared/bench/ref_clip_fmnist.py load_split() does: (x.astype(float32) / 255.0 - MEAN) / STD
with numpy's float32 arithmetic. The C preprocessing must reproduce them bit for bit.

Run: /usr/bin/python3 tests/reference/make_image.py   (writes tests/reference/image/*.safetensors)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "image")
    os.makedirs(out, exist_ok=True)
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    y = (x.astype(np.float32) / 255.0 - MEAN) / STD
    assert y.dtype == np.float32
    stio.save(os.path.join(out, "fmnist_norm.safetensors"), {"pixels": x, "normalized": y},
              metadata={"numpy": np.__version__, "mean": MEAN, "std": STD})


if __name__ == "__main__":
    main()
