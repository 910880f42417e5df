#!/usr/bin/python3
"""make_openclip.py: OpenCLIP ViT references for `clasp import openclip` (tests/test_import.c,
scripts/openclip-parity.sh).

A PyTorch CLIP written from OpenCLIP's published architecture (open_clip/transformer.py and
model.py: VisionTransformer, TextTransformer, CLIP), with OpenCLIP's parameter names:
  visual: conv1 (no bias), class_embedding, positional_embedding, ln_pre,
          transformer.resblocks.N.{ln_1, attn (nn.MultiheadAttention: in_proj_weight/bias,
          out_proj), ln_2, mlp.c_fc, mlp.c_proj}, ln_post on the class token, proj (x @ proj);
  text:   token_embedding, positional_embedding, transformer.resblocks.N (causal mask),
          ln_final, the row at the argmax id (the eot), text_projection (x @ P);
  logit_scale (log of the scale), plus the persistent `attn_mask` buffer older OpenCLIP
  versions kept in their state dicts (the importer ignores it).
Weights are random from a fixed seed (OpenCLIP's init rules for the matrices, random biases
and LayerNorm parameters so that the mapping of every tensor matters).

    /usr/bin/python3 tests/reference/make_openclip.py
        writes tests/reference/openclip/:
          tiny.json             the OpenCLIP config of a tiny arch of the ViT family (image 32 px,
                                patch 8, width 32, 2 layers; text width 16, 2 layers, context 77,
                                vocab 49408; QuickGELU)
          tiny.safetensors      its checkpoint in F16, OpenCLIP names, made by
                                tools/openclip_to_safetensors.py from a training-checkpoint .pt
                                ({"state_dict": {"module.<name>": ...}}); the .pt, a plain state
                                dict .pt and a TorchScript archive all convert to the same tensors
          img_*.png             four emoji (emoji-datasource-google 64 px, alpha composited on
                                white, PIL bicubic to 32 x 32, RGB): clasp reads them unresized
          captions.txt          captions, one a line
          tiny_ref.safetensors  input.pixels (4, 3, 32, 32) the PNGs normalised with OpenAI's
                                mean/std; input.tokens I32 (n, 77) the captions by
                                clip_bpe_ref.py; out.image / out.text the L2-normalised
                                embeddings of the F16-rounded weights computed in fp32;
                                raw.image / raw.text before normalisation
          tiny_ls.json, tiny_ls.safetensors, tiny_ls_ref.safetensors
                                the same arch with layer scale (ls_init_value 0.1 in both
                                towers, random gammas ls_1/ls_2) and exact GELU, saved in BF16
                                by the converter (--dtype bf16); embeddings of the BF16-rounded
                                weights
    /usr/bin/python3 tests/reference/make_openclip.py --full ARCH.json OUT_DIR [--jit]
        the same for a full arch (scripts/openclip-parity.sh: ViT-B-32) in fp32, into OUT_DIR:
        model.pt (training checkpoint; with --jit also model_jit.pt, the same weights as a
        TorchScript archive), images at the
        arch's size, captions.txt and ref.safetensors; the caller converts and imports.
    /usr/bin/python3 tests/reference/make_openclip.py --compare EXPORT REF.safetensors \
        IMAGES.npy TEXTS.npy
        max |difference| of clasp's embeddings (.npy) and of tools/clasp_torch.py on EXPORT
        (on the reference's tensors, and on the PNGs and captions.txt beside REF through its
        own preprocessing and clip_bpe tokenizer) against the reference; exit 1 above 1e-4 or
        when clasp_torch's token ids differ from the reference tokenizer's.
"""
import gzip
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import clip_bpe_ref  # noqa: E402
import openclip_to_safetensors as o2s  # noqa: E402
import stio  # noqa: E402

OUT = os.path.join(HERE, "openclip")
EMOJI = os.path.expanduser("~/.cache/clasp/npm/emoji-datasource-google-16.0.0.tgz")
EMOJI_FILES = [("cat", "1f431"), ("dog", "1f436"), ("apple", "1f34e"), ("car", "1f697")]
CAPTIONS = ["a photo of a cat", "a photo of a dog", "A red apple!", "a car on the road",
            "an emoji of a smiling face, drawn in the Google style", "3 dogs & 2 cats"]
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
TINY = {"embed_dim": 16, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                       "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 4,
                     "layers": 2}}
nn = torch.nn


# ------------------------------------------------------------------------------ the model
class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class LayerScale(nn.Module):
    def __init__(self, d, init):
        super().__init__()
        self.gamma = nn.Parameter(init * torch.ones(d))

    def forward(self, x):
        return x * self.gamma


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d, heads, mlp_ratio, act, ls_init=None):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads)  # (T, B, d) as OpenAI's
        self.ls_1 = LayerScale(d, ls_init) if ls_init else nn.Identity()
        self.ln_2 = nn.LayerNorm(d)
        mlp = int(d * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d, mlp)), ("gelu", act()),
                                              ("c_proj", nn.Linear(mlp, d))]))
        self.ls_2 = LayerScale(d, ls_init) if ls_init else nn.Identity()

    def forward(self, x, attn_mask=None):
        y = self.ln_1(x)
        x = x + self.ls_1(self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0])
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, mlp_ratio, act, ls_init=None):
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_ratio, act, ls_init) for _ in range(layers))

    def forward(self, x, attn_mask=None):
        for b in self.resblocks:
            x = b(x, attn_mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, c, D, act):
        super().__init__()
        W, P, S = c["width"], c["patch_size"], c["image_size"]
        self.conv1 = nn.Conv2d(3, W, P, stride=P, bias=False)
        scale = W ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(W))
        self.positional_embedding = nn.Parameter(scale * torch.randn((S // P) ** 2 + 1, W))
        self.ln_pre = nn.LayerNorm(W)
        self.transformer = Transformer(W, c["layers"], W // c.get("head_width", 64),
                                       c.get("mlp_ratio", 4.0), act, c.get("ls_init_value"))
        self.ln_post = nn.LayerNorm(W)
        self.proj = nn.Parameter(scale * torch.randn(W, D))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # B, N, W
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1])
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        act = QuickGELU if cfg.get("quick_gelu") else nn.GELU
        D, t = cfg["embed_dim"], cfg["text_cfg"]
        self.visual = VisionTransformer(cfg["vision_cfg"], D, act)
        W, T = t["width"], t["context_length"]
        self.transformer = Transformer(W, t["layers"], t["heads"], t.get("mlp_ratio", 4.0), act,
                                       t.get("ls_init_value"))
        self.token_embedding = nn.Embedding(t["vocab_size"], W)
        self.positional_embedding = nn.Parameter(torch.empty(T, W))
        self.ln_final = nn.LayerNorm(W)
        self.text_projection = nn.Parameter(torch.empty(W, D))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.register_buffer("attn_mask", torch.full((T, T), float("-inf")).triu_(1))

    def encode_image(self, x):
        return self.visual(x)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2), self.attn_mask).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image, text):
        return self.encode_image(image), self.encode_text(text)


def init_weights(model, cfg, seed):
    """OpenCLIP's init for embeddings and matrices; biases U(-0.1, 0.1); LayerNorm weights
    1 + U(-0.2, 0.2), biases U(-0.2, 0.2). Deterministic in registration order."""
    torch.manual_seed(seed)
    t = cfg["text_cfg"]
    W, L = t["width"], t["layers"]
    proj_std, attn_std, fc_std = (W ** -0.5) * ((2 * L) ** -0.5), W ** -0.5, (2 * W) ** -0.5
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".ln_" in n or n.startswith("ln_") or "ln_pre" in n or "ln_post" in n:
                p.uniform_(-0.2, 0.2)
                if n.endswith("weight"):
                    p.add_(1.0)
            elif n.endswith("bias"):
                p.uniform_(-0.1, 0.1)
            elif n == "token_embedding.weight":
                p.normal_(std=0.02)
            elif n == "positional_embedding":
                p.normal_(std=0.01)
            elif n == "text_projection":
                p.normal_(std=W ** -0.5)
            elif n.endswith(".gamma"):  # LayerScale
                p.uniform_(-1.0, 1.0)
            elif n == "visual.conv1.weight":
                p.normal_(std=p[0].numel() ** -0.5)
            elif n.startswith("visual.") and n.count(".") <= 1:
                p.normal_(std=p.shape[0] ** -0.5 if p.dim() > 1 else 0.2)
            elif "in_proj_weight" in n:
                p.normal_(std=attn_std if not n.startswith("visual.") else p.shape[1] ** -0.5)
            elif "out_proj.weight" in n or "c_proj.weight" in n:
                p.normal_(std=proj_std if not n.startswith("visual.") else p.shape[1] ** -0.5)
            elif "c_fc.weight" in n:
                p.normal_(std=fc_std if not n.startswith("visual.") else p.shape[1] ** -0.5)
            elif n == "logit_scale":
                p.fill_(math.log(1 / 0.07))
            else:
                p.normal_(std=0.02)


# ------------------------------------------------------------------------------ inputs
def emoji_images(size):
    """(name, HxWx3 uint8) of the emoji, composited on white and resized to size (PIL bicubic)."""
    out = []
    with tarfile.open(EMOJI) as tf:
        for name, code in EMOJI_FILES:
            data = tf.extractfile(f"package/img/google/64/{code}.png").read()
            im = Image.open(io.BytesIO(data)).convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im).convert("RGB")
            out.append((name, im.resize((size, size), Image.BICUBIC)))
    return out


def pixels_of(images):
    x = np.stack([np.asarray(im, dtype=np.float32) / np.float32(255.0) for im in images])
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).astype(np.float32))


def tokens_of(captions, ctx):
    tok = clip_bpe_ref.Tokenizer()
    rows = []
    for c in captions:
        ids = tok.tokenize(c.encode("utf-8"))
        rows.append(ids + [0] * (ctx - len(ids)))
    return np.asarray(rows, dtype=np.int32)


def reference(model, pixels, tokens):
    with torch.no_grad():
        zi = model.encode_image(torch.from_numpy(pixels))
        zt = model.encode_text(torch.from_numpy(tokens).long())
    n = torch.nn.functional.normalize
    return {"input.pixels": pixels, "input.tokens": tokens,
            "raw.image": zi.numpy(), "raw.text": zt.numpy(),
            "out.image": n(zi, dim=-1).numpy(), "out.text": n(zt, dim=-1).numpy()}


def write_inputs(out_dir, size):
    images = emoji_images(size)
    names = []
    for name, im in images:
        p = os.path.join(out_dir, f"img_{name}.png")
        im.save(p)
        names.append(p)
    # read back: the reference sees exactly the PNGs' pixels
    pix = pixels_of([Image.open(p).convert("RGB") for p in names])
    with open(os.path.join(out_dir, "captions.txt"), "w") as f:
        f.write("\n".join(CAPTIONS) + "\n")
    return pix


# ------------------------------------------------------------------------------ modes
def check_converter(model, sd16, tmp):
    """The three input forms of tools/openclip_to_safetensors.py give the same tensors."""
    plain, ckpt, jit = (os.path.join(tmp, n) for n in ("plain.pt", "ckpt.pt", "jit.pt"))
    torch.save(sd16, plain)
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd16.items()}}, ckpt)
    half = CLIP(TINY)
    half.load_state_dict(sd16)
    img = torch.zeros(1, 3, 32, 32)
    txt = torch.zeros(1, 77, dtype=torch.long)
    torch.jit.save(torch.jit.trace(half.float(), (img, txt), check_trace=False).half(), jit)
    got = {}
    for p in (plain, ckpt, jit):
        o2s.convert(p, p + ".safetensors")
        got[p] = stio_load_any(p + ".safetensors")
    for p in (plain, ckpt, jit):
        for k, v in sd16.items():
            a = got[p][k]
            assert a.dtype == np.float16 and np.array_equal(a, v.numpy()), (p, k)
        assert set(got[p]) == set(sd16), (p, set(got[p]) ^ set(sd16))
    return ckpt + ".safetensors"


def stio_load_any(path):
    """safetensors reader for F16/F32 (stio.py knows no F16)."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    dt = {"F16": np.float16, "F32": np.float32}
    out = {}
    for k, e in header.items():
        b, en = e["data_offsets"]
        out[k] = np.frombuffer(data[8 + n + b:8 + n + en], dtype=dt[e["dtype"]]).reshape(e["shape"])
    return out


def tiny_ls(pix, tokens):
    """TINY with layer scale in both towers (random gammas), saved in BF16 by the converter."""
    cfg = json.loads(json.dumps(TINY))
    cfg["vision_cfg"]["ls_init_value"] = 0.1
    cfg["text_cfg"]["ls_init_value"] = 0.1
    cfg["quick_gelu"] = False
    model = CLIP(cfg)
    init_weights(model, cfg, 19)
    sdb = {k: v.detach().bfloat16() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in sdb.items()})  # BF16-rounded, in fp32
    with open(os.path.join(OUT, "tiny_ls.json"), "w") as f:
        json.dump(cfg, f, indent=4)
        f.write("\n")
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "ls.pt")
        torch.save({k: v.float() for k, v in sdb.items()}, p)
        o2s.convert(p, os.path.join(OUT, "tiny_ls.safetensors"), "bf16")
    ref = reference(model, pix, tokens)
    stio.save(os.path.join(OUT, "tiny_ls_ref.safetensors"), ref,
              {"what": "make_openclip.py tiny_ls: inputs and embeddings"})


def tiny():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    model = CLIP(TINY)
    init_weights(model, TINY, 18)
    sd16 = {k: v.detach().half() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in sd16.items()})  # F16-rounded, in fp32
    with open(os.path.join(OUT, "tiny.json"), "w") as f:
        json.dump(TINY, f, indent=4)
        f.write("\n")
    with tempfile.TemporaryDirectory() as tmp:
        src = check_converter(model, sd16, tmp)
        os.replace(src, os.path.join(OUT, "tiny.safetensors"))
    pix = write_inputs(OUT, TINY["vision_cfg"]["image_size"])
    tokens = tokens_of(CAPTIONS, 77)
    ref = reference(model.float(), pix, tokens)
    stio.save(os.path.join(OUT, "tiny_ref.safetensors"), ref,
              {"what": "make_openclip.py tiny: inputs and embeddings"})
    tiny_ls(pix, tokens)
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)), "bytes")


def full(arch_path, out_dir, jit):
    with open(arch_path) as f:
        cfg = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)
    model = CLIP(cfg)
    init_weights(model, cfg, 32)
    model.eval()
    sd = model.state_dict()
    p = os.path.join(out_dir, "model.pt")
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in sd.items()}}, p)
    if jit:  # the same weights as a TorchScript archive, as OpenAI released theirs
        S = cfg["vision_cfg"]["image_size"]
        T = cfg["text_cfg"]["context_length"]
        with torch.no_grad():
            tr = torch.jit.trace(model, (torch.zeros(1, 3, S, S),
                                         torch.zeros(1, T, dtype=torch.long)), check_trace=False)
        torch.jit.save(tr, os.path.join(out_dir, "model_jit.pt"))
    pix = write_inputs(out_dir, cfg["vision_cfg"]["image_size"])
    ref = reference(model, pix, tokens_of(CAPTIONS, cfg["text_cfg"]["context_length"]))
    stio.save(os.path.join(out_dir, "ref.safetensors"), ref)
    print(f"{out_dir}: model.pt, {len(EMOJI_FILES)} images, {len(CAPTIONS)} captions")


def compare(export, ref_path, images_npy, texts_npy):
    ref, _ = stio.load(ref_path)
    zi, zt = np.load(images_npy), np.load(texts_npy)
    di = float(np.abs(zi - ref["out.image"]).max())
    dt = float(np.abs(zt - ref["out.text"]).max())
    print(f"clasp vs reference:       image max|diff| {di:.3g}  text max|diff| {dt:.3g}")
    import clasp_torch
    m = clasp_torch.load_export(export)
    ti = m.encode_image(torch.from_numpy(ref["input.pixels"])).numpy()
    tt = m.encode_text(torch.from_numpy(ref["input.tokens"]).long()).numpy()
    ci = float(np.abs(ti - ref["out.image"]).max())
    ct = float(np.abs(tt - ref["out.text"]).max())
    print(f"clasp_torch vs reference: image max|diff| {ci:.3g}  text max|diff| {ct:.3g}"
          "  (reference tensors)")
    # clasp_torch from the files: the PNGs (at the model's size) and the captions through its
    # clip_bpe tokenizer
    ref_dir = os.path.dirname(os.path.abspath(ref_path))
    pngs = [os.path.join(ref_dir, f"img_{n}.png") for n, _ in EMOJI_FILES]
    with open(os.path.join(ref_dir, "captions.txt")) as f:
        caps = [ln for ln in f.read().split("\n") if ln]
    fi = m.embed_image_files(pngs).numpy()
    ft = m.embed_texts(caps).numpy()
    toks = m.text_tensor(caps).numpy()
    fi_d = float(np.abs(fi - ref["out.image"]).max())
    ft_d = float(np.abs(ft - ref["out.text"]).max())
    same_ids = bool((toks == ref["input.tokens"]).all())
    print(f"clasp_torch vs reference: image max|diff| {fi_d:.3g}  text max|diff| {ft_d:.3g}"
          f"  (PNG files, captions; token ids equal: {same_ids})")
    return 0 if max(di, dt, ci, ct, fi_d, ft_d) <= 1e-4 and same_ids else 1


def main():
    a = sys.argv[1:]
    if a and a[0] == "--full":
        full(a[1], a[2], "--jit" in a[3:])
    elif a and a[0] == "--compare":
        sys.exit(compare(*a[1:5]))
    else:
        tiny()


if __name__ == "__main__":
    main()
