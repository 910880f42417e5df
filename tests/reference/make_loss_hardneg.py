"""make_loss_hardneg.py: PyTorch reference of InfoNCE with hard negatives (loss/hardneg.h).

Run with /usr/bin/python3 (torch 1.13) from anywhere:
    /usr/bin/python3 tests/reference/make_loss_hardneg.py
Writes tests/reference/loss/hardneg*.safetensors, read by tests/test_loss_hardneg.c.
hardneg_ntxent is HCL's criterion itself (two views stacked, 2N - 2 negatives per row).

The per-direction term is HCL's `criterion` (github joshr17/HCL, main.py, estimator 'hard'),
written as there: neg = exp(logits) with the positive masked out, pos = exp(positive logit),
imp = (beta * neg.log()).exp(), reweight_neg = (imp * neg).sum(-1) / imp.mean(-1),
Ng = (-tau_plus * N * pos + reweight_neg) / (1 - tau_plus), clamped below at
N * e^(-1/temperature), loss = (-log(pos / (pos + Ng))).mean(). Gradients flow through imp
(HCL does not detach it). Here the rows are image->text and text->image of a cross-modal batch
(N = batch - 1 negatives, the other side's other rows), averaged as CLIP does, and the
temperature is exp(-log_scale) with log_scale a leaf, so the clamp bound follows it (torch.maximum
in place of clamp, which takes no tensor bound in torch 1.13). Float64 from float32 inputs.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loss")
rng = np.random.default_rng(20261204)


def feats(n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def leaf(x):
    return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)


def save(name, A, B, a, b, ls, loss, beta, tau_plus, clamped):
    """Back-propagates loss and writes inputs, loss and gradients to loss/NAME.safetensors."""
    loss.backward()
    out = {"A": A, "B": B, "log_scale": ls.item(), "beta": beta, "tau_plus": tau_plus,
           "loss": loss.item(), "dA": a.grad.numpy(), "dB": b.grad.numpy(),
           "dlog_scale": ls.grad.item(), "clamped_rows": clamped}
    out = {k: np.atleast_1d(np.asarray(v, dtype=np.int32 if k == "clamped_rows" else np.float32))
           for k, v in out.items()}
    stio.save(os.path.join(OUT, name + ".safetensors"), out,
              {"generator": "make_loss_hardneg.py"})
    print(name, "loss", loss.item(), "clamped rows", clamped)


def hcl_terms(neg, pos, N, beta, tau_plus, temperature):
    """The estimator of HCL's criterion from neg (rows, N) = exp(negative logits) and pos (rows)
    = exp(positive logit): the loss, and how many rows the clamp bound holds."""
    imp = (beta * neg.log()).exp()
    reweight_neg = (imp * neg).sum(dim=-1) / imp.mean(dim=-1)
    Ng = (-tau_plus * N * pos + reweight_neg) / (1 - tau_plus)
    bound = N * torch.exp(-1 / temperature)
    clamped = int((Ng < bound).sum().item())
    Ng = torch.maximum(Ng, bound.expand_as(Ng))
    return (- torch.log(pos / (pos + Ng))).mean(), clamped


def hcl_direction(q, k, log_scale, beta, tau_plus):
    """HCL's criterion for queries q against keys k (row i's positive is k_i); also returns how
    many rows the clamp bound holds."""
    n = q.shape[0]
    temperature = torch.exp(-log_scale)
    logits = q @ k.t() / temperature
    mask = ~torch.eye(n, dtype=torch.bool)
    neg = torch.exp(logits).masked_select(mask).view(n, -1)
    pos = torch.exp(logits.diagonal())
    return hcl_terms(neg, pos, n - 1, beta, tau_plus, temperature)


def case(name, n, d, s, beta, tau_plus, want_clamped=False):
    for _ in range(100):
        A, B = feats(n, d), feats(n, d)
        a, b, ls = leaf(A), leaf(B), leaf(np.float32(s))
        l1, c1 = hcl_direction(a, b, ls, beta, tau_plus)
        l2, c2 = hcl_direction(b, a, ls, beta, tau_plus)
        if not want_clamped or (0 < c1 + c2 < 2 * n):
            break
    else:
        raise SystemExit(name + ": no draw with some clamped rows")
    save(name, A, B, a, b, ls, (l1 + l2) / 2, beta, tau_plus, c1 + c2)


def get_negative_mask(batch_size):
    """HCL's mask: drops each row's own column and its other view's."""
    negative_mask = torch.ones((batch_size, 2 * batch_size), dtype=bool)
    for i in range(batch_size):
        negative_mask[i, i] = 0
        negative_mask[i, i + batch_size] = 0
    return torch.cat((negative_mask, negative_mask), 0)


def hcl_criterion(out_1, out_2, tau_plus, batch_size, beta, temperature):
    """HCL main.py criterion (estimator 'hard'), as written there, with the temperature a tensor
    (exp(-log_scale)) and torch.maximum for the clamp."""
    out = torch.cat([out_1, out_2], dim=0)
    neg = torch.exp(torch.mm(out, out.t().contiguous()) / temperature)
    mask = get_negative_mask(batch_size)
    neg = neg.masked_select(mask).view(2 * batch_size, -1)
    pos = torch.exp(torch.sum(out_1 * out_2, dim=-1) / temperature)
    pos = torch.cat([pos, pos], dim=0)
    return hcl_terms(neg, pos, batch_size * 2 - 2, beta, tau_plus, temperature)


def ntxent_case(name, n, d, s, beta, tau_plus):
    A, B = feats(n, d), feats(n, d)
    a, b, ls = leaf(A), leaf(B), leaf(np.float32(s))
    loss, clamped = hcl_criterion(a, b, tau_plus, n, beta, torch.exp(-ls))
    save(name, A, B, a, b, ls, loss, beta, tau_plus, clamped)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    case("hardneg", 6, 5, math.log(1 / 0.5), 1.0, 0.1)
    case("hardneg_beta3", 7, 4, math.log(1 / 0.2), 3.0, 0.0)
    case("hardneg_clamped", 6, 3, math.log(1 / 0.5), 0.5, 0.6, want_clamped=True)
    ntxent_case("hardneg_ntxent", 5, 4, math.log(1 / 0.5), 1.0, 0.1)


if __name__ == "__main__":
    main()
