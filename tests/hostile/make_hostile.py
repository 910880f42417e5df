#!/usr/bin/python3
"""make_hostile.py CASE [SCALE]: writes one hostile WebDataset shard to stdout, streamed (never
held in memory), for the bounded-memory tests (tests/test_hostile.c, scripts/hostile.sh):

  big_member    one sample whose image member is SCALE MiB of zeros (default 2048)
  many_members  SCALE thousand tiny samples (default 1000: a million members)
  shared_key    SCALE thousand members of 100 KiB sharing one key (default 10: 10,000)
  huge_png      a PNG header declaring 65535 x 65535 pixels, with a caption
  long_wav      a WAV of SCALE minutes at 16 kHz mono 16-bit (default 120), with a caption
  long_caption  a caption of SCALE MiB (default 10) with a small image
Each case also ends with one ordinary sample (a 28x28 PNG, or one second of audio after the
WAV, and a caption), which must survive.
"""
import io
import struct
import sys
import tarfile
import zlib

OUT = sys.stdout.buffer


class Zeros(io.RawIOBase):
    """n zero bytes (or a repeated pattern), produced on demand."""

    def __init__(self, n, head=b"", fill=b"\0"):
        self.n, self.head, self.fill, self.pos = n, head, fill, 0

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.n - self.pos)
        if k <= 0:
            return 0
        chunk = bytearray(k)
        if self.fill != b"\0":
            reps = (k + len(self.fill)) // len(self.fill) + 1
            chunk[:] = (self.fill * reps)[self.pos % len(self.fill):][:k]
        if self.pos < len(self.head):
            h = self.head[self.pos:self.pos + k]
            chunk[:len(h)] = h
        b[:k] = chunk
        self.pos += k
        return k


def png(w, h, data=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = data if data is not None else b"".join(b"\0" + bytes((x * 9) % 256 for x in range(w)) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def add(t, name, data=None, size=None, stream=None):
    ti = tarfile.TarInfo(name)
    ti.mtime = 0
    if stream is not None:
        ti.size = size
        t.addfile(ti, io.BufferedReader(stream, 1 << 20))
    else:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    t.members.clear()  # tarfile keeps every TarInfo: a million would make this generator the hog


def main():
    case = sys.argv[1]
    scale = float(sys.argv[2]) if len(sys.argv) > 2 else None
    ok_png = png(28, 28)
    with tarfile.open(fileobj=OUT, mode="w|", format=tarfile.GNU_FORMAT) as t:
        if case == "big_member":
            mib = int(scale or 2048)
            add(t, "big.png", size=mib << 20, stream=Zeros(mib << 20, png(28, 28)))
            add(t, "big.txt", b"a photo of a bag")
        elif case == "many_members":
            n = int((scale or 1000) * 1000)
            for i in range(n // 2):
                add(t, "m%08d.txt" % i, b"x")
                add(t, "m%08d.cls" % i, b"1")
        elif case == "shared_key":
            n = int((scale or 10) * 1000)
            for i in range(n):
                add(t, "same.f%05d.txt" % i, size=100 << 10, stream=Zeros(100 << 10, fill=b"abc "))
        elif case == "huge_png":
            head = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" +
                    struct.pack(">IIBBBBB", 65535, 65535, 8, 2, 0, 0, 0))
            head += struct.pack(">I", zlib.crc32(head[12:29]))
            add(t, "huge.png", head + png(1, 1)[33:])
            add(t, "huge.txt", b"a photo of a bag")
        elif case == "long_wav":
            minutes = scale or 120
            n = int(minutes * 60 * 16000)
            hdr = b"RIFF" + struct.pack("<I", 36 + 2 * n) + b"WAVEfmt " + struct.pack(
                "<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", 2 * n)
            add(t, "long.wav", size=len(hdr) + 2 * n, stream=Zeros(len(hdr) + 2 * n, hdr, b"\x10\x00\xf0\xff"))
            add(t, "long.txt", b"a long recording")
        elif case == "long_caption":
            mib = scale or 10
            n = int(mib * (1 << 20))
            add(t, "cap.png", ok_png)
            add(t, "cap.txt", size=n, stream=Zeros(n, fill=b"a photo of a bag "))
        else:
            sys.exit("make_hostile.py: unknown case " + case)
        if case == "long_wav":  # the ordinary sample after it: one second of audio
            hdr = b"RIFF" + struct.pack("<I", 36 + 32000) + b"WAVEfmt " + struct.pack(
                "<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", 32000)
            add(t, "zz_ok.wav", hdr + b"\x10\x00\xf0\xff" * 8000)
        else:
            add(t, "zz_ok.png", ok_png)
        add(t, "zz_ok.txt", b"a photo of a shirt")


if __name__ == "__main__":
    main()
