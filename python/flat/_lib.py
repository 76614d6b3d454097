"""Finding, loading and declaring libflat.

Search order (the first that loads wins):
  1. the file named by the environment variable FLAT_LIBRARY (when set, it
     is the only place tried: a wrong path is an error, not a fall-through);
  2. a libflat.so* next to this package (``pip install`` puts one there when
     FLAT_LIBRARY names a library at install time);
  3. the dynamic loader's search path: ctypes.util.find_library("flat"),
     then the SONAME "libflat.so.0" (LD_LIBRARY_PATH, /etc/ld.so.cache, the
     default directories), e.g. after ``cmake --install``.
The library is loaded on first use; a failure raises LibraryNotFoundError
listing every place tried and why each failed.
"""
import ctypes
import ctypes.util
import glob
import os
import threading

from . import _types
from .errors import LibraryNotFoundError, error_for

SONAME = "libflat.so.0"
_HERE = os.path.dirname(os.path.abspath(__file__))
_lock = threading.Lock()
_lib = None
_path = None

_c_int, _c_int64, _c_size_t, _c_char_p, _c_void_p = (
    ctypes.c_int, ctypes.c_int64, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p)
_T = ctypes.POINTER(_types.FlatTensor)
_O = ctypes.POINTER(_types.FlatOptions)
_KV = ctypes.POINTER(_types.FlatPagedKV)
_PLAN = ctypes.c_void_p
# name: (restype, argtypes)
_PROTOTYPES = {
    "flat_status_string": (_c_char_p, [_c_int]),
    "flat_last_error": (_c_char_p, []),
    "flat_version": (_c_char_p, []),
    "flat_attention": (_c_int, [_T, _T, _T, _T, _O]),
    "flat_attention_paged": (_c_int, [_T, _KV, _T, _O]),
    "flat_plan_create": (_c_int, [_T, _T, _T, _T, _O, ctypes.POINTER(_PLAN)]),
    "flat_plan_create_paged": (_c_int, [_T, _KV, _T, _O, ctypes.POINTER(_PLAN)]),
    "flat_plan_destroy": (None, [_PLAN]),
    "flat_plan_workspace_size": (_c_size_t, [_PLAN]),
    "flat_plan_workers": (_c_int, [_PLAN]),
    "flat_plan_tasks": (_c_int64, [_PLAN, _c_int]),
    "flat_plan_execute": (_c_int, [_PLAN, _c_void_p]),
    "flat_plan_describe": (_c_char_p, [_PLAN]),
    "flat_isa_detect": (_c_int, []),
    "flat_isa_name": (_c_char_p, [_c_int]),
    "flat_quantize": (_c_int, [_T, _T, _T, ctypes.c_int32, ctypes.c_uint32]),
}


def _candidates():
    """(description, path or name to dlopen) in search order."""
    env = os.environ.get("FLAT_LIBRARY")
    if env:
        return [(f"FLAT_LIBRARY={env}", env)]
    found = []
    beside = sorted(glob.glob(os.path.join(_HERE, "libflat.so*")), key=len)
    if beside:
        found += [(f"next to the package: {p}", p) for p in beside]
    else:
        found.append((f"next to the package: {os.path.join(_HERE, 'libflat.so*')}", None))
    name = ctypes.util.find_library("flat")
    found.append((f"ctypes.util.find_library('flat') -> {name!r}", name))
    found.append((f"{SONAME} on the loader's search path (LD_LIBRARY_PATH="
                  f"{os.environ.get('LD_LIBRARY_PATH', '')!r}, /etc/ld.so.cache, "
                  "the default directories)", SONAME))
    return found


def _declare(lib):
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)  # AttributeError: not a flat 0.2 library
        fn.restype, fn.argtypes = restype, argtypes


def _loaded_path(lib, fallback):
    """The file the loader opened (dladdr on a symbol), else `fallback`."""

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", _c_char_p), ("dli_fbase", _c_void_p),
                    ("dli_sname", _c_char_p), ("dli_saddr", _c_void_p)]

    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes, dladdr.restype = [_c_void_p, ctypes.POINTER(DlInfo)], _c_int
        info = DlInfo()
        if dladdr(ctypes.cast(lib.flat_version, _c_void_p), ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    except (AttributeError, OSError):
        pass
    return fallback


def _load():
    tried = []
    for what, target in _candidates():
        if target is None:
            tried.append(f"{what}: no such file")
            continue
        try:
            lib = ctypes.CDLL(target)
            _declare(lib)
        except (OSError, AttributeError) as e:
            tried.append(f"{what}: {e}")
            continue
        version = lib.flat_version().decode()
        major, minor = (int(x) for x in version.split(".")[:2])
        if major != 0 or minor < 2:
            tried.append(f"{what}: flat {version}, this package needs 0.x with x >= 2")
            continue
        return lib, _loaded_path(lib, target)
    raise LibraryNotFoundError("flat: cannot load libflat; tried, in order:\n  " +
                               "\n  ".join(tried) +
                               "\nSet FLAT_LIBRARY to the library file (e.g. build/libflat.so.0).")


def lib():
    """The loaded library (loaded on first use)."""
    global _lib, _path
    if _lib is None:
        with _lock:
            if _lib is None:
                loaded, _path = _load()
                _lib = loaded
    return _lib


def library_path():
    """Path of the libflat that was loaded (loading it if needed)."""
    lib()
    return _path


def check(status, function):
    """Raise the FlatError subclass of `status` with this thread's flat_last_error().

    Called on the thread that made the call, right after it: flat_last_error
    is per thread and valid until the thread's next flat_* call."""
    if status != _types.OK:
        raise error_for(status, _lib.flat_last_error().decode(), function)
