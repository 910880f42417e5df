#!/usr/bin/python3
"""Reference for the clip_bpe tokenizer (modalities/clip_bpe.c) and its parity corpus.

Written from the description of OpenCLIP's SimpleTokenizer (src/open_clip/tokenizer.py):
bytes_to_unicode, basic_clean = ftfy.fix_text + html.unescape twice + strip, whitespace_clean,
lower(), the pre-tokenisation pattern (Python's `regex` module is not installed for
/usr/bin/python3, so the pattern is emulated: \p{L} / \p{N} from unicodedata categories; of
IGNORECASE only two effects remain after lower(): "'ſ" counts as "'s", and U+0345 (whose case
fold is a letter) matches no branch, so it is skipped like a space: checked against the regex
module over all code points), BPE over the merges file lines 1 .. 49152-256-2, vocab = bytes + "</w>" bytes +
merges + <|startoftext|> <|endoftext|>, and tokenize(): [sot] + ids + [eot] cut to the context
keeping eot last, zero padding.

Differences from OpenCLIP, mirrored by clasp on purpose:
  * no ftfy (not available): fix_text's repairs (mojibake, curly quotes, NFC, ...) are not done;
  * invalid UTF-8 bytes are rejected (clasp's caption policy, modalities/text.c): "ERR";
  * a word longer than MAX_WORD bytes is merged in MAX_WORD-byte pieces (bounded cost).

    /usr/bin/python3 tests/reference/clip_bpe_ref.py            # rebuild corpus + ids
    /usr/bin/python3 tests/reference/clip_bpe_ref.py --bench     # strings/s of encode

Reads the merges file from ../shared/data/openclip and the emojibase-data package from the
emoji builder's cache (~/.cache/clasp/npm). Output: tests/reference/clip_bpe/corpus.tsv.gz, one line per string: hex of its bytes, a tab,
then the 77 ids without the trailing zero padding (or ERR).
"""
import gzip
import html
import html.entities
import io
import json
import os
import random
import sys
import tarfile
import time

import re
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MERGES = os.path.join(ROOT, "..", "shared", "data", "openclip", "bpe_simple_vocab_16e6.txt.gz")
EMOJIBASE = os.path.expanduser("~/.cache/clasp/npm/emojibase-data-17.0.0.tgz")
OUT = os.path.join(HERE, "clip_bpe", "corpus.tsv.gz")
CONTEXT = 77
MAX_WORD = 1024


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class Tokenizer:
    def __init__(self, path=MERGES):
        self.byte_encoder = bytes_to_unicode()
        lines = gzip.open(path).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.sot = self.encoder["<|startoftext|>"]
        self.eot = self.encoder["<|endoftext|>"]

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return " ".join(word)

    def pieces(self, tok):
        """tok cut into pieces of at most MAX_WORD UTF-8 bytes (whole characters)."""
        out, cur, n = [], "", 0
        for ch in tok:
            k = len(ch.encode("utf-8"))
            if n + k > MAX_WORD:
                out.append(cur)
                cur, n = "", 0
            cur += ch
            n += k
        out.append(cur)
        return out

    def encode(self, text):
        text = html.unescape(html.unescape(text)).strip()  # basic_clean without ftfy
        text = re.sub(r"\s+", " ", text).strip()  # whitespace_clean (Python re's \s)
        text = text.lower()
        ids = []
        for tok in findall(text):
            if tok in self.cache:
                ids.append(self.encoder[tok])
                continue
            for piece in self.pieces(tok):
                enc = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
                ids.extend(self.encoder[t] for t in self.bpe(enc).split(" "))
        return ids

    def tokenize(self, data):
        """data: bytes. The CONTEXT ids without trailing padding, or None (invalid UTF-8)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        ids = [self.sot] + self.encode(text) + [self.eot]
        if len(ids) > CONTEXT:
            ids = ids[:CONTEXT]
            ids[-1] = self.eot
        return ids


def is_letter(c):
    return unicodedata.category(c).startswith("L")


def is_number(c):
    return unicodedata.category(c).startswith("N")


def findall(text):
    """re.findall of OpenCLIP's pattern <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|
    [\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+ (IGNORECASE) on whitespace-cleaned text, whose only
    whitespace is " "."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace() or c == "\u0345":  # regex's IGNORECASE matches U+0345 nowhere
            i += 1
            continue
        k = 0
        for sp in ("<|startoftext|>", "<|endoftext|>"):
            if text.startswith(sp, i):
                k = len(sp)
                break
        if not k and c == "'":
            nxt = text[i + 1:i + 3].replace("\u017f", "s").lower()
            if nxt[:1] in ("s", "t", "m", "d"):
                k = 2
            elif nxt in ("re", "ve", "ll"):
                k = 3
        if not k:
            if is_letter(c):
                k = 1
                while i + k < n and is_letter(text[i + k]):
                    k += 1
            elif is_number(c):
                k = 1
            else:
                k = 1
                while i + k < n and not (text[i + k].isspace() or text[i + k] == "\u0345" or
                                         is_letter(text[i + k]) or is_number(text[i + k])):
                    k += 1
        out.append(text[i:i + k])
        i += k
    return out


def fmnist_captions():
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot"]
    tmpls = ["a photo of a {}", "a picture of a {}", "a {} on a white background",
             "a product photo of a {}", "an image showing a {}", "a low resolution photo of a {}",
             "a grayscale photo of a {}", "a {}"]
    return [t.replace("{}", n) for t in tmpls for n in names]


def emoji_labels(per_locale):
    """The "label" of every emojibase entry in every locale (datasets/emoji.c reads them), a
    deterministic sample of per_locale labels per locale (all of "en")."""
    if not os.path.exists(EMOJIBASE):
        sys.exit("clip_bpe_ref: %s is missing: the emoji builder's npm cache (clasp shards build "
                 "emoji fetches it)" % EMOJIBASE)
    out = []
    with tarfile.open(EMOJIBASE) as tf:
        for m in sorted(tf.getmembers(), key=lambda m: m.name):
            parts = m.name.split("/")
            if len(parts) != 3 or parts[2] != "data.json":
                continue
            data = json.load(tf.extractfile(m))
            labels = sorted({e["label"] for e in data if isinstance(e.get("label"), str)})
            if parts[1] != "en":
                labels = random.Random(parts[1]).sample(labels, min(per_locale, len(labels)))
            out += labels
    return out


def synthetic(rng):
    s = []
    s += ["", " ", "   ", "\t\n", "\u3000", "\u00a0 \u2003", "\x1c\x1d", "\x00", "a\x00b"]
    s += ["Hello, World!", "it's", "IT'S", "we're here", "they've", "I'm", "you'll", "he'd",
          "'s", "''s", "don\u2019t", "rock'n'roll", "o'clock", "L'été", "ſ'ſ", "'ſ"]
    s += ["<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "<|STARTOFTEXT|>",
          "x <|startoftext|><|endoftext|> y", "!<|endoftext|>", "<|endoftext"]
    s += ["12345", "3.14159", "1,000,000", "٣٤٥", "Ⅻ", "½ ¾", "²³", "①②", "2024-12-04"]
    s += ["Café", "naïve", "résumé", "Ångström", "Straße", "İstanbul", "ΟΔΥΣΣΕΥΣ", "ὈΔΥΣΣΕΎΣ",
          "Σ", "ΑΣ.", "ΑΣ'Α", "Dž", "ǅungla", "e\u0301", "ﬁne", "Ｆｕｌｌ"]
    s += ["東京タワーの写真", "一只猫在桌子上", "고양이 사진", "ภาพถ่ายของแมว", "фото кошки",
          "صورة قطة", "תמונה של חתול", "बिल्ली की तस्वीर", "🐱🐶", "👩‍👩‍👧‍👦", "🇫🇷 flag",
          "❤️ love", "😀😃😄😁", "a🐱b"]
    s += ["&amp;", "&lt;b&gt;", "&amp;amp;", "&amp;lt;", "&copy 2024", "&notit;", "&notin;",
          "&#39;s", "&#x27;re", "&#0;", "&#128;", "&#x80;", "&#xD800;", "&#1114112;",
          "&#x110000;", "&#65535;", "&#1;", "&#", "&#x;", "&;", "& amp;", "&AMP;", "&Amp;",
          "&nGt;", "&hellip;", "&nbsp;x", "&NotNestedGreaterGreater;", "&acE;", "&amplt;",
          "&ampamp;", "&" + "a" * 40 + ";", "&ltx", "&#x1F600;", "&#128512;", "&#9;a",
          "&#32;&#32;x&#10;y"]
    s += ["!!!", "...", "?!", "(a)", "[x]", "{}", "--", "@user", "#tag", "$5", "%", "a_b",
          "a-b", "a/b", "~~~", "^_^", ":-)", "\\n", "\"quoted\"", "a, b; c: d"]
    # long strings (truncation) and long words
    s += ["a photo of a cat " * 40, "x" * 1000, "ab" * 500, "é" * 400, "1" * 300,
          "🐱" * 100, " ".join(["word"] * 200), "a" * 1500, "abc" * 600]
    # invalid UTF-8 (as bytes below)
    pool = [chr(c) for c in list(range(32, 127)) + [0xe9, 0xdf, 0x130, 0x3a3, 0x3c3, 0x4e2d,
                                                     0x1f600, 0x200d, 0x301, 0xa0, 0x2028,
                                                     0x85, 0x17f, 0x212a, 0x345, 0x10a0]]
    for _ in range(2500):
        n = rng.randint(1, 40)
        s.append("".join(rng.choice(pool) for _ in range(n)))
    ents = ["&amp;", "&lt;", "&#39;", "&eacute;", "&#x263A;", "&", "'s", " ", "A", "ß", "Σ"]
    for _ in range(500):
        s.append("".join(rng.choice(ents) for _ in range(rng.randint(1, 10))))
    return s


def invalid_utf8():
    return [b"\xff", b"abc\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xc0\xaf", b"ok \xe2\x82", b"\x80abc"]


def corpus():
    rng = random.Random(18)
    texts = fmnist_captions() + emoji_labels(250) + synthetic(rng)
    return [t.encode("utf-8", "surrogatepass") for t in texts] + invalid_utf8()


def main():
    tok = Tokenizer()
    data = corpus()
    if "--bench" in sys.argv:
        texts = [d for d in data if tok.tokenize(d) is not None]
        t0 = time.perf_counter()
        for d in texts:
            tok.cache = {k: v for k, v in tok.cache.items() if k.startswith("<|")}
            tok.tokenize(d)
        dt = time.perf_counter() - t0
        print("python reference: %d strings in %.3f s = %.0f strings/s" % (len(texts), dt,
                                                                              len(texts) / dt))
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    buf = io.StringIO()
    for d in data:
        ids = tok.tokenize(d)
        buf.write(d.hex() + "\t" + ("ERR" if ids is None else " ".join(map(str, ids))) + "\n")
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write(buf.getvalue().encode())
    print("wrote %s: %d strings" % (OUT, len(data)))


if __name__ == "__main__":
    main()
