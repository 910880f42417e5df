#!/usr/bin/python3
"""make_optim.py: PyTorch reference for AdamW (torch.optim.AdamW with two parameter groups,
decay and no decay), the cosine schedule of ../shared/bench/ref_clip_fmnist.py, and
clip_grad_norm_. Writes tests/reference/optim/adamw.safetensors.

    /usr/bin/python3 tests/reference/make_optim.py
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim", "adamw.safetensors")
torch.manual_seed(0)
STEPS, WARMUP, TOTAL, PEAK = 6, 2, 6, 1e-2


def lr_at(step):
    if step < WARMUP:
        return PEAK * (step + 1) / WARMUP
    return 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (TOTAL - WARMUP))) * PEAK


w = torch.randn(5, 4)           # decayed
b = torch.randn(7)              # not decayed
p0w, p0b = w.clone(), b.clone()
w.requires_grad_(), b.requires_grad_()
opt = torch.optim.AdamW([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
                        lr=PEAK, betas=(0.9, 0.98), eps=1e-6)
grads, lrs, norms = [], [], []
for step in range(STEPS):
    gw, gb = torch.randn(5, 4) * (step + 1), torch.randn(7) * 3
    w.grad, b.grad = gw.clone(), gb.clone()
    norms.append(float(torch.nn.utils.clip_grad_norm_([w, b], max_norm=4.0)))
    grads.append(torch.cat([gw.flatten(), gb]))  # grads BEFORE clipping
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    lrs.append(lr_at(step))
    opt.step()
st = opt.state
stio.save(OUT, {
    "p0": torch.cat([p0w.flatten(), p0b]).numpy(),
    "grads": torch.stack(grads).numpy(),
    "lrs": torch.tensor(lrs, dtype=torch.float64).numpy(),
    "norms": torch.tensor(norms, dtype=torch.float64).numpy(),
    "p_final": torch.cat([w.detach().flatten(), b.detach()]).numpy(),
    "m_final": torch.cat([st[w]["exp_avg"].flatten(), st[b]["exp_avg"]]).numpy(),
    "v_final": torch.cat([st[w]["exp_avg_sq"].flatten(), st[b]["exp_avg_sq"]]).numpy(),
})
print("wrote", OUT)
