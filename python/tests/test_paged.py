"""flat.attention_paged: bitwise flat.attention on the same data laid out
contiguously (the header's promise, for the tables with fp32 products),
against the reference, both pool layouts, every pool dtype, ragged q, the
score rules, and its validation."""
import numpy as np
import pytest

import flat
import reference
from support import BF16_ISAS, ISAS, as_f64, make, row_tol

NAN = {np.dtype(np.float32): np.float32(np.nan), np.dtype(np.float16): np.float16(np.nan),
       np.dtype(np.uint16): np.uint16(0x7FC0)}


def build_pools(rng, k, v, seq_lens, page_size, kv_layout, spare=3):
    """Pools holding k, v [B, Hkv, S, D] in pages at shuffled positions; every
    slot no sequence uses holds NaN; unused block-table entries are -1."""
    b_, hkv, s, d = k.shape
    per_seq = max(1, -(-s // page_size))
    pages = b_ * per_seq + spare
    order = rng.permutation(pages)
    table = np.full((b_, per_seq), -1, np.int32)
    pools = []
    for x in (k, v):
        shape = (pages, page_size, hkv, x.shape[3]) if kv_layout == "nhd" else \
            (pages, hkv, page_size, x.shape[3])
        pools.append(np.full(shape, NAN[x.dtype], x.dtype))
    for b in range(b_):
        for i in range(-(-seq_lens[b] // page_size)):
            page = order[b * per_seq + i]
            table[b, i] = page
            t0, t1 = i * page_size, min((i + 1) * page_size, seq_lens[b])
            for pool, x in zip(pools, (k, v)):
                if kv_layout == "nhd":
                    pool[page, :t1 - t0] = x[b, :, t0:t1].transpose(1, 0, 2)
                else:
                    pool[page, :, :t1 - t0] = x[b, :, t0:t1]
    return pools[0], pools[1], table


def same_rows(got, want, isa, what):
    """Bitwise for fp32-product tables; avx512_bf16's key pairs follow the
    page boundaries, so its rows (and amx_bf16's) are held to its bound (1e-2)
    instead."""
    if isa in BF16_ISAS:
        reference.check_rows(as_f64(got), as_f64(want), 1e-2, what)
    else:
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), f"{what}: not bitwise"


SEQS = [300, 5, 129, 1]


@pytest.mark.parametrize("kvdt", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("page_size", [1, 7, 16])
@pytest.mark.parametrize("kv_layout", ["nhd", "hnd"])
@pytest.mark.parametrize("isa", ISAS)
def test_paged_equals_contiguous(rng, isa, kv_layout, page_size, kvdt):
    b_, hq, hkv, d = len(SEQS), 4, 2, 32
    k, v = make(rng, (b_, hkv, max(SEQS), d), kvdt), make(rng, (b_, hkv, max(SEQS), d), kvdt)
    q = make(rng, (b_, hq, 1, d))
    kp, vp, table = build_pools(rng, k, v, SEQS, page_size, kv_layout)
    bf = "bfloat16" if kvdt == "bfloat16" else None
    # q in the layout the pool's default gives it: [B, S, H, D] beside "nhd"
    qp = np.ascontiguousarray(q.transpose(0, 2, 1, 3)) if kv_layout == "nhd" else q
    for causal, threads in ((False, 1), (True, 2)):
        kw = dict(causal=causal, isa=isa, num_threads=threads, dtype=bf, return_lse=True)
        want, want_lse = flat.attention(q, k, v, kv_lens=SEQS, **kw)
        got, lse = flat.attention_paged(qp, kp, vp, table, SEQS, kv_layout=kv_layout, **kw)
        if kv_layout == "nhd":
            got = got.transpose(0, 2, 1, 3)
        what = f"{isa} {kv_layout} page {page_size} {kvdt} causal={causal}"
        same_rows(got, want, isa, what)
        if isa not in BF16_ISAS:
            assert np.array_equal(lse, want_lse), what
        ref, ref_lse = reference.attention(as_f64(q), as_f64(k), as_f64(v), kv_lens=SEQS,
                                           causal=causal)
        tol, lse_bound = row_tol(got.dtype, isa)
        reference.check_rows(got, ref, tol, what)
        reference.check_lse(lse, ref_lse, lse_bound, what)


@pytest.mark.parametrize("isa", ISAS)
def test_ragged_q_offsets(rng, isa):
    """One call mixing 0, 1, 7 and 40 queries (prefill chunks and decodes),
    against the reference and a contiguous call with each sequence's queries
    right-aligned in [B, Hq, 40, D] (as tests/test_paged.c compares them):
    within the fp32 bound, since each sequence takes its kind's path (decodes:
    at most 32 rows per kv head) where the padded call takes one path for all.
    Without a window, bitwise the parts called apart (the decodes alone, the
    chunk alone: flat.h); with one, whose skipped key blocks follow the query
    blocks, the reference only."""
    seqs, counts = [50, 200, 40, 90], [0, 1, 7, 40]
    b_, hq, hkv, d, maxq = 4, 4, 2, 32, max(counts)
    k, v = make(rng, (b_, hkv, max(seqs), d)), make(rng, (b_, hkv, max(seqs), d))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    qr = make(rng, (1, hq, int(offsets[-1]), d))
    qd = make(rng, (b_, hq, maxq, d))
    for b in range(b_):
        qd[b, :, maxq - counts[b]:] = qr[0, :, offsets[b]:offsets[b + 1]]
    kp, vp, table = build_pools(rng, k, v, seqs, 16, "nhd")
    rules = dict(causal=True, softcap=5.0, sinks=[0.5, 0, -1, 2], alibi_slopes=[0.1, 0.2, 0, 0.05])
    tol, _ = row_tol(np.float32, isa)
    parts = ([1, 2], [3])  # the decodes (2 and 14 rows per kv head), the chunk (80)

    def part_rows(kw, idx):
        """The sequences idx as a ragged call of their own: their rows by sequence."""
        sub = np.concatenate([[0], np.cumsum([counts[b] for b in idx])]).astype(np.int32)
        q = np.ascontiguousarray(np.concatenate(
            [qr[:, :, offsets[b]:offsets[b + 1]] for b in idx], axis=2))
        got = flat.attention_paged(q, kp, vp, np.ascontiguousarray(table[idx]),
                                   [seqs[b] for b in idx], q_offsets=sub, layout="bhsd", **kw)
        return {b: got[0, :, sub[i]:sub[i + 1]] for i, b in enumerate(idx)}

    for window in ((0, 0), (30, 0)):
        kw = dict(rules, window=window, isa=isa, num_threads=2)
        want = flat.attention(qd, k, v, kv_lens=seqs, **kw)
        got = flat.attention_paged(qr, kp, vp, table, seqs, q_offsets=offsets, layout="bhsd",
                                   **kw)
        ref, _ = reference.attention(qd, k, v, kv_lens=seqs, window=window, **rules)
        apart = {} if window != (0, 0) else {**part_rows(kw, parts[0]), **part_rows(kw, parts[1])}
        for b in range(b_):
            rows, what = got[0, :, offsets[b]:offsets[b + 1]], f"{isa} window {window} seq {b}"
            if b in apart:
                same_rows(rows, apart[b], isa, what + " against its part")
            reference.check_rows(as_f64(rows), as_f64(want[b, :, maxq - counts[b]:]), tol, what)
            reference.check_rows(rows, ref[b, :, maxq - counts[b]:], tol, what)


def test_mask_bshd_and_dataflows(rng):
    seqs = [33, 20]
    k, v = make(rng, (2, 2, 33, 16)), make(rng, (2, 2, 33, 16))
    q = make(rng, (2, 4, 3, 16))
    mask = rng.uniform(-1, 1, (2, 1, 3, 33)).astype(np.float32)
    mask[0, 0, 1, 5:9] = -np.inf
    kp, vp, table = build_pools(rng, k, v, seqs, 8, "hnd")
    qs = np.ascontiguousarray(q.transpose(0, 2, 1, 3))
    for dataflow in ("auto", "flat", "flash", "decode"):
        want = flat.attention(q, k, v, kv_lens=seqs, mask=mask, dataflow=dataflow, num_threads=1)
        got = flat.attention_paged(qs, kp, vp, table, seqs, kv_layout="hnd", mask=mask,
                                   layout="bshd", dataflow=dataflow, num_threads=1)
        assert got.shape == (2, 3, 4, 16)
        assert np.array_equal(got.transpose(0, 2, 1, 3), want), dataflow


@pytest.fixture
def small(rng):
    seqs = [20, 9]
    k, v = make(rng, (2, 2, 20, 8)), make(rng, (2, 2, 20, 8))
    q = make(rng, (2, 2, 4, 8))  # [B, S, H, D]: the default beside an "nhd" pool
    kp, vp, table = build_pools(rng, k, v, seqs, 4, "nhd")
    return q, kp, vp, table, seqs


C_ERRORS = {
    "page out of range": (lambda t, s: (np.where(t == t[0, 1], 99, t), s, None),
                          "kv.block_table[0][1] (99) outside [0, kv.pages = 13)"),
    "sequence too long": (lambda t, s: (t, [21, 9], None),
                          "kv.seq_lens[0] (21) outside [0, block_table_stride x page_size = 20]"),
    "more queries than tokens": (lambda t, s: (t, [20, 1], [0, 0, 2]),
                                 "sequence 1 has 2 queries but kv.seq_lens[1] is 1"),
    "q_offsets decreasing": (lambda t, s: (t, s, [0, 2, 1]), "kv.q_offsets[2] (1) < kv.q_offsets[1]"),
}


@pytest.mark.parametrize("case", list(C_ERRORS))
def test_paged_c_errors(small, case):
    q, kp, vp, table, seqs = small
    mutate, words = C_ERRORS[case]
    table, seqs, offsets = mutate(table, seqs)
    if offsets is not None:
        q = q[:1]
    out = np.full(q.shape, 9.0, np.float32)
    with pytest.raises(flat.InvalidArgumentError) as e:
        flat.attention_paged(q, kp, vp, table, seqs, q_offsets=offsets, out=out)
    assert words in e.value.message and "flat_attention_paged" in str(e.value)
    assert np.all(out == 9.0)


def test_paged_empty_slot(small):
    """A fixed batch with an empty slot (seq_lens[b] = 0), as flat.attention with
    kv_lens = 0: that sequence's rows are zeros, lse -inf, the others unchanged."""
    q, kp, vp, table, seqs = small
    full, lse_full = flat.attention_paged(q, kp, vp, table, [20, 9], return_lse=True)
    out, lse = flat.attention_paged(q, kp, vp, table, [0, 9], return_lse=True)
    assert np.all(out[0] == 0) and np.all(np.isneginf(lse[0]))
    assert np.array_equal(out[1], full[1]) and np.array_equal(lse[1], lse_full[1])


def test_paged_python_errors(small):
    q, kp, vp, table, seqs = small
    out = np.full(q.shape, 9.0, np.float32)
    cases = [
        (dict(block_table=table[:, :2].astype(float)), TypeError, "block_table must hold integers"),
        (dict(block_table=table[:1]), ValueError, "block_table must be 2-D [batch = 2"),
        (dict(seq_lens=[[20, 9]]), ValueError, "seq_lens must be 1-D"),
        (dict(v_pages=vp[:, :2]), ValueError, "k_pages and v_pages differ in page_size (4 vs 2)"),
        (dict(v_pages=vp.astype(np.float16)), TypeError, "v_pages has dtype float16"),
        (dict(k_pages=kp[0]), ValueError, "k_pages must be 4-D [pages, page_size, heads, dim]"),
        (dict(kv_layout="vllm"), ValueError, "kv_layout='vllm'"),
        (dict(q_offsets=[0, 1]), ValueError, "q_offsets must have shape (3,)"),
        (dict(kv_lens=[1, 2]), TypeError, "kv_lens"),
        (dict(dropout_p=0.5), NotImplementedError, "not supported by flat 0.2"),
    ]
    for change, exc, words in cases:
        args = dict(q=q, k_pages=kp, v_pages=vp, block_table=table, seq_lens=seqs, out=out)
        args.update(change)
        with pytest.raises(exc) as e:
            flat.attention_paged(**args)
        assert words in str(e.value), change
    assert np.all(out == 9.0)


@pytest.mark.parametrize("kv_layout", ["nhd", "hnd"])
def test_default_q_layout_follows_pool(rng, kv_layout):
    """Without layout=, q is read as the pool is laid out: [B, S, H, D] beside
    "nhd" (vLLM's q [tokens, heads, dim]), [B, H, S, D] beside "hnd"."""
    seqs = [33, 20]
    k, v = make(rng, (2, 2, 33, 16)), make(rng, (2, 2, 33, 16))
    q = make(rng, (2, 6, 3, 16))  # [B, H, S, D]; 3 queries, 6 heads over 2 kv heads
    kp, vp, table = build_pools(rng, k, v, seqs, 8, kv_layout)
    want = flat.attention(q, k, v, kv_lens=seqs, causal=True, num_threads=1)
    qs = np.ascontiguousarray(q.transpose(0, 2, 1, 3))
    if kv_layout == "nhd":
        got = flat.attention_paged(qs, kp, vp, table, seqs, kv_layout=kv_layout, causal=True,
                                   num_threads=1).transpose(0, 2, 1, 3)
    else:
        got = flat.attention_paged(q, kp, vp, table, seqs, kv_layout=kv_layout, causal=True,
                                   num_threads=1)
    assert np.array_equal(got, want)
    # either layout with either pool when named
    other = flat.attention_paged(qs, kp, vp, table, seqs, kv_layout=kv_layout, causal=True,
                                 layout="bshd", num_threads=1)
    assert np.array_equal(other.transpose(0, 2, 1, 3), want)


def test_heads_message_names_the_layout(rng):
    """The newcomer's trip (issue 19): a [B, S, H, D] q read as [B, H, S, D]
    took S (3) for the heads; the message says which layout read it."""
    seqs = [33, 20]
    k, v = make(rng, (2, 2, 33, 16)), make(rng, (2, 2, 33, 16))
    q_bshd = make(rng, (2, 3, 4, 16))
    out = np.full(q_bshd.shape, 9.0, np.float32)
    kp, vp, table = build_pools(rng, k, v, seqs, 8, "hnd")
    with pytest.raises(flat.InvalidArgumentError) as e:
        flat.attention_paged(q_bshd, kp, vp, table, seqs, kv_layout="hnd", out=out)
    text = str(e.value)
    assert "q.heads (3, axis 1 of q (2, 3, 4, 16) read as [B, H, S, D], layout='bhsd', " \
           "the default with kv_layout='hnd')" in text, text
    assert "pass layout='bshd'" in text, text
    assert np.all(out == 9.0)
    kp, vp, table = build_pools(rng, k, v, seqs, 8, "nhd")
    with pytest.raises(ValueError) as e:
        flat.attention_paged(q_bshd, kp, vp, table, seqs, layout="bhsd")
    assert "layout='bhsd')" in str(e.value) and "pass layout='bshd'" in str(e.value)


def test_flash_attn_window_minus_one(rng):
    """flash_attn's window_size=(-1, -1) means no window: -1 on either side is
    flat's 0 (unbounded), in both calls."""
    seqs = [33, 20]
    k, v = make(rng, (2, 2, 33, 16)), make(rng, (2, 2, 33, 16))
    q = make(rng, (2, 4, 3, 16))
    kp, vp, table = build_pools(rng, k, v, seqs, 8, "hnd")
    for window, same in (((-1, -1), (0, 0)), ((5, -1), (5, 0)), ((-1, 2), (0, 2))):
        kw = dict(kv_lens=seqs, num_threads=1)
        assert np.array_equal(flat.attention(q, k, v, window=window, **kw),
                              flat.attention(q, k, v, window=same, **kw)), window
        pw = dict(kv_layout="hnd", num_threads=1)
        assert np.array_equal(flat.attention_paged(q, kp, vp, table, seqs, window=window, **pw),
                              flat.attention_paged(q, kp, vp, table, seqs, window=same, **pw))
