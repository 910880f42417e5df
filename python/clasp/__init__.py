"""clasp: embed images, texts and audio with an exported clasp model, with numpy alone.

    import clasp
    with clasp.Model("export/") as m:
        img = m.embed_images(["a.png", pixels_uint8_hwc])   # (2, D) float32, unit rows
        txt = m.embed_texts(["a photo of a bag"])           # (1, D)
        print(m.similarity(img, txt))                       # (2, 1) cosine similarities

The functions of libclasp.so (include/clasp.h) are called through ctypes, which releases the GIL
during every foreign call: Python threads embed concurrently (a Model serialises its own calls
with a lock, as a clasp handle serves one thread at a time; separate Models run in parallel).
Errors raise clasp.Error with clasp's message.

Finding libclasp.so: $CLASP_LIBRARY (a path, e.g. build/libclasp.so in the tree), else
libclasp.so.MAJOR from the system's library path (an install under /usr, or LD_LIBRARY_PATH),
else the libdir of `pkg-config clasp` (an install in another prefix, with PKG_CONFIG_PATH).
"""
from ._lib import Error, library, library_version
from ._model import Model
from ._version import __version__

__all__ = ["Error", "Model", "library", "library_version", "__version__"]
