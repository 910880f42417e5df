"""make_layers.py: PyTorch reference tensors for tests/test_layers.c.

Regenerate (from the repository root):

    /usr/bin/python3 tests/reference/make_layers.py

For every layer it writes tests/reference/layers/<name>.safetensors holding the inputs and
weights (float32), a fixed upstream gradient `dout`, the forward output `out` and every
gradient (`dinp`, `dw`, ...). Inputs are drawn in float32; the reference itself is computed by
torch in float64 from those exact values, so the C float32 result is compared against the
true value. Integer configuration (shapes, stride, ...) goes into the int32 tensor `cfg`.
The transformer block is the Block of ../shared/bench/ref_clip_fmnist.py with the parameter
names of encoders/layers.h (ln1, attn.qkv, attn.proj, ln2, mlp.fc1, mlp.fc2).
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layers")
rng = np.random.default_rng(20261130)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def leaf(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def f32(t):
    return t.detach().numpy().astype(np.float32)


def save(name, tensors, cfg=None):
    d = {k: (v if isinstance(v, np.ndarray) else f32(v)) for k, v in tensors.items()}
    if cfg is not None:
        d["cfg"] = np.array(cfg, dtype=np.int32)
    stio.save(os.path.join(OUT, name + ".safetensors"), d)


def to_nhwc(a):
    """(B, C, H, W) -> (B, H, W, C): clasp's images are channels-last (encoders/layers.h)."""
    a = a if isinstance(a, np.ndarray) else f32(a)
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


def run(name, inputs, fn, cfg=None, extra=None, nhwc=()):
    """inputs: dict name -> float32 array (all get gradients 'd' + name); fn(**leaves) -> out.
    Tensors named in nhwc are computed NCHW and saved channels-last."""
    leaves = {k: leaf(v) for k, v in inputs.items()}
    out = fn(**leaves)
    dout = randn(*out.shape)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    t = dict(inputs)
    t["dout"] = dout
    t["out"] = out
    for k, v in leaves.items():
        t["d" + k] = v.grad
    if extra:
        t.update(extra)
    for k in nhwc:
        t[k] = to_nhwc(t[k])
    save(name, t, cfg)


def linear():
    N, C, OC = 5, 7, 4
    run("linear", {"inp": randn(N, C), "w": randn(OC, C, scale=0.4), "b": randn(OC)},
        lambda inp, w, b: F.linear(inp, w, b), [N, C, OC])


def conv2d():
    # tag: B, C, H, W, OC, KH, KW, stride, pad
    for tag, (B, C, H, W, OC, KH, KW, s, p) in {
        "s1p1": (2, 2, 6, 5, 3, 3, 3, 1, 1),
        "s2p1": (2, 3, 7, 6, 4, 3, 3, 2, 1),
        "k2s2": (2, 3, 8, 8, 4, 2, 2, 2, 0),
        "k23p1": (1, 2, 5, 6, 3, 2, 3, 1, 1),
    }.items():
        run("conv2d_" + tag,
            {"inp": randn(B, C, H, W), "w": randn(OC, C, KH, KW, scale=0.3), "b": randn(OC)},
            lambda inp, w, b: F.conv2d(inp, w, b, stride=s, padding=p),
            [B, C, H, W, OC, KH, KW, s, p], nhwc=("inp", "dinp", "out", "dout"))


def pools():
    for tag, (B, C, H, W, k, s) in {"k2s2": (2, 3, 6, 6, 2, 2), "k3s2": (2, 2, 7, 7, 3, 2)}.items():
        x = randn(B, C, H, W)
        if tag == "k2s2":
            x = np.round(x * 2) / 2  # many ties: the first maximum must win
        leaves = leaf(x)
        out, idx = F.max_pool2d(leaves, k, s, return_indices=True)
        dout = randn(*out.shape)
        out.backward(torch.tensor(dout, dtype=torch.float64))
        # torch's index is into the (H, W) plane; clasp's into the channels-last image
        ch = np.arange(C, dtype=np.int64).reshape(1, C, 1, 1)
        idx = to_nhwc((idx.numpy() * C + ch).astype(np.float32)).astype(np.int32)
        save("maxpool2d_" + tag, {"inp": to_nhwc(x), "dout": to_nhwc(dout), "out": to_nhwc(out),
                                  "dinp": to_nhwc(leaves.grad), "idx": idx}, [B, C, H, W, k, s])
        run("avgpool2d_" + tag, {"inp": randn(B, C, H, W)},
            lambda inp: F.avg_pool2d(inp, k, s), [B, C, H, W, k, s],
            nhwc=("inp", "dinp", "out", "dout"))
    B, C, H, W = 2, 3, 4, 5
    run("global_avgpool", {"inp": randn(B, C, H, W)}, lambda inp: inp.mean(dim=(2, 3)),
        [B, C, H * W], nhwc=("inp", "dinp"))
    B, T, C = 2, 5, 6
    run("meanpool_tokens", {"inp": randn(B, T, C)}, lambda inp: inp.mean(dim=1), [B, T, C])
    pos = np.array([3, 0], dtype=np.int32)
    run("gather_tokens", {"inp": randn(B, T, C)},
        lambda inp: inp[torch.arange(B), torch.tensor(pos, dtype=torch.long)], [B, T, C],
        extra={"pos": pos})


def activations():
    x = randn(3, 17, scale=2.0)
    x[0, 0] = 0.0
    run("relu", {"inp": x}, lambda inp: F.relu(inp))
    run("gelu", {"inp": randn(3, 17, scale=2.0)}, lambda inp: F.gelu(inp))
    run("gelu_tanh", {"inp": randn(3, 17, scale=2.0)},
        lambda inp: F.gelu(inp, approximate="tanh"))


def quick_gelu():
    """drawn after every other reference, so adding it changed none of them"""
    run("quick_gelu", {"inp": randn(3, 17, scale=2.0)},
        lambda inp: inp * torch.sigmoid(1.702 * inp))


def layernorm():
    N, C = 6, 10
    run("layernorm", {"inp": randn(N, C) + 3.0, "w": randn(C), "b": randn(C)},
        lambda inp, w, b: F.layer_norm(inp, (C,), w, b, 1e-5), [N, C])


def embeddings():
    V, B, T, C = 11, 2, 5, 6
    tok = np.array([[1, 4, 4, 10, 0], [4, 7, 1, 1, 2]], dtype=np.int32)
    tl = torch.tensor(tok, dtype=torch.long)
    run("embedding", {"wte": randn(V, C), "wpe": randn(T, C)},
        lambda wte, wpe: F.embedding(tl, wte) + wpe, [V, B, T, C], extra={"tok": tok})
    run("posemb", {"inp": randn(B, T, C), "wpe": randn(T, C)}, lambda inp, wpe: inp + wpe,
        [B, T, C])


def attention_core(qkv, pad, causal, NH):
    """qkv (B, T, 3C) -> (B, T, C); pad (B, T) bool or None. Rows with every key masked give
    zero probabilities (the C convention), with gradients flowing as for constant zeros."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // NH
    q, k, v = qkv.split(C, dim=2)
    q = q.view(B, T, NH, hs).transpose(1, 2)
    k = k.view(B, T, NH, hs).transpose(1, 2)
    v = v.view(B, T, NH, hs).transpose(1, 2)
    s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
    mask = torch.zeros(B, 1, T, T, dtype=torch.bool)
    if causal:
        mask = mask | torch.ones(T, T, dtype=torch.bool).triu(1)
    if pad is not None:
        mask = mask | pad.view(B, 1, 1, T)
    mask = mask.expand(B, NH, T, T)
    dead = mask.all(dim=-1, keepdim=True)
    att = s.masked_fill(mask & ~dead, float("-inf")).softmax(dim=-1)
    att = att * (~dead).to(att.dtype)
    y = (att @ v).transpose(1, 2).reshape(B, T, C)
    return y, att


def attention():
    B, T, C, NH = 2, 5, 8, 2
    pad = np.array([[0, 0, 0, 0, 0], [1, 0, 0, 1, 1]], dtype=np.uint8)
    for tag, causal, use_pad in (("none", 0, False), ("causal", 1, False), ("pad", 0, True),
                                 ("causal_pad", 1, True)):
        pm = torch.tensor(pad.astype(bool)) if use_pad else None
        qkv = randn(B, T, 3 * C)
        lq = leaf(qkv)
        y, att = attention_core(lq, pm, causal, NH)
        dout = randn(B, T, C)
        y.backward(torch.tensor(dout, dtype=torch.float64))
        t = {"qkv": qkv, "dout": dout, "out": y, "att": att, "dqkv": lq.grad}
        if use_pad:
            t["pad"] = pad
        save("attention_" + tag, t, [B, T, C, NH, causal])


def l2norm():
    N, D = 4, 6
    x = randn(N, D)
    x[2] *= 1e-3  # norm below eps: clamped
    eps = 1e-2
    run("l2norm", {"inp": x}, lambda inp: F.normalize(inp, dim=-1, eps=eps), [N, D],
        extra={"eps": np.array([eps], dtype=np.float32)})


class Block(torch.nn.Module):
    """ref_clip_fmnist.py Block, with an attention mask option and the GELU form as options."""

    def __init__(self, width, heads, ffn):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(width)
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.proj = torch.nn.Linear(width, width)
        self.ln2 = torch.nn.LayerNorm(width)
        self.fc1 = torch.nn.Linear(width, ffn)
        self.fc2 = torch.nn.Linear(ffn, width)

    def forward(self, x, mask, approximate):
        B, T, C = x.shape
        H = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)  # B,H,T,D
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H)) + mask
        a = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(a)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate=approximate))
        return x


NAMES = {"ln1.weight": "ln1.weight", "ln1.bias": "ln1.bias", "qkv.weight": "attn.qkv.weight",
         "qkv.bias": "attn.qkv.bias", "proj.weight": "attn.proj.weight",
         "proj.bias": "attn.proj.bias", "ln2.weight": "ln2.weight", "ln2.bias": "ln2.bias",
         "fc1.weight": "mlp.fc1.weight", "fc1.bias": "mlp.fc1.bias",
         "fc2.weight": "mlp.fc2.weight", "fc2.bias": "mlp.fc2.bias"}


def block():
    B, T, C, NH, Fd = 2, 5, 8, 2, 32
    for tag, causal, approximate in (("causal", 1, "none"), ("pad_tanh", 0, "tanh")):
        blk = Block(C, NH, Fd)
        with torch.no_grad():
            for p in blk.parameters():  # float32 values, LayerNorm away from (1, 0)
                p.copy_(torch.tensor(randn(*p.shape, scale=0.3)))
            blk.ln1.weight.add_(1.0)
            blk.ln2.weight.add_(1.0)
        blk = blk.double()
        x = randn(B, T, C)
        lx = leaf(x)
        pad = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=np.uint8)
        if causal:
            mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu_(1)
        else:
            mask = torch.zeros(B, 1, 1, T, dtype=torch.float64).masked_fill(
                torch.tensor(pad.astype(bool)).view(B, 1, 1, T), float("-inf"))
        y = blk(lx, mask, approximate)
        dout = randn(B, T, C)
        y.backward(torch.tensor(dout, dtype=torch.float64))
        t = {"inp": x, "dout": dout, "out": y, "dinp": lx.grad}
        for n, p in blk.named_parameters():
            t[NAMES[n]] = p
            t["d." + NAMES[n]] = p.grad
        if not causal:
            t["pad"] = pad
        save("block_" + tag, t, [B, T, C, NH, Fd, causal, approximate == "tanh"])


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    linear()
    conv2d()
    pools()
    activations()
    layernorm()
    embeddings()
    attention()
    l2norm()
    block()
    quick_gelu()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
