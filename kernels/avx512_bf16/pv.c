/* O = diag(alpha) O + P V with bf16 products: 12 rows x 32 columns per block. */
#ifndef __AVX512BF16__
#error "kernels/avx512_bf16 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16"
#endif

#include <assert.h>
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define PV_MR FLAT_AVX512_BF16_PV_MR
/* Keys per P conversion: the block's P rows as bf16 pairs, 12 x 256 x 2
 * bytes = 6 KiB of stack, converted once for every column chunk. */
#define PV_KC 256
#define PV_KC2 (PV_KC / 2)
/* V prefetch distance in keys, as the AVX-512 table's pv. */
#define PV_PREFETCH 16
/* 32-column chunks whose V lines the first of them prefetches (pv_block):
 * 256 bytes of a row, 4 lines */
#define PV_PF_CHUNKS(t) ((t) == FLAT_F32 ? 2 : 4)

/*
 * vdpbf16ps wants V in key pairs: lane c of a B vector holds (V[j][c],
 * V[j+1][c]). The contract hands pv V rows in place, so the pairs are built
 * in registers from rows j and j+1, 32 columns of each (one register of bf16
 * each: loaded as they are, or converted from f32/f16): vpunpcklwd and
 * vpunpckhwd interleave them into two B vectors, at the price of a column
 * order permuted within 128-bit lanes (lo: columns 8L..8L+3 in lanes
 * 4L..4L+3, hi: 8L+4..8L+7). The accumulators keep that order and two
 * vpermt2ps per row restore it once per chunk. Per key pair: 2 V loads and 2
 * shuffles for 24 vdpbf16ps. (The other choice, copying a block of V into
 * pair form in a stack scratch, buys nothing here: each V pair vector
 * already serves all 12 rows of the call, the runtime's whole row group.)
 */
static inline __attribute__((always_inline)) void
v_pairs(const flat_dtype t, int cols, const void *va, const void *vb, const int has_b,
        __m512i *b0, __m512i *b1)
{
    const __m512 none = _mm512_setzero_ps();
    const __m512i x0 = flat_pairs_avx512bf16(t, 0, va, 0, cols, none);
    const __m512i x1 =
        has_b ? flat_pairs_avx512bf16(t, 0, vb, 0, cols, none) : _mm512_setzero_si512();
    *b0 = _mm512_unpacklo_epi16(x0, x1);
    *b1 = _mm512_unpackhi_epi16(x0, x1);
}

/* One key pair (rows va and vb, or va alone: has_b = 0) of the chunk: the
 * B vectors, then mb rows of P pairs (row i at p16 + i * PV_KC2) times them. */
static inline __attribute__((always_inline)) void
pv_pair(const flat_dtype t, const int mb, int width, const void *va, const void *vb,
        const int has_b, const uint32_t *p16, __m512 acc[PV_MR][2])
{
    __m512i b0, b1;
    v_pairs(t, width, va, vb, has_b, &b0, &b1);
#pragma GCC unroll 12
    for (int i = 0; i < mb; i++) {
        const __m512i pp = flat_bcast_pair_avx512bf16(p16 + i * PV_KC2);
        acc[i][0] = flat_dp_avx512bf16(acc[i][0], pp, b0);
        acc[i][1] = flat_dp_avx512bf16(acc[i][1], pp, b1);
    }
}

/*
 * Keys [0, nk) of one chunk (v and p16 start at the chunk's first key) for
 * columns [0, cols) of rows < rows of the block; mb rows are computed (p16
 * rows past `rows` are 0, unstored). first: the chunk that applies alpha (or
 * clears O when alpha is NULL); later chunks add onto O. p16 rows are one
 * base plus constant offsets, so the 12 broadcasts need no row pointers
 * (12 of them spilled and reloaded in the loop, measured). `pf`, if not
 * NULL: the P rows the next convert_p reads (mb rows of ld_p, PV_KC keys),
 * prefetched over the loop: P comes from L2 (written by exp2_row for all
 * the task's rows), and converting it cold cost a sixth of pv's time.
 * V rows are prefetched PV_PREFETCH keys ahead: pf_chunks (a constant: 0, 1
 * or PV_PF_CHUNKS(t)) chunks' columns from this chunk's first (pv_block says
 * which).
 */
static inline __attribute__((always_inline)) void
pv_chunk(const flat_dtype t, const int mb, const int masked, int cols, int rows, int nk,
         int first, const uint32_t *p16, const void *restrict v, int64_t ld_v,
         float *restrict o, int64_t ld_o, const float *restrict alpha, const float *pf,
         int64_t ld_p, const int pf_chunks)
{
    const int width = masked ? cols : 32;
    const int line = t == FLAT_F32 ? 16 : 32; /* elements per 64-byte line */
    const int tail = flat_rows_unaligned(v, ld_v, t);
    /* P lines to prefetch: mb rows x PV_KC/16, spread over the pairs */
    const int pf_lines = mb * (PV_KC / 16), pf_per = (pf_lines + PV_KC2 - 1) / PV_KC2;
    __m512 acc[PV_MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < mb; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const int pairs = nk / 2;
    for (int q = 0; q < pairs; q++) {
        const void *va = flat_elem_ptr(v, 2 * q * ld_v, t);
        const void *vb = flat_elem_ptr(va, ld_v, t);
        /* Past the chunk this only touches cache lines: prefetches do not fault. */
#pragma GCC unroll 4
        for (int k = 0; k < pf_chunks; k++) {
#pragma GCC unroll 2
            for (int c = 32 * k; c < 32 * k + 32; c += line) {
                _mm_prefetch((const char *)flat_elem_ptr(va, PV_PREFETCH * ld_v + c, t), _MM_HINT_T0);
                _mm_prefetch((const char *)flat_elem_ptr(vb, PV_PREFETCH * ld_v + c, t), _MM_HINT_T0);
            }
        }
        if (tail && pf_chunks) { /* rows off lines: the line of the last byte prefetched too */
            const int w = pf_chunks == 1 ? width : 32 * pf_chunks;
            _mm_prefetch((const char *)flat_elem_ptr(va, PV_PREFETCH * ld_v + w, t) - 1, _MM_HINT_T0);
            _mm_prefetch((const char *)flat_elem_ptr(vb, PV_PREFETCH * ld_v + w, t) - 1, _MM_HINT_T0);
        }
        if (pf)
#pragma GCC unroll 2
            for (int u = 0; u < pf_per; u++) {
                const int l = q * pf_per + u;
                if (l < pf_lines)
                    _mm_prefetch((const char *)(pf + (l >> 4) * ld_p + (l & 15) * 16),
                                 _MM_HINT_T0);
            }
        pv_pair(t, mb, width, va, vb, 1, p16 + q, acc);
    }
    if (nk % 2) /* the last key alone: its pair's second row is 0 */
        pv_pair(t, mb, width, flat_elem_ptr(v, (int64_t)(nk - 1) * ld_v, t), NULL, 0,
                p16 + pairs, acc);
    /* Undo the lane permutation of v_pairs: columns 0-15, then 16-31. */
    const __m512i lo_cols = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi_cols =
        _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    const __mmask16 k0 = masked && cols < 16 ? flat_tail_mask_avx512(cols) : 0xffff;
    const __mmask16 k1 = !masked ? 0xffff : cols > 16 ? flat_tail_mask_avx512(cols - 16) : 0;
#pragma GCC unroll 12
    for (int i = 0; i < mb; i++) {
        if (i >= rows)
            break;
        float *oi = o + i * ld_o;
        __m512 r[2] = {_mm512_permutex2var_ps(acc[i][0], lo_cols, acc[i][1]),
                       _mm512_permutex2var_ps(acc[i][0], hi_cols, acc[i][1])};
        const __mmask16 k[2] = {k0, k1};
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            if (!k[h])
                continue;
            /* first and alpha == NULL: O is write-only (it may hold NaN) */
            if (!first)
                r[h] = _mm512_add_ps(_mm512_maskz_loadu_ps(k[h], oi + 16 * h), r[h]);
            else if (alpha)
                r[h] = _mm512_fmadd_ps(_mm512_set1_ps(alpha[i]),
                                       _mm512_maskz_loadu_ps(k[h], oi + 16 * h), r[h]);
            _mm512_mask_storeu_ps(oi + 16 * h, k[h], r[h]);
        }
    }
}

/* P rows [0, rows) x keys [0, nk) of the chunk as bf16 pairs (keys past nk
 * are 0 and never read), row i at p16 + i * PV_KC2. Whole 32-key steps take
 * plain loads: this loop does not overlap the multiplies, and with the
 * tail's mask arithmetic in every step it took 23% of pv's time (m = 12,
 * n = 256, P in L1; measured without it), 9% with plain loads (it is bound
 * by its 64-byte loads and stores). Converting the next chunk inside the
 * multiply loop instead (double-buffered) measured 4% faster for pv alone
 * but 3-5% slower end to end (s4k, bf16), so it stays a separate step. */
static void convert_p(int rows, int nk, const float *restrict p, int64_t ld_p,
                      uint32_t *restrict p16)
{
    const int whole = nk / 32 * 32, cnt = nk - whole;
    const __mmask16 lo_mask = flat_tail_mask_avx512(cnt < 16 ? cnt : 16);
    const __mmask16 hi_mask = flat_tail_mask_avx512(cnt > 16 ? cnt - 16 : 0);
    for (int i = 0; i < rows; i++) {
        const float *pi = p + i * ld_p;
        uint32_t *qi = p16 + i * PV_KC2;
        for (int u = 0; u < whole; u += 32)
            _mm512_storeu_si512(qi + u / 2, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(pi + u + 16),
                                                                         _mm512_loadu_ps(pi + u)));
        if (cnt)
            _mm512_storeu_si512(qi + whole / 2,
                                (__m512i)_mm512_cvtne2ps_pbh(
                                    _mm512_maskz_loadu_ps(hi_mask, pi + whole + 16),
                                    _mm512_maskz_loadu_ps(lo_mask, pi + whole)));
    }
}

/* One block of rows (<= mb) over all keys and columns. The first column
 * chunk of each key chunk prefetches the P that convert_p reads next. */
static inline __attribute__((always_inline)) void
pv_block(const flat_dtype t, const int mb, int rows, int n, int dv, const float *restrict p,
         int64_t ld_p, const flat_kv_src *src, const void *restrict v, int64_t ld_v,
         float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    uint32_t p16[PV_MR * PV_KC2] __attribute__((aligned(64)));
    /* rows past `rows` multiply zeros: computed, never stored */
    memset(p16 + rows * PV_KC2, 0, sizeof(uint32_t) * (size_t)((mb - rows) * PV_KC2));
    for (int j0 = 0; j0 < n; j0 += PV_KC) {
        const int nk = n - j0 < PV_KC ? n - j0 : PV_KC;
        convert_p(rows, nk, p + j0, ld_p, p16);
        const void *vj = flat_elem_ptr(v, (int64_t)j0 * ld_v, t);
        /* the next chunk's P, or after the last one the next row group's
         * (the runtime's next call, or this call's next block) */
        const float *pf = j0 + PV_KC < n ? p + j0 + PV_KC : p + rows * ld_p;
        /* the caller's next runs (ukernel.h), a chunk's keys at a time */
        flat_prefetch_chain_avx512(src, j0, nk, n, PV_PREFETCH, 0, dv);
        /* V prefetches: in each group of PV_PF_CHUNKS(t) whole chunks (256
         * bytes of a row) the first asks for the group's columns and the
         * rest for none, so DRAM serves V rows in 256-byte pieces in order
         * (one stream per chunk read a 256-byte bf16 row as four strided
         * streams over the key chunk, which DRAM served ~30% slower:
         * avx512's pv says more); chunks past the last whole group ask for
         * their own. Only blocks of up to 6 rows (decode): the 12-row block
         * (prefill, where V comes from L2 for most row blocks) ran 15%
         * slower with the grouped variants beside it (s1k bf16, D 64). */
        const int group = 32 * PV_PF_CHUNKS(t), grouped = mb <= 6 ? dv / group * group : 0;
        int c0 = 0;
        for (; c0 + 32 <= dv; c0 += 32) {
            const void *vc = flat_elem_ptr(vj, c0, t);
            const float *pfc = c0 == 0 ? pf : NULL;
            if (c0 >= grouped)
                pv_chunk(t, mb, 0, 32, rows, nk, j0 == 0, p16, vc, ld_v, o + c0, ld_o, alpha, pfc,
                         ld_p, 1);
            else if (c0 % group == 0)
                pv_chunk(t, mb, 0, 32, rows, nk, j0 == 0, p16, vc, ld_v, o + c0, ld_o, alpha, pfc,
                         ld_p, PV_PF_CHUNKS(t));
            else
                pv_chunk(t, mb, 0, 32, rows, nk, j0 == 0, p16, vc, ld_v, o + c0, ld_o, alpha, pfc,
                         ld_p, 0);
        }
        if (c0 < dv)
            pv_chunk(t, mb, 1, dv - c0, rows, nk, j0 == 0, p16, flat_elem_ptr(vj, c0, t), ld_v,
                     o + c0, ld_o, alpha, c0 == 0 ? pf : NULL, ld_p, 1);
    }
}

static inline __attribute__((always_inline)) void
pv(const flat_dtype t, int m, int n, int dv, const float *restrict p, int64_t ld_p,
   const flat_kv_src *src, const void *restrict v, int64_t ld_v, float *restrict o,
   int64_t ld_o, const float *restrict alpha)
{
    for (int r = 0; r < m; r += PV_MR) {
        const int rows = m - r < PV_MR ? m - r : PV_MR;
        const float *pr = p + r * ld_p, *ar = alpha ? alpha + r : NULL;
        float *ob = o + r * ld_o;
        if (rows <= 2) /* too few rows to share a V pair vector: fp32 */
            flat_pv_6__avx512(rows, n, dv, pr, ld_p, src, ob, ld_o, ar);
        else if (rows <= 6)
            pv_block(t, 6, rows, n, dv, pr, ld_p, src, v, ld_v, ob, ld_o, ar);
        else
            pv_block(t, 12, rows, n, dv, pr, ld_p, src, v, ld_v, ob, ld_o, ar);
    }
}

/* Under 4 keys (the causal staircase's short calls, normalisation with
 * n = 0) the pair form's P conversion is not worth it: the fp32 AVX-512 pv,
 * exact products. The same for quantized V (below). */
void flat_pv_12__avx512_bf16(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                 const flat_kv_src *src, float *restrict o, int64_t ld_o,
                 const float *restrict alpha)
{
    const void *v = src->data;
    const int64_t ld_v = src->ld;
    const flat_dtype t = src->t;
    assert(m >= 1 && n >= 0 && dv >= 1);
    assert(n == 0 || (p != NULL && v != NULL));
    assert(o != NULL);
    /* Quantized V: the fp32 AVX-512 pv, which dequantizes in registers
     * (exact products: within this table's bound, and decode's 1-2 rows run
     * it anyway); the pair form's V loads take plain rows only. */
    if (n < 4 || flat_dtype_quantized(t)) {
        flat_pv_6__avx512(m, n, dv, p, ld_p, src, o, ld_o, alpha);
        return;
    }
    switch (t) {
    case FLAT_F16: pv(FLAT_F16, m, n, dv, p, ld_p, src, v, ld_v, o, ld_o, alpha); break;
    case FLAT_BF16: pv(FLAT_BF16, m, n, dv, p, ld_p, src, v, ld_v, o, ld_o, alpha); break;
    default: pv(FLAT_F32, m, n, dv, p, ld_p, src, v, ld_v, o, ld_o, alpha); break;
    }
}

/* The output row's rounding is the AVX-512 table's (integer RNE for bf16,
 * bit for bit as convert.h; vcvtneps2bf16 would flush subnormals). */
void flat_store_row__avx512_bf16(int n, const float *restrict x, float scale, flat_dtype t,
                                 void *restrict y)
{
    flat_store_row__avx512(n, x, scale, t, y);
}

/* The AVX-512 table's: the runtime widens V only for fp32-product tables,
 * so this is here for the contract's completeness (and the tests). */
void flat_widen_rows__avx512_bf16(int n, int cols, const flat_kv_src *src, float *restrict y,
                                  int64_t ld_y)
{
    flat_widen_rows__avx512(n, cols, src, y, ld_y);
}
