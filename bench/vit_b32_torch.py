#!/usr/bin/python3
"""bench/vit_b32_torch.py: the PyTorch side of bench/vit_b32.sh (issue 18, "the real regime").

The model is OpenCLIP's CLIP ViT (ViT-B-32 with configs/vit-b-32.json), written in plain torch
from OpenCLIP's architecture and built from the fields of a clasp model config, so that both
sides run the same shapes:
  image: conv1 (patch x patch, stride patch, no bias) -> class token + positional embedding ->
         ln_pre -> L pre-LN residual blocks (ln_1, nn.MultiheadAttention with packed in_proj,
         ln_2, c_fc -> act -> c_proj) -> ln_post on the class token -> @ proj (no bias)
  text:  token_embedding + positional_embedding -> L blocks with the causal mask -> ln_final ->
         the row of the end-of-text token (argmax of the ids) -> @ text_projection (no bias)
  act:   QuickGELU (x * sigmoid(1.702 x)) or exact GELU, as the config's "act" says.
With configs/vit-b-32.json it has OpenCLIP's 151,277,313 parameters (logit scale included).

Data: the tar shards of bench/make_jpeg_shards.sh read as WebDataset does (an IterableDataset,
shards split over the DataLoader workers, a shuffle buffer of raw samples per worker), PIL
decode, then
  train: RandomResizedCrop(size, scale (0.08, 1), bicubic) + RandomHorizontalFlip + ToTensor +
         Normalize(config mean/std); captions tokenized by the CLIP BPE reference tokenizer
         (tests/reference/clip_bpe_ref.py, pure Python like OpenCLIP's) in the workers;
  embed: Resize(size, bicubic) + CenterCrop(size) + ToTensor + Normalize (OpenAI's).

Modes:
  --params                  print the parameter count and exit
  --mode embed --batches K  encode_image on K batches (inference_mode), then exit; the driver
                            times two runs of different K and takes the rate of the difference
  --mode train --steps N    AdamW fine-tuning steps (loss: CLIP's symmetric cross-entropy),
                            each timed from asking the DataLoader for the batch to the end of
                            optimizer.step(); the summary's samples/s leaves out the first
                            --warmup steps (default 1), as clasp's summary leaves out its first.
--precision bf16 runs the forward and the loss under torch.autocast("cpu", bfloat16), as
../shared/bench/ref_clip_fmnist.py does. A JSON summary goes to --json (and stdout's last line).
"""
import argparse
import io
import json
import math
import os
import random
import resource
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "vit-b-32.json"))
    ap.add_argument("--params", action="store_true", help="print the parameter count, exit")
    ap.add_argument("--mode", choices=["embed", "train"], default="train")
    ap.add_argument("--shards", nargs="*", default=[], help="tar files")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="train: optimizer steps")
    ap.add_argument("--batches", type=int, default=2, help="embed: batches to encode")
    ap.add_argument("--warmup", type=int, default=1, help="train: steps left out of the rate")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader num_workers")
    ap.add_argument("--shuffle-buffer", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    return ap.parse_args()


def build_model(torch, cfg):
    nn = torch.nn
    F = torch.nn.functional

    class QuickGELU(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(1.702 * x)

    class LayerNorm(nn.LayerNorm):
        """OpenCLIP's LayerNorm under autocast: computed in fp32, cast back to the input's dtype
        (CPU autocast in torch 1.13 does not cast layer_norm's bf16 input itself)."""

        def forward(self, x):
            return F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias,
                                self.eps).to(x.dtype)

    def act_layer(name):
        if name == "quick_gelu":
            return QuickGELU()
        if name == "gelu_tanh":
            return nn.GELU(approximate="tanh")
        return nn.GELU()

    class Block(nn.Module):
        def __init__(self, width, heads, mlp, act, eps):
            super().__init__()
            self.ln_1 = LayerNorm(width, eps=eps)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.ln_2 = LayerNorm(width, eps=eps)
            self.mlp = nn.Sequential()
            self.mlp.add_module("c_fc", nn.Linear(width, mlp))
            self.mlp.add_module("gelu", act_layer(act))
            self.mlp.add_module("c_proj", nn.Linear(mlp, width))

        def forward(self, x, mask=None):
            h = self.ln_1(x)
            x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
            return x + self.mlp(self.ln_2(x))

    class Visual(nn.Module):
        def __init__(self, c, embed):
            super().__init__()
            W, ps, n = c["width"], c["patch_size"], (c["size"] // c["patch_size"]) ** 2
            self.conv1 = nn.Conv2d(c.get("channels", 3), W, ps, stride=ps, bias=False)
            self.class_embedding = nn.Parameter(torch.randn(W) * W ** -0.5)
            self.positional_embedding = nn.Parameter(torch.randn(n + 1, W) * W ** -0.5)
            eps = c.get("ln_eps", 1e-5)
            self.ln_pre = LayerNorm(W, eps=eps) if c.get("ln_pre") else nn.Identity()
            self.blocks = nn.ModuleList([Block(W, c["heads"], c["mlp_width"], c.get("act", "gelu"), eps)
                                         for _ in range(c["layers"])])
            self.ln_post = LayerNorm(W, eps=eps)
            self.proj = nn.Parameter(torch.randn(W, embed) * W ** -0.5)

        def forward(self, x):
            x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, N, W)
            cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
            x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
            x = self.ln_pre(x)
            for b in self.blocks:
                x = b(x)
            return self.ln_post(x[:, 0]) @ self.proj

    class Text(nn.Module):
        def __init__(self, c, embed):
            super().__init__()
            W, T = c["width"], c["context_length"]
            self.token_embedding = nn.Embedding(c["vocab_size"], W)
            nn.init.normal_(self.token_embedding.weight, std=0.02)
            self.positional_embedding = nn.Parameter(torch.randn(T, W) * 0.01)
            eps = c.get("ln_eps", 1e-5)
            self.blocks = nn.ModuleList([Block(W, c["heads"], c["mlp_width"], c.get("act", "gelu"), eps)
                                         for _ in range(c["layers"])])
            self.ln_final = LayerNorm(W, eps=eps)
            self.text_projection = nn.Parameter(torch.randn(W, embed) * W ** -0.5)
            mask = torch.full((T, T), float("-inf")).triu_(1) if c.get("causal", True) else None
            self.register_buffer("attn_mask", mask, persistent=False)

        def forward(self, t):
            x = self.token_embedding(t) + self.positional_embedding
            for b in self.blocks:
                x = b(x, self.attn_mask)
            x = self.ln_final(x)
            return x[torch.arange(x.shape[0]), t.argmax(dim=-1)] @ self.text_projection

    class CLIP(nn.Module):
        def __init__(self):
            super().__init__()
            E = cfg["embed_dim"]
            self.visual = Visual(cfg["image"], E)
            self.text = Text(cfg["text"], E)
            self.logit_scale = nn.Parameter(torch.tensor(cfg.get("init_logit_scale", math.log(1 / 0.07))))

        def encode_image(self, x):
            return F.normalize(self.visual(x), dim=-1)

        def forward(self, x, t):
            zi = F.normalize(self.visual(x), dim=-1)
            zt = F.normalize(self.text(t), dim=-1)
            logits = self.logit_scale.exp() * zi @ zt.t()
            labels = torch.arange(x.shape[0])
            return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))

    return CLIP()


def make_dataset(torch, args, cfg):
    """A WebDataset-style IterableDataset over args.shards: (image tensor, ids) pairs."""
    from PIL import Image
    import torchvision.transforms as T

    ic = cfg["image"]
    S = ic["size"]
    norm = T.Normalize(ic.get("mean", [0.5] * 3), ic.get("std", [0.5] * 3))
    bicubic = T.InterpolationMode.BICUBIC
    if args.mode == "train":
        tf = T.Compose([T.RandomResizedCrop(S, scale=(0.08, 1.0), interpolation=bicubic),
                        T.RandomHorizontalFlip(), T.ToTensor(), norm])
    else:
        tf = T.Compose([T.Resize(S, interpolation=bicubic), T.CenterCrop(S), T.ToTensor(), norm])
    ctx = cfg["text"]["context_length"]
    shards = list(args.shards)
    train = args.mode == "train"
    buf_n, seed = args.shuffle_buffer, args.seed

    def samples(paths):
        for p in paths:
            cur, key = {}, None
            with tarfile.open(p, "r|") as tf_:
                for m in tf_:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    k, ext = base.split(".", 1)
                    if key is not None and k != key:
                        yield key, cur
                        cur = {}
                    key = k
                    cur[ext.lower()] = tf_.extractfile(m).read()
            if key is not None:
                yield key, cur

    class Shards(torch.utils.data.IterableDataset):
        def __iter__(self):
            wi = torch.utils.data.get_worker_info()
            wid, nw = (wi.id, wi.num_workers) if wi else (0, 1)
            sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
            import clip_bpe_ref
            tok = clip_bpe_ref.Tokenizer()
            rng = random.Random(seed * 1000 + wid)
            epoch = 0
            # WebDataset's split: each worker its own shards; with fewer shards than workers
            # (the embed part's single tar), each worker reads them all and keeps every nw-th
            # sample instead, so that every worker decodes.
            by_sample = len(shards) < nw
            while True:
                mine = list(shards) if by_sample else shards[wid::nw]
                if train:
                    rng.shuffle(mine)
                buf = []
                for i, (_, s) in enumerate(samples(mine)):
                    if by_sample and i % nw != wid:
                        continue
                    if "jpg" not in s or "txt" not in s:
                        continue
                    if not train:
                        yield self.decode(s, tok, tf)
                        continue
                    buf.append(s)
                    if len(buf) >= buf_n:
                        j = rng.randrange(len(buf))
                        buf[j], buf[-1] = buf[-1], buf[j]
                        yield self.decode(buf.pop(), tok, tf)
                while buf:
                    j = rng.randrange(len(buf))
                    buf[j], buf[-1] = buf[-1], buf[j]
                    yield self.decode(buf.pop(), tok, tf)
                epoch += 1
                if not train:
                    return

        @staticmethod
        def decode(s, tok, tf_):
            img = tf_(Image.open(io.BytesIO(s["jpg"])).convert("RGB"))
            ids = tok.tokenize(s["txt"]) or [tok.sot, tok.eot]
            ids = ids + [0] * (ctx - len(ids))
            return img, torch.tensor(ids, dtype=torch.long)

    return Shards()


def peak_rss_mib():
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kib / 1024.0, kids_kib / 1024.0


def main():
    args = parse_args()
    # OpenBLAS (pthread build) does not follow torch.set_num_threads: set both (as
    # ../shared/bench/ref_clip_fmnist.py does).
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import torch

    with open(args.config) as f:
        cfg = json.load(f)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = build_model(torch, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    if args.params:
        print(n_params)
        return 0
    if not args.shards:
        print("vit_b32_torch: --shards needs at least one tar file", file=sys.stderr)
        return 2
    bf16 = args.precision == "bf16"
    loader = torch.utils.data.DataLoader(make_dataset(torch, args, cfg), batch_size=args.batch,
                                         num_workers=args.workers, drop_last=args.mode == "train")
    res = {"mode": args.mode, "precision": args.precision, "threads": args.threads,
           "workers": args.workers, "batch": args.batch, "params": n_params,
           "torch": torch.__version__}
    t_start = time.perf_counter()
    if args.mode == "embed":
        model.eval()
        n = 0
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for i, (x, _) in enumerate(loader):
                if i >= args.batches:
                    break
                z = model.encode_image(x)
                n += z.shape[0]
        res.update({"images": n, "seconds": time.perf_counter() - t_start})
    else:
        decay = [p for nm, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in nm]
        other = [p for nm, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in nm)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                                 {"params": other, "weight_decay": 0.0}],
                                lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
        model.train()
        it = iter(loader)
        times, waits, losses = [], [], []
        for step in range(args.steps):
            t0 = time.perf_counter()
            x, t = next(it)
            t1 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(x, t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            t2 = time.perf_counter()
            times.append(t2 - t0)
            waits.append(t1 - t0)
            losses.append(float(loss))
            print(f"step {step + 1} loss {losses[-1]:.4f} {args.batch / (t2 - t0):.2f} samples/s "
                  f"(data wait {t1 - t0:.2f} s of {t2 - t0:.2f} s)", flush=True)
        w = args.warmup if args.steps > args.warmup else 0
        timed = times[w:]
        res.update({"steps": args.steps, "samples_per_s": args.batch * len(timed) / sum(timed),
                    "data_wait": sum(waits[w:]) / sum(timed), "loss_first": losses[0],
                    "loss_last": losses[-1], "seconds": time.perf_counter() - t_start})
        del it  # joins the workers, so that RUSAGE_CHILDREN counts them
    rss_self, rss_kids = peak_rss_mib()
    res.update({"peak_rss_mib": rss_self, "peak_rss_workers_mib": rss_kids})
    line = json.dumps(res)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
