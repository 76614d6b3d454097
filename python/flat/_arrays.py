"""numpy arrays as flat_tensor views: dtypes, layouts and strides, zero-copy.

numpy strides are in bytes and flat's in elements; a view is passed through
as it is when every stride is a non-negative multiple of the item size and
the last axis is contiguous, and refused with ValueError otherwise (flat
never copies a tensor behind the caller's back). A stride of an axis of
extent 1 is never used to address anything, so it is passed as 0.
"""
import numpy as np

from . import _types
from ._types import FlatTensor

# numpy dtype -> flat_dtype; uint16 is bfloat16 only when the call says so
_CODES = {np.dtype(np.float32): _types.F32, np.dtype(np.float16): _types.F16}
BF16_STORAGE = np.dtype(np.uint16)
LAYOUTS = ("bhsd", "bshd")
_COPY_HINT = "np.ascontiguousarray({0}) makes a contiguous copy if one is acceptable"


def bf16_flag(dtype):
    """The call's `dtype` keyword: None (uint16 refused) or "bfloat16"."""
    if dtype is None:
        return False
    if isinstance(dtype, str) and dtype.lower() in ("bfloat16", "bf16"):
        return True
    raise ValueError(f"dtype={dtype!r}: the only value is 'bfloat16' (uint16 arrays of the call "
                     "hold bfloat16 bits); float32 and float16 arrays need no dtype keyword")


def ndarray(arr, name):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, not {type(arr).__name__} "
                        "(np.asarray() views most array objects without a copy)")
    return arr


def dtype_code(arr, name, bf16):
    """flat_dtype of `arr`; TypeError for a type flat does not take."""
    dt = ndarray(arr, name).dtype
    if dt in _CODES:
        return _CODES[dt]
    if dt == BF16_STORAGE:
        if bf16:
            return _types.BF16
        raise TypeError(f"{name} is a uint16 array: pass dtype='bfloat16' if it holds bfloat16 "
                        "bits (numpy has no bfloat16 type; see flat.to_bfloat16)")
    if dt.kind == "f" and dt.newbyteorder("=") in _CODES:
        raise TypeError(f"{name} has non-native byte order ({dt.str}); flat reads native floats")
    raise TypeError(f"{name} has dtype {dt}; flat takes float32, float16, or bfloat16 stored as "
                    "uint16 with dtype='bfloat16'")


def element_strides(arr, name):
    """Strides of `arr` in elements (0 for axes of extent 1); ValueError if not representable."""
    size = ndarray(arr, name).itemsize
    out = []
    for axis, (extent, stride) in enumerate(zip(arr.shape, arr.strides)):
        if extent == 1:
            out.append(0)
            continue
        if stride < 0:
            raise ValueError(f"{name} has a negative stride on axis {axis} ({stride} bytes, a "
                             "reversed view); flat takes non-negative strides only; " +
                             _COPY_HINT.format(name))
        if stride % size:
            raise ValueError(f"{name}'s stride on axis {axis} ({stride} bytes) is not a multiple "
                             f"of its item size ({size} bytes); " + _COPY_HINT.format(name))
        out.append(stride // size)
    if arr.ndim and arr.shape[-1] != 1 and out[-1] != 1:
        raise ValueError(f"{name}'s last axis is not contiguous: stride {arr.strides[-1]} "
                         f"bytes, item size {size} (a view stepping over or broadcasting along "
                         "it, or a transpose that moved it); flat needs the last axis "
                         "contiguous; " + _COPY_HINT.format(name))
    if not arr.flags.aligned:
        raise ValueError(f"{name}'s data address is not a multiple of its item size; " +
                         _COPY_HINT.format(name))
    return out


def tensor(arr, name, layout, code):
    """flat_tensor over a 4-D array in `layout` ("bhsd" [B, H, S, D] or "bshd" [B, S, H, D])."""
    st = element_strides(arr, name)
    if arr.ndim != 4:
        raise ValueError(f"{name} must be 4-D ({layout_shape(layout)}), got shape {arr.shape}")
    b, x, y, d = arr.shape
    sb, sx, sy, _ = st
    if layout == "bshd":  # [B, S, H, D]: heads and seq swap places
        return FlatTensor(arr.ctypes.data, code, b, y, x, d, sb, sy, sx)
    return FlatTensor(arr.ctypes.data, code, b, x, y, d, sb, sx, sy)


def check_layout(layout, allowed=LAYOUTS, keyword="layout"):
    if layout not in allowed:
        raise ValueError(f"{keyword}={layout!r}: must be one of {', '.join(map(repr, allowed))}")
    return layout


def layout_shape(layout):
    return "[B, S, H, D]" if layout == "bshd" else "[B, H, S, D]"


def shape_in(layout, b, h, s, d):
    """numpy shape of a [b, h, s, d] tensor in `layout`."""
    return (b, s, h, d) if layout == "bshd" else (b, h, s, d)


def bhsd_extents(arr, layout):
    """(batch, heads, seq, dim) of a 4-D array in `layout`."""
    b, x, y, d = arr.shape
    return (b, y, x, d) if layout == "bshd" else (b, x, y, d)


def output(out, name, shape, dtype):
    """Check a caller's out array (shape, dtype, writable) or allocate one."""
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, not {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}; it must be {np.dtype(dtype)} (out has "
                        "q's type)")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(out.shape)}; this call writes {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def int_vector(x, name, length):
    """A small index array as contiguous int32 (converted if needed), of `length` entries."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.ndim != 1 or a.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {a.shape}")
    return int32_array(a, name)


def int32_array(a, name):
    if a.size and (a.min() < -2**31 or a.max() >= 2**31):
        raise ValueError(f"{name} holds values outside the int32 range")
    return np.ascontiguousarray(a, dtype=np.int32)


def float_vector(x, name, length):
    """A per-head vector as contiguous float32 (converted if needed)."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},) (one per query head), got {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


# ---- bfloat16 bits in uint16 arrays ----
def to_bfloat16(x):
    """float array -> uint16 array of bfloat16 bits, rounded to nearest even."""
    f = np.asarray(x, dtype=np.float32)
    u = f.reshape(-1).view(np.uint32).astype(np.uint64)
    one, half, sixteen = np.uint64(1), np.uint64(0x7FFF), np.uint64(16)
    r = ((u + half + ((u >> sixteen) & one)) >> sixteen).astype(np.uint16)
    nan = np.isnan(f.reshape(-1))
    r[nan] = ((u[nan] >> sixteen) | np.uint64(0x40)).astype(np.uint16)  # quiet, sign kept
    return r.reshape(f.shape)


def from_bfloat16(u):
    """uint16 array of bfloat16 bits -> float32 array (exact)."""
    a = np.asarray(u)
    if a.dtype != BF16_STORAGE:
        raise TypeError(f"from_bfloat16 takes a uint16 array, got dtype {a.dtype}")
    return (a.reshape(-1).astype(np.uint32) << np.uint32(16)).view(np.float32).reshape(a.shape)
