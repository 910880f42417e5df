#!/usr/bin/python3
"""openclip_to_safetensors.py: convert an OpenCLIP / OpenAI CLIP checkpoint to .safetensors
for `clasp import openclip` (docs/import.md).

    /usr/bin/python3 tools/openclip_to_safetensors.py IN.pt OUT.safetensors [--dtype keep|f32|f16|bf16]

IN may be
  * a plain state dict saved with torch.save ({"visual.conv1.weight": tensor, ...}),
  * an OpenCLIP training checkpoint ({"epoch": .., "state_dict": {...}}; a "module." prefix
    left by DistributedDataParallel is removed),
  * OpenAI's TorchScript archive (ViT-B-32.pt as released), read with torch.jit.load.
Tensors keep their names and (with --dtype keep, the default) their dtype: F32, F16 and BF16
are written as such (clasp converts them to fp32 on import). Needs torch only: the safetensors
format is written with json + struct (8-byte little-endian header length, the JSON header, the
data), as tests/reference/stio.py does.
"""
import argparse
import json
import os
import pickle
import struct
import sys
import warnings

import torch

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8",
          torch.int8: "I8", torch.int16: "I16", torch.bool: "BOOL"}
CAST = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def load_state_dict(path):
    """The tensors of a .pt/.bin checkpoint (see the module doc), names without "module."."""
    try:
        with warnings.catch_warnings():  # torch.load hands a TorchScript zip to torch.jit.load
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu")
    except (RuntimeError, pickle.UnpicklingError, EOFError) as e:
        try:
            obj = torch.jit.load(path, map_location="cpu").state_dict()
        except (RuntimeError, ValueError):
            raise ValueError(f"{path}: neither a torch.save checkpoint nor a TorchScript "
                             f"archive ({e})") from None
    if isinstance(obj, torch.jit.ScriptModule):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: no state dict found (a dict of tensors, or one under "
                         f"'state_dict')")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        name = k[len("module."):] if k.startswith("module.") else k
        out[name] = v
    return out


def save_safetensors(path, tensors, metadata=None):
    """Writes tensors (dict name -> torch.Tensor) as a safetensors file."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype not in DTYPES:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        # bytes of the tensor in native (little-endian on every platform torch supports) order
        b = t.view(torch.uint8).numpy().tobytes() if t.dim() > 0 else \
            t.reshape(1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if sys.byteorder != "little":
        raise SystemExit("openclip_to_safetensors: big-endian hosts are not supported")
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def convert(src, dst, dtype="keep"):
    sd = load_state_dict(src)
    if dtype != "keep":
        sd = {k: v.to(CAST[dtype]) if v.is_floating_point() else v for k, v in sd.items()}
    save_safetensors(dst, sd, {"format": "pt", "source": os.path.basename(src)})
    return sd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="checkpoint .pt/.bin (state dict, OpenCLIP or TorchScript)")
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--dtype", choices=["keep", "f32", "f16", "bf16"], default="keep",
                    help="floating-point dtype to write (default: keep each tensor's)")
    a = ap.parse_args(argv)
    try:
        sd = convert(a.src, a.dst, a.dtype)
    except (OSError, ValueError) as e:
        print(f"openclip_to_safetensors: {e}", file=sys.stderr)
        return 1
    kinds = sorted({DTYPES[v.dtype] for v in sd.values()})
    print(f"{a.dst}: {len(sd)} tensors ({', '.join(kinds)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
