"""The keyword options of a call as a flat_options struct.

Every keyword maps to a field of flat_options or is refused: a value the C
library cannot do raises NotImplementedError naming the release (none is
silently ignored). Small per-call vectors (kv_lens, sinks, alibi_slopes)
are converted to contiguous int32 / float32 when they are not already.
"""
import ctypes
import math

import numpy as np

from . import _arrays, _types
from .errors import not_in_release

_INT32 = (-2**31, 2**31 - 1)


def _int(value, name, lo=_INT32[0]):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if not lo <= value <= _INT32[1]:
        raise ValueError(f"{name} ({value}) is outside the int32 range")
    return int(value)


def causal_flag(causal):
    """causal: False/True, or the alignment by name ("bottom_right" is True)."""
    if isinstance(causal, str):
        if causal == "bottom_right":
            return 1
        if causal == "top_left":
            raise not_in_release(
                "causal='top_left' (the alignment of torch's is_causal)",
                "flat aligns causal bottom-right, query i sees key j iff j <= i + kv_len - q_len "
                "(the KV-cache convention); the two agree when q_len == kv_len; otherwise pass "
                "the top-left triangle as an additive float32 mask")
        raise ValueError(f"causal={causal!r}: must be False, True or 'bottom_right'")
    if not isinstance(causal, (bool, np.bool_, int, np.integer)):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    return 1 if causal else 0


def enum_index(value, names, keyword):
    if not isinstance(value, str) or value.lower() not in names:
        raise ValueError(f"{keyword}={value!r}: must be one of {', '.join(map(repr, names))}")
    return names.index(value.lower())


def mask_code(mask, bf16):
    """flat_dtype of an additive mask: float32, float16 (llama.cpp's), or bfloat16
    bits in uint16 when the call passes dtype='bfloat16'."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"mask must be a numpy.ndarray, not {type(mask).__name__}")
    if mask.dtype == np.bool_:
        raise not_in_release(
            "a boolean mask", "flat takes an additive float mask; torch's convention (True "
            "attends) is np.where(mask, 0, -np.inf).astype(np.float32)")
    if mask.dtype == _arrays.BF16_STORAGE and bf16:
        return _types.BF16
    if mask.dtype == np.float32:
        return _types.F32
    if mask.dtype == np.float16:
        return _types.F16
    raise not_in_release(f"a {mask.dtype} mask",
                         "flat takes an additive float32, float16 or bfloat16 (uint16 with "
                         "dtype='bfloat16') mask: mask.astype(np.float32)")


def mask_view(mask, batch, heads, q_len, kv_len, bf16=False):
    """The mask broadcast (zero-copy, stride 0) to [batch, heads, q_len, kv_len]."""
    code = mask_code(mask, bf16)
    want = (batch, heads, q_len, kv_len)
    try:
        view = np.broadcast_to(mask, want)
    except ValueError:
        raise ValueError(f"mask of shape {mask.shape} does not broadcast to [B, Hq, q_len, "
                         f"kv_len] = {want}") from None
    return view, _arrays.tensor(view, "mask", "bhsd", code)


def _window_side(x, what):
    """One side of a window: -1 is flash_attn's "no limit" (its window_size=(-1, -1)),
    flat's 0; other negatives stay for the C library to refuse."""
    v = _int(x, what)
    return 0 if v == -1 else v


def build(keep, *, q_heads, batch, causal, scale, kv_lens, window, softcap, sinks,
          alibi_slopes, mask, lse, num_threads, isa, dataflow, dropout_p, precision):
    """flat_options for these keywords; the arrays it points to are appended to `keep`.

    `mask` is (view, flat_tensor) from mask_view or None; `lse` an array or None."""
    o = _types.FlatOptions()
    if dropout_p:
        raise not_in_release(f"dropout_p={dropout_p!r}",
                             "flat is for inference (no dropout, no backward pass); pass 0")
    o.causal = causal_flag(causal)
    if scale is not None:
        scale = float(scale)
        if scale == 0.0 or not math.isfinite(scale):
            raise ValueError(f"scale ({scale}) must be finite and non-zero (None: 1/sqrt(head "
                             "dim); flat's C API reads 0 as that default)")
        o.scale = scale
    if kv_lens is not None:
        kv = _arrays.int_vector(kv_lens, "kv_lens", batch)
        keep.append(kv)
        o.kv_lens = kv.ctypes.data
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise TypeError(f"window must be a pair (left, right), got {window!r}")
    o.window_left = _window_side(window[0], "window[0] (left)")
    o.window_right = _window_side(window[1], "window[1] (right)")
    o.softcap = float(softcap)
    for name, vec in (("sinks", sinks), ("alibi_slopes", alibi_slopes)):
        if vec is not None:
            a = _arrays.float_vector(vec, name, q_heads)
            keep.append(a)
            setattr(o, name, a.ctypes.data)
    if mask is not None:
        view, t = mask
        keep += [view, t]
        o.mask = ctypes.pointer(t)
    if lse is not None:
        keep.append(lse)
        o.lse = lse.ctypes.data
    o.num_threads = _int(num_threads, "num_threads")
    o.isa = enum_index(isa, _types.ISAS, "isa")
    o.precision = enum_index(precision, _types.PRECISIONS, "precision")
    o.dataflow = enum_index(dataflow, _types.DATAFLOWS, "dataflow")
    return o
