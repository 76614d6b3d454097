"""Finding libflat: FLAT_LIBRARY, next to the package, the loader's search
path, and an error that lists every place tried. Each case runs in a fresh
interpreter on a copy of the package outside the source tree."""
import ctypes.util
import os
import shutil
import subprocess
import sys

import pytest

import flat

PACKAGE = os.path.dirname(os.path.abspath(flat.__file__))
PROBE = ("import flat, numpy as np\n"
         "try:\n"
         "    q = np.ones((1, 1, 2, 4), np.float32)\n"
         "    assert flat.attention(q, q, q).shape == (1, 1, 2, 4)\n"
         "    print('LOADED', flat.library_path())\n"
         "except flat.LibraryNotFoundError as e:\n"
         "    print('NOTFOUND', e)\n")


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the flat package (no library in it) in a temporary directory."""
    shutil.copytree(PACKAGE, tmp_path / "flat",
                    ignore=shutil.ignore_patterns("__pycache__", "libflat.so*"))
    return tmp_path


def probe(where, **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("FLAT_LIBRARY", "LD_LIBRARY_PATH")}
    env.update(env_changes)
    env["PYTHONPATH"] = str(where)
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=where, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def the_library():
    return os.path.realpath(flat.library_path())


def test_flat_library_env(package_copy):
    assert probe(package_copy, FLAT_LIBRARY=the_library()) == "LOADED " + the_library()


def test_flat_library_wrong_path_is_an_error(package_copy):
    """A set FLAT_LIBRARY is the only place tried: a typo must not fall through."""
    out = probe(package_copy, FLAT_LIBRARY="/nonexistent/libflat.so.0")
    assert out.startswith("NOTFOUND flat: cannot load libflat; tried, in order:")
    assert "FLAT_LIBRARY=/nonexistent/libflat.so.0: " in out and "next to the package" not in out
    assert "Set FLAT_LIBRARY to the library file" in out


def test_flat_library_not_flat(package_copy):
    libm = ctypes.util.find_library("m")
    out = probe(package_copy, FLAT_LIBRARY=libm)
    assert out.startswith("NOTFOUND") and "undefined symbol: flat_" in out


def test_next_to_the_package(package_copy):
    target = package_copy / "flat" / "libflat.so.0"
    shutil.copy(the_library(), target)
    assert probe(package_copy) == f"LOADED {os.path.realpath(target)}"


def test_loader_search_path(package_copy, tmp_path_factory):
    libdir = tmp_path_factory.mktemp("lib")
    shutil.copy(the_library(), libdir / "libflat.so.0")
    out = probe(package_copy, LD_LIBRARY_PATH=str(libdir))
    assert out == f"LOADED {os.path.realpath(libdir / 'libflat.so.0')}"


def test_not_found_lists_every_place(package_copy):
    out = probe(package_copy)
    system = ctypes.util.find_library("flat")
    if system:  # an installed libflat (cmake --install + ldconfig) is found last
        assert out.startswith("LOADED "), out
        return
    assert out.startswith("NOTFOUND flat: cannot load libflat; tried, in order:")
    lines = out.splitlines()[1:]
    assert lines[0].strip() == (f"next to the package: {package_copy / 'flat' / 'libflat.so*'}: "
                                "no such file")
    assert lines[1].strip() == "ctypes.util.find_library('flat') -> None: no such file"
    assert lines[2].strip().startswith("libflat.so.0 on the loader's search path "
                                       "(LD_LIBRARY_PATH='', /etc/ld.so.cache")
    assert "cannot open shared object file" in lines[2]
