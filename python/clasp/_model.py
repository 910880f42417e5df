"""clasp.Model: an opened export and its embedding calls."""
import ctypes
import os
import threading

import numpy as np

from ._lib import Error, c_float_p, check, library

_MODALITIES = ("image", "text", "audio")


def _as_list(items, single_ndims):
    """items as a list: one path, bytes object or array of single_ndims dimensions is a list
    of one; an array of more dimensions is a batch along its first axis."""
    if isinstance(items, (str, os.PathLike, bytes, bytearray, memoryview)):
        return [items]
    if isinstance(items, np.ndarray):
        return [items] if items.ndim in single_ndims else list(items)
    return list(items)


def _kind(x, what):
    if isinstance(x, (str, os.PathLike)):
        return "file"
    if isinstance(x, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(x, np.ndarray):
        return "array"
    raise TypeError(f"{what}: expected a path, encoded bytes or a numpy array, got "
                    f"{type(x).__name__}")


def _pointers(buffers):
    """(void *[n], size_t[n]) over bytes-like objects (kept alive by the caller)."""
    n = len(buffers)
    ptrs, sizes = (ctypes.c_void_p * n)(), (ctypes.c_size_t * n)()
    for i, b in enumerate(buffers):
        a = np.frombuffer(b, dtype=np.uint8) if len(b) else np.zeros(1, np.uint8)
        ptrs[i], sizes[i] = a.ctypes.data, len(b)
        buffers[i] = a  # keep the view alive with the list
    return ptrs, sizes


def _paths(paths):
    arr = (ctypes.c_char_p * len(paths))()
    for i, p in enumerate(paths):
        arr[i] = os.fsencode(p)
    return arr


class Model:
    """An export (or checkpoint or run folder) opened with libclasp.

    Model(path, threads=1, precision=None): `precision` "fp32" or "bf16" (default fp32).
    Every embed_* returns float32 (n, dim) with unit rows. Use as a context manager or call
    close(); a closed Model raises clasp.Error."""

    def __init__(self, path, threads=1, precision=None):
        self._lib = library()
        self._lock = threading.Lock()
        self._h = None
        h = self._lib.clasp_model_open(os.fsencode(path), int(threads))
        if not h:
            raise Error(self._lib.clasp_last_error().decode("utf-8", "replace"))
        self._h = ctypes.c_void_p(h)
        self.path = os.fspath(path)
        self.dim = self._lib.clasp_model_dim(self._h)
        self._precision = "fp32"
        if precision is not None:
            self.set_precision(precision)

    # ---- life cycle ---------------------------------------------------------------------
    def close(self):
        with self._lock:
            if self._h is not None:
                self._lib.clasp_model_close(self._h)
                self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()

    def _handle(self):
        if self._h is None:
            raise Error(f"{self.path}: the model is closed")
        return self._h

    def _out(self, n):
        return np.empty((n, self.dim), dtype=np.float32)

    # ---- queries ------------------------------------------------------------------------
    @property
    def info(self):
        """dim, modalities, precisions, library version, backend and format versions."""
        with self._lock:
            h = self._handle()
            lib = self._lib
            return {
                "path": self.path,
                "dim": self.dim,
                "modalities": [m for i, m in enumerate(_MODALITIES)
                               if lib.clasp_model_has_modality(h, i)],
                "trained_precision": lib.clasp_model_trained_precision(h).decode(),
                "precision": self._precision,
                "library_version": lib.clasp_version().decode(),
                "backend": lib.clasp_backend().decode(),
                "precisions": lib.clasp_precisions().decode().split(","),
                "format_versions": {f: lib.clasp_format_version(f.encode())
                                    for f in ("export", "checkpoint", "run")},
            }

    def set_precision(self, precision):
        """"fp32" or "bf16" for every later embedding."""
        with self._lock:
            check(self._lib.clasp_model_set_precision(self._handle(), precision.encode()))
            self._precision = precision

    # ---- embedding ----------------------------------------------------------------------
    def _run(self, fn, *args):
        with self._lock:
            check(fn(self._handle(), *args))

    def _by_kind(self, items, what, embed):
        """Embeds items grouped by kind (file, bytes, array) into rows in the given order."""
        out = self._out(len(items))
        groups = {}
        for i, x in enumerate(items):
            groups.setdefault(_kind(x, f"{what} {i}"), []).append(i)
        for kind, idx in groups.items():
            rows = self._out(len(idx))
            embed(kind, [items[i] for i in idx], rows)
            out[idx] = rows
        return out

    def embed_images(self, images):
        """Images as file paths, encoded bytes (PNG, JPEG, ...) or uint8 arrays (H, W) or
        (H, W, C) with C 1, 3 or 4 (a 4-D uint8 array is a batch). Returns (n, dim)."""
        items = _as_list(images, (2, 3))

        def embed(kind, xs, out):
            n, o = len(xs), out.ctypes.data_as(c_float_p)
            if kind == "file":
                self._run(self._lib.clasp_model_embed_image_files, _paths(xs), n, o)
            elif kind == "bytes":
                ptrs, sizes = _pointers(list(xs))
                self._run(self._lib.clasp_model_embed_images, ptrs, sizes, n, o)
            else:
                arrs, shape = [], (ctypes.c_int * (3 * n))()
                for i, a in enumerate(xs):
                    if a.dtype != np.uint8 or a.ndim not in (2, 3):
                        raise TypeError(f"image {i}: want uint8 (H, W) or (H, W, C), got "
                                        f"{a.dtype} {a.shape}")
                    a = np.ascontiguousarray(a if a.ndim == 3 else a[:, :, None])
                    arrs.append(a)
                    shape[3 * i:3 * i + 3] = a.shape
                ptrs = (ctypes.c_void_p * n)(*[a.ctypes.data if a.size else None for a in arrs])
                self._run(self._lib.clasp_model_embed_pixels, ptrs, shape, n, o)

        return self._by_kind(items, "image", embed)

    def embed_texts(self, texts):
        """UTF-8 texts (a list of str, or one str). Returns (n, dim)."""
        items = [texts] if isinstance(texts, str) else list(texts)
        arr = (ctypes.c_char_p * len(items))()
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"text {i}: expected str, got {type(t).__name__}")
            if "\0" in t:
                raise Error(f"text {i}: contains a NUL character")
            arr[i] = t.encode("utf-8")
        out = self._out(len(items))
        self._run(self._lib.clasp_model_embed_texts, arr, len(items), out.ctypes.data_as(c_float_p))
        return out

    def embed_audio(self, clips, rate=None):
        """Audio as file paths, encoded bytes (WAV, FLAC, ...) or 1-D float arrays of mono
        samples at `rate` Hz (a 2-D float array is a batch of clips). Returns (n, dim)."""
        items = _as_list(clips, (1,))

        def embed(kind, xs, out):
            n, o = len(xs), out.ctypes.data_as(c_float_p)
            if kind == "file":
                self._run(self._lib.clasp_model_embed_audio_files, _paths(xs), n, o)
            elif kind == "bytes":
                ptrs, sizes = _pointers(list(xs))
                self._run(self._lib.clasp_model_embed_audio, ptrs, sizes, n, o)
            else:
                if rate is None:
                    raise TypeError("embed_audio: sample arrays need rate=")
                arrs = []
                for i, a in enumerate(xs):
                    if a.ndim != 1 or a.dtype.kind != "f":
                        raise TypeError(f"audio {i}: want a 1-D float array, got {a.dtype} "
                                        f"{a.shape}")
                    arrs.append(np.ascontiguousarray(a, dtype=np.float32))
                ptrs = (ctypes.c_void_p * n)(*[a.ctypes.data if a.size else None for a in arrs])
                sizes = (ctypes.c_size_t * n)(*[a.size for a in arrs])
                self._run(self._lib.clasp_model_embed_audio_samples, ptrs, sizes, int(rate), n, o)

        return self._by_kind(items, "audio", embed)

    @staticmethod
    def similarity(a, b):
        """Cosine similarities (rows are unit vectors): a (n, dim) or (dim,), b likewise ->
        (n, m) float32."""
        a = np.atleast_2d(np.asarray(a, dtype=np.float32))
        b = np.atleast_2d(np.asarray(b, dtype=np.float32))
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"similarity: dims {a.shape[1]} and {b.shape[1]} differ")
        return a @ b.T
