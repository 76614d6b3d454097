"""flat.attention against the float64 reference: every option on every ISA
this CPU runs and every dataflow, then every q and K/V dtype pairing."""
import numpy as np
import pytest

import flat
import reference
from support import DATAFLOWS, DTYPES, ISAS, as_f64, make, row_tol

NEG = -np.inf


def _mask(rng, b, h, sq, sk):
    m = rng.uniform(-1.0, 1.0, (b, h, sq, sk)).astype(np.float32)
    m[rng.random(m.shape) < 0.2] = NEG
    return m


# name: (B, Hq, Hkv, Sq, Sk, D, Dv, options(rng) -> dict)
CASES = {
    "plain": (2, 4, 2, 24, 40, 32, 32, lambda r: {}),
    "causal": (2, 4, 2, 24, 40, 32, 32, lambda r: {"causal": True}),
    "causal_square": (1, 2, 2, 33, 33, 16, 16, lambda r: {"causal": "bottom_right"}),
    "scale": (1, 4, 4, 12, 20, 32, 32, lambda r: {"scale": 0.3}),
    "kv_lens": (2, 4, 2, 24, 40, 32, 32, lambda r: {"kv_lens": [40, 17], "causal": True}),
    "kv_lens_empty": (2, 2, 1, 8, 16, 16, 16, lambda r: {"kv_lens": np.array([0, 5])}),
    "window_left": (1, 4, 2, 30, 50, 32, 32, lambda r: {"causal": True, "window": (7, 0)}),
    "window_both": (2, 2, 2, 20, 20, 16, 16, lambda r: {"window": (5, 3)}),
    "softcap": (2, 4, 2, 24, 40, 32, 32, lambda r: {"softcap": 1.5, "scale": 0.5}),
    "sinks": (2, 4, 2, 10, 30, 32, 32,
              lambda r: {"sinks": [0.5, -1.0, 2.0, 0.0], "kv_lens": [30, 0]}),
    "alibi": (2, 4, 2, 24, 40, 32, 32,
              lambda r: {"alibi_slopes": [0.5, 0.25, 0.125, 0.0625], "causal": True}),
    "mask": (2, 4, 2, 24, 40, 32, 32, lambda r: {"mask": _mask(r, 2, 1, 24, 40)}),
    "mqa_dv": (2, 4, 1, 9, 70, 32, 24, lambda r: {"causal": True}),
    "decode": (3, 8, 2, 1, 100, 64, 64, lambda r: {"kv_lens": [100, 1, 64]}),
    "all_rules": (2, 4, 2, 16, 48, 32, 32, lambda r: {
        "causal": True, "kv_lens": [48, 30], "window": (20, 0), "softcap": 4.0,
        "sinks": [1.0, -0.5, 0.0, 0.25], "alibi_slopes": [0.1, 0.05, 0.2, 0.0],
        "mask": _mask(r, 2, 4, 16, 48)}),
}


def run_and_check(rng, case, isa, dataflow, qdt="float32", kvdt="float32", threads=1):
    b, hq, hkv, sq, sk, d, dv, options = CASES[case]
    opts = options(rng)
    q = make(rng, (b, hq, sq, d), qdt)
    k = make(rng, (b, hkv, sk, d), kvdt)
    v = make(rng, (b, hkv, sk, dv), kvdt)
    bf16 = "bfloat16" in (qdt, kvdt)
    out, lse = flat.attention(q, k, v, return_lse=True, isa=isa, dataflow=dataflow,
                              num_threads=threads, dtype="bfloat16" if bf16 else None, **opts)
    assert out.shape == (b, hq, sq, dv) and out.dtype == q.dtype
    assert lse.shape == (b, hq, sq) and lse.dtype == np.float32
    ref_opts = dict(opts)
    if ref_opts.get("causal") == "bottom_right":
        ref_opts["causal"] = True
    want, want_lse = reference.attention(as_f64(q), as_f64(k), as_f64(v), **ref_opts)
    tol, lse_bound = row_tol(out.dtype, isa)
    what = f"{case} isa={isa} dataflow={dataflow} q={qdt} kv={kvdt}"
    reference.check_rows(as_f64(out), want, tol, what)
    reference.check_lse(lse, want_lse, lse_bound, what)
    return out


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("isa", ISAS)
def test_options(rng, case, isa, dataflow):
    run_and_check(rng, case, isa, dataflow, threads=1 + len(case) % 2)


@pytest.mark.parametrize("kvdt", DTYPES)
@pytest.mark.parametrize("qdt", DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_dtypes(rng, isa, qdt, kvdt):
    for case, dataflow in (("plain", "flat"), ("causal", "flash"), ("decode", "decode"),
                           ("all_rules", "auto")):
        run_and_check(rng, case, isa, dataflow, qdt, kvdt, threads=2)


def test_auto_defaults(rng):
    """No keyword at all: AUTO isa and dataflow, the OpenMP default thread count."""
    q, k, v = (make(rng, (1, 2, 16, 32)) for _ in range(3))
    want, _ = reference.attention(q, k, v)
    reference.check_rows(flat.attention(q, k, v), want, 1e-5, "defaults")


def test_sinks_row_without_keys_is_zero_with_lse_sink(rng):
    q, k, v = (make(rng, (1, 2, 4, 8)) for _ in range(3))
    out, lse = flat.attention(q, k, v, kv_lens=[0], sinks=[1.5, -2.0], return_lse=True)
    assert np.all(out == 0)
    assert np.array_equal(lse, np.array([[[1.5] * 4, [-2.0] * 4]], np.float32))


def test_fully_masked_row_is_zero_with_lse_minus_inf(rng):
    q, k, v = (make(rng, (1, 1, 3, 8)) for _ in range(3))
    mask = np.zeros((3, 3), np.float32)
    mask[1] = NEG
    out, lse = flat.attention(q, k, v, mask=mask, return_lse=True)
    assert np.all(out[0, 0, 1] == 0) and lse[0, 0, 1] == NEG
    assert np.all(np.isfinite(lse[0, 0, [0, 2]]))


def test_bfloat16_conversions():
    x = np.array([1.0, -2.5, 3.14159, 1e-3, 65504.0, np.inf, -np.inf, 0.0, -0.0], np.float32)
    b = flat.to_bfloat16(x)
    assert b.dtype == np.uint16
    back = flat.from_bfloat16(b)
    assert np.all(np.abs(back[:5] - x[:5]) <= np.abs(x[:5]) * 2.0**-8)
    assert np.array_equal(back[5:], x[5:]) and np.signbit(back[8])
    # ties go to even: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7
    assert flat.from_bfloat16(flat.to_bfloat16(np.float32(1 + 2.0**-8)))[()] == 1.0
    assert np.isnan(flat.from_bfloat16(flat.to_bfloat16(np.float32(np.nan))))


@pytest.mark.parametrize("kind", ["float16", "bfloat16"])
def test_16bit_mask_is_bitwise_the_float32_mask(rng, kind):
    """An f16 mask (llama.cpp's) or a bf16 one gives the bits of the float32 mask of
    the same values (flat widens it exactly)."""
    q = rng.standard_normal((2, 4, 9, 32)).astype(np.float32)
    k, v = (rng.standard_normal((2, 2, 700, 32)).astype(np.float32) for _ in range(2))
    m32 = (rng.integers(-32, 33, (2, 4, 9, 700)) / 8).astype(np.float32)
    m32[rng.random(m32.shape) < 0.2] = NEG
    if kind == "float16":
        m16, kw = m32.astype(np.float16), {}
    else:
        m16, kw = flat.to_bfloat16(m32), {"dtype": "bfloat16"}
    want, want_lse = flat.attention(q, k, v, mask=m32, causal=True, return_lse=True)
    got, got_lse = flat.attention(q, k, v, mask=m16, causal=True, return_lse=True, **kw)
    assert np.array_equal(want, got) and np.array_equal(want_lse, got_lse)

