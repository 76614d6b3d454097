"""A float64 numpy reference of flat's attention and the comparison of results."""
import numpy as np


def attention(q, k, v, *, causal=False, scale=None, kv_lens=None, window=(0, 0), softcap=0.0,
              sinks=None, alibi_slopes=None, mask=None):
    """(out, lse) in float64; q [B, Hq, Sq, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv].

    The rules of flat.h: p = i + kv_len_b - q_len is query row i's aligned
    position; causal keeps j <= p; window (left, right) keeps j >= p - left
    (left > 0) and j <= p + right (right > 0); keys j >= kv_lens[b] are
    invisible; softcap s = cap tanh(s / cap) comes first, then ALiBi
    -slope_h |p - j| and the additive mask; a sink joins each row's softmax
    as exp(sink_h) with no value. A row that sees no key: zero out and lse =
    -inf (the sink, with sinks)."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b_, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    k, v = np.repeat(k, hq // hkv, axis=1), np.repeat(v, hq // hkv, axis=1)
    s = (1.0 / np.sqrt(d) if scale is None else scale) * np.einsum("bhid,bhjd->bhij", q, k)
    if softcap > 0:
        s = softcap * np.tanh(s / softcap)
    lens = np.full(b_, sk) if kv_lens is None else np.asarray(kv_lens)
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, np.float64), (b_, hq, sq, sk))
    j = np.arange(sk)[None, :]
    out = np.zeros((b_, hq, sq, v.shape[3]))
    lse = np.empty((b_, hq, sq))
    for b in range(b_):
        p = np.arange(sq)[:, None] + lens[b] - sq
        seen = np.broadcast_to(j < lens[b], (sq, sk)).copy()
        if causal:
            seen &= j <= p
        if window[0] > 0:
            seen &= j >= p - window[0]
        if window[1] > 0:
            seen &= j <= p + window[1]
        sb = s[b].copy()
        if alibi_slopes is not None:
            sb -= np.asarray(alibi_slopes, np.float64)[:, None, None] * np.abs(p - j)
        if mask is not None:
            sb += mask[b]
        sb = np.where(seen, sb, -np.inf)
        m = sb.max(axis=-1, keepdims=True)
        if sinks is not None:
            sink = np.asarray(sinks, np.float64)[:, None, None]
            m = np.maximum(m, sink)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(sb - m)
        den = e.sum(axis=-1, keepdims=True)
        if sinks is not None:
            den = den + np.exp(sink - m)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[b] = np.where(den > 0, (e @ v[b]) / den, 0.0)
            lse[b] = np.where(den[..., 0] > 0, np.log(den[..., 0]) + m[..., 0], -np.inf)
    return out, lse


def check_rows(got, want, tol, what=""):
    """Each row's relative 2-norm error within tol; rows the reference makes zero exactly zero."""
    got = np.asarray(got, np.float64).reshape(-1, got.shape[-1])
    want = want.reshape(-1, want.shape[-1])
    norm = np.linalg.norm(want, axis=1)
    zero = norm == 0
    assert np.all(got[zero] == 0), f"{what}: rows that see no key are not zero"
    err = np.linalg.norm(got - want, axis=1)[~zero] / norm[~zero]
    assert np.all(err <= tol), f"{what}: worst row error {err.max():.3g} > {tol:g}"
    return err.max() if err.size else 0.0


def check_lse(got, want, bound, what=""):
    """|lse - ref| <= bound(ref) (see support.row_tol); -inf exactly where the reference has it."""
    got = np.asarray(got, np.float64)
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), f"{what}: lse of rows with no key"
    err = np.abs(got[~inf] - want[~inf])
    lim = bound(want[~inf])
    assert np.all(err <= lim), f"{what}: worst lse error {np.max(err - lim):.3g} over its bound"
