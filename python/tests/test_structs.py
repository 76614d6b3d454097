"""The ctypes mirrors against include/flat.h: sizes and offsets worked out
by hand from the header (x86-64 and AArch64 LP64: int 4, pointers 8, int64_t
8-aligned), and what the library reports about itself."""
import ctypes

import flat
from flat import _types
from support import AUTO_ISA


def offsets(cls, names):
    return {n: getattr(cls, n).offset for n in names}


def test_flat_options_layout():
    assert ctypes.sizeof(_types.FlatOptions) == 104  # the ABI: 0.1 and 0.2 alike
    assert offsets(_types.FlatOptions, ["scale", "causal", "kv_lens", "lse", "num_threads",
                                        "dataflow", "isa", "window_left", "window_right",
                                        "softcap", "precision", "sinks", "alibi_slopes",
                                        "mask", "kv_quant", "flags", "reserved"]) == {
        "scale": 0, "causal": 4, "kv_lens": 8, "lse": 16, "num_threads": 24, "dataflow": 28,
        "isa": 32, "window_left": 36, "window_right": 40, "softcap": 44, "precision": 48,
        "sinks": 56, "alibi_slopes": 64, "mask": 72, "kv_quant": 80, "flags": 88, "reserved": 96}


def test_flat_tensor_layout():
    assert ctypes.sizeof(_types.FlatTensor) == 72
    assert offsets(_types.FlatTensor, ["data", "dtype", "batch", "dim", "stride_seq"]) == {
        "data": 0, "dtype": 8, "batch": 16, "dim": 40, "stride_seq": 64}


def test_flat_paged_kv_layout():
    assert ctypes.sizeof(_types.FlatPagedKV) == 152
    assert offsets(_types.FlatPagedKV, ["dtype", "k", "pages", "v_dim", "k_stride_page",
                                        "v_stride_head", "batch", "seq_lens",
                                        "block_table_stride", "q_offsets"]) == {
        "dtype": 0, "k": 8, "pages": 24, "v_dim": 56, "k_stride_page": 64,
        "v_stride_head": 104, "batch": 112, "seq_lens": 120, "block_table_stride": 136,
        "q_offsets": 144}


def test_unset_options_are_zero():
    o = _types.FlatOptions()
    assert bytes(o) == bytes(104)  # reserved words must be zero


def test_version_and_isa():
    assert flat.version().split(".")[:2] == flat.__version__.split(".")[:2]
    # flat_isa_detect: the best fp32-product table (AUTO never picks avx512_bf16,
    # amx_bf16 or avx512_vnni)
    assert flat.isa() == AUTO_ISA
    assert flat.library_path().startswith("/")
