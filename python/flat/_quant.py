"""Quantized K/V caches from numpy: flat.quantize and flat.KVQuant (flat 0.3).

Codes live in numpy integer arrays: "int8" in int8 arrays [.., D], "fp8_e4m3"
(OCP e4m3fn bits) in uint8 arrays [.., D], "int4" in uint8 arrays [.., D / 2]
holding two signed nibbles each (the even element in the low nibble). Scales
are float32 or float16 arrays shaped like the codes' tensor with D replaced by
D / group (any strides >= 0: np.broadcast_to gives per-channel, per-page and
per-tensor scales without a copy).
"""
import ctypes

import numpy as np

from . import _arrays, _lib, _types
from ._arrays import check_layout, element_strides

KINDS = {"int8": _types.I8, "fp8_e4m3": _types.F8E4M3, "int4": _types.I4}
_STORAGE = {"int8": np.dtype(np.int8), "fp8_e4m3": np.dtype(np.uint8), "int4": np.dtype(np.uint8)}
_SCALE_CODES = {np.dtype(np.float32): _types.F32, np.dtype(np.float16): _types.F16}


def kind_code(kind):
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: must be one of {', '.join(map(repr, KINDS))}")
    return KINDS[kind]


def codes_tensor(arr, name, layout, kind):
    """flat_tensor over a code array (int4: the element dim is twice the byte dim)."""
    code = kind_code(kind)
    arr = _arrays.ndarray(arr, name)
    if arr.dtype != _STORAGE[kind]:
        raise TypeError(f"{name} has dtype {arr.dtype}; {kind} codes are {_STORAGE[kind]}")
    t = _arrays.tensor(arr, name, layout, code)
    if code == _types.I4:  # strides and dim count nibbles
        t.dim *= 2
        t.stride_batch, t.stride_head, t.stride_seq = (2 * t.stride_batch, 2 * t.stride_head,
                                                       2 * t.stride_seq)
    return t


def scale_tensor(arr, name, layout):
    arr = _arrays.ndarray(arr, name)
    if arr.dtype not in _SCALE_CODES:
        raise TypeError(f"{name} has dtype {arr.dtype}; scales are float32 or float16")
    return _arrays.tensor(arr, name, layout, _SCALE_CODES[arr.dtype])


class KVQuant:
    """The scales of a quantized K/V cache (flat_kv_quant), for flat.attention,
    flat.attention_paged and flat.plan's ``kv_quant=``.

    kind: "int8", "fp8_e4m3" or "int4", the type of the k and v code arrays.
    k_scale, v_scale: float32/float16 arrays in the call's layout (dense:
    ``layout``; paged: ``kv_layout`` pools), dim = D / group. k_group, v_group:
    dim elements per scale (v_group defaults to k_group). For "fp8_e4m3" both
    scales may be None (every scale 1).
    """

    def __init__(self, kind, k_scale=None, v_scale=None, k_group=32, v_group=None):
        kind_code(kind)
        if (k_scale is None) != (v_scale is None):
            raise ValueError("give both k_scale and v_scale, or neither (fp8_e4m3 only)")
        if k_scale is None and kind != "fp8_e4m3":
            raise ValueError(f"{kind} codes need k_scale and v_scale")
        self.kind, self.k_scale, self.v_scale = kind, k_scale, v_scale
        self.k_group = int(k_group)
        self.v_group = int(k_group if v_group is None else v_group)

    def struct(self, keep, k_view, v_view):
        """The flat_kv_quant (or None) for scale views made by k_view / v_view."""
        if self.k_scale is None:
            return None
        q = _types.FlatKVQuant()
        q.k_scale, q.v_scale = k_view(self.k_scale, "k_scale"), v_view(self.v_scale, "v_scale")
        q.k_group, q.v_group = self.k_group, self.v_group
        keep += [self.k_scale, self.v_scale, q]
        return q


def quantize(x, kind, group=32, *, scale_dtype="float16", scales=None, layout="bhsd",
             dtype=None):
    """Quantizes rows of x (float32, float16, or uint16 bfloat16 bits with
    dtype="bfloat16"; 4-D in ``layout``) with flat_quantize.

    Returns (codes, scales): codes as the attention calls take them (see the
    module doc), scales [.., D / group] of ``scale_dtype``, each amax / 127
    (int8), / 448 (fp8_e4m3) or / 7 (int4), 0 for an all-zero group. With
    ``scales`` given (float32/float16, broadcastable, e.g. calibrated
    per-channel or per-tensor scales) those are used and returned as given.
    Codes are x / scale rounded to nearest even and saturated. NaN or inf in
    x raises flat.InvalidArgumentError (nothing is written).
    """
    code = kind_code(kind)
    layout = check_layout(layout)
    src = _arrays.ndarray(x, "x")
    src_t = _arrays.tensor(src, "x", layout, _arrays.dtype_code(src, "x", _arrays.bf16_flag(dtype)))
    shape = src.shape
    if code == _types.I4:
        if shape[-1] % 2:
            raise ValueError(f"int4 needs an even last dim, got {shape[-1]}")
        shape = shape[:-1] + (shape[-1] // 2,)
    codes = np.empty(shape, _STORAGE[kind])
    codes_t = codes_tensor(codes, "codes", layout, kind)
    group = int(group)
    if group < 1 or src_t.dim % group:
        raise ValueError(f"group ({group}) must be >= 1 and divide the last dim ({src_t.dim})")
    sshape = src.shape[:-1] + (src_t.dim // group,)
    flags = 0
    if scales is None:
        sc = np.empty(sshape, np.dtype(scale_dtype))
    else:
        sc = np.broadcast_to(scales, sshape)
        flags = 1  # FLAT_QUANTIZE_GIVEN_SCALES
    sc_t = scale_tensor(sc, "scales", layout)
    lib = _lib.lib()
    _lib.check(lib.flat_quantize(ctypes.byref(src_t), ctypes.byref(codes_t), ctypes.byref(sc_t),
                                 group, flags), "flat_quantize")
    return codes, (sc if scales is None else scales)


def dequantize(codes, scales, kind, group=32):
    """float32 values code * scale (one fp32 rounding, as the kernels compute
    them), for checking a cache against the floats it came from."""
    kind_code(kind)
    c = np.asarray(codes)
    if kind == "int4":
        lo = (c & 0x0F).astype(np.int8)
        hi = (c >> 4).astype(np.int8)
        lo = np.where(lo >= 8, lo - 16, lo)
        hi = np.where(hi >= 8, hi - 16, hi)
        v = np.stack([lo, hi], axis=-1).reshape(c.shape[:-1] + (2 * c.shape[-1],))
        v = v.astype(np.float32)
    elif kind == "int8":
        v = c.astype(np.float32)
    else:
        b = c.astype(np.int64)
        e, m = (b >> 3) & 15, b & 7
        mag = np.where(e == 0, np.ldexp(m.astype(np.float64), -9),
                       np.ldexp(1.0 + m / 8.0, (e - 7).astype(np.int32)))
        mag = np.where((b & 0x7F) == 0x7F, np.nan, mag)
        v = np.where(b & 0x80, -mag, mag).astype(np.float32)
    s = np.repeat(np.asarray(scales, np.float32), group, axis=-1)
    return (v * s).astype(np.float32)


def pool_scale_tensor(arr, name, kv_layout):
    """A paged scale pool ([pages, page_size, Hkv, G] "nhd" or [pages, Hkv,
    page_size, G] "hnd") as the flat_tensor [page, head, token, group]."""
    arr = _arrays.ndarray(arr, name)
    if arr.dtype not in _SCALE_CODES:
        raise TypeError(f"{name} has dtype {arr.dtype}; scales are float32 or float16")
    if arr.ndim != 4:
        raise ValueError(f"{name} must be a 4-D scale pool, got shape {arr.shape}")
    st = element_strides(arr, name)
    p, x, y, g = arr.shape
    if kv_layout == "nhd":  # [pages, page_size, heads, groups]
        return _types.FlatTensor(arr.ctypes.data, _SCALE_CODES[arr.dtype], p, y, x, g, st[0],
                                 st[2], st[1])
    return _types.FlatTensor(arr.ctypes.data, _SCALE_CODES[arr.dtype], p, x, y, g, st[0], st[1],
                             st[2])
