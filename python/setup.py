"""The numpy-only Python binding of libclasp (ctypes; no compiled extension).

    pip install --no-build-isolation ./python

The version is the one of project(clasp VERSION ...) in ../CMakeLists.txt, read here at build
time (CLASP_VERSION overrides it, for a copy of this folder outside the tree)."""
import os
import re

from setuptools import setup


def version():
    if os.environ.get("CLASP_VERSION"):
        return os.environ["CLASP_VERSION"]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(clasp VERSION ([0-9]+\.[0-9]+\.[0-9]+)", f.read())
    if not m:
        raise SystemExit("setup.py: no project(clasp VERSION ...) in ../CMakeLists.txt")
    return m.group(1)


v = version()
# The package reads its version from clasp/_version.py (written here, not by hand).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "clasp", "_version.py"), "w",
          encoding="utf-8") as f:
    f.write(f'__version__ = "{v}"\n')

setup(
    name="clasp",
    version=v,
    description="Embed images, texts and audio with an exported clasp model (numpy + libclasp)",
    long_description=open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md"),
                          encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=["clasp"],
    python_requires=">=3.9",
    install_requires=["numpy"],
)
