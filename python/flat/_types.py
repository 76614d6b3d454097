"""ctypes mirrors of the structures and enums of include/flat.h (flat 0.2 and 0.3's additions).

Field order and widths follow the header exactly: C ``int`` and the enums
are ``c_int``, ``int32_t`` is ``c_int32``, ``int64_t`` is ``c_int64``,
pointers are ``c_void_p`` (the arrays behind them stay owned by Python).
tests/test_structs.py checks the sizes and a few offsets computed by hand
from the header (sizeof(flat_options) is 104 on every 64-bit target).
"""
import ctypes

# flat_status
OK, INVALID_ARGUMENT, UNSUPPORTED, OUT_OF_MEMORY = 0, 1, 2, 3

# flat_dtype (0.3: the quantized K/V types)
F32, F16, BF16, I8, F8E4M3, I4 = 0, 1, 2, 3, 4, 5

# flat_isa: the names flat_isa_name() gives, in enum order (0.3 appends amx_bf16 = 6,
# avx512_vnni = 7; tests/test_precision.py checks each against the library)
ISAS = ("auto", "scalar", "avx2", "avx512", "neon", "avx512_bf16", "amx_bf16", "avx512_vnni")
# flat_precision (0.3): FLAT_PRECISION_AUTO, _FP32, _BF16, _INT8, in enum order
PRECISIONS = ("auto", "fp32", "bf16", "int8")
# flat_dataflow
DATAFLOWS = ("auto", "flat", "flash", "decode")


class FlatTensor(ctypes.Structure):
    """flat_tensor: a 4-D strided view [batch, heads, seq, dim], strides in elements."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int),
        ("batch", ctypes.c_int64),
        ("heads", ctypes.c_int64),
        ("seq", ctypes.c_int64),
        ("dim", ctypes.c_int64),
        ("stride_batch", ctypes.c_int64),
        ("stride_head", ctypes.c_int64),
        ("stride_seq", ctypes.c_int64),
    ]


class FlatOptions(ctypes.Structure):
    """flat_options; a zeroed struct means all defaults. `reserved*` stay zero."""

    _fields_ = [
        ("scale", ctypes.c_float),
        ("causal", ctypes.c_int),
        ("kv_lens", ctypes.c_void_p),  # const int32_t *
        ("lse", ctypes.c_void_p),  # float *
        ("num_threads", ctypes.c_int),
        ("dataflow", ctypes.c_int),
        ("isa", ctypes.c_int),
        ("window_left", ctypes.c_int32),
        ("window_right", ctypes.c_int32),
        ("softcap", ctypes.c_float),
        ("precision", ctypes.c_int32),  # flat_precision (0.3, was reserved32)
        ("sinks", ctypes.c_void_p),  # const float *
        ("alibi_slopes", ctypes.c_void_p),  # const float *
        ("mask", ctypes.POINTER(FlatTensor)),
        ("kv_quant", ctypes.c_void_p),  # const flat_kv_quant * (0.3, was reserved[0])
        ("flags", ctypes.c_uint64),  # FLAT_FLAG_* (0.3, was reserved[1])
        ("reserved", ctypes.c_uint64 * 1),
    ]


class FlatKVQuant(ctypes.Structure):
    """flat_kv_quant: scales and groups of a quantized K/V cache (0.3)."""

    _fields_ = [
        ("k_scale", FlatTensor),
        ("v_scale", FlatTensor),
        ("k_group", ctypes.c_int32),
        ("v_group", ctypes.c_int32),
        ("reserved", ctypes.c_uint64 * 2),
    ]


class FlatPagedKV(ctypes.Structure):
    """flat_paged_kv: K/V page pools, block table and sequence lengths."""

    _fields_ = [
        ("dtype", ctypes.c_int),
        ("k", ctypes.c_void_p),
        ("v", ctypes.c_void_p),
        ("pages", ctypes.c_int64),
        ("page_size", ctypes.c_int64),
        ("heads", ctypes.c_int64),
        ("dim", ctypes.c_int64),
        ("v_dim", ctypes.c_int64),
        ("k_stride_page", ctypes.c_int64),
        ("k_stride_token", ctypes.c_int64),
        ("k_stride_head", ctypes.c_int64),
        ("v_stride_page", ctypes.c_int64),
        ("v_stride_token", ctypes.c_int64),
        ("v_stride_head", ctypes.c_int64),
        ("batch", ctypes.c_int64),
        ("seq_lens", ctypes.c_void_p),  # const int32_t *
        ("block_table", ctypes.c_void_p),  # const int32_t *
        ("block_table_stride", ctypes.c_int64),
        ("q_offsets", ctypes.c_void_p),  # const int32_t *, optional
    ]
