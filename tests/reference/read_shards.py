#!/usr/bin/python3
"""Independent check of shards written by `clasp shards build`, with Python's tarfile.

    /usr/bin/python3 read_shards.py DIR [--fields cls,png,txt] [--fmnist [IDX_DIR]]
                                        [--emoji] [--espeak]

Reads DIR/manifest.json, opens every shard it lists with tarfile, groups members with
WebDataset's key rule (key = path up to the first dot of the last path component, extension =
the rest, lower-cased) and checks:
  - file size and per-shard sample counts equal the manifest; totals add up;
  - members of a sample are adjacent (a key never comes back) and in sorted extension order;
  - every member is a regular file with mtime 0, uid/gid 0, mode 0644;
  - every sample has exactly the expected fields (--fields, default: manifest "fields");
  - --fmnist: keys are SPLIT_%06d in index order, .cls is a label 0..9 equal to the IDX label,
    .txt is the caption the reference (shared/bench/ref_clip_fmnist.py) gives image i, .png
    decodes (PIL, when installed) to the 28x28 gray IDX image, .json (if present) holds all 8
    captions.
  - --emoji: keys are VENDOR/UNIFIED with VENDOR google or twitter, .json names the same
    vendor and code points, .png is a PNG (RGBA 64x64 when PIL is installed), .txt equals the
    json's English label; and no json "split_id" occurs in two splits (no emoji leaks);
  - --espeak: keys are SOURCEKEY/VOICE_sSPEED_pPITCH matching the .json, .wav is a 16-bit mono
    22050 Hz WAV with frames (Python's wave module); no json "split_id" occurs in two splits
    (all voices of a transcript in one split).
Prints one line per problem and "read_shards: N samples ok" at the end; exit 1 on any problem,
2 for bad arguments or a manifest "format_version" newer than this script reads.
"""
import gzip
import io
import json
import os
import sys
import tarfile

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TEMPLATES = ["a photo of a {}", "a picture of a {}", "a {} on a white background",
             "a product photo of a {}", "an image showing a {}",
             "a low resolution photo of a {}", "a grayscale photo of a {}", "a {}"]
SEEDS = {"train": 0x5EED0000, "test": 0x7E570000}
IDX = {"train": "train", "test": "t10k"}
MASK64 = (1 << 64) - 1
# The manifest layout this script reads (datasets/manifest.h CLASP_MANIFEST_FORMAT_VERSION);
# a manifest without "format_version" is version 1.
MANIFEST_FORMAT_VERSION = 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def caption(cls, tmpl):
    return TEMPLATES[tmpl].format(CLASS_NAMES[cls].lower())


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * d:8 + 4 * d], "big") for d in range(ndim)]
    return data[4 + 4 * ndim:], dims


def split_name(name):
    """WebDataset: key = up to the first dot of the last component; ext = rest, lower."""
    d, _, base = name.rpartition("/")
    if "." not in base:
        return None, None
    k, _, ext = base.partition(".")
    return (d + "/" + k if d else k), ext.lower()


def main(argv):
    args = argv[1:]
    if not args:
        print(__doc__)
        return 2
    root = args[0]
    fields = None
    fmnist_dir = None
    emoji = espeak = False
    i = 1
    while i < len(args):
        if args[i] == "--fields":
            fields = args[i + 1].split(",")
            i += 2
        elif args[i] == "--fmnist":
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                fmnist_dir = args[i + 1]
                i += 2
            else:
                fmnist_dir = "/usr/share/datasets/fashion-mnist"
                i += 1
        elif args[i] == "--emoji":
            emoji = True
            i += 1
        elif args[i] == "--espeak":
            espeak = True
            i += 1
        else:
            print("unknown argument", args[i])
            return 2
    problems = []

    def bad(msg):
        problems.append(msg)
        if len(problems) <= 50:
            print("problem:", msg)

    man_path = os.path.join(root, "manifest.json")
    with open(man_path, encoding="utf-8") as f:
        man = json.load(f)
    version = man.get("format_version", 1)
    if version > MANIFEST_FORMAT_VERSION:
        print(f"{man_path}: format_version {version} is newer than this script reads "
              f"({MANIFEST_FORMAT_VERSION})")
        return 2
    if fields is None:
        fields = man.get("fields")
    try:
        from PIL import Image
    except ImportError:
        Image = None

    total = 0
    split_of = {}  # json split_id -> split
    for split, sp in man["splits"].items():
        idx = None
        if fmnist_dir:
            img, di = load_idx(os.path.join(fmnist_dir, f"{IDX[split]}-images-idx3-ubyte.gz"))
            lab, _ = load_idx(os.path.join(fmnist_dir, f"{IDX[split]}-labels-idx1-ubyte.gz"))
            idx = (img, lab)
        n_split = 0
        for sh in sp["shards"]:
            path = os.path.join(root, sh["name"])
            if os.path.getsize(path) != sh["bytes"]:
                bad(f"{path}: size {os.path.getsize(path)} != manifest {sh['bytes']}")
            samples = []  # (key, {ext: bytes}, [ext order])
            seen = set()
            with tarfile.open(path, "r:") as tf:
                for m in tf:
                    if not m.isfile():
                        bad(f"{path}: {m.name}: not a regular file")
                        continue
                    if m.mtime != 0 or m.uid != 0 or m.gid != 0 or m.mode != 0o644:
                        bad(f"{path}: {m.name}: mtime {m.mtime} uid {m.uid} gid {m.gid} "
                            f"mode {oct(m.mode)}")
                    key, ext = split_name(m.name)
                    if key is None:
                        bad(f"{path}: {m.name}: no extension")
                        continue
                    data = tf.extractfile(m).read()
                    if samples and samples[-1][0] == key:
                        samples[-1][1][ext] = data
                        samples[-1][2].append(ext)
                    else:
                        if key in seen:
                            bad(f"{path}: key {key} members not adjacent")
                        seen.add(key)
                        samples.append((key, {ext: data}, [ext]))
            if len(samples) != sh["samples"]:
                bad(f"{path}: {len(samples)} samples, manifest says {sh['samples']}")
            for key, fd, order in samples:
                if order != sorted(order):
                    bad(f"{path}: {key}: extensions not sorted: {order}")
                if fields is not None and sorted(fd) != sorted(fields):
                    bad(f"{path}: {key}: fields {sorted(fd)} != expected {sorted(fields)}")
                if emoji or espeak:
                    j = json.loads(fd.get("json", b"{}").decode("utf-8"))
                    sid = j.get("split_id")
                    if split_of.setdefault(sid, split) != split:
                        bad(f"{path}: {key}: split_id {sid} in {split} and {split_of[sid]}")
                if emoji:
                    vendor, _, uni = key.partition("/")
                    if vendor not in ("google", "twitter") or j.get("vendor") != vendor \
                            or j.get("unified") != uni:
                        bad(f"{path}: {key}: vendor/unified differ from json {j}")
                    if fd.get("txt", b"").decode("utf-8") != j.get("labels", {}).get("en"):
                        bad(f"{path}: {key}: txt is not the English label")
                    png = fd.get("png", b"")
                    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                        bad(f"{path}: {key}: png has no PNG signature")
                    elif Image is not None and len(png) > 100:
                        im = Image.open(io.BytesIO(png))
                        if im.size != (64, 64):
                            bad(f"{path}: {key}: png size {im.size}")
                if espeak:
                    want = f"{j.get('source_key')}/{j.get('voice')}_s{j.get('speed')}" \
                           f"_p{j.get('pitch')}"
                    if key != want:
                        bad(f"{path}: {key}: json says {want}")
                    import wave
                    try:
                        with wave.open(io.BytesIO(fd.get("wav", b""))) as w:
                            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != \
                                    (22050, 1, 2) or w.getnframes() == 0:
                                bad(f"{path}: {key}: wav {w.getparams()}")
                    except (wave.Error, EOFError) as e:
                        bad(f"{path}: {key}: wav unreadable: {e}")
                if idx is not None:
                    want_key = f"{split}_{n_split:06d}"
                    if key != want_key:
                        bad(f"{path}: key {key}, expected {want_key}")
                    i_img = n_split
                    cls = idx[1][i_img]
                    try:
                        got_cls = int(fd.get("cls", b"-1").decode("ascii"))
                    except ValueError:
                        got_cls = -1
                    if got_cls != cls:
                        bad(f"{path}: {key}: cls {got_cls} != {cls}")
                    t = (splitmix64(SEEDS[split] + i_img) >> 32) % 8
                    want = caption(cls, t)
                    if fd.get("txt", b"").decode("utf-8") != want:
                        bad(f"{path}: {key}: txt {fd.get('txt')!r} != {want!r}")
                    if "json" in fd:
                        j = json.loads(fd["json"].decode("utf-8"))
                        if j.get("captions") != [caption(cls, k) for k in range(8)]:
                            bad(f"{path}: {key}: json captions differ")
                    png = fd.get("png", b"")
                    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                        bad(f"{path}: {key}: png has no PNG signature")
                    elif Image is not None:
                        im = Image.open(io.BytesIO(png))
                        want_px = idx[0][i_img * 784:(i_img + 1) * 784]
                        if im.size != (28, 28) or im.mode != "L" or im.tobytes() != want_px:
                            bad(f"{path}: {key}: png {im.size} {im.mode} differs from IDX")
                n_split += 1
        if n_split != sp["samples"]:
            bad(f"split {split}: {n_split} samples, manifest says {sp['samples']}")
        total += n_split
    if total != man["total"]["samples"]:
        bad(f"total {total} != manifest {man['total']['samples']}")
    if problems:
        print(f"read_shards: {len(problems)} problems")
        return 1
    print(f"read_shards: {total} samples ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
