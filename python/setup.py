"""pip install ./python: the flat package over libflat.

The library is not built here (flat builds with CMake). When FLAT_LIBRARY
names a built libflat at install time, it is copied into the package as
flat/libflat.so.0 (and the wheel is marked platform-specific); otherwise the
installed package finds libflat at run time through FLAT_LIBRARY or the
loader's search path (e.g. after `cmake --install` into a prefix that
ldconfig or LD_LIBRARY_PATH covers). Offline, from a venv made with
--system-site-packages (for Debian's numpy):

    FLAT_LIBRARY=$PWD/build/libflat.so.0 pip install --no-build-isolation --no-index ./python
"""
import os
import re

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY = os.environ.get("FLAT_LIBRARY")
with open(os.path.join(HERE, "flat", "__init__.py")) as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


class BuildPyWithLibrary(build_py):
    """build_py, plus the library FLAT_LIBRARY names, as flat/libflat.so.0."""

    def run(self):
        super().run()
        bundled = os.path.join(self.build_lib, "flat", "libflat.so.0")
        if os.path.exists(bundled):  # from an earlier build with another FLAT_LIBRARY
            os.remove(bundled)
        if not LIBRARY:
            print("flat: FLAT_LIBRARY is not set, so no libflat is bundled; the installed package "
                  "will look for libflat.so.0 through FLAT_LIBRARY or the loader's search path")
            return
        if not os.path.isfile(LIBRARY):
            raise SystemExit(f"flat: FLAT_LIBRARY={LIBRARY}: no such file")
        self.copy_file(os.path.realpath(LIBRARY), bundled)


class Distribution_(Distribution):
    def has_ext_modules(self):  # a bundled .so makes the wheel platform-specific
        return bool(LIBRARY)


setup(
    name="flat",
    version=VERSION,
    description="Fused attention kernels for CPUs, from numpy (ctypes over libflat)",
    packages=["flat"],
    python_requires=">=3.8",
    install_requires=["numpy"],
    cmdclass={"build_py": BuildPyWithLibrary},
    distclass=Distribution_,
)
