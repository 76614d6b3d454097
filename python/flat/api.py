"""flat.attention and flat.attention_paged over numpy arrays, zero-copy."""
import numpy as np

import ctypes

from . import _arrays, _lib, _options, _quant, _types, errors
from ._arrays import check_layout, dtype_code, tensor

KV_LAYOUTS = ("nhd", "hnd")
# The q layout that matches each pool layout: a token-major "nhd" pool
# [pages, page_size, H, D] goes with a token-major q [B, S, H, D] (vLLM's
# q [tokens, heads, dim]); a head-major "hnd" pool with [B, H, S, D].
Q_LAYOUT_OF_POOL = {"nhd": "bshd", "hnd": "bhsd"}


class _Call:
    """The structs of one call and every array they point into (kept alive with it)."""

    def __init__(self, q_t, out_t, opts, out, lse, keep, k_t=None, v_t=None, kv=None):
        self.q, self.out_t, self.opts, self.k, self.v, self.kv = q_t, out_t, opts, k_t, v_t, kv
        self.out, self.lse, self.keep = out, lse, keep

    def result(self):
        return (self.out, self.lse) if self.lse is not None else self.out


def _q_and_out(q, out, layout, bf16, dv, return_lse, extra_codes):
    """Checks shared by both calls: q's view, out (given or allocated), lse."""
    layout = check_layout(layout)
    cq = dtype_code(q, "q", bf16)
    if bf16 and _types.BF16 not in [cq] + extra_codes:
        raise ValueError("dtype='bfloat16' but no array of the call is uint16 (bfloat16 bits)")
    q_t = tensor(q, "q", layout, cq)
    b, h, s, _ = _arrays.bhsd_extents(q, layout)
    out = _arrays.output(out, "out", _arrays.shape_in(layout, b, h, s, dv), q.dtype)
    out_t = tensor(out, "out", layout, cq)
    lse = np.empty((b, h, s), np.float32) if return_lse else None
    return q_t, out_t, out, lse


def _check_heads(q, layout, kv_heads, kv_what, layout_note=""):
    """q's heads (read where `layout` puts them) against the kv heads, before
    the C call, so a q passed in the other layout is named as such."""
    if getattr(q, "ndim", 0) != 4:
        return  # tensor() reports the shape
    _, h, s, _ = _arrays.bhsd_extents(q, layout)
    if kv_heads > 0 and h % kv_heads != 0:
        axis = 2 if layout == "bshd" else 1
        other = "bhsd" if layout == "bshd" else "bshd"
        raise errors.InvalidArgumentError(
            f"q.heads ({h}, axis {axis} of q {tuple(q.shape)} read as "
            f"{_arrays.layout_shape(layout)}, layout={layout!r}{layout_note}) is not a multiple "
            f"of {kv_what} ({kv_heads}); if q is {_arrays.layout_shape(other)}, pass "
            f"layout={other!r}")


def _same_type(a, b, na, nb):
    if a.dtype != b.dtype:
        raise TypeError(f"{nb} has dtype {b.dtype} but {na} has {a.dtype}: {na} and {nb} share "
                        "one type (q and out share another)")


def _prepare_dense(q, k, v, *, causal=False, scale=None, kv_lens=None, window=(0, 0),
                   softcap=0.0, sinks=None, alibi_slopes=None, mask=None, out=None,
                   return_lse=False, layout="bhsd", num_threads=0, isa="auto",
                   dataflow="auto", dtype=None, dropout_p=0.0, kv_quant=None,
                   precision="auto"):
    bf16 = _arrays.bf16_flag(dtype)
    layout = check_layout(layout)
    _same_type(k, v, "k", "v")
    if kv_quant is not None:  # codes: their type comes from kv_quant.kind
        ck = _quant.kind_code(kv_quant.kind)
        k_t = _quant.codes_tensor(k, "k", layout, kv_quant.kind)
        v_t = _quant.codes_tensor(v, "v", layout, kv_quant.kind)
    else:
        ck = dtype_code(k, "k", bf16)
        dtype_code(v, "v", bf16)
        k_t, v_t = tensor(k, "k", layout, ck), tensor(v, "v", layout, ck)
    mc = [] if mask is None else [_options.mask_code(mask, bf16)]  # a bf16 mask counts too
    q_t, out_t, out, lse = _q_and_out(q, out, layout, bf16, v_t.dim, return_lse, [ck] + mc)
    keep = [q, k, v, out]
    m = None if mask is None else _options.mask_view(mask, q_t.batch, q_t.heads, q_t.seq, k_t.seq,
                                                     bf16)
    opts = _options.build(keep, q_heads=q_t.heads, batch=q_t.batch, causal=causal, scale=scale,
                          kv_lens=kv_lens, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, mask=m, lse=lse, num_threads=num_threads,
                          isa=isa, dataflow=dataflow, dropout_p=dropout_p,
                          precision=precision)
    _attach_kv_quant(opts, keep, kv_quant, lambda a, n: _quant.scale_tensor(a, n, layout))
    return _Call(q_t, out_t, opts, out, lse, keep, k_t=k_t, v_t=v_t)


def _attach_kv_quant(opts, keep, kv_quant, view):
    """opts.kv_quant from a flat.KVQuant (None: unquantized, or fp8 with scale 1)."""
    if kv_quant is None:
        return
    if not isinstance(kv_quant, _quant.KVQuant):
        raise TypeError(f"kv_quant must be a flat.KVQuant, not {type(kv_quant).__name__}")
    q = kv_quant.struct(keep, view, view)
    if q is not None:
        opts.kv_quant = ctypes.addressof(q)


def _pool(arr, name, kv_layout, bf16, kind=None):
    """(code, pages, page_size, heads, dim, stride_page, stride_token, stride_head)."""
    if kind is not None:  # a code pool: the type from kv_quant, int4 dims and strides doubled
        t = _quant.codes_tensor(arr, name, "bhsd", kind)
        st = [t.stride_batch, t.stride_head, t.stride_seq, 1]
        if arr.ndim != 4:
            raise ValueError(f"{name} must be 4-D, got {arr.shape}")
        p, x, y, _ = arr.shape
        if kv_layout == "nhd":
            return t.dtype, p, x, y, t.dim, st[0], st[1], st[2]
        return t.dtype, p, y, x, t.dim, st[0], st[2], st[1]
    code = dtype_code(arr, name, bf16)
    st = _arrays.element_strides(arr, name)
    if arr.ndim != 4:
        want = "[pages, page_size, heads, dim]" if kv_layout == "nhd" else \
            "[pages, heads, page_size, dim]"
        raise ValueError(f"{name} must be 4-D {want} (kv_layout={kv_layout!r}), got {arr.shape}")
    p, x, y, d = arr.shape
    if kv_layout == "nhd":
        return code, p, x, y, d, st[0], st[1], st[2]
    return code, p, y, x, d, st[0], st[2], st[1]


def _prepare_paged(q, k_pages, v_pages, block_table, seq_lens, *, q_offsets=None,
                   kv_layout="nhd", causal=False, scale=None, window=(0, 0), softcap=0.0,
                   sinks=None, alibi_slopes=None, mask=None, out=None, return_lse=False,
                   layout=None, num_threads=0, isa="auto", dataflow="auto", dtype=None,
                   dropout_p=0.0, kv_quant=None, precision="auto"):
    bf16 = _arrays.bf16_flag(dtype)
    check_layout(kv_layout, KV_LAYOUTS, "kv_layout")
    note = ""
    if layout is None:
        layout = Q_LAYOUT_OF_POOL[kv_layout]
        note = f", the default with kv_layout={kv_layout!r}"
    kind = None if kv_quant is None else kv_quant.kind
    kp = _pool(k_pages, "k_pages", kv_layout, bf16, kind)
    vp = _pool(v_pages, "v_pages", kv_layout, bf16, kind)
    _same_type(k_pages, v_pages, "k_pages", "v_pages")
    for i, what in ((1, "pages"), (2, "page_size"), (3, "heads")):
        if kp[i] != vp[i]:
            raise ValueError(f"k_pages and v_pages differ in {what} ({kp[i]} vs {vp[i]})")
    seq = np.asarray(seq_lens)
    if seq.ndim != 1 or seq.shape[0] < 1:
        raise ValueError(f"seq_lens must be 1-D with one entry per sequence, got shape {seq.shape}")
    batch = seq.shape[0]
    seq = _arrays.int_vector(seq, "seq_lens", batch)
    bt = np.asarray(block_table)
    if bt.dtype.kind not in "iu":
        raise TypeError(f"block_table must hold integers, got dtype {bt.dtype}")
    if bt.ndim != 2 or bt.shape[0] != batch or bt.shape[1] < 1:
        raise ValueError(f"block_table must be 2-D [batch = {batch}, pages per sequence >= 1], "
                         f"got shape {bt.shape}")
    bt = _arrays.int32_array(bt, "block_table")
    qo = None if q_offsets is None else _arrays.int_vector(q_offsets, "q_offsets", batch + 1)
    kv = _types.FlatPagedKV(kp[0], k_pages.ctypes.data, v_pages.ctypes.data, kp[1], kp[2], kp[3],
                            kp[4], vp[4], kp[5], kp[6], kp[7], vp[5], vp[6], vp[7], batch,
                            seq.ctypes.data, bt.ctypes.data, bt.shape[1],
                            None if qo is None else qo.ctypes.data)
    _check_heads(q, layout, kp[3], "the pools' kv heads", note)
    mc = [] if mask is None else [_options.mask_code(mask, bf16)]
    q_t, out_t, out, lse = _q_and_out(q, out, layout, bf16, vp[4], return_lse, [kp[0]] + mc)
    keep = [q, k_pages, v_pages, out, seq, bt, qo]
    m = None if mask is None else _options.mask_view(mask, q_t.batch, q_t.heads, q_t.seq,
                                                     int(seq.max()), bf16)
    opts = _options.build(keep, q_heads=q_t.heads, batch=batch, causal=causal, scale=scale,
                          kv_lens=None, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, mask=m, lse=lse, num_threads=num_threads,
                          isa=isa, dataflow=dataflow, dropout_p=dropout_p,
                          precision=precision)
    _attach_kv_quant(opts, keep, kv_quant,
                     lambda a, n: _quant.pool_scale_tensor(a, n, kv_layout))
    return _Call(q_t, out_t, opts, out, lse, keep, kv=kv)


def attention(q, k, v, *, causal=False, scale=None, kv_lens=None, window=(0, 0), softcap=0.0,
              sinks=None, alibi_slopes=None, mask=None, out=None, return_lse=False,
              layout="bhsd", num_threads=0, isa="auto", dataflow="auto", dtype=None,
              dropout_p=0.0, kv_quant=None, precision="auto"):
    """out = softmax(scale * q k^T + rules) v, per batch and query head (flat_attention).

    q [B, Hq, Sq, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv] with layout="bhsd",
    or [B, S, H, D] each with layout="bshd"; Hq a multiple of Hkv (GQA, MQA).
    Arrays are float32, float16, or uint16 holding bfloat16 with
    dtype="bfloat16"; q/out share one type, k/v another. Views are passed
    without a copy (the last axis must be contiguous, strides >= 0).

    causal: bottom-right aligned (query i sees key j iff j <= i + kv_len - q_len).
    scale: None is 1/sqrt(D). kv_lens: [B] visible keys per batch.
    window: (left, right), FlashAttention's inclusive bounds; 0 or -1 (flash_attn's
    window_size=(-1, -1)) = unbounded on that side.
    softcap: s = cap * tanh(s / cap) when > 0. sinks, alibi_slopes: [Hq].
    mask: additive float32, broadcastable to [B, Hq, Sq, Sk] (zero-copy).
    out: written in place (same shape and type as the result), else allocated.
    return_lse: also return the float32 log-sum-exp [B, Hq, Sq].
    num_threads (0: OpenMP default), isa ("auto", "scalar", "avx2", "avx512",
    "neon", "avx512_bf16", "amx_bf16", "avx512_vnni"; a table this CPU or build
    lacks raises flat.UnsupportedError), dataflow ("auto", "flat", "flash", "decode").
    precision (flat_precision): the products a call with isa="auto" uses (an
    explicit isa wins: its table's products). "auto": fp32, except bf16 on the
    fastest bf16 table when q, k and v are all bfloat16; "fp32": fp32 always;
    "bf16": bf16 whatever the types (rows within 1e-2 for logits of O(1));
    "int8": int8 products on int8 and int4 caches (kv_quant) on the
    avx512_vnni table, rows within 2e-2 of the reference on the dequantized
    cache for logits of O(1), fp32 on other K/V types. "bf16" and "int8" raise
    flat.UnsupportedError where no table with those products runs.
    dropout_p: only 0 (flat has no dropout). The GIL is released during the call.
    kv_quant: a flat.KVQuant when k and v hold quantized codes (int8, fp8_e4m3,
    int4; see flat.quantize): k and v are then the code arrays.
    Raises a flat.FlatError subclass with flat_last_error()'s text when the
    C library refuses the call; out is then untouched.
    """
    call = _prepare_dense(**locals())  # exactly the parameters above
    lib = _lib.lib()
    _lib.check(lib.flat_attention(call.q, call.k, call.v, call.out_t, call.opts), "flat_attention")
    return call.result()


def attention_paged(q, k_pages, v_pages, block_table, seq_lens, *, q_offsets=None,
                    kv_layout="nhd", causal=False, scale=None, window=(0, 0), softcap=0.0,
                    sinks=None, alibi_slopes=None, mask=None, out=None, return_lse=False,
                    layout=None, num_threads=0, isa="auto", dataflow="auto", dtype=None,
                    dropout_p=0.0, kv_quant=None, precision="auto"):
    """Attention over a paged KV cache (flat_attention_paged).

    k_pages, v_pages: the pools, kv_layout="nhd" [pages, page_size, Hkv, D]
    (vLLM) or "hnd" [pages, Hkv, page_size, D]. block_table [batch, n]: pool
    page of each of a sequence's pages. seq_lens [batch]: tokens of each
    sequence; its queries are its last tokens (causal is bottom-right against
    seq_lens[b]). q's layout defaults to the pools': [batch, Sq, Hq, D]
    (layout="bshd") with kv_layout="nhd", [batch, Hq, Sq, D] ("bhsd") with
    "hnd"; either may be passed with either pool. With q_offsets [batch + 1] q
    is ragged, [1, total, Hq, D] (or [1, Hq, total, D]), and rows
    q_offsets[b] .. q_offsets[b+1]-1 belong to sequence b. mask broadcasts to
    [q batch, Hq, Sq, max(seq_lens)]. Other keywords (isa, precision, ...) as
    for flat.attention (no kv_lens: seq_lens gives the lengths). Results are
    bitwise those of flat.attention on the same data laid out contiguously
    (same options, ISA and threads; see the README for the avx512_bf16 table).
    kv_quant: a flat.KVQuant for code pools; its scales are pools in
    kv_layout with dim D / group ([pages, page_size, Hkv, G] for "nhd").
    """
    call = _prepare_paged(**locals())  # exactly the parameters above
    lib = _lib.lib()
    _lib.check(lib.flat_attention_paged(call.q, call.kv, call.out_t, call.opts),
               "flat_attention_paged")
    return call.result()


def version():
    """The loaded library's version, "MAJOR.MINOR.PATCH" (flat_version)."""
    return _lib.lib().flat_version().decode()


def isa():
    """Best kernel table of this CPU and build, ignoring FLAT_ISA (flat_isa_detect)."""
    lib = _lib.lib()
    return lib.flat_isa_name(lib.flat_isa_detect()).decode()
