#!/usr/bin/python3
"""clasp_torch.py: load a clasp export in PyTorch and embed images and texts.

An export (`clasp export RUN -o DIR`) holds model.safetensors, config.json, tokenizer.json and
preprocess.json. This file rebuilds the same encoders as torch.nn.Modules with the same
parameter names as clasp's encoders/model.h (image.conv1.weight, text.blocks.0.attn.qkv.weight,
logit_scale, ...), loads the weights, and prepares inputs as clasp's loader does in evaluation
mode, so its embeddings equal `clasp embed`'s (tests/test_export.c checks max abs diff <= 1e-4).

Needs only /usr/bin/python3 with torch, numpy and PIL (Debian: python3-torch, python3-numpy,
python3-pil). No other dependency; safetensors is read with struct/json/numpy.

Command line:
    python3 tools/clasp_torch.py DIR --image a.png b.png -o images.npy
    python3 tools/clasp_torch.py DIR --text lines.txt -o texts.npy   (one text per line;
                                                                     blank lines skipped)
    python3 tools/clasp_torch.py DIR --tokens "a photo of a bag"      (prints the token ids)
As a module:
    import sys; sys.path.insert(0, "tools"); import clasp_torch
    m = clasp_torch.load_export("DIR")          # a torch.nn.Module, eval mode
    zi = m.embed_image_files(["a.png"])         # (n, D) float32 tensor, unit rows
    zt = m.embed_texts(["a photo of a bag"])    # (n, D)
    sim = zi @ zt.T

Preprocessing (as modalities/image.c and modalities/text.c):
  * images: decoded with PIL; an alpha channel is composited on white with clasp's integer
    formula (v * a + 255 * (255 - a) + 127) // 255, after the conversion to the model's channel
    count (colour to gray by stb_image's luma (77 R + 150 G + 29 B) >> 8); resized to size x size
    ("squash": both sides; otherwise the shorter side is scaled to size, the longer truncated,
    then a centred crop with offsets rounded half to even, as the loader does); then
    (x / 255 - mean) / std in float32. clasp resizes with stb_image_resize's Catmull-Rom filter,
    this file with PIL's BICUBIC (the same a = -0.5 kernel, but rounding differs slightly):
    images already at the model's size are bit-identical, resized ones are close, not equal.
  * text: NFKC (unicodedata), control characters dropped (CR LF, LF, CR, NEL, TAB and FF become
    a space), runs of ASCII whitespace collapsed to one space, trimmed; then the byte-level
    tokenizer or the BPE of tokenizer.json (words start at a space following a non-space byte;
    merges applied lowest rank first), [BOS] + ids[:T-2] + [EOS] + PAD.
"""
import argparse
import json
import math
import os
import struct
import sys
import unicodedata

import numpy as np
import torch

nn = torch.nn
F = torch.nn.functional

# ------------------------------------------------------------------------------ safetensors
_NP = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
       "U8": np.uint8, "I8": np.int8, "F16": np.float16}


def read_safetensors(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} beyond the file")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base, out = 8 + n, {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        dt = np.dtype(_NP[e["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(data[base + b:base + en], dtype=dt).reshape(e["shape"]).copy()
    return out, meta


# ------------------------------------------------------------------------------ encoders
class Block(nn.Module):
    """Pre-LN transformer block: x += proj(attn(ln1(x))); x += fc2(gelu(fc1(ln2(x))))."""

    def __init__(self, C, heads, mlp, eps, approx):
        super().__init__()
        self.heads, self.approx = heads, approx
        self.ln1 = nn.LayerNorm(C, eps=eps)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(C, 3 * C)
        self.attn.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C, eps=eps)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(C, mlp)
        self.mlp.fc2 = nn.Linear(mlp, C)

    def forward(self, x, causal, pad):
        B, T, C = x.shape
        H = self.heads
        q, k, v = self.attn.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        if causal:
            att = att + torch.full((T, T), float("-inf")).triu(1)
        if pad is not None:
            att = att.masked_fill(pad[:, None, None, :], float("-inf"))
        a = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn.proj(a)
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.ln2(x)), approximate=self.approx))


class CNN(nn.Module):
    """conv{i}: conv -> ReLU -> maxpool(pool) per block; flatten (C, H, W); fc{j} with ReLU
    between; the last fc maps to embed_dim."""

    def __init__(self, c, D):
        super().__init__()
        self.blocks = c["conv"]
        ch, h, w = c["channels"], c["size"], c["size"]
        for i, b in enumerate(self.blocks):
            setattr(self, f"conv{i + 1}", nn.Conv2d(ch, b["channels"], b["kernel"],
                                                    stride=b.get("stride", 1),
                                                    padding=b.get("padding", 0)))
            ch = b["channels"]
            h = (h + 2 * b.get("padding", 0) - b["kernel"]) // b.get("stride", 1) + 1
            w = (w + 2 * b.get("padding", 0) - b["kernel"]) // b.get("stride", 1) + 1
            if b.get("pool", 0) > 0:
                h, w = h // b["pool"], w // b["pool"]
        widths = [ch * h * w] + list(c.get("fc", [])) + [D]
        self.n_fc = len(widths) - 1
        for j in range(self.n_fc):
            setattr(self, f"fc{j + 1}", nn.Linear(widths[j], widths[j + 1]))

    def forward(self, x):
        for i, b in enumerate(self.blocks):
            x = F.relu(getattr(self, f"conv{i + 1}")(x))
            if b.get("pool", 0) > 0:
                x = F.max_pool2d(x, b["pool"])
        x = torch.flatten(x, 1)
        for j in range(self.n_fc):
            x = getattr(self, f"fc{j + 1}")(x)
            if j < self.n_fc - 1:
                x = F.relu(x)
        return x


class ViT(nn.Module):
    def __init__(self, c, D):
        super().__init__()
        self.c = c
        W, P = c["width"], c["patch_size"]
        self.cls = c.get("pool", "cls") == "cls"
        T = (c["size"] // P) ** 2 + (1 if self.cls else 0)
        self.patch_embed = nn.Conv2d(c["channels"], W, P, stride=P)
        if self.cls:
            self.cls_token = nn.Parameter(torch.zeros(W))
        self.pos_emb = nn.Parameter(torch.zeros(T, W))
        approx = "tanh" if c.get("act") == "gelu_tanh" else "none"
        eps = c.get("ln_eps", 1e-5)
        self.blocks = nn.ModuleList(Block(W, c["heads"], c["mlp_width"], eps, approx)
                                    for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(W, eps=eps)
        self.proj = nn.Linear(W, D)

    def forward(self, x):
        p = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.cls:
            p = torch.cat([self.cls_token.expand(p.shape[0], 1, -1), p], 1)
        h = p + self.pos_emb
        for b in self.blocks:
            h = b(h, False, None)
        h = self.ln_f(h)
        h = h[:, 0] if self.cls else h.mean(1)
        return self.proj(h)


class Text(nn.Module):
    def __init__(self, c, D):
        super().__init__()
        self.c = c
        W = c["width"]
        self.tok_emb = nn.Embedding(c["vocab_size"], W)
        self.pos_emb = nn.Parameter(torch.zeros(c["context_length"], W))
        approx = "tanh" if c.get("act") == "gelu_tanh" else "none"
        eps = c.get("ln_eps", 1e-5)
        self.blocks = nn.ModuleList(Block(W, c["heads"], c["mlp_width"], eps, approx)
                                    for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(W, eps=eps)
        self.proj = nn.Linear(W, D)

    def forward(self, t):
        c = self.c
        pad_id = c.get("pad_id", -1)
        pad = (t == pad_id) if pad_id is not None and pad_id >= 0 else None
        h = self.tok_emb(t) + self.pos_emb
        for b in self.blocks:
            h = b(h, c.get("causal", True), pad)
        h = self.ln_f(h)
        if c.get("pool", "eos") == "eos":
            is_eos = (t == c["eos_id"])
            # first EOS; the last row when there is none
            pos = torch.where(is_eos.any(1), is_eos.int().argmax(1),
                              torch.full((t.shape[0],), t.shape[1] - 1, dtype=torch.long))
            h = h[torch.arange(h.shape[0]), pos]
        elif pad is not None:
            keep = (~pad).float()[:, :, None]
            h = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        else:
            h = h.mean(1)
        return self.proj(h)


# ------------------------------------------------------------------------------ tokenizer
def normalize_text(s):
    """modalities/text.c defaults: NFKC, control characters stripped (line breaks, TAB, FF ->
    space), ASCII whitespace collapsed, trimmed."""
    s = s.replace("\r\n", " ")
    out = []
    for ch in s:
        if ch in "\n\r\x85\t\f":
            out.append(" ")
        elif unicodedata.category(ch) == "Cc":
            continue
        else:
            out.append(ch)
    s = unicodedata.normalize("NFKC", "".join(out))
    b = s.encode("utf-8")
    res, prev = bytearray(), False
    for c in b:
        if c in b" \t\n\v\f\r":
            if prev:
                continue
            c, prev = 0x20, True
        else:
            prev = False
        res.append(c)
    return bytes(res).strip(b" \t\n\v\f\r")


class Tokenizer:
    BOS, EOS, PAD, FIRST = 256, 257, 258, 259

    def __init__(self, path):
        with open(path) as f:
            j = json.load(f)
        self.kind = j["type"]
        self.merges = [tuple(m) for m in j.get("merges", [])] if self.kind == "bpe" else []
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.vocab_size = self.FIRST + len(self.merges)

    def _words(self, b):
        start = 0
        for i in range(1, len(b)):
            if (b[i] == 0x20 and b[i - 1] != 0x20) or i - start >= 256:
                yield b[start:i]
                start = i
        if b:
            yield b[start:]

    def _merge(self, ids):
        while len(ids) >= 2:
            best = min((self.ranks.get((ids[i], ids[i + 1]), math.inf)
                        for i in range(len(ids) - 1)), default=math.inf)
            if best == math.inf:
                break
            a, b = self.merges[best]
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
                    out.append(self.FIRST + best)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    def encode_raw(self, b):
        if not self.merges:
            return list(b)
        ids = []
        for w in self._words(b):
            ids += self._merge(list(w))
        return ids

    def encode(self, text, ctx):
        ids = self.encode_raw(normalize_text(text))[:ctx - 2]
        toks = [self.BOS] + ids + [self.EOS]
        return toks + [self.PAD] * (ctx - len(toks))


# ------------------------------------------------------------------------------ images
def _round_half_even(x):
    return int(np.round(x))


def load_image(path_or_bytes, channels, size, resize, mean, std):
    """Decoded, composited, resized and normalised: float32 (channels, size, size)."""
    from PIL import Image
    import io
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) \
        else path_or_bytes
    im = Image.open(src)
    im.load()
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
        im = Image.fromarray(a, "L")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if has_alpha else "RGB")
    a = np.asarray(im).astype(np.uint32)
    if a.ndim == 2:
        a = a[:, :, None]
    comp = a.shape[2]
    alpha = a[:, :, comp - 1] if has_alpha else None
    col = a[:, :, :comp - 1] if has_alpha else a
    if channels == 1 and col.shape[2] == 3:
        col = ((col[:, :, 0] * 77 + col[:, :, 1] * 150 + col[:, :, 2] * 29) >> 8)[:, :, None]
    elif channels == 3 and col.shape[2] == 1:
        col = np.repeat(col, 3, axis=2)
    if alpha is not None:
        col = (col * alpha[:, :, None] + 255 * (255 - alpha[:, :, None]) + 127) // 255
    px = col.astype(np.uint8)
    h, w = px.shape[:2]
    if (h, w) != (size, size):
        mode = "L" if channels == 1 else "RGB"
        pim = Image.fromarray(px[:, :, 0] if channels == 1 else px, mode)
        if resize == "squash":
            pim = pim.resize((size, size), Image.BICUBIC)
        else:
            if w <= h:
                nw, nh = size, int(h * size / w)
            else:
                nw, nh = int(w * size / h), size
            pim = pim.resize((nw, nh), Image.BICUBIC)
            x0, y0 = _round_half_even((nw - size) / 2.0), _round_half_even((nh - size) / 2.0)
            pim = pim.crop((x0, y0, x0 + size, y0 + size))
        px = np.asarray(pim)
        if px.ndim == 2:
            px = px[:, :, None]
    x = px.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


# ------------------------------------------------------------------------------ model
class ClaspModel(nn.Module):
    """image and text towers plus logit_scale (and logit_bias); names as in model.safetensors."""

    def __init__(self, config, tokenizer, preprocess):
        super().__init__()
        self.config, self.tokenizer, self.preprocess = config, tokenizer, preprocess
        D = config["embed_dim"]
        ic, tc = config.get("image"), config.get("text")
        if ic:
            self.image = CNN(ic, D) if ic["type"] == "cnn" else ViT(ic, D)
        if tc:
            self.text = Text(tc, D)
        self.logit_scale = nn.Parameter(torch.zeros(()))
        if "init_logit_bias" in config:
            self.logit_bias = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def encode_image(self, pixels):
        return F.normalize(self.image(pixels), dim=-1)

    @torch.no_grad()
    def encode_text(self, tokens):
        return F.normalize(self.text(tokens), dim=-1)

    def image_tensor(self, inputs):
        ic = self.config["image"]
        return torch.from_numpy(np.stack([
            load_image(x, ic["channels"], ic["size"], ic.get("resize", "shortest"),
                       ic.get("mean", [0.0] * ic["channels"]),
                       ic.get("std", [1.0] * ic["channels"])) for x in inputs]))

    def text_tensor(self, texts):
        T = self.config["text"]["context_length"]
        return torch.tensor([self.tokenizer.encode(t, T) for t in texts], dtype=torch.long)

    def embed_image_files(self, paths, batch=256):
        out = [self.encode_image(self.image_tensor(paths[i:i + batch]))
               for i in range(0, len(paths), batch)]
        return torch.cat(out)

    def embed_texts(self, texts, batch=256):
        out = [self.encode_text(self.text_tensor(texts[i:i + batch]))
               for i in range(0, len(texts), batch)]
        return torch.cat(out)


def load_export(path):
    """Builds the model of an export folder and loads its weights (strict: every tensor of
    model.safetensors must match a parameter by name and shape, and vice versa)."""
    def need(name):
        p = os.path.join(path, name)
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: missing (not a complete clasp export)")
        return p
    with open(need("config.json")) as f:
        config = json.load(f)
    with open(need("preprocess.json")) as f:
        preprocess = json.load(f)
    tok = Tokenizer(need("tokenizer.json"))
    model = ClaspModel(config, tok, preprocess)
    tensors, _ = read_safetensors(need("model.safetensors"))
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    if missing:
        raise KeyError(f"{path}/model.safetensors: missing tensor {missing[0]}")
    sd = {}
    for k, v in own.items():
        t = torch.from_numpy(tensors[k].astype(np.float32))
        if tuple(t.shape) != tuple(v.shape):
            raise ValueError(f"{path}/model.safetensors: tensor {k} has shape "
                             f"{tuple(t.shape)}, config.json implies {tuple(v.shape)}")
        sd[k] = t
    model.load_state_dict(sd, strict=True)
    return model.eval()


def write_npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--image", nargs="+")
    g.add_argument("--text")
    g.add_argument("--tokens")
    ap.add_argument("-o", "--out")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    m = load_export(a.export)
    if a.tokens is not None:
        print(" ".join(map(str, m.text_tensor([a.tokens])[0].tolist())))
        return 0
    if a.image:
        z = m.embed_image_files(a.image)
    else:
        with open(a.text, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
        z = m.embed_texts([ln for ln in lines if ln.strip(" \t\r")])
    if a.out:
        write_npy(a.out, z.numpy())
    else:
        np.savetxt(sys.stdout, z.numpy(), fmt="%.6f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
