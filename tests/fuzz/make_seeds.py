#!/usr/bin/python3
"""make_seeds.py: writes the seed corpora of the libFuzzer targets (tests/fuzz/corpus/NAME/).

Run with Debian's python (PIL, numpy) from the repository root:
    /usr/bin/python3 tests/fuzz/make_seeds.py
Optional tools: cjpeg (libjpeg-turbo-progs) for restart-marker and arithmetic-coded JPEGs.
The seeds are committed; rerunning rewrites them (byte-identical: fixed content, no dates).
"""
import ctypes
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pattern(w, h, c):
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 13) % 256,
              255 - (x * 7 % 256)]
    a = np.stack(planes[:c], axis=-1).astype(np.uint8)
    return a[..., 0] if c == 1 else a


# ---- PNG by hand: every colour type, bit depths 1..16, Adam7 interlacing ------------------
def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png_rows(samples, depth):
    """samples: (h, w*channels) ints -> filter-0 scanlines"""
    out = b""
    for row in samples:
        if depth == 16:
            out += b"\0" + b"".join(struct.pack(">H", int(v)) for v in row)
        elif depth == 8:
            out += b"\0" + bytes(int(v) for v in row)
        else:
            bits = "".join(format(int(v), "0%db" % depth) for v in row)
            bits += "0" * (-len(bits) % 8)
            out += b"\0" + bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    return out


def png(w, h, color, depth, interlace=0, palette=None, trns=None):
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    maxv = (1 << depth) - 1
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 37 + y * 11 + k * 50) % (maxv + 1) for k in range(ch)], axis=-1)
    if color == 3:
        img = img % len(palette)
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = img[y0::dy, x0::dx]
            if sub.size:
                raw += png_rows(sub.reshape(sub.shape[0], -1), depth)
    else:
        raw = png_rows(img.reshape(h, -1), depth)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color,
                                                                  0, 0, interlace))
    if palette:
        out += png_chunk(b"PLTE", b"".join(bytes(p) for p in palette))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"tEXt", b"Comment\0clasp fuzz seed")
    out += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    return out


def pil_bytes(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def images():
    pal = [(i * 60 % 256, 255 - i * 40 % 256, i * 90 % 256) for i in range(6)]
    put("image", "gray8.png", png(28, 28, 0, 8))  # what the fmnist builder writes
    put("image", "gray1.png", png(9, 5, 0, 1))
    put("image", "gray4_interlaced.png", png(11, 9, 0, 4, 1))
    put("image", "gray16.png", png(7, 6, 0, 16))
    put("image", "rgb16_interlaced.png", png(10, 10, 2, 16, 1))
    put("image", "rgb8_interlaced.png", png(13, 7, 2, 8, 1))
    put("image", "palette2_trns.png", png(8, 8, 3, 2, 0, pal[:4], b"\x00\x80"))
    put("image", "palette8.png", png(12, 5, 3, 8, 0, pal))
    put("image", "gray_alpha8.png", png(6, 6, 4, 8))
    put("image", "rgba8.png", png(9, 9, 6, 8))  # emoji PNGs are RGBA
    put("image", "rgba16_interlaced.png", png(5, 5, 6, 16, 1))
    rgb = Image.fromarray(pattern(24, 16, 3), "RGB")
    gray = Image.fromarray(pattern(24, 16, 1), "L")
    put("image", "baseline.jpg", pil_bytes(rgb, "JPEG", quality=80))
    put("image", "baseline444.jpg", pil_bytes(rgb, "JPEG", quality=90, subsampling=0))
    put("image", "progressive.jpg", pil_bytes(rgb, "JPEG", quality=75, progressive=True))
    put("image", "gray.jpg", pil_bytes(gray, "JPEG", quality=70))
    put("image", "gray_progressive.jpg", pil_bytes(gray, "JPEG", progressive=True))
    put("image", "cmyk.jpg", pil_bytes(rgb.convert("CMYK"), "JPEG"))
    put("image", "optimized.jpg", pil_bytes(rgb, "JPEG", optimize=True))
    if shutil.which("cjpeg"):
        ppm = pil_bytes(rgb, "PPM")
        for name, args in [("restart.jpg", ["-restart", "1B"]),
                           ("restart_rows.jpg", ["-restart", "1"]),
                           ("arithmetic.jpg", ["-arithmetic"]),
                           ("progressive_restart.jpg", ["-progressive", "-restart", "2B"])]:
            r = subprocess.run(["cjpeg"] + args, input=ppm, capture_output=True, check=True)
            put("image", name, r.stdout)
    else:
        print("make_seeds: no cjpeg: restart-marker and arithmetic JPEG seeds skipped",
              file=sys.stderr)
    put("image", "rgb.bmp", pil_bytes(rgb, "BMP"))
    put("image", "palette.bmp", pil_bytes(rgb.convert("P"), "BMP"))
    put("image", "anim.gif", pil_bytes(rgb.convert("P"), "GIF", save_all=True,
                                       append_images=[gray.convert("P")], duration=50))
    put("image", "gray.gif", pil_bytes(gray, "GIF"))
    put("image", "rgb.tga", pil_bytes(rgb, "TGA"))
    put("image", "rle.tga", pil_bytes(rgb, "TGA", compression="tga_rle"))
    put("image", "gray.pgm", pil_bytes(gray, "PPM"))
    put("image", "rgb.ppm", pil_bytes(rgb, "PPM"))
    put("image", "gray16.pgm", b"P5\n4 3\n65535\n" + bytes(range(24)))
    put("image", "ascii.pgm", b"P2\n3 2\n255\n0 128 255\n255 128 0\n")


# ---- audio: libsndfile through ctypes (WAV variants, FLAC, Ogg Vorbis, Opus, MP3) -----------
class SF_INFO(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                ("channels", ctypes.c_int), ("format", ctypes.c_int),
                ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


def sndfile_bytes(fmt, rate, channels, seconds=0.1):
    sf = ctypes.CDLL("libsndfile.so.1")
    sf.sf_open.restype = ctypes.c_void_p
    sf.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SF_INFO)]
    sf.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                   ctypes.c_int64]
    sf.sf_close.argtypes = [ctypes.c_void_p]
    path = "/tmp/clasp-seed-%d.snd" % os.getpid()
    info = SF_INFO(0, rate, channels, fmt, 0, 0)
    h = sf.sf_open(path.encode(), 0x20, ctypes.byref(info))  # SFM_WRITE
    if not h:
        return None
    n = int(rate * seconds)
    t = np.arange(n) / rate
    x = np.stack([0.5 * np.sin(2 * math.pi * (220 + 110 * c) * t) for c in range(channels)], 1)
    x = np.ascontiguousarray(x, dtype=np.float32)
    sf.sf_writef_float(h, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n)
    sf.sf_close(h)
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data


def audio():
    WAV, FLAC, OGG, MPEG = 0x010000, 0x170000, 0x200000, 0x230000
    PCM_S8, PCM_16, PCM_24, PCM_U8, FLOAT = 0x1, 0x2, 0x3, 0x5, 0x6
    VORBIS, OPUS, MP3 = 0x60, 0x64, 0x82
    for name, fmt, rate, ch in [("pcm16_16k.wav", WAV | PCM_16, 16000, 1),
                                ("pcm16_stereo_44k.wav", WAV | PCM_16, 44100, 2),
                                ("u8_8k.wav", WAV | PCM_U8, 8000, 1),
                                ("pcm24_48k.wav", WAV | PCM_24, 48000, 1),
                                ("float_22k.wav", WAV | FLOAT, 22050, 2),
                                ("pcm16.flac", FLAC | PCM_16, 16000, 1),
                                ("pcm24_stereo.flac", FLAC | PCM_24, 44100, 2),
                                ("vorbis.ogg", OGG | VORBIS, 16000, 1),
                                ("opus.opus", OGG | OPUS, 48000, 1),
                                ("mp3.mp3", MPEG | MP3, 16000, 1)]:
        data = sndfile_bytes(fmt, rate, ch)
        if data:
            put("audio", name, data)
        else:
            print("make_seeds: libsndfile cannot write %s here: skipped" % name,
                  file=sys.stderr)


# ---- text, tokenizer, safetensors, configs, state, shard specs, npy, tsv, tar ---------------
def texts():
    items = ["a photo of a t-shirt/top", "a photo of an ankle boot", "  Ａ ｐｈｏｔｏ　of ﬁsh  ",
             "caf\u00e9 cafe\u0301 \u00c5ngstr\u00f6m", "\u732b\u304c\u5bdd\u3066\u3044\u308b",
             "\U0001F600 grinning face \U0001F468\u200D\U0001F469\u200D\U0001F467",
             "tab\there\nnewline\r\nend", "Stra\u00dfe \u0130stanbul \u03a3\u03bf\u03c6\u03af\u03b1",
             "x" * 300, "emoji: \U0001F1EB\U0001F1F7 flag"]
    for i, t in enumerate(items):
        put("text", "t%02d.txt" % i, t)
    put("text", "nul_inside.txt", b"before\0after")
    put("text", "invalid_utf8.txt", b"ok \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf")
    put("text", "truncated.txt", b"end \xe2\x82")


def clip_bpe_texts():
    items = {"photo.txt": "a photo of a cat", "cased.txt": "It's \u039f\u0394\u039f\u03a3 \u0130stanbul Stra\u00dfe",
             "entities.txt": "&amp;lt;b&amp;gt; &#39;s &#x1F600; &notit; &#0; &#xD800; &#1114112",
             "special.txt": "<|startoftext|>x<|endoftext|> <|STARTOFTEXT|>",
             "cjk_emoji.txt": "\u6771\u4eac \U0001F431\U0001F469\u200D\U0001F467 \u2460\u00bd",
             "long.txt": "word " * 100, "long_word.txt": "x" * 1500,
             "odd.txt": "a\0b \x1c\x85 \u0345'\u017f \u00a0\u3000 end", "empty.txt": ""}
    for name, t in items.items():
        put("clip_bpe", name, t)
    put("clip_bpe", "invalid_utf8.txt", b"ok \xc3\x28 \xed\xa0\x80")


def tokenizers():
    put("tokenizer", "bytes.json", json.dumps({"type": "bytes"}))
    put("tokenizer", "bpe.json", json.dumps(
        {"type": "bpe", "version": 1, "vocab_size": 263, "bos_id": 256, "eos_id": 257,
         "pad_id": 258, "pre_split": "space",
         "merges": [[97, 32], [259, 112], [104, 111], [32, 111]]}))
    put("tokenizer", "bpe_normalizer.json", json.dumps(
        {"type": "bpe", "version": 1, "vocab_size": 260, "pre_split": "space",
         "normalizer": {"nfkc": True, "casefold": True}, "merges": [[116, 104]]}))


def safetensors():
    def st(tensors, meta=None):
        header, blob = {}, b""
        for name, arr in tensors:
            dt = {np.float32: "F32", np.float16: "F16", np.int64: "I64", np.uint8: "U8"}[
                arr.dtype.type]
            b = arr.tobytes()
            header[name] = {"dtype": dt, "shape": list(arr.shape),
                            "data_offsets": [len(blob), len(blob) + len(b)]}
            blob += b
        if meta:
            header["__metadata__"] = meta
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        return struct.pack("<Q", len(h)) + h + blob

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    put("safetensors", "f32.safetensors", st([("w", a), ("b", np.ones(4, np.float32))],
                                               {"format": "pt"}))
    put("safetensors", "mixed.safetensors", st([("h", np.ones((2, 2), np.float16)),
                                                 ("i", np.arange(3, dtype=np.int64)),
                                                 ("u", np.zeros(5, np.uint8)),
                                                 ("s", np.float32(3).reshape(()))]))
    put("safetensors", "empty.safetensors", st([]))


def configs():
    cfg_dir = os.path.join(ROOT, "..", "..", "configs")
    for f in sorted(os.listdir(cfg_dir)):
        if f.endswith(".json"):
            with open(os.path.join(cfg_dir, f), "rb") as fh:
                put("config", f, fh.read())


def openclip_archs():
    """OpenCLIP model configs (`clasp import openclip --arch-config`)."""
    for d in (os.path.join(ROOT, "..", "..", "configs", "openclip"),
              os.path.join(ROOT, "..", "reference", "openclip")):
        for f in sorted(os.listdir(d)):
            if f.endswith(".json"):
                with open(os.path.join(d, f), "rb") as fh:
                    put("openclip_arch", f, fh.read())


def state():
    pos = {"version": 1, "epoch": 1, "consumed": 512, "emitted": 500, "batches": 2,
           "end_pending": False}
    put("state", "one_rank.json", json.dumps(
        {"format_version": 1, "step": 10, "samples": 2560, "skipped_steps": 0, "adam_t": 10,
         "world": 1, "loader": pos, "resume_key": {"seed": 0, "batch": 256},
         "checksums": {"model.safetensors": "0123456789abcdef"}}))
    put("state", "two_sources.json", json.dumps(
        {"format_version": 1, "step": 3, "samples": 24, "skipped_steps": 1, "adam_t": 3,
         "world": 2, "loaders": [pos, dict(pos, consumed=7)],
         "sources": [{"loaders": [pos, pos]}, {"loaders": [pos, dict(pos, end_pending=True)]}]}))


def shardspecs():
    for i, s in enumerate(["data/shard-{000000..000009}.tar", "a.tar::b-{0..3}.tar::c.tar",
                           "pipe:cat data/x.tar", "-", "{a,b}-{1..3}.tar",
                           "s3/{00..99..7}/x-{a,b,c}.tar", "x-{9..0}.tar"]):
        put("shardspec", "s%02d.txt" % i, s)


def npys():
    def npy(arr):
        b = io.BytesIO()
        np.save(b, arr)
        return b.getvalue()

    put("npy", "f32_2d.npy", npy(np.arange(12, dtype=np.float32).reshape(3, 4)))
    put("npy", "f32_1row.npy", npy(np.ones((1, 8), np.float32)))
    put("npy", "f64.npy", npy(np.ones((2, 3), np.float64)))
    put("npy", "fortran.npy", npy(np.asfortranarray(np.ones((2, 3), np.float32))))
    put("npy", "big_endian.npy", npy(np.ones((2, 2), ">f4")))
    put("npy", "empty.npy", npy(np.zeros((0, 4), np.float32)))


def tsvs():
    # the first byte picks the format in fuzz_tsv.c (odd: csv)
    put("tsv", "table.tsv", b"\x00url\tcaption\na.png\ta photo of a bag\nb.png\tmissing file\n")
    put("tsv", "table.csv", b'\x01url,caption,extra\na.png,"a ""quoted"", caption",x\n'
                            b'a.png,"multi\nline",y\r\n/abs/a.png,abs,z\n')
    put("tsv", "bom.csv", b"\x01\xef\xbb\xbfcaption,url\nhello,a.png\n")


def tars():
    def tar(members):
        b = io.BytesIO()
        with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as t:
            for name, data in members:
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                ti.mtime = 0
                t.addfile(ti, io.BytesIO(data))
        return b.getvalue()

    img = png(28, 28, 0, 8)
    wav = sndfile_bytes(0x010002, 16000, 1) or b""
    put("tar", "fmnist.tar", tar([("000000.png", img), ("000000.txt", b"a photo of a bag"),
                                  ("000000.cls", b"8"), ("000001.png", img),
                                  ("000001.txt", b"a photo of a shirt"), ("000001.cls", b"6")]))
    put("tar", "audio.tar", tar([("a/000000.wav", wav), ("a/000000.txt", b"zero"),
                                 ("a/000000.json", b'{"captions": ["zero", "nought"]}')]))


def dicts():
    d = {
        "image": ["\\x89PNG\\x0d\\x0a\\x1a\\x0a", "IHDR", "IDAT", "PLTE", "tRNS", "IEND", "zTXt",
                  "\\xff\\xd8", "\\xff\\xc0", "\\xff\\xc2", "\\xff\\xc4", "\\xff\\xdb",
                  "\\xff\\xda", "\\xff\\xdd", "\\xff\\xd0", "\\xff\\xd9", "\\xff\\xe0", "JFIF",
                  "GIF89a", "GIF87a", "BM", "P5", "P6", "8BPS"],
        "audio": ["RIFF", "WAVE", "fmt ", "data", "LIST", "fLaC", "OggS", "OpusHead",
                  "\\x01vorbis", "ID3", "\\xff\\xfb", "RF64", "FORM", "AIFF"],
        "config": ["\"embed_dim\"", "\"image\"", "\"text\"", "\"audio\"", "\"tokenizer\"",
                   "\"type\"", "\"layers\"", "\"width\"", "\"heads\"", "\"size\"",
                   "\"channels\"", "\"mean\"", "\"std\"", "\"resize\"", "\"context\"",
                   "\"precision\"", "\"format_version\"", "\"init_logit_bias\"", "\"path\""],
        "state": ["\"loader\"", "\"loaders\"", "\"sources\"", "\"epoch\"", "\"consumed\"",
                  "\"emitted\"", "\"batches\"", "\"end_pending\"", "\"step\"", "\"world\"",
                  "\"format_version\"", "\"version\""],
        "shardspec": ["{", "}", "..", ",", "::", "pipe:", "-", "000000"],
    }
    for name, words in d.items():
        with open(os.path.join(ROOT, name + ".dict"), "w") as f:
            f.write("# libFuzzer dictionary for fuzz_%s (tests/fuzz/make_seeds.py)\n" % name)
            for w in words:
                f.write('"%s"\n' % w.replace('"', '\\"') if not w.startswith('"') else
                        '"\\%s\\""\n' % w[:-1])


if __name__ == "__main__":
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    images()
    audio()
    texts()
    clip_bpe_texts()
    tokenizers()
    safetensors()
    configs()
    openclip_archs()
    state()
    shardspecs()
    npys()
    tsvs()
    tars()
    dicts()
    n = sum(len(fs) for _, _, fs in os.walk(OUT))
    print("make_seeds: %d seeds under %s" % (n, OUT))
