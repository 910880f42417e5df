#!/usr/bin/python3
"""make_core.py: writes tests/reference/core/python_written.safetensors with nothing but
struct and json (an independent writer for the safetensors reader test).

    /usr/bin/python3 tests/reference/make_core.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "core", "python_written.safetensors")

w = [0.5 * i - 1.0 for i in range(6)]          # "w": F32 [2, 3]
ids = [7, -3, 1 << 40]                          # "ids": I64 [3]
b = struct.pack("<6f", *w)
i = struct.pack("<3q", *ids)
header = {
    "__metadata__": {"format": "pt", "note": "written by make_core.py"},
    # Deliberately not in data order, and with the dict order differing from the data order.
    "ids": {"dtype": "I64", "shape": [3], "data_offsets": [len(b), len(b) + len(i)]},
    "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, len(b)]},
}
h = json.dumps(header).encode()
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b + i)
print("wrote", OUT)
