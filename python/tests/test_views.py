"""Layouts, strides and views: passed through without a copy, or refused
with a clear error; out given or allocated; the lse array."""
import numpy as np
import pytest

import flat
import reference
from support import BF16_ISAS, ISAS, make

B, HQ, HKV, SQ, SK, D = 2, 4, 2, 12, 20, 16


@pytest.fixture
def qkv(rng):
    return make(rng, (B, HQ, SQ, D)), make(rng, (B, HKV, SK, D)), make(rng, (B, HKV, SK, D))


def ref(q, k, v, **kw):
    return reference.attention(q, k, v, **kw)[0]


@pytest.mark.parametrize("isa", ISAS)
def test_bshd_layout(qkv, isa):
    q, k, v = qkv
    tq, tk, tv = (np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in (q, k, v))
    out, lse = flat.attention(tq, tk, tv, layout="bshd", causal=True, isa=isa, return_lse=True)
    assert out.shape == (B, SQ, HQ, D) and out.flags.c_contiguous
    assert lse.shape == (B, HQ, SQ)  # lse is [B, Hq, Sq] whatever the layout
    tol = 1e-2 if isa in BF16_ISAS else 1e-5
    want, want_lse = reference.attention(q, k, v, causal=True)
    reference.check_rows(out.transpose(0, 2, 1, 3), want, tol, "bshd")
    same = flat.attention(q, k, v, causal=True, isa=isa, return_lse=True)
    reference.check_rows(out.transpose(0, 2, 1, 3), same[0].astype(np.float64), tol, "vs bhsd")


def test_transposed_views_without_copy(qkv):
    """A [B, S, H, D] buffer viewed as [B, H, S, D] is read in place, and out
    given as such a view is written in place."""
    q, k, v = qkv
    bq, bk, bv = (np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in (q, k, v))
    vq, vk, vv = (x.transpose(0, 2, 1, 3) for x in (bq, bk, bv))
    assert not vq.flags.c_contiguous
    base_out = np.full((B, SQ, HQ, D), np.nan, np.float32)
    out = base_out.transpose(0, 2, 1, 3)
    assert flat.attention(vq, vk, vv, out=out) is out
    reference.check_rows(base_out.transpose(0, 2, 1, 3), ref(q, k, v), 1e-5, "transposed")


def test_padded_sliced_and_broadcast_views(rng):
    """Slices with padding on every axis, a stride-0 batch (broadcast_to),
    every other key (seq stride 2): all zero-copy, all correct."""
    big_q = make(rng, (B + 1, HQ + 1, SQ + 3, D + 5))
    big_k = make(rng, (B, HKV, 2 * SK, D + 3))
    v1 = make(rng, (1, HKV, SK, D))
    q = big_q[1:, :HQ, 2:SQ + 2, :D]
    k = big_k[:, :, ::2, 1:D + 1]
    v = np.broadcast_to(v1, (B, HKV, SK, D))
    assert v.strides[0] == 0 and k.strides[2] == 2 * big_k.strides[2]
    big_out = np.full((B, HQ, SQ, D + 7), 5.0, np.float32)
    out = big_out[..., 3:D + 3]
    flat.attention(q, k, v, out=out, causal=True)
    reference.check_rows(out, ref(q, k, v, causal=True), 1e-5, "padded views")
    assert np.all(big_out[..., :3] == 5.0) and np.all(big_out[..., D + 3:] == 5.0)


def test_size_one_axes_any_stride(rng):
    """Axes of extent 1 carry strides numpy chose freely (np.newaxis gives 0)."""
    q3, k3, v3 = make(rng, (HQ, SQ, D)), make(rng, (HKV, SK, D)), make(rng, (HKV, SK, D))
    q, k, v = q3[np.newaxis], k3[np.newaxis], v3[np.newaxis]
    assert q.strides[0] == 0
    reference.check_rows(flat.attention(q, k, v), ref(q, k, v), 1e-5, "newaxis")
    one = make(rng, (1, 1, 1, D))[:, :, :, ::-1][..., ::-1]  # strides flipped twice
    flat.attention(one, one.copy(), one.copy())


def test_inputs_may_alias(qkv):
    q, _, _ = qkv
    x = q[:, :HKV]  # k and v the same view of q's memory
    reference.check_rows(flat.attention(q, x, x), ref(q, x, x), 1e-5, "aliased inputs")


def _odd_strides(shape):
    """float32 view whose seq stride (4 D + 2 bytes) is not a multiple of 4."""
    b, h, n, d = shape
    ss = 4 * d + 2
    buf = np.zeros(b * h * n * ss + 16, np.uint8)
    return np.ndarray(shape, np.float32, buf.data, strides=(h * n * ss, n * ss, ss, 4))


def _unaligned(shape):
    n = int(np.prod(shape))
    return np.frombuffer(np.zeros(4 * n + 1, np.uint8).data, np.float32, n, 1).reshape(shape)


# name: (a view of `shape` flat must refuse, words of the message)
REFUSED = {
    "last axis strided": (lambda s: np.zeros(s[:-1] + (2 * s[-1],), np.float32)[..., ::2],
                          "last axis is not contiguous"),
    "last axis moved": (lambda s: np.zeros(s[:2] + (s[3], s[2]), np.float32).transpose(0, 1, 3, 2),
                        "last axis is not contiguous"),
    "negative stride": (lambda s: np.zeros(s, np.float32)[:, :, ::-1], "negative stride on axis 2"),
    "stride not a multiple": (_odd_strides, "stride on axis 2 (66 bytes) is not a multiple"),
    "unaligned": (_unaligned, "data address is not a multiple of its item size"),
    "3-D": (lambda s: np.zeros(s[1:], np.float32), "must be 4-D"),
}


@pytest.mark.parametrize("which", ["q", "k", "v", "out"])
@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_views(qkv, case, which):
    """Each refused view raises ValueError naming the array and the reason;
    out (given) is untouched."""
    args = dict(zip("qkv", qkv))
    make_view, words = REFUSED[case]
    out = np.full((B, HQ, SQ, D), 3.0, np.float32)
    if which == "out":
        out = make_view(out.shape)
        out[...] = 3.0
        if case == "3-D":
            words = "out has shape (4, 12, 16)"
    else:
        args[which] = make_view(args[which].shape)
    with pytest.raises(ValueError) as e:
        flat.attention(args["q"], args["k"], args["v"], out=out)
    assert words in str(e.value) and str(e.value).startswith(which)
    assert np.all(out == 3.0)


def test_wrong_dtypes_and_objects(qkv):
    q, k, v = qkv
    with pytest.raises(TypeError, match="float64"):
        flat.attention(q.astype(np.float64), k, v)
    with pytest.raises(TypeError, match="dtype='bfloat16'"):
        flat.attention(q.view(np.uint16)[..., ::2], k, v)
    with pytest.raises(TypeError, match="byte order"):
        flat.attention(q.astype(">f4"), k, v)
    with pytest.raises(TypeError, match="numpy.ndarray, not list"):
        flat.attention(q.tolist(), k, v)
    with pytest.raises(TypeError, match="v has dtype float16 but k has float32"):
        flat.attention(q, k, v.astype(np.float16))
    with pytest.raises(ValueError, match="no array of the call is uint16"):
        flat.attention(q, k, v, dtype="bfloat16")
    with pytest.raises(ValueError, match="only value is 'bfloat16'"):
        flat.attention(q, k, v, dtype="float16")


def test_out_checks(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match=r"shape \(2, 4, 12, 8\); this call writes"):
        flat.attention(q, k, v, out=np.zeros((B, HQ, SQ, 8), np.float32))
    with pytest.raises(TypeError, match="must be float32"):
        flat.attention(q, k, v, out=np.zeros((B, HQ, SQ, D), np.float16))
    ro = np.zeros((B, HQ, SQ, D), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        flat.attention(q, k, v, out=ro)
    assert np.all(ro == 0)
    out = np.empty((B, HQ, SQ, D), np.float32)
    res, lse = flat.attention(q, k, v, out=out, return_lse=True)
    assert res is out and lse.dtype == np.float32 and lse.flags.c_contiguous


def test_readonly_inputs(qkv):
    q, k, v = (x.copy() for x in qkv)
    for x in (q, k, v):
        x.flags.writeable = False
    reference.check_rows(flat.attention(q, k, v), ref(q, k, v), 1e-5, "read-only inputs")


def test_bfloat16_and_float16_outputs(rng):
    q = make(rng, (1, 2, 5, 8), "bfloat16")
    k, v = make(rng, (1, 2, 7, 8), "float16"), make(rng, (1, 2, 7, 8), "float16")
    out = flat.attention(q, k, v, dtype="bfloat16")
    assert out.dtype == np.uint16 and out.shape == (1, 2, 5, 8)
    out16 = flat.attention(k[:, :, :5], q[:, :, :5], q[:, :, :5], dtype="bfloat16")
    assert out16.dtype == np.float16


MASKS = {
    "[Sq, Sk]": lambda r: r.uniform(-1, 1, (SQ, SK)),
    "[1, 1, Sq, Sk]": lambda r: r.uniform(-1, 1, (1, 1, SQ, SK)),
    "[B, Hq, 1, Sk]": lambda r: r.uniform(-1, 1, (B, HQ, 1, SK)),
    "[B, 1, Sq, Sk] slice": lambda r: r.uniform(-1, 1, (B, 1, SQ, SK + 9))[..., 4:SK + 4],
}


@pytest.mark.parametrize("shape", list(MASKS))
def test_mask_broadcasts_without_copy(rng, qkv, shape):
    q, k, v = qkv
    m = MASKS[shape](rng).astype(np.float32)
    reference.check_rows(flat.attention(q, k, v, mask=m), ref(q, k, v, mask=m), 1e-5, shape)


def test_mask_refusals(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match=r"does not broadcast to \[B, Hq, q_len, kv_len\]"):
        flat.attention(q, k, v, mask=np.zeros((SQ, SK + 1), np.float32))
    with pytest.raises(ValueError, match="mask's last axis is not contiguous"):
        flat.attention(q, k, v, mask=np.zeros((SQ, 1), np.float32))
    with pytest.raises(ValueError, match="mask's last axis is not contiguous"):
        flat.attention(q, k, v, mask=np.zeros((SQ, 2 * SK), np.float32)[:, ::2])
