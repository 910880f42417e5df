#!/usr/bin/python3
"""make_model.py: PyTorch references for encoders/model.c (tests/test_model.c).

Run: /usr/bin/python3 tests/reference/make_model.py [--audio | --tiny-e]
     (writes tests/reference/model/*.safetensors; --audio: only the audio references;
     --tiny-e: only tiny_e)

fmnist_small.safetensors
    The fmnist-small towers built exactly as ../shared/bench/ref_clip_fmnist.py's ImageEncoder
    and TextEncoder (class definitions copied below). The full model has 1.3 M parameters, so
    storing parameters and gradients would make a 10 MB file; instead parameters come from a
    formula the C test repeats bit for bit (gen_values below: splitmix64 of (k << 32) + i),
    and gradients are stored in full for tensors up to 8192 elements and, for larger ones, as
    1024 sampled entries plus sums over dim 0 and over the other dims (with the matching sums
    of absolute values for the tolerance), which every element contributes to.
      gen.<name>        F64 [k, scale, shift]: param = float((2u - 1) * scale + shift),
                        u = ((splitmix64((k << 32) + i) >> 40) + 0.5) / 2^24, i = flat index
      input.pixels      (8, 1, 28, 28) random normal
      input.tokens      I32 (8, 32) real captions tokenised as in the reference
      dfeat.image/.text (8, 128) upstream gradients; loss = sum(out * dfeat)
      out.image/.text   (8, 128)
      grad.<name>       full gradient (numel <= 8192), else:
      gidx.<name> I64 (1024) flat indices, gval.<name> (1024) values,
      gsum0.<name> / gabs0.<name> (shape[0]) sums of g / |g| over the other dims,
      gsum1.<name> / gabs1.<name> (numel/shape[0]) sums over dim 0.
    Our names vs the reference's: visual.X -> image.X; text.blocks.N.qkv -> ...attn.qkv,
    .proj -> .attn.proj, .fc1/.fc2 -> .mlp.fc1/.mlp.fc2; everything else is the same.

tiny_a.safetensors, tiny_b.safetensors
    Small ViT + text configs (config JSON in the metadata key "config") with parameters,
    inputs, outputs and every gradient stored in full under our names:
      tiny_a: ViT with class-token pooling; text non-causal, mean pooling over non-PAD tokens
              (PAD keys masked in attention), exact GELU.
      tiny_b: ViT with mean pooling, tanh GELU; text causal, EOS pooling, tanh GELU.
    tiny_c (QuickGELU), tiny_d (+ ln_pre, projections without bias) and tiny_e (tiny_d with
    layer scale, "ls_init_value", in both towers: random gammas ls1/ls2) likewise.

tiny_audio_cnn.safetensors, tiny_ast_a.safetensors, tiny_ast_b.safetensors
    Audio-only configs (metadata "config"), everything stored in full as for tiny_a/b, with
    input.mel (B, n_mels, n_frames), dfeat.audio, out.audio:
      tiny_audio_cnn: 12 mels x 11 frames; conv(3, k3, p1) + maxpool 2, conv(4, k3, stride 2);
                      global average over frequency and time; fc 4 -> 6 -> ReLU -> 5.
      tiny_ast_a:     8 x 11, patches 4 x 3 (2 x 3 grid; the last 2 frames dropped), class
                      token, exact GELU.
      tiny_ast_b:     8 x 12, patches 2 x 4, mean pooling, tanh GELU.

speech_small_audio.safetensors
    The audio tower of configs/speech-small.json (config in the metadata) on B = 2 clips;
    parameters AND the input mel from gen_values (gen.<name>, gen.input.mel), gradients as
    fmnist_small (full up to 8192 elements, else sampled + sums).
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")
nn = torch.nn
F = torch.nn.functional

# ----------------------------------------------------------------------- from ref_clip_fmnist.py
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TEMPLATES = ["a photo of a {}", "a picture of a {}", "a {} on a white background",
             "a product photo of a {}", "an image showing a {}",
             "a low resolution photo of a {}", "a grayscale photo of a {}", "a {}"]
CTX = 32
VOCAB = 259
BOS, EOS, PAD = 256, 257, 258


def tokenize(text):
    b = list(text.encode("utf-8"))[:CTX - 2]
    toks = [BOS] + b + [EOS]
    return toks + [PAD] * (CTX - len(toks))


def caption(cls, tmpl):
    return TEMPLATES[tmpl].format(CLASS_NAMES[cls].lower())


class ImageEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 256)
        self.fc2 = nn.Linear(256, 128)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width=128, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x, mask):
        B, T, C = x.shape
        H = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)  # B,H,T,D
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H)) + mask
        a = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(a)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return x


class TextEncoder(nn.Module):
    def __init__(self, width=128, layers=2, heads=4, out=128):
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB, width)
        self.pos_emb = nn.Parameter(torch.empty(CTX, width))
        self.blocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.proj = nn.Linear(width, out)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb, std=0.01)
        self.register_buffer(
            "mask", torch.full((CTX, CTX), float("-inf")).triu_(1), persistent=False)

    def forward(self, t):
        x = self.tok_emb(t) + self.pos_emb
        for blk in self.blocks:
            x = blk(x, self.mask)
        x = self.ln_f(x)
        eos_pos = (t == EOS).int().argmax(dim=1)
        x = x[torch.arange(x.shape[0]), eos_pos]
        return self.proj(x)


# ----------------------------------------------------------------------- deterministic params
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x):
    """Vectorised one-shot splitmix64 on a uint64 array (arithmetic wraps mod 2^64)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def gen_values(k, n, scale, shift):
    i = np.arange(n, dtype=np.uint64)
    z = splitmix64((np.uint64(k) << np.uint64(32)) + i)
    u = ((z >> np.uint64(40)).astype(np.float64) + 0.5) / float(1 << 24)
    return ((2.0 * u - 1.0) * scale + shift).astype(np.float32)


def our_name(ref):
    n = ref.replace("visual.", "image.", 1) if ref.startswith("visual.") else ref
    for a, b in ((".qkv.", ".attn.qkv."), (".proj.", ".attn.proj."), (".fc1.", ".mlp.fc1."),
                 (".fc2.", ".mlp.fc2.")):
        if n.startswith("text.blocks."):
            n = n.replace(a, b)
    return n


def gen_rule(name, named):
    """(scale, shift) for a parameter (our name; `named` maps our names to tensors):
    conv/linear weight and bias U(+-1/sqrt(fan_in)); LayerNorm around (1, 0) with spread 0.2
    so that its gradients matter; embeddings +-0.05."""
    parent = name.split(".")[-2]
    if parent.startswith("ln"):
        return (0.2, 1.0) if name.endswith("weight") else (0.2, 0.0)
    if "emb" in name and "patch" not in name:
        return 0.05, 0.0
    w = named[name[:-len("bias")] + "weight"] if name.endswith("bias") else named[name]
    return 1.0 / math.sqrt(w.shape[1:].numel()), 0.0


def store_grad(tensors, name, p, rng):
    """The gradient of p under our name: in full up to 8192 elements, else 1024 entries drawn
    with rng plus the sums (and sums of |g|) over dim 0 and over the other dims."""
    gr = p.grad.detach().numpy().astype(np.float32)
    if gr.size <= 8192:
        tensors["grad." + name] = gr
        return
    flat = gr.reshape(-1)
    idx = np.sort(rng.choice(flat.size, 1024, replace=False)).astype(np.int64)
    g2 = gr.reshape(gr.shape[0], -1).astype(np.float64)
    tensors["gidx." + name] = idx
    tensors["gval." + name] = flat[idx]
    tensors["gsum0." + name] = g2.sum(1).astype(np.float32)
    tensors["gabs0." + name] = np.abs(g2).sum(1).astype(np.float32)
    tensors["gsum1." + name] = g2.sum(0).astype(np.float32)
    tensors["gabs1." + name] = np.abs(g2).sum(0).astype(np.float32)


def fmnist_small():
    torch.manual_seed(0)
    img, txt = ImageEncoder(), TextEncoder()
    tensors = {}
    named = {our_name(prefix + rn): p for prefix, mod in (("visual.", img), ("text.", txt))
             for rn, p in mod.named_parameters()}
    for k, (name, p) in enumerate(named.items()):
        scale, shift = gen_rule(name, named)
        with torch.no_grad():
            p.copy_(torch.from_numpy(gen_values(k, p.numel(), scale, shift).reshape(p.shape)))
        tensors["gen." + name] = np.array([k, scale, shift], dtype=np.float64)
    g = torch.Generator().manual_seed(1234)
    B = 8
    x = torch.randn(B, 1, 28, 28, generator=g)
    caps = [caption(c, t) for c, t in zip([0, 1, 2, 3, 4, 5, 9, 7], [0, 2, 5, 3, 4, 7, 6, 1])]
    toks = torch.tensor([tokenize(c) for c in caps], dtype=torch.int64)
    di = torch.randn(B, 128, generator=g)
    dt = torch.randn(B, 128, generator=g)
    oi, ot = img(x), txt(toks)
    ((oi * di).sum() + (ot * dt).sum()).backward()
    tensors.update({"input.pixels": x.numpy(), "input.tokens": toks.numpy().astype(np.int32),
                    "dfeat.image": di.numpy(), "dfeat.text": dt.numpy(),
                    "out.image": oi.detach().numpy(), "out.text": ot.detach().numpy()})
    rng = np.random.default_rng(7)
    for prefix, mod in (("visual.", img), ("text.", txt)):
        for rn, p in mod.named_parameters():
            store_grad(tensors, our_name(prefix + rn), p, rng)
    stio.save(os.path.join(OUT, "fmnist_small.safetensors"), tensors,
              {"what": "fmnist-small parity reference, see make_model.py"})


# ----------------------------------------------------------------------- generic towers (our names)
ACT_APPROX = {"gelu": "none", "gelu_tanh": "tanh", "quick_gelu": "quick"}


class GBlock(nn.Module):
    """Pre-LN block with our parameter names (attn.qkv, attn.proj, mlp.fc1, mlp.fc2)."""

    def __init__(self, C, NH, Fw, approx, ls=False):
        super().__init__()
        self.NH, self.approx = NH, approx
        self.ln1 = nn.LayerNorm(C)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(C, 3 * C)
        self.attn.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(C, Fw)
        self.mlp.fc2 = nn.Linear(Fw, C)
        self.ls = ls  # layer scale (OpenCLIP's LayerScale): ls1.gamma, ls2.gamma
        if ls:
            self.ls1, self.ls2 = nn.Module(), nn.Module()
            self.ls1.gamma = nn.Parameter(torch.empty(C))
            self.ls2.gamma = nn.Parameter(torch.empty(C))

    def forward(self, x, causal, pad):
        B, T, C = x.shape
        H = self.NH
        q, k, v = self.attn.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        if causal:
            att = att + torch.full((T, T), float("-inf")).triu(1)
        if pad is not None:
            att = att.masked_fill(pad[:, None, None, :], float("-inf"))
        a = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        a = self.attn.proj(a)
        x = x + (a * self.ls1.gamma if self.ls else a)
        h = self.mlp.fc1(self.ln2(x))
        if self.approx == "quick":  # QuickGELU (OpenAI CLIP)
            m = self.mlp.fc2(h * torch.sigmoid(1.702 * h))
        else:
            m = self.mlp.fc2(F.gelu(h, approximate=self.approx))
        return x + (m * self.ls2.gamma if self.ls else m)


class PatchTower(nn.Module):
    """A transformer over patch tokens (ViT, AST): patch conv, optional class token, learned
    positions, pre-LN blocks, final LayerNorm, class-token or mean pooling, projection to D.
    Parameters are registered in this order (tiny() and tiny_audio() fill them in it)."""

    def setup(self, c, D, patch_embed, n_patches, cls):
        W = c["width"]
        self.c, self.cls = c, cls
        self.T = n_patches + (1 if cls else 0)
        self.patch_embed = patch_embed
        if cls:
            self.cls_token = nn.Parameter(torch.empty(W))
        self.pos_emb = nn.Parameter(torch.empty(self.T, W))
        self.ln_pre = nn.LayerNorm(W) if c.get("ln_pre") else None
        approx = ACT_APPROX[c.get("act", "gelu")]
        ls = c.get("ls_init_value", 0) > 0
        self.blocks = nn.ModuleList(GBlock(W, c["heads"], c["mlp_width"], approx, ls)
                                    for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(W)
        self.proj = nn.Linear(W, D, bias=c.get("proj_bias", True))

    def encode(self, x):
        p = self.patch_embed(x).flatten(2).transpose(1, 2)  # B, N, W
        if self.cls:
            p = torch.cat([self.cls_token.expand(p.shape[0], 1, -1), p], 1)
        h = p + self.pos_emb
        if self.ln_pre is not None:
            h = self.ln_pre(h)
        for b in self.blocks:
            h = b(h, False, None)
        h = self.ln_f(h)
        return self.proj(h[:, 0] if self.cls else h.mean(1))


class ViT(PatchTower):
    def __init__(self, c, D):
        super().__init__()
        P = c["patch_size"]
        self.setup(c, D, nn.Conv2d(c["channels"], c["width"], P, stride=P),
                   (c["size"] // P) ** 2, c["pool"] == "cls")

    def forward(self, x):
        return self.encode(x)


class Text(nn.Module):
    def __init__(self, c, D):
        super().__init__()
        self.c = c
        W = c["width"]
        self.tok_emb = nn.Embedding(c["vocab_size"], W)
        self.pos_emb = nn.Parameter(torch.empty(c["context_length"], W))
        approx = ACT_APPROX[c.get("act", "gelu")]
        ls = c.get("ls_init_value", 0) > 0
        self.blocks = nn.ModuleList(GBlock(W, c["heads"], c["mlp_width"], approx, ls)
                                    for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(W)
        self.proj = nn.Linear(W, D, bias=c.get("proj_bias", True))

    def forward(self, t):
        c = self.c
        pad = (t == c["pad_id"]) if c.get("pad_id", -1) >= 0 else None
        h = self.tok_emb(t) + self.pos_emb
        for b in self.blocks:
            h = b(h, c["causal"], pad)
        h = self.ln_f(h)
        if c["pool"] == "eos":
            pos = (t == c["eos_id"]).int().argmax(1)
            h = h[torch.arange(h.shape[0]), pos]
        elif pad is not None:
            keep = (~pad).float()[:, :, None]
            h = (h * keep).sum(1) / keep.sum(1)
        else:
            h = h.mean(1)
        return self.proj(h)


def fill_uniform(mod):
    """Parameters in registration order from torch's global generator: LayerNorm ones
    uniform(-0.2, 0.2) (+1 for weights), the others uniform(-0.5, 0.5)."""
    for n, p in mod.named_parameters():
        with torch.no_grad():
            if "ln" in n:
                p.uniform_(-0.2, 0.2)
                if n.endswith("weight"):
                    p.add_(1.0)
            else:
                p.uniform_(-0.5, 0.5)


def tiny(fname, cfg, seed):
    torch.manual_seed(seed)
    D = cfg["embed_dim"]
    vit, txt = ViT(cfg["image"], D), Text(cfg["text"], D)
    for mod in (vit, txt):
        fill_uniform(mod)
    B, ic, tc = 3, cfg["image"], cfg["text"]
    x = torch.randn(B, ic["channels"], ic["size"], ic["size"])
    T, V = tc["context_length"], tc["vocab_size"]
    toks = torch.randint(3, V, (B, T))
    for b, n in enumerate([T, T - 2, 2][:B]):  # lengths; PAD = 0 after, EOS = 1 at the end
        toks[b, n - 1] = 1
        toks[b, n:] = 0
    di, dt = torch.randn(B, D), torch.randn(B, D)
    oi, ot = vit(x), txt(toks)
    ((oi * di).sum() + (ot * dt).sum()).backward()
    t = {"input.pixels": x.numpy(), "input.tokens": toks.numpy().astype(np.int32),
         "dfeat.image": di.numpy(), "dfeat.text": dt.numpy(),
         "out.image": oi.detach().numpy(), "out.text": ot.detach().numpy()}
    for prefix, mod in (("image.", vit), ("text.", txt)):
        for n, p in mod.named_parameters():
            t[prefix + n] = p.detach().numpy()
            t["grad." + prefix + n] = p.grad.numpy()
    stio.save(os.path.join(OUT, fname), t, {"config": json.dumps(cfg)})


# ----------------------------------------------------------------------- audio towers (our names)
class AudioCNN(nn.Module):
    """audio_cnn: mel (B, M, T) -> unsqueeze(1) -> [conv -> ReLU -> maxpool] -> mean over
    (freq, time) -> fc layers (ReLU between) -> D."""

    def __init__(self, c, D):
        super().__init__()
        self.c = c
        ch = 1
        for i, b in enumerate(c["conv"]):
            setattr(self, "conv%d" % (i + 1),
                    nn.Conv2d(ch, b["channels"], b["kernel"], stride=b.get("stride", 1),
                              padding=b.get("padding", 0)))
            ch = b["channels"]
        widths = list(c.get("fc", [])) + [D]
        for j, w in enumerate(widths):
            setattr(self, "fc%d" % (j + 1), nn.Linear(ch, w))
            ch = w

    def forward(self, mel):
        x = mel.unsqueeze(1)
        for i, b in enumerate(self.c["conv"]):
            x = F.relu(getattr(self, "conv%d" % (i + 1))(x))
            if b.get("pool", 0) > 0:
                x = F.max_pool2d(x, b["pool"])
        x = x.mean((2, 3))
        n = len(self.c.get("fc", [])) + 1
        for j in range(n):
            x = getattr(self, "fc%d" % (j + 1))(x)
            if j < n - 1:
                x = F.relu(x)
        return x


class AST(PatchTower):
    """Audio spectrogram transformer: Conv2d(1, W, (PF, PT), stride=(PF, PT)) patches of the
    mel in (freq, time) row-major order, class token or mean pooling, pre-LN blocks."""

    def __init__(self, c, D, n_frames):
        super().__init__()
        PF, PT = c["patch_freq"], c["patch_time"]
        self.setup(c, D, nn.Conv2d(1, c["width"], (PF, PT), stride=(PF, PT)),
                   (c["n_mels"] // PF) * (n_frames // PT), c.get("pool", "cls") == "cls")

    def forward(self, mel):
        return self.encode(mel.unsqueeze(1))


def n_frames_of(a):
    """The tower's frame count from the front-end fields (clasp_audio_clip_frames)."""
    n = int(round(a["clip_seconds"] * a["sample_rate"]))  # llround for these values
    if a.get("center", True):
        return 1 + n // a["hop_length"]
    return 1 + (n - a["n_fft"]) // a["hop_length"]


def make_audio_tower(cfg):
    a, D = cfg["audio"], cfg["embed_dim"]
    if a["type"] == "audio_cnn":
        return AudioCNN(a, D)
    return AST(a, D, n_frames_of(a))


def tiny_audio(fname, cfg, seed):
    torch.manual_seed(seed)
    D, a = cfg["embed_dim"], cfg["audio"]
    mod = make_audio_tower(cfg)
    fill_uniform(mod)
    B = 3
    mel = torch.randn(B, a["n_mels"], n_frames_of(a))
    da = torch.randn(B, D)
    oa = mod(mel)
    (oa * da).sum().backward()
    t = {"input.mel": mel.numpy(), "dfeat.audio": da.numpy(), "out.audio": oa.detach().numpy()}
    for n, p in mod.named_parameters():
        t["audio." + n] = p.detach().numpy()
        t["grad.audio." + n] = p.grad.numpy()
    stio.save(os.path.join(OUT, fname), t, {"config": json.dumps(cfg)})


def speech_small_audio():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "configs", "speech-small.json")) as f:
        full = json.load(f)
    cfg = {"embed_dim": full["embed_dim"], "audio": full["audio"]}
    torch.manual_seed(0)
    mod = make_audio_tower(cfg)
    named = {"audio." + n: p for n, p in mod.named_parameters()}
    tensors = {}
    for k, (name, p) in enumerate(named.items()):
        scale, shift = gen_rule(name, named)
        with torch.no_grad():
            p.copy_(torch.from_numpy(gen_values(k, p.numel(), scale, shift).reshape(p.shape)))
        tensors["gen." + name] = np.array([k, scale, shift], dtype=np.float64)
    B, a = 2, cfg["audio"]
    shape = (B, a["n_mels"], n_frames_of(a))
    kin = 1000
    mel = torch.from_numpy(gen_values(kin, int(np.prod(shape)), 1.5, 0.0).reshape(shape))
    tensors["gen.input.mel"] = np.array([kin, 1.5, 0.0], dtype=np.float64)
    g = torch.Generator().manual_seed(4321)
    da = torch.randn(B, cfg["embed_dim"], generator=g)
    oa = mod(mel)
    (oa * da).sum().backward()
    tensors.update({"dfeat.audio": da.numpy(), "out.audio": oa.detach().numpy()})
    rng = np.random.default_rng(8)
    for name, p in named.items():
        store_grad(tensors, name, p, rng)
    stio.save(os.path.join(OUT, "speech_small_audio.safetensors"), tensors,
              {"config": json.dumps(cfg), "what": "speech-small audio tower parity, see make_model.py"})


def audio_refs():
    fe = {"sample_rate": 1000, "clip_seconds": 0.1, "hop_length": 10, "n_fft": 32,
          "win_length": 32}
    tiny_audio("tiny_audio_cnn.safetensors",
               {"embed_dim": 5, "audio": dict(fe, type="audio_cnn", n_mels=12, conv=[
                   {"channels": 3, "kernel": 3, "padding": 1, "pool": 2},
                   {"channels": 4, "kernel": 3, "stride": 2}], fc=[6])}, 3)
    base_ast = dict(fe, type="ast", width=8, layers=2, heads=2, mlp_width=12)
    tiny_audio("tiny_ast_a.safetensors",
               {"embed_dim": 5, "audio": dict(base_ast, n_mels=8, patch_freq=4, patch_time=3,
                                              pool="cls")}, 4)
    tiny_audio("tiny_ast_b.safetensors",
               {"embed_dim": 5, "audio": dict(base_ast, n_mels=8, clip_seconds=0.11,
                                              patch_freq=2, patch_time=4, pool="mean",
                                              act="gelu_tanh")}, 5)
    speech_small_audio()


# the towers of tiny_a .. tiny_e, which vary the options
TINY_TEXT = {"type": "transformer", "vocab_size": 11, "context_length": 6, "width": 16,
             "layers": 2, "heads": 4, "mlp_width": 24, "pad_id": 0, "eos_id": 1}
TINY_IMG = {"type": "vit", "channels": 3, "size": 8, "patch_size": 4, "width": 16,
            "layers": 2, "heads": 2, "mlp_width": 20}


def tiny_e():
    """tiny_d with layer scale ("ls_init_value") in both towers; the gammas are random."""
    base_text, base_img = TINY_TEXT, TINY_IMG
    tiny("tiny_e.safetensors",
         {"embed_dim": 12, "image": dict(base_img, pool="cls", act="quick_gelu", ln_pre=True,
                                         proj_bias=False, ls_init_value=0.1),
          "text": dict(base_text, causal=True, pool="eos", act="gelu", proj_bias=False,
                       ls_init_value=0.1)}, 5)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    if "--tiny-e" in sys.argv[1:]:
        tiny_e()
        return
    if "--audio" in sys.argv[1:]:  # only the audio references
        audio_refs()
        for f in sorted(os.listdir(OUT)):
            print(f, os.path.getsize(os.path.join(OUT, f)), "bytes")
        return
    fmnist_small()
    base_text, base_img = TINY_TEXT, TINY_IMG
    tiny("tiny_a.safetensors",
         {"embed_dim": 12, "image": dict(base_img, pool="cls"),
          "text": dict(base_text, causal=False, pool="mean")}, 1)
    tiny("tiny_b.safetensors",
         {"embed_dim": 12, "image": dict(base_img, pool="mean", act="gelu_tanh"),
          "text": dict(base_text, causal=True, pool="eos", act="gelu_tanh")}, 2)
    tiny("tiny_c.safetensors",
         {"embed_dim": 12, "image": dict(base_img, pool="cls", act="quick_gelu"),
          "text": dict(base_text, causal=True, pool="eos", act="quick_gelu")}, 3)
    tiny("tiny_d.safetensors",
         {"embed_dim": 12, "image": dict(base_img, pool="cls", act="quick_gelu", ln_pre=True,
                                         proj_bias=False),
          "text": dict(base_text, causal=True, pool="eos", act="quick_gelu", proj_bias=False)}, 4)
    tiny_e()
    audio_refs()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)), "bytes")


if __name__ == "__main__":
    main()
