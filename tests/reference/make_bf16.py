"""make_bf16.py: PyTorch bf16 references for tests/test_bf16.c (clasp's --precision bf16).

Regenerate (from the repository root):

    /usr/bin/python3 tests/reference/make_bf16.py

For each layer with matrix products (linear, the 3x3 pad-1 convolutions of fmnist-small, the
attention core, the transformer block, symmetric InfoNCE) it writes
tests/reference/bf16/<name>.safetensors: the float32 inputs and weights, a fixed upstream
gradient `dout` (InfoNCE: none, the loss is a scalar), and the forward output and every
gradient twice:

- `ac.<t>`: PyTorch itself, `torch.autocast("cpu", dtype=torch.bfloat16)` around the forward
  on float32 leaves, backward outside it (what a PyTorch user gets; products return bf16);
- `rb.<t>`: clasp's bf16 semantics computed in float64: the two inputs of every matrix
  product (forward and backward, attention's q, k, v and softmax weights included) rounded to
  bf16 (round to nearest even), everything else exact, products kept in full precision.

Images (the convolutions' inp, out and their gradients) are stored channels-last (B, H, W, C)
as clasp's layers take them; weights keep PyTorch's layout. Integer configuration goes into
the int32 tensor `cfg`, padding masks into uint8 `pad`. The
generator is this file's own (seed 20261204): adding a case at the end leaves the others'
files unchanged.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bf16")
rng = np.random.default_rng(20261204)
AC = dict(device_type="cpu", dtype=torch.bfloat16)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def r(t):
    """t rounded to bf16 (round to nearest even), in t's dtype."""
    return t.to(torch.float32).to(torch.bfloat16).to(t.dtype)


class RMM(torch.autograd.Function):
    """alpha * bf16(a) @ bf16(b), with the backward's products rounded the same way: the
    upstream gradient g enters them as alpha * bf16(g), or with inner=True as bf16(alpha * g)
    (attention's scores: clasp folds the scale into the score gradient before rounding it, as
    autocast's bf16 backward of (q @ k^T) * scale does)."""

    @staticmethod
    def forward(ctx, a, b, alpha, inner):
        ctx.save_for_backward(a, b)
        ctx.alpha = alpha.detach() if isinstance(alpha, torch.Tensor) else alpha
        ctx.inner = inner
        return ctx.alpha * (r(a) @ r(b))

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        al = ctx.alpha
        dal = (g * (r(a) @ r(b))).sum() if isinstance(al, torch.Tensor) else None
        if ctx.inner:
            gs = r(al * g)
            return gs @ r(b).transpose(-2, -1), r(a).transpose(-2, -1) @ gs, dal, None
        return (al * (r(g) @ r(b).transpose(-2, -1)), al * (r(a).transpose(-2, -1) @ r(g)), dal,
                None)


def rmm(a, b, alpha=1.0, inner=False):
    return RMM.apply(a, b, alpha, inner)


def rlinear(x, w, b):
    return rmm(x, w.t()) + b


class RConv(torch.autograd.Function):
    """conv2d of bf16(x) and bf16(w); backward products from bf16(dout)."""

    @staticmethod
    def forward(ctx, x, w, stride, pad):
        ctx.save_for_backward(x, w)
        ctx.sp = (stride, pad)
        return F.conv2d(r(x), r(w), None, stride=stride, padding=pad)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        s, p = ctx.sp
        dx = torch.nn.grad.conv2d_input(x.shape, r(w), r(g), stride=s, padding=p)
        dw = torch.nn.grad.conv2d_weight(r(x), w.shape, r(g), stride=s, padding=p)
        return dx, dw, None, None


def save(name, t, cfg=None):
    d = {}
    for k, v in t.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().to(torch.float32).numpy()
        d[k] = np.ascontiguousarray(v)
    if cfg is not None:
        d["cfg"] = np.array(cfg, dtype=np.int32)
    stio.save(os.path.join(OUT, name + ".safetensors"), d, {"generator": "make_bf16.py"})


def to_nhwc(a):
    """(B, C, H, W) -> (B, H, W, C): clasp's images are channels-last (encoders/layers.h)."""
    return np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))


def both(name, inputs, fwd_ac, fwd_rb, cfg=None, extra=None, scalar=False, nhwc=()):
    """inputs: name -> float32 array, each gets a gradient 'd' + name. fwd_ac(**float32 leaves)
    runs under autocast, fwd_rb(**float64 leaves) is clasp's semantics. scalar: the output is
    a loss (no dout, backward of 1). Tensors named in nhwc (with or without the 'ac.' / 'rb.'
    prefix) are computed NCHW and saved channels-last."""
    t = dict(inputs)
    dout = None
    for tag, dt in (("ac", torch.float32), ("rb", torch.float64)):
        leaves = {k: torch.tensor(v, dtype=dt, requires_grad=True) for k, v in inputs.items()}
        if tag == "ac":
            with torch.autocast(**AC):
                out = fwd_ac(**leaves)
            out = out.float()
        else:
            out = fwd_rb(**leaves)
        if dout is None and not scalar:
            dout = randn(*out.shape)
            t["dout"] = dout
        out.backward(torch.ones_like(out) if scalar else torch.tensor(dout, dtype=out.dtype))
        t[tag + ".out"] = out.reshape(-1) if scalar else out
        for k, v in leaves.items():
            t[tag + ".d" + k] = v.grad
    if extra:
        t.update(extra)
    for k in t:
        if k.split(".", 1)[-1] in nhwc:
            t[k] = to_nhwc(t[k].detach().to(torch.float32).numpy() if isinstance(
                t[k], torch.Tensor) else t[k])
    save(name, t, cfg)


def linear():
    N, C, OC = 6, 40, 24
    both("linear", {"inp": randn(N, C), "w": randn(OC, C, scale=0.3), "b": randn(OC)},
         lambda inp, w, b: F.linear(inp, w, b), lambda inp, w, b: rlinear(inp, w, b),
         [N, C, OC])


def conv2d():
    # fmnist-small's convolutions, 3x3 stride 1 pad 1: conv1 (1 -> 32 channels on 28x28) and
    # conv2 (32 -> 64 on 14x14), with fewer channels and pixels
    for tag, (B, C, H, W, OC) in {"conv1": (2, 1, 8, 8, 8), "conv2": (2, 8, 6, 6, 16)}.items():
        both(tag, {"inp": randn(B, C, H, W), "w": randn(OC, C, 3, 3, scale=0.3), "b": randn(OC)},
             lambda inp, w, b: F.conv2d(inp, w, b, padding=1),
             lambda inp, w, b: RConv.apply(inp, w, 1, 1) + b.view(1, -1, 1, 1),
             [B, C, H, W, OC, 3, 3, 1, 1], nhwc=("inp", "dinp", "out", "dout"))


def masks(B, T, causal, pad):
    """(B, 1, T, T) bool: True = masked; rows with every key masked are 'dead'."""
    m = torch.zeros(B, 1, T, T, dtype=torch.bool)
    if causal:
        m = m | torch.ones(T, T, dtype=torch.bool).triu(1)
    if pad is not None:
        m = m | torch.tensor(pad.astype(bool)).view(B, 1, 1, T)
    return m


def attn_core(qkv, NH, mask, mm):
    """qkv (B, T, 3C) -> (B, T, C); mm(a, b, alpha) is the product. Dead rows give zeros."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // NH
    q, k, v = (x.reshape(B, T, NH, hs).transpose(1, 2) for x in qkv.split(C, dim=2))
    s = mm(q, k.transpose(-2, -1), 1.0 / math.sqrt(hs))
    mask = mask.expand(B, NH, T, T)
    dead = mask.all(dim=-1, keepdim=True)
    att = s.masked_fill(mask & ~dead, float("-inf")).softmax(dim=-1)
    att = att * (~dead).to(att.dtype)
    return mm(att, v, 1.0).transpose(1, 2).reshape(B, T, C)


def ac_mm(a, b, alpha):
    return (a @ b) * alpha


def rmm_mm(a, b, alpha):
    """attention's two products in clasp's semantics: the scores (alpha != 1) fold the scale
    into their gradient before rounding it"""
    return rmm(a, b, alpha, alpha != 1.0)


def attention():
    B, T, C, NH = 2, 6, 16, 2
    pad = np.array([[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 1, 1]], dtype=np.uint8)
    for tag, causal, p in (("attention_causal", 1, None), ("attention_pad", 0, pad)):
        mask = masks(B, T, causal, p)
        extra = {"pad": p} if p is not None else None
        both(tag, {"qkv": randn(B, T, 3 * C)},
             lambda qkv: attn_core(qkv, NH, mask, ac_mm),
             lambda qkv: attn_core(qkv, NH, mask, rmm_mm), [B, T, C, NH, causal], extra)


BLOCK_NAMES = ["ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
               "attn.proj.bias", "ln2.weight", "ln2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
               "mlp.fc2.weight", "mlp.fc2.bias"]


def block():
    B, T, C, NH, Fd = 2, 5, 16, 2, 64
    pad = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=np.uint8)
    for tag, causal, approximate in (("block_causal", 1, "none"), ("block_pad_tanh", 0, "tanh")):
        p = pad if not causal else None
        mask = masks(B, T, causal, p)
        shapes = [(C,), (C,), (3 * C, C), (3 * C,), (C, C), (C,), (C,), (C,), (Fd, C), (Fd,),
                  (C, Fd), (C,)]
        params = {n: randn(*s, scale=0.3) for n, s in zip(BLOCK_NAMES, shapes)}
        params["ln1.weight"] += 1.0
        params["ln2.weight"] += 1.0
        inputs = {"inp": randn(B, T, C)}
        inputs.update(params)
        keys = list(inputs)

        def fwd(mm, lin, **kw):
            kw = {k.replace(".", "_"): v for k, v in kw.items()}
            x = kw["inp"]
            h = F.layer_norm(x, (C,), kw["ln1_weight"], kw["ln1_bias"], 1e-5)
            qkv = lin(h, kw["attn_qkv_weight"], kw["attn_qkv_bias"])
            a = attn_core(qkv, NH, mask, mm)
            x = x + lin(a, kw["attn_proj_weight"], kw["attn_proj_bias"])
            h = F.layer_norm(x, (C,), kw["ln2_weight"], kw["ln2_bias"], 1e-5)
            h = F.gelu(lin(h, kw["mlp_fc1_weight"], kw["mlp_fc1_bias"]), approximate=approximate)
            return x + lin(h, kw["mlp_fc2_weight"], kw["mlp_fc2_bias"])

        def unpack(fn):
            return lambda **kw: fn(**{k: kw[k] for k in keys})

        extra = {"pad": p} if p is not None else None
        both(tag, inputs, unpack(lambda **kw: fwd(ac_mm, F.linear, **kw)),
             unpack(lambda **kw: fwd(rmm_mm, rlinear, **kw)),
             [B, T, C, NH, Fd, causal, approximate == "tanh"], extra)


def infonce():
    N, D, s = 8, 32, 2.659260036932778
    A = randn(N, D)
    Bf = randn(N, D)
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    Bf /= np.linalg.norm(Bf, axis=1, keepdims=True)
    lab = torch.arange(N)

    def ce(logits):
        return (F.cross_entropy(logits, lab) + F.cross_entropy(logits.t(), lab)) / 2

    def fac(A, B, log_scale):
        return ce(log_scale[0].exp() * A @ B.t())  # as ../shared/bench/ref_clip_fmnist.py

    def frb(A, B, log_scale):
        return ce(rmm(A, B.t(), log_scale[0].exp()))

    both("infonce", {"A": A.astype(np.float32), "B": Bf.astype(np.float32),
                     "log_scale": np.array([s], dtype=np.float32)}, fac, frb, scalar=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    linear()
    conv2d()
    attention()
    block()
    infonce()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
