#!/usr/bin/python3
"""clasp_torch.py: load a clasp export in PyTorch and embed images, texts and audio.

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
    python3 tools/clasp_torch.py DIR --audio a.wav b.wav -o audio.npy
    python3 tools/clasp_torch.py DIR --logmel a.wav -o mel.npy          (the tower's input)
As a module:
    import sys; sys.path.insert(0, "tools"); import clasp_torch
    m = clasp_torch.load_export("DIR")          # a torch.nn.Module, eval mode
    zi = m.embed_image_files(["a.png"])         # (n, D) float32 tensor, unit rows
    zt = m.embed_texts(["a photo of a bag"])    # (n, D)
    za = m.embed_audio_files(["a.wav"])         # (n, D)
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
  * text (bytes and bpe tokenizers): NFKC (unicodedata), control characters dropped (CR LF,
    LF, CR, NEL, TAB and FF become a space), runs of ASCII whitespace collapsed to one space,
    trimmed; then the byte-level tokenizer or the BPE of tokenizer.json (words start at a
    space following a non-space byte; merges applied lowest rank first), [BOS] + ids[:T-2] +
    [EOS] + PAD.
    A clip_bpe tokenizer (an export of `clasp import openclip`) is OpenAI CLIP's BPE as clasp
    runs it (docs/clip_bpe.md; ClipTokenizer below): none of the normalisation above, HTML
    unescaping, whitespace cleaning, lower-casing, OpenCLIP's pre-tokenisation, the export's
    merges file; its ids equal those of tests/reference/clip_bpe_ref.py (which clasp's equal)
    on all 11,915 valid UTF-8 strings of that folder's corpus.
  * audio (as modalities/audio_decode.c and modalities/melspec.c in evaluation mode, with the
    settings of preprocess.json's "audio" object):
      - decoding: PCM WAV only, read with Python's `wave` module (8-bit unsigned, 16, 24 and
        32-bit signed integer PCM), scaled as libsndfile does (x / 2^(bits-1), 8-bit
        (x - 128) / 128). FLAC, OGG/Vorbis, Opus, MP3, float WAV and WAVE_FORMAT_EXTENSIBLE
        files (on Python < 3.12) are NOT supported here (clasp reads them with libsndfile):
        load_wav raises ValueError naming the file.
      - channels mixed to mono by their mean (float64 sum, rounded to float32).
      - resampling: clasp resamples with libsamplerate, which has no Python equivalent, so a
        file whose rate differs from the model's "sample_rate" is REFUSED (ValueError naming
        the file and both rates). Convert such files to the model's rate first (e.g. with
        clasp's own front-end, sox, ffmpeg) knowing those resamplers differ from libsamplerate.
      - a longer file keeps its first clip_samples samples ("eval_crop": "head"); a shorter one
        is padded by "pad": "repeat" (tiled), "zero" (zeros) or "repeatpad" (whole repeats,
        then zeros).
      - log-mel: the window (periodic or symmetric Hann, Hamming, rect; win_length centred in
        n_fft) computed in float64 and rounded to float32, centre padding ("reflect" without
        repeating the edge, or "constant" zeros), frames multiplied by the window in float32,
        a float64 real FFT (clasp uses kissfft in float32: the only difference between the two
        chains, below 1e-4 after the towers on the test signals of tests/test_export_audio.c),
        power (2) or magnitude (1), torchaudio's melscale_fbanks (HTK or Slaney scale,
        optional Slaney norm) rounded to float32 and applied in float64, ln or 10 log10 of
        max(x, log_floor), then (x - norm_mean) / norm_std rounded to float32: the tower's
        input (n_mels, n_frames).
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

    def __init__(self, C, heads, mlp, eps, approx, ls=False):
        super().__init__()
        self.heads, self.approx, self.ls = heads, approx, ls
        self.ln1 = nn.LayerNorm(C, eps=eps)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(C, 3 * C)
        self.attn.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C, eps=eps)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(C, mlp)
        self.mlp.fc2 = nn.Linear(mlp, C)
        if ls:  # layer scale ("ls_init_value"): each branch times a per-channel gamma
            self.ls1, self.ls2 = nn.Module(), nn.Module()
            self.ls1.gamma = nn.Parameter(torch.zeros(C))
            self.ls2.gamma = nn.Parameter(torch.zeros(C))

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
        a = self.attn.proj(a)
        x = x + (a * self.ls1.gamma if self.ls else a)
        h = self.mlp.fc1(self.ln2(x))
        if self.approx == "quick":  # QuickGELU (OpenAI CLIP)
            m = self.mlp.fc2(h * torch.sigmoid(1.702 * h))
        else:
            m = self.mlp.fc2(F.gelu(h, approximate=self.approx))
        return x + (m * self.ls2.gamma if self.ls else m)


def act_approx(c):
    """The block activation of a tower config: "gelu" (exact), "gelu_tanh", "quick_gelu"."""
    act = c.get("act", "gelu")
    if act not in ("gelu", "gelu_tanh", "quick_gelu"):
        raise ValueError(f"unknown activation {act!r}")
    return {"gelu": "none", "gelu_tanh": "tanh", "quick_gelu": "quick"}[act]


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
        self.patch_embed = nn.Conv2d(c["channels"], W, P, stride=P, bias=c.get("patch_bias", True))
        if self.cls:
            self.cls_token = nn.Parameter(torch.zeros(W))
        self.pos_emb = nn.Parameter(torch.zeros(T, W))
        approx = act_approx(c)
        eps = c.get("ln_eps", 1e-5)
        # OpenCLIP: a LayerNorm after the patch + position embedding
        self.ln_pre = nn.LayerNorm(W, eps=eps) if c.get("ln_pre", False) else None
        self.blocks = nn.ModuleList(Block(W, c["heads"], c["mlp_width"], eps, approx,
                                          c.get("ls_init_value", 0) > 0)
                                    for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(W, eps=eps)
        self.proj = nn.Linear(W, D, bias=c.get("proj_bias", True))

    def forward(self, x):
        p = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.cls:
            p = torch.cat([self.cls_token.expand(p.shape[0], 1, -1), p], 1)
        h = p + self.pos_emb
        if self.ln_pre is not None:
            h = self.ln_pre(h)
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
        approx = act_approx(c)
        eps = c.get("ln_eps", 1e-5)
        self.blocks = nn.ModuleList(Block(W, c["heads"], c["mlp_width"], eps, approx,
                                          c.get("ls_init_value", 0) > 0)
                                    for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(W, eps=eps)
        self.proj = nn.Linear(W, D, bias=c.get("proj_bias", True))

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


def audio_n_frames(a):
    """Frames of one clip (clasp_audio_clip_frames): llround(clip_seconds * sample_rate)
    samples; centre: 1 + n // hop, else 1 + (n - n_fft) // hop."""
    n = clip_samples(a)
    if a.get("center", True):
        return 1 + n // a["hop_length"]
    return 1 + (n - a["n_fft"]) // a["hop_length"]


class AudioCNN(nn.Module):
    """audio_cnn: mel (B, M, T) -> unsqueeze(1) -> [conv -> ReLU -> maxpool] per block -> mean
    over (freq, time) -> fc layers (ReLU between) -> D."""

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


class AST(nn.Module):
    """Audio spectrogram transformer: Conv2d(1, W, (PF, PT), stride=(PF, PT)) patches of the
    mel in (freq, time) row-major order (trailing rows/frames that do not fill a patch are
    dropped), class token or mean pooling, pre-LN blocks, final LayerNorm, projection."""

    def __init__(self, c, D, n_frames):
        super().__init__()
        self.c = c
        W, PF, PT = c["width"], c["patch_freq"], c["patch_time"]
        self.cls = c.get("pool", "cls") == "cls"
        T = (c["n_mels"] // PF) * (n_frames // PT) + (1 if self.cls else 0)
        self.patch_embed = nn.Conv2d(1, W, (PF, PT), stride=(PF, PT))
        if self.cls:
            self.cls_token = nn.Parameter(torch.zeros(W))
        self.pos_emb = nn.Parameter(torch.zeros(T, W))
        approx = act_approx(c)
        eps = c.get("ln_eps", 1e-5)
        self.blocks = nn.ModuleList(Block(W, c["heads"], c["mlp_width"], eps, approx,
                                          c.get("ls_init_value", 0) > 0)
                                    for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(W, eps=eps)
        self.proj = nn.Linear(W, D)

    def forward(self, mel):
        p = self.patch_embed(mel.unsqueeze(1)).flatten(2).transpose(1, 2)  # B, N, W
        if self.cls:
            p = torch.cat([self.cls_token.expand(p.shape[0], 1, -1), p], 1)
        h = p + self.pos_emb
        for b in self.blocks:
            h = b(h, False, None)
        h = self.ln_f(h)
        return self.proj(h[:, 0] if self.cls else h.mean(1))


# ------------------------------------------------------------------------------ audio
def clip_samples(a):
    """llround(clip_seconds * sample_rate), as clasp_audio_clip_samples."""
    x = a["clip_seconds"] * a["sample_rate"]
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def load_wav(path_or_bytes, what=None):
    """PCM WAV -> (float32 array (frames, channels), sample rate), scaled as libsndfile's
    sf_readf_float. Raises ValueError for anything Python's `wave` cannot read."""
    import io
    import wave
    what = what or (path_or_bytes if isinstance(path_or_bytes, str) else "audio")
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) \
        else path_or_bytes
    try:
        with wave.open(src, "rb") as w:
            ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), \
                w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as e:
        raise ValueError(f"{what}: not a PCM WAV file Python's wave module reads ({e}); "
                         "clasp_torch.py decodes PCM WAV only (clasp itself reads FLAC, OGG, "
                         "Opus, MP3 and float WAV with libsndfile)") from None
    n = len(raw) // (width * ch)
    raw = raw[:n * width * ch]
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - np.float32(128)) / np.float32(128)
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) * np.float32(1.0 / 32768)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)  # int32 with 8 low zero bits
        x = v.astype(np.float32) * np.float32(2.0 ** -31)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) * np.float32(2.0 ** -31)
    else:
        raise ValueError(f"{what}: {8 * width}-bit PCM is not supported")
    return x.reshape(n, ch), rate


def audio_clip(x, rate, a, what="audio"):
    """(frames, channels) float32 at `rate` -> mono float32 clip of clip_samples(a) samples:
    the head of a long source, a short one padded per a["pad"]."""
    sr = a["sample_rate"]
    if x.shape[0] == 0:
        raise ValueError(f"{what}: audio: 0 frames")
    if rate != sr:
        raise ValueError(f"{what}: sample rate {rate} Hz but the model takes {sr} Hz; "
                         "clasp_torch.py does not resample (clasp uses libsamplerate, which "
                         "has no Python equivalent): convert the file to the model's rate")
    n = clip_samples(a)
    mono = (x.astype(np.float64).sum(axis=1) / x.shape[1]).astype(np.float32)[:n]
    if not np.all(np.isfinite(mono)):
        if a.get("nonfinite", "reject") != "zero":
            raise ValueError(f"{what}: audio: non-finite samples")
        mono = np.where(np.isfinite(mono), mono, np.float32(0))
    valid = mono.shape[0]
    if valid < a.get("min_seconds", 0.0) * sr:
        raise ValueError(f"{what}: audio shorter than min_seconds")
    if valid >= n:
        return mono
    pad = a.get("pad", "repeat")
    if pad == "zero":
        return np.concatenate([mono, np.zeros(n - valid, np.float32)])
    if pad == "repeat":
        return np.tile(mono, -(-n // valid))[:n]
    if pad == "repeatpad":
        whole = (n // valid) * valid
        return np.concatenate([np.tile(mono, n // valid), np.zeros(n - whole, np.float32)])
    raise ValueError(f"unknown pad mode {pad!r}")


def _hz_to_mel(f, scale):
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return min_log_mel + math.log(f / min_log_hz) / logstep if f >= min_log_hz else f / f_sp


def _mel_to_hz(m, scale):
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return min_log_hz * math.exp(logstep * (m - min_log_mel)) if m >= min_log_mel else f_sp * m


def mel_filterbank(n_freqs, fmin, fmax, n_mels, sr, scale, norm):
    """torchaudio.functional.melscale_fbanks transposed, as clasp_mel_filterbank: float32
    (n_mels, n_freqs), computed in float64."""
    m_min, m_max = _hz_to_mel(fmin, scale), _hz_to_mel(fmax, scale)
    f_pts = np.array([_mel_to_hz(m_min + (m_max - m_min) * i / (n_mels + 1), scale)
                      for i in range(n_mels + 2)])
    f = float(sr // 2) * np.arange(n_freqs, dtype=np.float64) / (n_freqs - 1)
    lo, mid, hi = f_pts[:-2, None], f_pts[1:-1, None], f_pts[2:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.minimum((f[None, :] - lo) / (mid - lo), (hi - f[None, :]) / (hi - mid))
    v = np.where(v > 0.0, v, 0.0)  # also NaN -> 0
    if norm == "slaney":
        v = v * (2.0 / (hi - lo))
    return v.astype(np.float32)


def _window(kind, n):
    i = np.arange(n, dtype=np.float64)
    if kind == "hann":
        return 0.5 - 0.5 * np.cos(2 * np.pi * i / n)
    if kind == "hann_symmetric":
        return 0.5 - 0.5 * np.cos(2 * np.pi * i / (n - 1)) if n > 1 else np.ones(1)
    if kind == "hamming":
        return 0.54 - 0.46 * np.cos(2 * np.pi * i / n)
    if kind == "rect":
        return np.ones(n)
    raise ValueError(f"unknown window {kind!r}")


def logmel(clip, a):
    """float32 clip -> float32 normalised log-mel (n_mels, n_frames), as clasp_melspec_compute."""
    n_fft, hop, wl = a["n_fft"], a["hop_length"], a.get("win_length", a["n_fft"])
    win = np.zeros(n_fft, np.float32)
    off = (n_fft - wl) // 2
    win[off:off + wl] = _window(a.get("window", "hann"), wl).astype(np.float32)
    x = clip.astype(np.float32)
    if a.get("center", True):
        p = n_fft // 2
        mode = "reflect" if a.get("pad_mode", "reflect") == "reflect" else "constant"
        if mode == "reflect" and x.shape[0] <= p:
            raise ValueError(f"{x.shape[0]} samples too short for reflect padding of {p}")
        x = np.pad(x, (p, p), mode=mode)
    n_frames = 1 + (x.shape[0] - n_fft) // hop
    idx = np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]
    frames = x[idx] * win[None, :]  # float32 products, as clasp
    spec = np.fft.rfft(frames.astype(np.float64), axis=1)
    pw = spec.real ** 2 + spec.imag ** 2
    if a.get("power", 2.0) != 2.0:
        pw = np.sqrt(pw)
    sr = a["sample_rate"]
    fmax = a.get("fmax", sr / 2.0)
    fmax = fmax if fmax > 0 else sr / 2.0
    fb = mel_filterbank(n_fft // 2 + 1, a.get("fmin", 0.0), fmax, a["n_mels"], sr,
                        a.get("mel_scale", "htk"), a.get("mel_norm", "none"))
    mel = pw @ fb.astype(np.float64).T  # (n_frames, n_mels)
    floor = a.get("log_floor", 1e-10)
    log = a.get("log", "ln")
    if log == "ln":
        mel = np.log(np.maximum(mel, floor))
    elif log == "db":
        mel = 10.0 * np.log10(np.maximum(mel, floor))
    mel = (mel - a.get("norm_mean", 0.0)) / a.get("norm_std", 1.0)
    return np.ascontiguousarray(mel.T.astype(np.float32))


def load_audio(path_or_bytes, a, what=None):
    """A WAV (path or bytes) -> the tower's input, float32 (n_mels, n_frames)."""
    what = what or (path_or_bytes if isinstance(path_or_bytes, str) else "audio")
    x, rate = load_wav(path_or_bytes, what)
    return logmel(audio_clip(x, rate, a, what), a)


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


class ClipTokenizer:
    """OpenAI CLIP's BPE as clasp's clip_bpe runs it (docs/clip_bpe.md): HTML unescaped twice,
    whitespace collapsed, lower-cased (no ftfy), OpenCLIP's pre-tokenisation pattern, the
    merges of the export's merges file, [49406] + ids + [49407] cut to the context keeping the
    end token, zero padding. Words longer than 1024 UTF-8 bytes are merged in 1024-byte
    pieces, as clasp does."""
    MAX_WORD = 1024

    def __init__(self, path, spec):
        import gzip
        merges_path = os.path.join(os.path.dirname(path), spec["path"])
        with open(merges_path, "rb") as f:
            raw = f.read()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
        merges = [tuple(m.split()) for m in text.split("\n")[1:49152 - 256 - 2 + 1]]
        bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        cs, n = bs[:], 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        self.byte_encoder = dict(zip(bs, [chr(c) for c in cs]))
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.BOS, self.EOS, self.PAD = spec.get("bos_id", 49406), spec.get("eos_id", 49407), 0

    def _bpe(self, token):
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, math.inf))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return word

    @staticmethod
    def _pieces(text):
        """OpenCLIP's pattern <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|
        [\\p{N}]|[^\\s\\p{L}\\p{N}]+ (IGNORECASE) over whitespace-cleaned, lower-cased text."""
        def letter(ch):
            return unicodedata.category(ch).startswith("L")

        def number(ch):
            return unicodedata.category(ch).startswith("N")

        def skip(ch):  # the regex module's IGNORECASE matches U+0345 nowhere
            return ch.isspace() or ch == "\u0345"
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if skip(c):
                i += 1
                continue
            k = next((len(sp) for sp in ("<|startoftext|>", "<|endoftext|>")
                      if text.startswith(sp, i)), 0)
            if not k and c == "'":
                nxt = text[i + 1:i + 3].replace("\u017f", "s").lower()
                k = 2 if nxt[:1] in ("s", "t", "m", "d") else 3 if nxt in ("re", "ve", "ll") else 0
            if not k:
                k = 1
                if letter(c):
                    while i + k < n and letter(text[i + k]):
                        k += 1
                elif not number(c):
                    while i + k < n and not (skip(text[i + k]) or letter(text[i + k]) or
                                             number(text[i + k])):
                        k += 1
            yield text[i:i + k]
            i += k

    def encode(self, text, ctx):
        import html
        import re
        text = html.unescape(html.unescape(text)).strip()
        text = re.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for tok in self._pieces(text):
            if tok in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.encoder[tok])
                continue
            pieces, cur, size = [], "", 0
            for ch in tok:
                k = len(ch.encode("utf-8"))
                if size + k > self.MAX_WORD:
                    pieces.append(cur)
                    cur, size = "", 0
                cur += ch
                size += k
            for piece in pieces + [cur]:
                enc = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
                ids.extend(self.encoder[t] for t in self._bpe(enc))
        ids = [self.BOS] + ids + [self.EOS]
        if len(ids) > ctx:
            ids = ids[:ctx]
            ids[-1] = self.EOS
        return ids + [self.PAD] * (ctx - len(ids))


def load_tokenizer(path):
    """tokenizer.json of an export: bytes, bpe or clip_bpe."""
    with open(path) as f:
        spec = json.load(f)
    return ClipTokenizer(path, spec) if spec.get("type") == "clip_bpe" else Tokenizer(path)


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
        elif resize == "longest":
            # ref: open_clip transform.py ResizeKeepRatio(longest=1) + CenterCropOrPad(fill=0),
            # as modalities/image.c clasp_image_longest_geometry
            ratio = max(h / size, w / size)
            nw = max(1, min(size, round(w / ratio)))
            nh = max(1, min(size, round(h / ratio)))
            canvas = Image.new(mode, (size, size), 0)
            canvas.paste(pim.resize((nw, nh), Image.BICUBIC), ((size - nw) // 2, (size - nh) // 2))
            pim = canvas
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
    """image, text and audio towers plus logit_scale (and logit_bias); names as in
    model.safetensors."""

    def __init__(self, config, tokenizer, preprocess):
        super().__init__()
        self.config, self.tokenizer, self.preprocess = config, tokenizer, preprocess
        D = config["embed_dim"]
        ic, tc, ac = config.get("image"), config.get("text"), config.get("audio")
        if ic:
            if ic["type"] == "cnn":
                self.image = CNN(ic, D)
            elif ic["type"] == "vit":
                self.image = ViT(ic, D)
            else:
                raise ValueError(f"unknown image tower type {ic['type']!r}")
        if tc:
            self.text = Text(tc, D)
        if ac:
            # the front-end: preprocess.json's "audio" (the export writes every field)
            self.audio_fe = dict(ac)
            self.audio_fe.update(preprocess.get("audio", {}))
            nf = audio_n_frames(self.audio_fe)
            if ac["type"] == "audio_cnn":
                self.audio = AudioCNN(ac, D)
            elif ac["type"] == "ast":
                self.audio = AST(dict(ac, n_mels=self.audio_fe["n_mels"]), D, nf)
            else:
                raise ValueError(f"unknown audio tower type {ac['type']!r}")
        self.logit_scale = nn.Parameter(torch.zeros(()))
        if "init_logit_bias" in config:
            self.logit_bias = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def encode_image(self, pixels):
        return F.normalize(self.image(pixels), dim=-1)

    @torch.no_grad()
    def encode_text(self, tokens):
        return F.normalize(self.text(tokens), dim=-1)

    @torch.no_grad()
    def encode_audio(self, mel):
        return F.normalize(self.audio(mel), dim=-1)

    def audio_tensor(self, inputs):
        """WAV paths or bytes -> (n, n_mels, n_frames) float32 log-mel."""
        return torch.from_numpy(np.stack([load_audio(x, self.audio_fe) for x in inputs]))

    def embed_audio_files(self, paths, batch=256):
        """WAV files (paths or bytes) at the model's sample rate -> (n, D) unit rows."""
        out = [self.encode_audio(self.audio_tensor(paths[i:i + batch]))
               for i in range(0, len(paths), batch)]
        return torch.cat(out)

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


EXPORT_FORMAT_VERSION = 1  # export/export.h CLASP_EXPORT_FORMAT_VERSION


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
    version = config.pop("format_version", 1)  # the export's format, absent before it existed
    if not isinstance(version, int) or version < 1 or version > EXPORT_FORMAT_VERSION:
        raise ValueError(f"{path}/config.json: format_version {version!r} is newer than this "
                         f"script reads ({EXPORT_FORMAT_VERSION})")
    with open(need("preprocess.json")) as f:
        preprocess = json.load(f)
    tok = load_tokenizer(need("tokenizer.json"))
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
    g.add_argument("--audio", nargs="+")
    g.add_argument("--logmel")
    ap.add_argument("-o", "--out")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    m = load_export(a.export)
    if a.tokens is not None:
        print(" ".join(map(str, m.text_tensor([a.tokens])[0].tolist())))
        return 0
    if a.logmel is not None:
        z = m.audio_tensor([a.logmel])[0]
    elif a.audio:
        z = m.embed_audio_files(a.audio)
    elif a.image:
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
    try:
        sys.exit(main())
    except (ValueError, KeyError, OSError) as e:  # bad input or export: one line, exit 1
        print(f"clasp_torch.py: {e}", file=sys.stderr)
        sys.exit(1)
