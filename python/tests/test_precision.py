"""flat_precision and the ISAs 0.3 appends (amx_bf16, avx512_vnni) from Python.

precision= on every call that takes isa= (flat.attention, attention_paged,
plan, plan_paged): int8 products on int8 and int4 caches within their bound
(flat.h: 2e-2 relative row error against the reference on the dequantized
cache) where the CPU has AVX512_VNNI, FLAT_ERROR_UNSUPPORTED where it lacks
it; bf16 and fp32 products; names refused in Python. Which outcome is right
is decided from /proc/cpuinfo (support.ISAS), independently of flat, and
both are asserted: nothing is skipped."""
import numpy as np
import pytest

import flat
import reference
from flat import _lib, _types, api
from support import AUTO_ISA, BF16_ISAS, INT8_ROW_TOL, ISAS, as_f64, make, row_tol

HAS_VNNI = "avx512_vnni" in ISAS
HAS_BF16 = any(i in ISAS for i in BF16_ISAS)
# the table precision="bf16" takes: amx_bf16 where it runs, else avx512_bf16
BF16_TABLE = "amx_bf16" if "amx_bf16" in ISAS else "avx512_bf16"
# flat.h's enum values, written out here (not taken from _types)
PRECISION_VALUES = {"auto": 0, "fp32": 1, "bf16": 2, "int8": 3}
ISA_VALUES = {"auto": 0, "scalar": 1, "avx2": 2, "avx512": 3, "neon": 4, "avx512_bf16": 5,
              "amx_bf16": 6, "avx512_vnni": 7}
SENTINEL = 7.25


@pytest.fixture(autouse=True)
def no_flat_isa_env(monkeypatch):
    """FLAT_ISA overrides AUTO's choice (precision included): these tests judge the policy."""
    monkeypatch.delenv("FLAT_ISA", raising=False)


def sentinel_like(shape):
    return np.full(shape, SENTINEL, np.float32)


def rel_rows(got, want):
    got, want = as_f64(got), as_f64(want)
    return (np.linalg.norm(got - want, axis=-1) / np.linalg.norm(want, axis=-1)).max()


def quant_cache(rng, kind, shape=(2, 2, 300, 64)):
    """Codes, scales (groups of 32 for K and V: the int8 kernels take them) and
    the dequantized float K and V, from uniform [-1, 1] data (logits of O(1))."""
    k = rng.uniform(-1, 1, shape).astype(np.float32)
    v = rng.uniform(-1, 1, shape).astype(np.float32)
    kc, ks = flat.quantize(k, kind, 32)
    vc, vs = flat.quantize(v, kind, 32)
    kd, vd = flat.dequantize(kc, ks, kind, 32), flat.dequantize(vc, vs, kind, 32)
    return kc, vc, kd, vd, flat.KVQuant(kind, ks, vs, 32)


def test_isa_names_are_the_library_s():
    """_types.ISAS in flat_isa order, each name flat_isa_name's, and none missing."""
    lib = _lib.lib()
    for name, value in ISA_VALUES.items():
        assert _types.ISAS.index(name) == value, name
        assert lib.flat_isa_name(value).decode() == name
    assert len(_types.ISAS) == len(ISA_VALUES)
    assert lib.flat_isa_name(len(_types.ISAS)).decode() == "unknown"  # the enum ends there
    assert flat.isa() == AUTO_ISA  # AUTO takes neither amx_bf16 nor avx512_vnni


@pytest.mark.parametrize("name", list(PRECISION_VALUES))
def test_precision_reaches_the_options(rng, name):
    q, k, v = make(rng, (1, 2, 1, 16)), make(rng, (1, 2, 8, 16)), make(rng, (1, 2, 8, 16))
    assert api._prepare_dense(q, k, v, precision=name).opts.precision == PRECISION_VALUES[name]
    assert api._prepare_dense(q, k, v, precision=name.upper()).opts.precision == \
        PRECISION_VALUES[name]  # names are case-insensitive, as isa's
    assert api._prepare_dense(q, k, v).opts.precision == 0  # default: FLAT_PRECISION_AUTO


@pytest.mark.parametrize("bad", ["fp16", "", "int4", None, 3, "int8 "])
def test_bad_precision_raises(rng, bad):
    q, k, v = make(rng, (1, 2, 1, 16)), make(rng, (1, 2, 8, 16)), make(rng, (1, 2, 8, 16))
    words = f"precision={bad!r}: must be one of 'auto', 'fp32', 'bf16', 'int8'"
    out = sentinel_like(q.shape)
    calls = [lambda: flat.attention(q, k, v, out=out, precision=bad),
             lambda: flat.plan(q, k, v, out=out, precision=bad),
             lambda: flat.attention_paged(q, k, v, [[0]], [8], kv_layout="hnd", out=out,
                                          precision=bad),
             lambda: flat.plan_paged(q, k, v, [[0]], [8], kv_layout="hnd", out=out,
                                     precision=bad)]
    for call in calls:
        with pytest.raises(ValueError) as e:
            call()
        assert words in str(e.value) and not isinstance(e.value, flat.FlatError)
    assert np.all(out == SENTINEL)


def expect_int8(call, out, what):
    """Run call(); where the CPU lacks AVX512_VNNI it must raise
    FLAT_ERROR_UNSUPPORTED naming avx512_vnni and leave out untouched.
    Returns the result or None."""
    if HAS_VNNI:
        return call()
    with pytest.raises(flat.UnsupportedError) as e:
        call()
    assert e.value.status == 2 and "avx512_vnni" in e.value.message, what
    assert "opt.precision (3, int8)" in e.value.message, what
    assert np.all(out == SENTINEL), what
    return None


@pytest.mark.parametrize("kind", ["int8", "int4"])
@pytest.mark.parametrize("shape", ["decode", "gqa_decode", "prefill"])
def test_int8_products(rng, kind, shape):
    """precision="int8" on a quantized cache: within 2e-2 of the reference on
    the dequantized cache; on the decode path Q is rounded to int8, so the
    rows are not fp32 products' bits; the plan names the table and the rule."""
    hq, sq, causal = {"decode": (2, 1, False), "gqa_decode": (8, 1, False),
                      "prefill": (4, 24, True)}[shape]
    kc, vc, kd, vd, kvq = quant_cache(rng, kind)
    q = rng.uniform(-1, 1, (2, hq, sq, 64)).astype(np.float32)
    want, _ = reference.attention(q, kd, vd, causal=causal)
    kw = dict(causal=causal, kv_quant=kvq)
    fp32 = flat.attention(q, kc, vc, precision="fp32", **kw)
    reference.check_rows(fp32, want, 1e-5, f"{kind} {shape} fp32 products")
    out = sentinel_like(want.shape)
    got = expect_int8(lambda: flat.attention(q, kc, vc, out=out, precision="int8", **kw),
                      out, f"{kind} {shape}")
    if got is None:
        return
    what = f"{kind} {shape} int8 products"
    assert got is out
    reference.check_rows(got, want, INT8_ROW_TOL, what)
    if sq == 1:  # the decode path's Q.K^T rounds Q: not the fp32 products' bits
        assert not np.array_equal(got, fp32), what + ": the bits of fp32 products"
        assert rel_rows(got, fp32) > 1e-5, what
    with flat.plan(q, kc, vc, precision="int8", **kw) as p:
        text = p.describe()
        assert "isa=avx512_vnni " in text and "by precision int8: int8 products" in text, text
        assert np.array_equal(p.execute(), got), what + ": plan against the call"
    # an explicit isa wins over precision: its table's (fp32) products
    explicit = flat.attention(q, kc, vc, isa=AUTO_ISA, precision="int8", **kw)
    assert np.array_equal(explicit, fp32), what + f": isa={AUTO_ISA} ignored"


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_int8_products_paged(rng, kind):
    """attention_paged and plan_paged carry precision= too: an "nhd" code pool
    with its scale pool, two sequences."""
    ps, pages, hkv, d = 16, 24, 2, 64
    kf = rng.uniform(-1, 1, (pages, ps, hkv, d)).astype(np.float32)
    vf = rng.uniform(-1, 1, (pages, ps, hkv, d)).astype(np.float32)
    kc, ks = flat.quantize(kf, kind, 32, layout="bshd")
    vc, vs = flat.quantize(vf, kind, 32, layout="bshd")
    kd, vd = flat.dequantize(kc, ks, kind), flat.dequantize(vc, vs, kind)
    kvq = flat.KVQuant(kind, ks, vs, 32)
    table = np.array([[3, 0, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23],
                      [6, 1, 2, 4, 8, 10, 12, 14, 16, 18, 20, 22]], np.int32)
    lens = np.array([180, 97], np.int32)
    q = rng.uniform(-1, 1, (2, 8, 1, d)).astype(np.float32)
    want = []
    for b in range(2):
        kb = np.stack([kd[table[b, j // ps], j % ps] for j in range(lens[b])], 1)[None]
        vb = np.stack([vd[table[b, j // ps], j % ps] for j in range(lens[b])], 1)[None]
        want.append(reference.attention(q[b:b + 1], kb, vb)[0])
    want = np.concatenate(want)
    kw = dict(layout="bhsd", kv_quant=kvq)
    fp32 = flat.attention_paged(q, kc, vc, table, lens, precision="fp32", **kw)
    reference.check_rows(fp32, want, 1e-5, f"paged {kind} fp32 products")
    out = sentinel_like(q.shape)
    got = expect_int8(lambda: flat.attention_paged(q, kc, vc, table, lens, out=out,
                                                   precision="int8", **kw), out, f"paged {kind}")
    with flat.plan_paged(q, kc, vc, table, lens, precision="fp32", **kw) as p:
        assert "by precision fp32: fp32 products" in p.describe(), p.describe()
    if got is None:
        return
    reference.check_rows(got, want, INT8_ROW_TOL, f"paged {kind} int8 products")
    assert rel_rows(got, fp32) > 1e-5, f"paged {kind}: the bits of fp32 products"
    with flat.plan_paged(q, kc, vc, table, lens, precision="int8", **kw) as p:
        assert "isa=avx512_vnni " in p.describe(), p.describe()
        assert np.array_equal(p.execute(), got), f"paged {kind}: plan against the call"


def test_int8_on_a_float_cache_is_fp32_products(rng):
    """precision="int8" on K/V that are not int8 or int4 gives fp32 products, on
    every CPU (no error where AVX512_VNNI is missing)."""
    q, k, v = make(rng, (2, 4, 1, 64)), make(rng, (2, 2, 90, 64)), make(rng, (2, 2, 90, 64))
    got = flat.attention(q, k, v, precision="int8")
    assert np.array_equal(got, flat.attention(q, k, v, precision="fp32"))
    with flat.plan(q, k, v, precision="int8") as p:
        assert "precision int8: fp32 products (k/v f32" in p.describe(), p.describe()


def test_bf16_products(rng):
    """precision="bf16" on float32 data: bf16 products (within their 1e-2 bound,
    not fp32 products' bits) where a bf16 table runs, else UNSUPPORTED."""
    q, k, v = make(rng, (2, 4, 24, 64)), make(rng, (2, 2, 70, 64)), make(rng, (2, 2, 70, 64))
    want, want_lse = reference.attention(q, k, v, causal=True)
    fp32, fp32_lse = flat.attention(q, k, v, causal=True, precision="fp32", return_lse=True)
    reference.check_rows(fp32, want, 1e-5, "fp32 products")
    assert np.array_equal(fp32, flat.attention(q, k, v, causal=True))  # auto on f32: fp32
    out = sentinel_like(q.shape)
    if not HAS_BF16:
        with pytest.raises(flat.UnsupportedError) as e:
            flat.attention(q, k, v, causal=True, out=out, precision="bf16")
        assert "opt.precision (2, bf16)" in e.value.message and np.all(out == SENTINEL)
        return
    got, lse = flat.attention(q, k, v, causal=True, out=out, precision="bf16", return_lse=True)
    tol, lse_bound = row_tol(np.float32, BF16_TABLE)
    reference.check_rows(got, want, tol, "bf16 products")
    reference.check_lse(lse, want_lse, lse_bound, "bf16 products")
    assert rel_rows(got, fp32) > 1e-6, "precision='bf16' gave fp32 products"
    with flat.plan(q, k, v, causal=True, precision="bf16") as p:
        assert f"isa={BF16_TABLE} " in p.describe() and "by precision bf16" in p.describe()
        assert np.array_equal(p.execute(), got)
    # an explicit isa wins: fp32 products
    assert np.array_equal(flat.attention(q, k, v, causal=True, isa=AUTO_ISA, precision="bf16"),
                          fp32)


def test_fp32_products_on_bf16_data(rng):
    """precision="fp32" on all-bfloat16 q, k, v: the fp32 table (the bits of an
    explicit isa=<best fp32 table>) within the bf16-out bound of 8e-3."""
    q, k, v = (make(rng, s, "bfloat16") for s in ((1, 4, 9, 32), (1, 2, 50, 32), (1, 2, 50, 32)))
    want, _ = reference.attention(as_f64(q), as_f64(k), as_f64(v), causal=True)
    got = flat.attention(q, k, v, causal=True, dtype="bfloat16", precision="fp32")
    assert got.dtype == np.uint16
    reference.check_rows(as_f64(got), want, row_tol(np.uint16, AUTO_ISA)[0], "fp32 on bf16")
    same = flat.attention(q, k, v, causal=True, dtype="bfloat16", isa=AUTO_ISA)
    assert np.array_equal(got, same)
    with flat.plan(q, k, v, causal=True, dtype="bfloat16", precision="fp32") as p:
        assert f"isa={AUTO_ISA} " in p.describe() and "by precision fp32" in p.describe()


def test_avx512_vnni_by_name(rng):
    """isa="avx512_vnni": on float K/V the AVX-512 table's fp32 kernels and bits;
    UNSUPPORTED naming it on a CPU without AVX512_VNNI."""
    q, k, v = make(rng, (2, 4, 5, 64)), make(rng, (2, 2, 40, 64)), make(rng, (2, 2, 40, 64))
    out = sentinel_like(q.shape)
    if not HAS_VNNI:
        with pytest.raises(flat.UnsupportedError) as e:
            flat.attention(q, k, v, out=out, isa="avx512_vnni")
        assert "isa avx512_vnni requested" in e.value.message and np.all(out == SENTINEL)
        return
    got = flat.attention(q, k, v, causal=True, isa="avx512_vnni")
    assert np.array_equal(got, flat.attention(q, k, v, causal=True, isa="avx512"))
    with flat.plan(q, k, v, isa="avx512_vnni") as p:
        assert "isa=avx512_vnni " in p.describe() and "by opt.isa" in p.describe()


def test_amx_bf16_by_name(rng):
    """isa="amx_bf16": within the bf16 bound where the CPU (and OS) has AMX; a
    clean FLAT_ERROR_UNSUPPORTED naming what is missing elsewhere (this
    suite's AMD machines), on the call, the plan and the paged call alike."""
    q, k, v = make(rng, (1, 4, 16, 64)), make(rng, (1, 2, 30, 64)), make(rng, (1, 2, 30, 64))
    want, _ = reference.attention(q, k, v)
    out = sentinel_like(q.shape)
    calls = {"flat_attention": lambda: flat.attention(q, k, v, out=out, isa="amx_bf16"),
             "flat_plan_create": lambda: flat.plan(q, k, v, out=out, isa="amx_bf16").execute(),
             "flat_attention_paged": lambda: flat.attention_paged(
                 q, k, v, [[0]], [30], kv_layout="hnd", out=out, isa="amx_bf16")}
    for function, call in calls.items():
        if "amx_bf16" in ISAS:
            reference.check_rows(call(), want, row_tol(np.float32, "amx_bf16")[0], function)
            continue
        with pytest.raises(flat.UnsupportedError) as e:
            call()
        assert e.value.function == function and e.value.status == 2
        assert "isa amx_bf16 requested but" in e.value.message, e.value.message
        assert "amx" in e.value.message.split("requested but", 1)[1], e.value.message
        assert np.all(out == SENTINEL), function
