/* O = diag(alpha) O + P V: 6 rows x 64 columns of O per register block. */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define PV_MR FLAT_AVX512_PV_MR
#define PV_NV 4 /* zmm vectors of O per row in a block: 64 columns */
/* Blocks of 1 or 2 rows (decode: few query rows per kv head) hold up to 8
 * vectors, 128 columns, per row: V rows are then read in one pass, not two
 * half-row passes that each stream V from memory. */
#define PV_NV_NARROW 8
/* One row of 256 columns (D 256 decode) holds 16 vectors of O in one pass:
 * in 64-column passes each V row's scales were widened 4 times and its
 * lines read in 4 strided streams (int8 pv 20.7 ns per key in L2, 2.7x
 * d 128's; bf16 12.0). */
#define PV_NV_WIDE 16
/* V prefetch distance in keys: ~200 cycles of L3 latency at 12 cycles per
 * key of a 6 x 64 block (48 measured 6% slower end to end). */
#define PV_PREFETCH 16

/* Codes of a quantized V row as the blocks multiply them: F8E4M3 as
 * code / 256 (its 2^8 is in the scales, FLAT_F8_UNIT), its NaN codes recorded
 * apart and their columns set by nan_columns. */
static inline __attribute__((always_inline)) __m512 pv_codes(const flat_dtype t, const void *row,
                                                             int64_t c, int n)
{
    return t == FLAT_F8E4M3 ? flat_f8_codes16_div256_avx512(row, c, n)
                            : flat_codes16_avx512(t, row, c, n);
}

/* O columns (of col0 .. col0+cols-1) where some F8E4M3 V row j < n holds a
 * NaN code become NaN in rows < rows, as the FMA chain through that code
 * would leave them: pv_codes read it as finite, and a block that saw one
 * (flat_quantize makes none) pays for this scan. */
static __attribute__((noinline, cold)) void nan_columns(const flat_kv_src *vs, int n, int64_t col0,
                                                        int cols, int rows, float *o, int64_t ld_o)
{
    for (int c = 0; c < cols; c++)
        for (int j = 0; j < n; j++)
            if (flat_f8_is_nan(flat_kv_row(vs, j, FLAT_F8E4M3), col0 + c)) {
                for (int i = 0; i < rows; i++)
                    o[i * ld_o + c] = __builtin_nanf("");
                break;
            }
}

/* Int4 V in pairs (flat_i4_pairs32_avx512): O vectors 2p and 2p+1 of a block
 * hold columns 32p .. 32p+31 as their even and odd columns while the keys
 * run, made from O and put back once per call by these permutes. The
 * values and each element's FMA chain are the in-order path's: the bits
 * too. */
static inline __attribute__((always_inline)) void split_pairs(__m512 *lo, __m512 *hi)
{
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512 e = _mm512_permutex2var_ps(*lo, ev, *hi);
    *hi = _mm512_permutex2var_ps(*lo, _mm512_add_epi32(ev, _mm512_set1_epi32(1)), *hi);
    *lo = e;
}

static inline __attribute__((always_inline)) void join_pairs(__m512 *even, __m512 *odd)
{
    const __m512i il = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512 lo = _mm512_permutex2var_ps(*even, il, *odd);
    *odd = _mm512_permutex2var_ps(*even, _mm512_add_epi32(il, _mm512_set1_epi32(8)), *odd);
    *even = lo;
}

/*
 * One block: rows < mb (6, 1-2 for the narrow decode blocks, 1 for D 256) of O, columns
 * [0, 16*nv) where the last vector keeps only the lanes of `last` when
 * `masked`. Each key j broadcasts P[i][j] for the mb rows and FMAs it against
 * V row j held in nv registers, so V is read once per block and P once per
 * column chunk. V rows are prefetched PV_PREFETCH keys ahead, columns col0 ..
 * col0 + pf_cols - 1 of them: 0, the block's columns, or (pv) those and
 * the next chunk's.
 *
 * A short block (rows < mb) reads row rows-1 of P in place of the missing
 * rows and never stores them: one code path, no out-of-bounds access.
 * Each O element is one FMA chain over the keys in order (no split sums),
 * the order the contract fixes; with nv = 1 its 6 chains fill 3/4 of the
 * 2 x 4-cycle FMA pipeline, a loss only for dv <= 16.
 *
 * along_dv (the call's dv; 0 for blocks that never see a partner): the
 * 6-row blocks of the first row group fetch vs->along's rows into L2 (the
 * next key block's K, runtime/dataflow.c), each key the lines of its row in
 * proportion to this block's columns of dv, so every pass over the columns
 * streams its share. Only these blocks: the 1-4-row ones (memory-bound
 * decode) are never given a partner, and a runtime loop there costs
 * registers their accumulators need.
 */
static inline __attribute__((always_inline)) void
pv_block(const flat_dtype t, const int sm, const int mb, const int nv, const int masked, int lastn,
         int rows, int n, const float *restrict p, int64_t ld_p, const flat_kv_src *vs,
         int64_t col0, int64_t pf_cols, float *restrict o, int64_t ld_o,
         const float *restrict alpha, int64_t along_dv)
{
    const __mmask16 last = flat_tail_mask_avx512(lastn);
    const float *pr[PV_MR];
#pragma GCC unroll 6
    for (int i = 0; i < mb; i++)
        pr[i] = p + (i < rows ? i : rows - 1) * ld_p;

    /* The chain starts from alpha * O (alpha == NULL: O is write-only and
     * may hold garbage or NaN, so it starts from 0), and each key adds one
     * FMA: splitting a call at any key gives bitwise the same O. */
    __m512 acc[PV_MR][PV_NV_WIDE];
#pragma GCC unroll 6
    for (int i = 0; i < mb; i++)
#pragma GCC unroll 16
        for (int c = 0; c < nv; c++) {
            const __mmask16 k = masked && c == nv - 1 ? last : 0xffff;
            acc[i][c] = alpha && i < rows
                            ? _mm512_mul_ps(_mm512_set1_ps(alpha[i]),
                                            _mm512_maskz_loadu_ps(k, o + i * ld_o + 16 * c))
                            : _mm512_setzero_ps();
        }

    /* the scales every row shares, once per call (kernels.h's modes) */
    flat_chunk_scales cs[PV_NV_WIDE], gm = {0};
    __m512 colsc[PV_NV_WIDE];
#pragma GCC unroll 16
    for (int c = 0; c < nv; c++) {
        const int cols = masked && c == nv - 1 ? lastn : 16;
        cs[c] = flat_dtype_quantized(t) && sm != FLAT_SC_CHUNK
                    ? flat_chunk_scales_avx512(vs->group, col0 + 16 * c, cols)
                    : (flat_chunk_scales){0};
        colsc[c] = flat_dtype_quantized(t) && sm == FLAT_SC_COLS
                       ? _mm512_mul_ps(_mm512_set1_ps(FLAT_F8_UNIT(t)),
                                       flat_row_scales16_avx512(vs->scale_t, vs->scale, &cs[c]))
                       : _mm512_setzero_ps();
    }
    if (flat_dtype_quantized(t) && sm == FLAT_SC_CHUNK)
        gm = flat_chunk_group_map_avx512(vs->group, col0 / 16, nv);
    /* int4 in pairs: whole 32-column pairs, COLS or CHUNK scales (the entry
     * sends groups that split a pair to LANES) */
    const int pairs = t == FLAT_I4 && !masked && nv % 2 == 0 && sm != FLAT_SC_LANES;
    if (pairs)
#pragma GCC unroll 8
        for (int c = 0; c < nv; c += 2) {
#pragma GCC unroll 6
            for (int i = 0; i < mb; i++)
                split_pairs(&acc[i][c], &acc[i][c + 1]);
            split_pairs(&colsc[c], &colsc[c + 1]);
        }
    const int tail = flat_rows_unaligned(vs->data, vs->ld, t);
    const int64_t cols = 16 * (nv - 1) + (masked ? lastn : 16);
    /* the partner rows' lines in proportion to this block's columns */
    const flat_along_avx512 along =
        along_dv ? flat_along_rows_avx512(vs, 0) : (flat_along_avx512){NULL, 0, 0};
    const int al0 = along.row0 ? (int)(col0 * along.lines / along_dv) : 0;
    const int al1 = along.row0 ? (int)((col0 + cols) * along.lines / along_dv) : 0;
    __m512i nan_seen = _mm512_setzero_si512(); /* F8E4M3: flat_f8_nan_track_avx512 */

    for (int j = 0; j < n; j++) {
        const void *vj = flat_kv_row(vs, j, t), *sj = flat_kv_scale_row(vs, j, t);
        __m512 vv[PV_NV_WIDE];
        /* V rows come from L2/L3 on the first row block of a chunk: fetch
         * PV_PREFETCH keys ahead, one prefetch per 64-byte line (16 f32 or
         * 32 16-bit columns), within the call and then in the runs the
         * caller hands it next (a paged cache's next pages: ukernel.h). */
        if (pf_cols && j + PV_PREFETCH < n) {
#pragma GCC unroll 16
            for (int c = 0; c < nv; c++)
                if ((16 * c) % (512 / flat_dtype_bits(t)) == 0) {
                    flat_prefetch_kv_avx512(
                        t, flat_elem_ptr(vj, PV_PREFETCH * vs->ld + col0 + 16 * c, t));
                    if (pf_cols > 16 * nv) /* the next chunk's columns too (pv) */
                        flat_prefetch_kv_avx512(
                            t, flat_elem_ptr(vj, PV_PREFETCH * vs->ld + col0 + 16 * (nv + c), t));
                }
            if (tail)
                flat_prefetch_row_tail_avx512(t, flat_elem_ptr(vj, PV_PREFETCH * vs->ld + col0, t),
                                              pf_cols);
            if (sj)
                _mm_prefetch((const char *)flat_elem_ptr(sj, PV_PREFETCH * vs->ld_scale, vs->scale_t),
                             _MM_HINT_T0);
        }
        if (along.row0) {
#pragma GCC unroll 8
            for (int li = al0; li < al1; li++)
                _mm_prefetch(along.row0 + j * along.ld + 64 * li, _MM_HINT_T1);
        }
        if (pf_cols && (j & 3) == 0) /* the caller's next rows, 4 at a time */
            flat_prefetch_chain_avx512(vs, j, n - j < 4 ? n - j : 4, n, PV_PREFETCH, col0, pf_cols);
        float rs[16]; /* CHUNK: this row's scale per chunk */
        if (flat_dtype_quantized(t) && sm == FLAT_SC_CHUNK)
            _mm512_storeu_ps(rs, _mm512_mul_ps(_mm512_set1_ps(FLAT_F8_UNIT(t)),
                                               flat_row_scales16_avx512(vs->scale_t, sj, &gm)));
        if (t == FLAT_F8E4M3 && sm != FLAT_SC_LANES)
#pragma GCC unroll 2
            for (int64_t b = 0; b < cols; b += 64)
                nan_seen = flat_f8_nan_track_avx512(nan_seen, flat_elem_ptr(vj, col0 + b, t),
                                                    cols - b < 64 ? (int)(cols - b) : 64);
        /* col0 in the row pointer: the loads below take immediate offsets
         * (offsets col0 + 16c were reloaded from the stack for each key) */
        const void *vjc = flat_elem_ptr(vj, col0, t);
#pragma GCC unroll 16
        for (int c = 0; c < nv; c++) {
            const int cols = masked && c == nv - 1 ? lastn : 16;
            if (pairs) {
                if (c % 2)
                    continue;
                flat_i4_pairs32_avx512(vjc, 16 * c, 32, &vv[c], &vv[c + 1]);
                const __m512 s0 = sm == FLAT_SC_COLS ? colsc[c] : _mm512_set1_ps(rs[c]);
                const __m512 s1 = sm == FLAT_SC_COLS ? colsc[c + 1] : s0;
                vv[c] = _mm512_mul_ps(vv[c], s0), vv[c + 1] = _mm512_mul_ps(vv[c + 1], s1);
            } else if (!flat_dtype_quantized(t))
                vv[c] = flat_kv_chunk16_avx512(t, FLAT_F32, vjc, NULL, NULL, 16 * c, cols);
            else if (sm == FLAT_SC_COLS)
                vv[c] = _mm512_mul_ps(pv_codes(t, vjc, 16 * c, cols), colsc[c]);
            else if (sm == FLAT_SC_CHUNK)
                vv[c] = _mm512_mul_ps(pv_codes(t, vjc, 16 * c, cols), _mm512_set1_ps(rs[c]));
            else
                vv[c] = flat_kv_chunk16_avx512(t, vs->scale_t, vj, sj, &cs[c], col0 + 16 * c, cols);
        }
#pragma GCC unroll 6
        for (int i = 0; i < mb; i++) {
            const __m512 b = _mm512_set1_ps(pr[i][j]);
#pragma GCC unroll 16
            for (int c = 0; c < nv; c++)
                acc[i][c] = _mm512_fmadd_ps(b, vv[c], acc[i][c]);
        }
    }

    if (pairs)
#pragma GCC unroll 8
        for (int c = 0; c < nv; c += 2)
#pragma GCC unroll 6
            for (int i = 0; i < mb; i++)
                join_pairs(&acc[i][c], &acc[i][c + 1]);
#pragma GCC unroll 6
    for (int i = 0; i < mb; i++) {
        if (i >= rows)
            break;
#pragma GCC unroll 16
        for (int c = 0; c < nv; c++)
            _mm512_mask_storeu_ps(o + i * ld_o + 16 * c, masked && c == nv - 1 ? last : 0xffff,
                                  acc[i][c]);
    }
    if (t == FLAT_F8E4M3 && flat_f8_nan_seen_avx512(nan_seen))
        nan_columns(vs, n, col0, (int)cols, rows, o, ld_o);
}

/* Columns [0, cols) of every row block, cols <= 64, prefetching pf_cols
 * columns (pv_block). */
static inline __attribute__((always_inline)) void
pv_columns(const flat_dtype t, const int sm, int cols, int m, int n, const float *restrict p,
           int64_t ld_p, const flat_kv_src *v, int64_t col0, int64_t pf_cols,
           float *restrict o, int64_t ld_o, const float *restrict alpha, int64_t dv)
{
    const int nv = (cols + 15) / 16;
    const int last = cols - 16 * (nv - 1);
    for (int r = 0; r < m; r += PV_MR) {
        const int rows = m - r < PV_MR ? m - r : PV_MR;
        const float *pb = p + r * ld_p;
        float *ob = o + r * ld_o;
        const float *ab = alpha ? alpha + r : NULL;
        /* a short last block (GQA groups of 4 query heads: every block)
         * takes a block of its size: the 6-row one computed 6 rows' FMAs
         * for 4, 1.5x the work of a decode step's P V */
        if (cols == 16 * PV_NV && rows <= 2)
            pv_block(t, sm, 2, 4, 0, 16, rows, n, pb, ld_p, v, col0, pf_cols, ob, ld_o, ab, 0);
        else if (cols == 16 * PV_NV && rows <= 4)
            pv_block(t, sm, 4, 4, 0, 16, rows, n, pb, ld_p, v, col0, pf_cols, ob, ld_o, ab, 0);
        else if (cols == 16 * PV_NV)
            pv_block(t, sm, PV_MR, 4, 0, 16, rows, n, pb, ld_p, v, col0, pf_cols, ob, ld_o, ab,
                     r == 0 ? dv : 0);
        else if (nv == 4)
            pv_block(t, sm, PV_MR, 4, 1, last, rows, n, pb, ld_p, v, col0, pf_cols, ob, ld_o, ab,
                     r == 0 ? dv : 0);
        else if (nv == 3)
            pv_block(t, sm, PV_MR, 3, 1, last, rows, n, pb, ld_p, v, col0, pf_cols, ob, ld_o, ab,
                     r == 0 ? dv : 0);
        else if (nv == 2)
            pv_block(t, sm, PV_MR, 2, 1, last, rows, n, pb, ld_p, v, col0, pf_cols, ob, ld_o, ab,
                     r == 0 ? dv : 0);
        else
            pv_block(t, sm, PV_MR, 1, 1, last, rows, n, pb, ld_p, v, col0, pf_cols, ob, ld_o, ab,
                     r == 0 ? dv : 0);
    }
}

/*
 * Column chunks outside, row blocks inside: a chunk of V (n x 64 floats)
 * then serves every row block from cache (the runtime sizes n for L2, and
 * the first block prefetches V ahead), and P (m x n) is re-read once per 64
 * columns.
 */
/* m <= 2 rows, columns [0, cols) with 64 < cols <= 128, in one pass. */
static inline __attribute__((always_inline)) void
pv_narrow(const flat_dtype t, const int sm, int cols, int m, int n, const float *restrict p, int64_t ld_p,
          const flat_kv_src *v, int64_t col0, float *restrict o, int64_t ld_o,
          const float *restrict alpha)
{
    const int nv = (cols + 15) / 16;
    const int last = cols - 16 * (nv - 1);
    const int masked = cols != 16 * nv;
#define NARROW(mb, nvc) pv_block(t, sm, mb, nvc, masked, last, m, n, p, ld_p, v, col0, cols, o, ld_o, alpha, 0)
    switch (nv + 8 * (m - 1)) {
    case 5: NARROW(1, 5); break;
    case 6: NARROW(1, 6); break;
    case 7: NARROW(1, 7); break;
    case 8: NARROW(1, 8); break;
    case 13: NARROW(2, 5); break;
    case 14: NARROW(2, 6); break;
    case 15: NARROW(2, 7); break;
    default: NARROW(2, 8); break;
    }
#undef NARROW
}

static inline __attribute__((always_inline)) void
pv(const flat_dtype t, const int sm, int m, int n, int dv, const float *restrict p, int64_t ld_p,
   const flat_kv_src *v, float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    assert(m >= 1 && n >= 0 && dv >= 1);
    assert(n == 0 || (p != NULL && v->data != NULL));
    assert(o != NULL);
    if (m == 1 && dv == 16 * PV_NV_WIDE) {
        pv_block(t, sm, 1, PV_NV_WIDE, 0, 16, 1, n, p, ld_p, v, 0, dv, o, ld_o, alpha, 0);
        return;
    }
    if (m <= 2 && dv > 16 * PV_NV && dv <= 16 * PV_NV_NARROW) {
        pv_narrow(t, sm, dv, m, n, p, ld_p, v, 0, o, ld_o, alpha);
        return;
    }
    /* Each even column chunk prefetches its columns and the next chunk's,
     * the odd ones none: DRAM then serves V rows of dv <= 128 whole and in
     * order, and the second chunk reads them from L2 (the runtime sizes the
     * block for it). One prefetch stream per 64-column chunk read each
     * 256-byte bf16 row as two strided streams, which DRAM served ~30%
     * slower (a probe on one Zen 5 core); GQA decode (4 rows, dv 128) on a
     * bf16 cache took 6.0 ms where it took 7.7 (batch_decode_2k, 1 thread,
     * medians of alternating runs). */
    for (int c0 = 0; c0 < dv; c0 += 16 * PV_NV) {
        const int cols = dv - c0 < 16 * PV_NV ? dv - c0 : 16 * PV_NV;
        const int64_t pf = (c0 / (16 * PV_NV)) % 2 ? 0
                           : dv - c0 < 2 * 16 * PV_NV ? dv - c0
                                                      : 2 * 16 * PV_NV;
        pv_columns(t, sm, cols, m, n, p, ld_p, v, c0, pf, o + c0, ld_o, alpha, dv);
    }
}

/* One function per V type and scale mode (convert.h's FLAT_KV_TYPE_FNS
 * says why). */
FLAT_KV_MODE_FNS_AVX512(pv_t, pv,
                        (int m, int n, int dv, const float *restrict p, int64_t ld_p,
                         const flat_kv_src *v, float *restrict o, int64_t ld_o,
                         const float *restrict alpha),
                        m, n, dv, p, ld_p, v, o, ld_o, alpha)
#define pv_t(T, SM, ...) pv_t_##T##_##SM(__VA_ARGS__)

void flat_pv_6__avx512(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                       const flat_kv_src *src, float *restrict o, int64_t ld_o,
                       const float *restrict alpha)
{
    flat_kv_src unit;
    const flat_kv_src *v = flat_kv_scaled_avx512(src, &unit);
    if (v->t == FLAT_I4 && flat_scale_mode_avx512(v) == FLAT_SC_CHUNK && v->group % 32)
        pv_t(FLAT_I4, FLAT_SC_LANES, m, n, dv, p, ld_p, v, o, ld_o, alpha); /* pv_block's pairs */
    else
        FLAT_KV_SWITCH_MODE_AVX512(v, pv_t, m, n, dv, p, ld_p, v, o, ld_o, alpha);
}

/*
 * y = scale * x rounded to t, 16 lanes at a time, the tail masked (nothing
 * past n is read or written). f16: vcvtps2ph with round-to-nearest-even
 * (exceptions suppressed), which is IEEE rounding as convert.h does it,
 * overflow to inf and quiet NaNs included. bf16: the integer rounding of
 * convert.h (add 0x7fff plus the lowest kept bit, keep the top half; NaN
 * gets its quiet bit instead), because vcvtneps2bf16 belongs to AVX512_BF16,
 * which this table must not require, and flushes subnormals besides.
 */
static inline __attribute__((always_inline)) void
store16(const flat_dtype t, void *y, int64_t c, __m512 x, __mmask16 mask)
{
    if (t == FLAT_F32) {
        _mm512_mask_storeu_ps((float *)y + c, mask, x);
        return;
    }
    __m256i h;
    if (t == FLAT_F16) {
        h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
        const __m512i u = _mm512_castps_si512(x);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
        const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
        h = _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
    }
    _mm256_mask_storeu_epi16((uint16_t *)y + c, mask, h);
}

static inline __attribute__((always_inline)) void
store_row(const flat_dtype t, int n, const float *restrict x, float scale, void *restrict y)
{
    const __m512 vs = _mm512_set1_ps(scale);
    int c = 0;
    for (; c + 16 <= n; c += 16)
        store16(t, y, c, _mm512_mul_ps(vs, _mm512_loadu_ps(x + c)), 0xffff);
    if (c < n) {
        const __mmask16 k = flat_tail_mask_avx512(n - c);
        store16(t, y, c, _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(k, x + c)), k);
    }
}

void flat_store_row__avx512(int n, const float *restrict x, float scale, flat_dtype t,
                            void *restrict y)
{
    assert(n >= 1);
    switch (t) {
    case FLAT_F16: store_row(FLAT_F16, n, x, scale, y); break;
    case FLAT_BF16: store_row(FLAT_BF16, n, x, scale, y); break;
    default: store_row(FLAT_F32, n, x, scale, y); break;
    }
}

/* Columns in blocks of up to 8 chunks of 16, each chunk's scale map made
 * once per block (not per row: the division by the group is dearer than a
 * row's conversion), then every row of the block: the same
 * flat_kv_chunk16_avx512 values the pv blocks multiply. */
static inline __attribute__((always_inline)) void
widen_rows(const flat_dtype t, int n, int cols, const flat_kv_src *v, float *restrict y,
           int64_t ld_y)
{
    for (int c0 = 0; c0 < cols; c0 += 128) {
        const int nv = cols - c0 >= 128 ? 8 : (cols - c0 + 15) / 16;
        flat_chunk_scales cs[8];
        for (int u = 0; u < nv; u++) {
            const int dims = cols - c0 - 16 * u < 16 ? cols - c0 - 16 * u : 16;
            cs[u] = flat_dtype_quantized(t) ? flat_chunk_scales_avx512(v->group, c0 + 16 * u, dims)
                                            : (flat_chunk_scales){0};
        }
        for (int j = 0; j < n; j++) {
            const void *row = flat_kv_row(v, j, t), *srow = flat_kv_scale_row(v, j, t);
            for (int u = 0; u < nv; u++) {
                const int dims = cols - c0 - 16 * u < 16 ? cols - c0 - 16 * u : 16;
                _mm512_mask_storeu_ps(y + j * ld_y + c0 + 16 * u, flat_tail_mask_avx512(dims),
                                      flat_kv_chunk16_avx512(t, v->scale_t, row, srow, &cs[u],
                                                             c0 + 16 * u, dims));
            }
        }
    }
}

void flat_widen_rows__avx512(int n, int cols, const flat_kv_src *src, float *restrict y,
                             int64_t ld_y)
{
    flat_kv_src unit;
    const flat_kv_src *v = flat_kv_scaled_avx512(src, &unit); /* F8E4M3 without scales */
    FLAT_KV_SWITCH(v->t, widen_rows, n, cols, v, y, ld_y);
}
