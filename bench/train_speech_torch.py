#!/usr/bin/env python3
"""bench/train_speech_torch.py: the PyTorch side of bench/train_speech.sh.

Trains the audio tower + text tower of a clasp export (tools/clasp_torch.py's AudioCNN and
Text modules, built from the export's config.json, initial weights from model.safetensors) with
the symmetric CLIP loss and AdamW, on the SAME data clasp trains on: the WAV + caption samples
of the given shards, turned into log-mels by clasp_torch.py's front-end (eval mode: head crop,
which matches clasp's bits to ~1e-4) and tokens by the export's tokenizer, all precomputed
before timing. Prints one JSON line: steady-state samples/s (steps after the first), threads.

    python3 bench/train_speech_torch.py EXPORT 'shards-*.tar' --steps 30 --batch-size 128
"""
import argparse
import glob
import json
import os
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import clasp_torch as ct  # noqa: E402


def samples(paths):
    for p in paths:
        with tarfile.open(p) as t:
            group = {}
            for m in t:
                if not m.isfile():
                    continue
                key, ext = m.name.split(".", 1)
                group.setdefault(key, {})[ext] = t.extractfile(m).read()
            for key in sorted(group):
                g = group[key]
                if "wav" in g and "txt" in g:
                    yield g["wav"], g["txt"].decode("utf-8")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("shards", nargs="+")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ct.load_export(a.export).train()
    paths = sorted(p for s in a.shards for p in glob.glob(s))
    wavs, texts = zip(*samples(paths))
    mel = model.audio_tensor(list(wavs))        # (n, n_mels, n_frames), precomputed
    tok = model.text_tensor(list(texts))        # (n, T)
    n, B = mel.shape[0], a.batch_size
    params = [p for name, p in model.named_parameters() if not name.startswith("image.")]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    times = []
    loss = None
    for step in range(a.steps):
        idx = torch.randint(0, n, (B,), generator=g)
        t0 = time.perf_counter()
        za = F.normalize(model.audio(mel[idx]), dim=-1)
        zt = F.normalize(model.text(tok[idx]), dim=-1)
        logits = model.logit_scale.exp() * za @ zt.t()
        y = torch.arange(B)
        loss = 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.t(), y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    steady = times[1:] if len(times) > 1 else times
    print(json.dumps({"samples_per_s": B * len(steady) / sum(steady), "steps": a.steps,
                      "batch_size": B, "threads": a.threads, "n_clips": int(n),
                      "final_loss": float(loss)}))


if __name__ == "__main__":
    main()
