"""Quantized K/V caches from Python: flat.quantize (codes and scales as the
C library defines them), flat.dequantize, and flat.attention /
flat.attention_paged / flat.plan with kv_quant against the float64 reference
on the dequantized values, on every ISA this CPU runs."""
import ctypes

import numpy as np
import pytest

import flat
import reference
from flat import _types
from support import INT8_ISAS, INT8_ROW_TOL, ISAS, row_tol

KINDS = ("int8", "fp8_e4m3", "int4")
STEP = {"int8": 127.0, "fp8_e4m3": 448.0, "int4": 7.0}


def test_struct_layout():
    assert ctypes.sizeof(_types.FlatKVQuant) == 168  # 2 x 72 + 2 x 4 + 2 x 8
    assert _types.FlatKVQuant.k_group.offset == 144


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scale_dtype", ["float16", "float32"])
def test_quantize_round_trip(rng, kind, scale_dtype):
    x = rng.uniform(-3, 3, (2, 3, 17, 64)).astype(np.float32)
    x[0, 0, 0, :32] = 0.0  # an all-zero group: scale 0, codes 0
    codes, scales = flat.quantize(x, kind, 32, scale_dtype=scale_dtype)
    assert scales.shape == (2, 3, 17, 2) and scales.dtype == np.dtype(scale_dtype)
    assert codes.shape == ((2, 3, 17, 32) if kind == "int4" else x.shape)
    assert scales[0, 0, 0, 0] == 0
    amax = np.abs(x.reshape(2, 3, 17, 2, 32)).max(-1)
    want = (amax / np.float32(STEP[kind])).astype(np.float32).astype(scale_dtype)
    np.testing.assert_array_equal(scales, want)
    back = flat.dequantize(codes, scales, kind, 32)
    assert np.all(back[0, 0, 0, :32] == 0)
    s = np.repeat(scales.astype(np.float32), 32, -1)
    if kind == "fp8_e4m3":  # 3 mantissa bits: half an ulp of the value
        assert np.all(np.abs(back - x) <= np.abs(x) * 2.0**-4 + s * 2.0**-9 + 1e-7)
    else:
        assert np.all(np.abs(back - x) <= 0.5 * s * 1.001 + 1e-6)
    if kind == "int8":
        assert codes.min() >= -127


def test_quantize_given_scales_and_errors(rng):
    x = rng.uniform(-1, 1, (1, 2, 4, 8)).astype(np.float32)
    per_channel = np.full((1, 2, 1, 8), 1 / 127, np.float32)  # broadcast over seq
    codes, sc = flat.quantize(x, "int8", 1, scales=per_channel)
    assert sc is per_channel
    np.testing.assert_array_equal(codes, np.clip(np.rint(x / np.float32(1 / 127)), -127, 127))
    x[0, 1, 2, 3] = np.nan
    with pytest.raises(flat.InvalidArgumentError, match=r"src\[0\]\[1\]\[2\]\[3\]"):
        flat.quantize(x, "int8", 8)
    with pytest.raises(ValueError, match="kind"):
        flat.quantize(x, "int2", 8)


def _case(rng, kind, layout_bshd=False):
    q = rng.uniform(-1, 1, (2, 4, 3, 64)).astype(np.float32)
    k = rng.uniform(-1, 1, (2, 2, 40, 64)).astype(np.float32)
    v = rng.uniform(-1, 1, (2, 2, 40, 64)).astype(np.float32)
    if kind == "int4":  # keys per channel (a scale per dim shared by all tokens)
        ks_ = np.abs(k).max(axis=2, keepdims=True) / np.float32(7)
        kc, ks = flat.quantize(k, kind, 1, scales=ks_.astype(np.float16))
    else:
        kc, ks = flat.quantize(k, kind, 32)
    vc, vs = flat.quantize(v, kind, 32)
    kg = 1 if kind == "int4" else 32
    kd = flat.dequantize(kc, np.broadcast_to(ks, k.shape[:3] + (64 // kg,)), kind, kg)
    vd = flat.dequantize(vc, vs, kind, 32)
    kvq = flat.KVQuant(kind, np.broadcast_to(ks, k.shape[:3] + (64 // kg,)), vs, kg, 32)
    return q, kc, vc, kd, vd, kvq


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("isa", ISAS)
def test_attention_quantized(rng, kind, isa):
    q, kc, vc, kd, vd, kvq = _case(rng, kind)
    want, _ = reference.attention(q, kd, vd, causal=True)
    # avx512_vnni: int8 products on int8 and int4 caches (their own bound)
    int8 = isa in INT8_ISAS and kind in ("int8", "int4")
    tol = INT8_ROW_TOL if int8 else row_tol(np.float32, isa)[0]
    for dataflow in ("auto", "decode", "flash"):
        got = flat.attention(q, kc, vc, causal=True, kv_quant=kvq, isa=isa, dataflow=dataflow)
        reference.check_rows(got, want, tol, f"{kind} {isa} {dataflow}")
    with flat.plan(q, kc, vc, causal=True, kv_quant=kvq, isa=isa) as p:
        reference.check_rows(p.execute(), want, tol, "plan")


def test_fp8_without_scales(rng):
    q = rng.uniform(-1, 1, (1, 2, 1, 16)).astype(np.float32)
    kc = np.full((1, 2, 5, 16), 0x38, np.uint8)  # 1.0
    vc = np.full((1, 2, 5, 16), 0x40, np.uint8)  # 2.0
    got = flat.attention(q, kc, vc, kv_quant=flat.KVQuant("fp8_e4m3"))
    np.testing.assert_array_equal(got, np.full((1, 2, 1, 16), 2.0, np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_paged_quantized(rng, kind):
    """Pools [pages, page_size, Hkv, D] with scale pools [pages, page_size, Hkv, D/32]."""
    ps, pages, hkv, d = 8, 7, 2, 64
    kf = rng.uniform(-1, 1, (pages, ps, hkv, d)).astype(np.float32)
    vf = rng.uniform(-1, 1, (pages, ps, hkv, d)).astype(np.float32)
    # flat.quantize reads 4-D rows in any layout: the pool is [B, S, H, D] for layout="bshd"
    kc, ks = flat.quantize(kf, kind, 32, layout="bshd")
    vc, vs = flat.quantize(vf, kind, 32, layout="bshd")
    table = np.array([[3, 0, 5], [6, 1, -1]], np.int32)
    lens = np.array([20, 11], np.int32)
    q = rng.uniform(-1, 1, (2, 4, 1, d)).astype(np.float32)
    got = flat.attention_paged(q, kc, vc, table, lens, layout="bhsd",
                               kv_quant=flat.KVQuant(kind, ks, vs, 32))
    kd, vd = flat.dequantize(kc, ks, kind), flat.dequantize(vc, vs, kind)
    for b in range(2):
        rows = [kd[table[b, j // ps], j % ps] for j in range(lens[b])]
        vrows = [vd[table[b, j // ps], j % ps] for j in range(lens[b])]
        kb = np.stack(rows, 1)[None]  # [1, Hkv, S, D]
        vb = np.stack(vrows, 1)[None]
        want, _ = reference.attention(q[b:b + 1], kb, vb)
        reference.check_rows(got[b:b + 1], want, 1e-5 if flat.isa() != "avx512_bf16" else 1e-2)
