"""Tests of the Python binding (numpy + ctypes over libclasp.so).

    CLASP_TEST_DATA=DIR CLASP_BIN=clasp python3 -m unittest discover -s python/tests

DIR holds what tests/install/make_inputs makes (exports image/ and audio/, inputs in/);
CLASP_BIN is the `clasp` whose `clasp embed` the embeddings must equal (to 1e-6). Run by
scripts/install-test.sh against an installed clasp; `BadInput` alone is also run there with an
AddressSanitizer build of libclasp.so (LD_PRELOAD of libasan)."""
import os
import shutil
import subprocess
import tempfile
import threading
import unittest
import wave

import numpy as np

import clasp

DATA = os.environ.get("CLASP_TEST_DATA", "")
CLASP_BIN = os.environ.get("CLASP_BIN", "clasp")
IMG, AUD, IN = (os.path.join(DATA, d) for d in ("image", "audio", "in"))
IMAGES = ["a.pgm", "b.ppm", "c.png"]
AUDIO = ["a.wav", "b.wav"]


def read_pnm(path):
    """(H, W) or (H, W, 3) uint8 of a binary PGM/PPM (header: magic, width, height, 255)."""
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1
    w, h = int(fields[1]), int(fields[2])
    c = 1 if fields[0] == b"P5" else 3
    px = np.frombuffer(data, dtype=np.uint8, count=w * h * c, offset=pos)
    return px.reshape(h, w) if c == 1 else px.reshape(h, w, c)


def read_wav16(path):
    """Mono 16-bit WAV as float32 (x / 32768, as libsndfile reads it) and its rate."""
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return x.astype(np.float32) / np.float32(32768), w.getframerate()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def clasp_embed(model, *args):
    """`clasp embed --model MODEL ARGS -o OUT.npy` as an array."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "e.npy")
        subprocess.run([CLASP_BIN, "embed", "--model", model, *args, "-o", out], check=True,
                       stdout=subprocess.DEVNULL)
        return np.load(out)


def needs_data(cls):
    return unittest.skipUnless(DATA, "CLASP_TEST_DATA is not set")(cls)


@needs_data
class Embed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.img = clasp.Model(IMG)
        cls.aud = clasp.Model(AUD)
        paths = [os.path.join(IN, f) for f in IMAGES]
        cls.want_img = clasp_embed(IMG, "--image", *paths)
        cls.want_txt = clasp_embed(IMG, "--text", os.path.join(IN, "texts.txt"))
        cls.want_aud = clasp_embed(AUD, "--audio", *[os.path.join(IN, f) for f in AUDIO])

    @classmethod
    def tearDownClass(cls):
        cls.img.close()
        cls.aud.close()

    def close_to(self, got, want):
        self.assertEqual(got.shape, want.shape)
        self.assertEqual(got.dtype, np.float32)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

    def test_images_as_paths_bytes_and_pixels(self):
        paths = [os.path.join(IN, f) for f in IMAGES]
        self.close_to(self.img.embed_images(paths), self.want_img)
        blobs = [read_bytes(p) for p in paths]
        self.close_to(self.img.embed_images(blobs), self.want_img)
        pixels = [read_pnm(paths[0]), read_pnm(paths[1])]
        self.close_to(self.img.embed_images(pixels), self.want_img[:2])
        # mixed kinds keep their order; one array is one image
        self.close_to(self.img.embed_images([paths[2], pixels[1], blobs[0]]),
                      self.want_img[[2, 1, 0]])
        self.close_to(self.img.embed_images(pixels[0]), self.want_img[:1])
        self.close_to(self.img.embed_images(np.stack([pixels[0]] * 2)[..., None]),
                      self.want_img[[0, 0]])

    def test_texts(self):
        with open(os.path.join(IN, "texts.txt"), encoding="utf-8") as f:
            texts = f.read().splitlines()
        self.close_to(self.img.embed_texts(texts), self.want_txt)
        self.close_to(self.img.embed_texts(texts[1]), self.want_txt[1:2])

    def test_audio_as_paths_bytes_and_samples(self):
        paths = [os.path.join(IN, f) for f in AUDIO]
        self.close_to(self.aud.embed_audio(paths), self.want_aud)
        self.close_to(self.aud.embed_audio([read_bytes(p) for p in paths]), self.want_aud)
        for i, p in enumerate(paths):
            x, rate = read_wav16(p)
            self.close_to(self.aud.embed_audio(x, rate), self.want_aud[i:i + 1])
            self.close_to(self.aud.embed_audio([x.astype(np.float64)], rate=rate),
                          self.want_aud[i:i + 1])

    def test_info_similarity_precision(self):
        info = self.img.info
        self.assertEqual(info["dim"], self.want_img.shape[1])
        self.assertEqual(info["modalities"], ["image", "text"])
        self.assertEqual(self.aud.info["modalities"], ["text", "audio"])
        self.assertEqual(info["library_version"], clasp.__version__)
        self.assertEqual(clasp.library_version(), clasp.__version__)
        self.assertIn("fp32", info["precisions"])
        self.assertEqual(info["format_versions"]["export"], 1)
        s = self.img.similarity(self.want_img, self.want_txt)
        self.assertEqual(s.shape, (3, 3))
        np.testing.assert_allclose(s, self.want_img @ self.want_txt.T, atol=1e-6)
        np.testing.assert_allclose(self.img.similarity(self.want_img[0], self.want_img[0]),
                                   [[1.0]], atol=1e-5)
        with self.assertRaisesRegex(clasp.Error, "fp16"):
            self.img.set_precision("fp16")

    def test_threads_embed_concurrently(self):
        """ctypes releases the GIL in each call: two threads on one Model (its lock takes turns)
        and two threads on two Models (in parallel) all get the single-thread results."""
        other = clasp.Model(IMG)
        paths = [os.path.join(IN, f) for f in IMAGES]
        results, errors = [], []

        def work(m):
            try:
                for _ in range(10):
                    results.append(m.embed_images(paths))
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        threads = [threading.Thread(target=work, args=(m,)) for m in (self.img, self.img, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        other.close()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 30)
        for r in results:
            self.close_to(r, self.want_img)


@needs_data
class BadInput(unittest.TestCase):
    """Each bad input raises clasp.Error with clasp's message; none crashes (also under ASan)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def copy(self, src):
        dst = os.path.join(self.tmp, "e")
        shutil.copytree(src, dst)
        return dst

    def test_not_an_export(self):
        with self.assertRaisesRegex(clasp.Error, self.tmp):
            clasp.Model(self.tmp)
        with self.assertRaises(clasp.Error):
            clasp.Model(os.path.join(self.tmp, "missing"))

    def test_truncated_model(self):
        d = self.copy(IMG)
        p = os.path.join(d, "model.safetensors")
        data = read_bytes(p)
        with open(p, "wb") as f:
            f.write(data[:len(data) // 2])
        with self.assertRaisesRegex(clasp.Error, "model.safetensors"):
            clasp.Model(d)

    def test_foreign_tokenizer(self):
        d = self.copy(IMG)
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            f.write('{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, '
                    '"merges": []}}')
        with self.assertRaisesRegex(clasp.Error, "tokenizer.json"):
            clasp.Model(d)

    def test_empty_image_nan_audio_and_closed(self):
        with clasp.Model(IMG) as m:
            with self.assertRaisesRegex(clasp.Error, "image 0.*empty"):
                m.embed_images([b""])
            empty = os.path.join(self.tmp, "empty.png")
            open(empty, "wb").close()
            with self.assertRaisesRegex(clasp.Error, "empty.png"):
                m.embed_images([empty])
            with self.assertRaisesRegex(clasp.Error, "image 0"):
                m.embed_images([np.zeros((0, 5, 3), np.uint8)])
            with self.assertRaisesRegex(clasp.Error, "audio tower"):
                m.embed_audio([np.zeros(100, np.float32)], rate=8000)
            with self.assertRaises(TypeError):
                m.embed_images([np.zeros((4, 4), np.float32)])
        with self.assertRaisesRegex(clasp.Error, "closed"):
            m.embed_texts(["after close"])
        with self.assertRaisesRegex(clasp.Error, "closed"):
            m.info  # noqa: B018
        m.close()  # a second close is harmless
        with clasp.Model(AUD) as a:
            x = np.zeros(8000, np.float32)
            x[100] = np.nan
            with self.assertRaisesRegex(clasp.Error, "audio 0.*non-finite"):
                a.embed_audio(x, rate=8000)
            with self.assertRaisesRegex(clasp.Error, "sample rate 0"):
                a.embed_audio(np.zeros(10, np.float32), rate=0)
            with self.assertRaisesRegex(clasp.Error, "audio 0"):
                a.embed_audio(np.zeros(0, np.float32), rate=8000)


if __name__ == "__main__":
    unittest.main()
