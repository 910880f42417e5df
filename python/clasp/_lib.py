"""ctypes declarations of include/clasp.h and the search for libclasp.so."""
import ctypes
import os
import subprocess

from ._version import __version__

c_float_p = ctypes.POINTER(ctypes.c_float)
c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_int_p = ctypes.POINTER(ctypes.c_int)
c_void_pp = ctypes.POINTER(ctypes.c_void_p)
c_char_pp = ctypes.POINTER(ctypes.c_char_p)


class Error(Exception):
    """A clasp call failed; the message is clasp_last_error()'s."""


# name: (restype, argtypes)
_SIGNATURES = {
    "clasp_model_open": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]),
    "clasp_model_close": (None, [ctypes.c_void_p]),
    "clasp_model_dim": (ctypes.c_int, [ctypes.c_void_p]),
    "clasp_model_embed_images": (ctypes.c_int, [ctypes.c_void_p, c_void_pp, c_size_p,
                                                ctypes.c_int, c_float_p]),
    "clasp_model_embed_pixels": (ctypes.c_int, [ctypes.c_void_p, c_void_pp, c_int_p,
                                                ctypes.c_int, c_float_p]),
    "clasp_model_embed_image_files": (ctypes.c_int, [ctypes.c_void_p, c_char_pp, ctypes.c_int,
                                                     c_float_p]),
    "clasp_model_embed_texts": (ctypes.c_int, [ctypes.c_void_p, c_char_pp, ctypes.c_int,
                                               c_float_p]),
    "clasp_model_embed_audio": (ctypes.c_int, [ctypes.c_void_p, c_void_pp, c_size_p,
                                               ctypes.c_int, c_float_p]),
    "clasp_model_embed_audio_files": (ctypes.c_int, [ctypes.c_void_p, c_char_pp, ctypes.c_int,
                                                     c_float_p]),
    "clasp_model_embed_audio_samples": (ctypes.c_int, [ctypes.c_void_p, c_void_pp, c_size_p,
                                                       ctypes.c_int, ctypes.c_int, c_float_p]),
    "clasp_model_has_modality": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "clasp_model_set_precision": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
    "clasp_model_trained_precision": (ctypes.c_char_p, [ctypes.c_void_p]),
    "clasp_backend": (ctypes.c_char_p, []),
    "clasp_precisions": (ctypes.c_char_p, []),
    "clasp_version": (ctypes.c_char_p, []),
    "clasp_format_version": (ctypes.c_int, [ctypes.c_char_p]),
    "clasp_last_error": (ctypes.c_char_p, []),
}

_MAJOR = __version__.split(".")[0]
_lib = None


def _candidates():
    if os.environ.get("CLASP_LIBRARY"):
        yield os.environ["CLASP_LIBRARY"]
        return
    yield f"libclasp.so.{_MAJOR}"
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "clasp"], check=True,
                                capture_output=True, text=True).stdout.strip()
        if libdir:
            yield os.path.join(libdir, f"libclasp.so.{_MAJOR}")
    except (OSError, subprocess.CalledProcessError):
        pass


def library():
    """The loaded libclasp (ctypes.CDLL: the GIL is released during its calls)."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            tried.append(f"{path}: {e}")
    else:
        raise Error("cannot load libclasp (set CLASP_LIBRARY to its path, or install clasp): "
                    + "; ".join(tried))
    for name, (res, args) in _SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise Error(f"{lib._name}: no {name}: a libclasp older than this package "
                        f"({__version__})") from None
        fn.restype, fn.argtypes = res, args
    got = lib.clasp_version().decode()
    if got.split(".")[0] != _MAJOR:
        raise Error(f"{lib._name} is libclasp {got}; this package ({__version__}) needs "
                    f"major version {_MAJOR}")
    _lib = lib
    return lib


def library_version():
    """The version of the loaded libclasp ("MAJOR.MINOR.PATCH")."""
    return library().clasp_version().decode()


def check(rc):
    """Raises Error with clasp's message when rc is not 0 (call in the thread that failed)."""
    if rc != 0:
        raise Error(library().clasp_last_error().decode("utf-8", "replace"))
