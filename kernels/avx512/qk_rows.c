/* S = Q K^T for the decode path: one Q panel against K rows where they lie.
 * 1-4 rows take the dot-product kernels here; 5-12 rows, dims past
 * DOT_MAX_D and qk_rows_exact the transposing block (qk.c). */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define MR FLAT_AVX512_MR
#define QK_ROWS_PREFETCH FLAT_AVX512_QK_ROWS_PREFETCH
/* Head dims up to this take the dot-product kernels below (their Q rows sit
 * on the stack: 4 rows x 576 floats, 9 KiB); larger ones the transposing
 * block (qk.c). 576 is DeepSeek's absorbed MLA key. */
#define DOT_MAX_D 576

/* ---- The dot-product kernels (1-4 rows: decode, GQA groups) ----
 *
 * Transposing 16x16 per 16 keys and 16 dims costs 64 shuffles whatever the
 * row count, 4x the FMAs of one row: decode was shuffle-bound (15 ns per
 * key in L2 at d = 128, under the read bandwidth). Here each (row, key) pair
 * keeps a vector of partial sums over its dims; K chunks are loaded as they
 * lie and FMAed against the row's Q chunk, and one reduction tree per 16
 * pairs (45 shuffles and adds) turns them into scores at the end. mb rows x
 * kb keys = 16 pairs per block. Q rows are gathered once per call from the
 * panel into rows on the stack. A bf16 K row is read 32 dims (one 64-byte
 * line) at a time and widened in one instruction per half: its even dims by
 * a shift, its odd dims by a mask; Q rows are stored the same way (even
 * dims, then odd dims, per 32), so the products pair up. */

/* Rows 0-3 of the panel at dims c .. c+15 as four row vectors r[i] (rows
 * >= m and dims >= d zero): each dim's 4 rows are one 16-byte load, four
 * dims to a vector ([dim][row]), a permute makes it [row][dim], and a 4x4
 * transpose of 128-bit lanes gives the rows. Per call these replaced one
 * 16-lane gather per row and 16 dims, which cost ~200 ns of a 4-row call
 * (a 16-key page's call took 2.8x the per-key time of a 256-key one). */
static inline __attribute__((always_inline)) void
q_rows4(int m, int d, int c, const float *restrict qp, __m512 r[4])
{
    const __mmask8 rows = (__mmask8)((1u << (m < 4 ? m : 4)) - 1);
    const __m512i to_rows = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    __m512 w[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m128 x[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            const int dim = c + 4 * k + u;
            x[u] = _mm_maskz_loadu_ps(dim < d ? rows : 0, qp + (int64_t)(dim < d ? dim : 0) * MR);
        }
        /* lane indices are immediates: spelled out (unrolled loops are not
         * constant at -O0/-O1, the sanitizer builds) */
        const __m512 z = _mm512_insertf32x4(
            _mm512_insertf32x4(_mm512_insertf32x4(_mm512_castps128_ps512(x[0]), x[1], 1), x[2], 2),
            x[3], 3);
        w[k] = _mm512_permutexvar_ps(to_rows, z);
    }
    const __m512 t0 = _mm512_shuffle_f32x4(w[0], w[1], 0x44), t1 = _mm512_shuffle_f32x4(w[0], w[1], 0xee);
    const __m512 t2 = _mm512_shuffle_f32x4(w[2], w[3], 0x44), t3 = _mm512_shuffle_f32x4(w[2], w[3], 0xee);
    r[0] = _mm512_shuffle_f32x4(t0, t2, 0x88);
    r[1] = _mm512_shuffle_f32x4(t0, t2, 0xdd);
    r[2] = _mm512_shuffle_f32x4(t1, t3, 0x88);
    r[3] = _mm512_shuffle_f32x4(t1, t3, 0xdd);
}

/* Q rows i < m of the panel into rows of ldq floats (zero past d, and rows
 * m .. mb-1 zero); bf16 and int4 K (pairs = 1): each 32 dims as 16 even,
 * 16 odd. Once per call: one function, not a copy in every kernel instance
 * (the sanitizer builds' compile time). */
static __attribute__((noinline)) void
gather_q(const int pairs, int m, int mb, int d, const float *restrict qp, float *restrict qr,
         int ldq)
{
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    if (mb == 1) { /* one row: a gather per 16 dims is cheaper */
        const __m512i step = _mm512_mullo_epi32(
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi32(pairs ? 2 * MR : MR));
        for (int c0 = 0; c0 < ldq; c0 += 16) {
            /* dims of this vector: pairs -> c = 32*(c0/32) + 2l + (c0/16)%2 */
            const int base = pairs ? 32 * (c0 / 32) + (c0 / 16) % 2 : c0;
            const int stride = pairs ? 2 : 1;
            const int left = d - base <= 0 ? 0 : (d - base + stride - 1) / stride;
            const __mmask16 k = flat_tail_mask_avx512(left < 16 ? left : 16);
            _mm512_storeu_ps(qr + c0, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, step,
                                                               qp + (int64_t)base * MR, 4));
        }
        return;
    }
    for (int c0 = 0; c0 < ldq; c0 += pairs ? 32 : 16) {
        __m512 a[4], b[4];
        q_rows4(m, d, c0, qp, a);
        if (pairs)
            q_rows4(m, d, c0 + 16, qp, b);
#pragma GCC unroll 4
        for (int i = 0; i < mb; i++) {
            if (!pairs) {
                _mm512_storeu_ps(qr + i * ldq + c0, a[i]);
                continue;
            }
            _mm512_storeu_ps(qr + i * ldq + c0, _mm512_permutex2var_ps(a[i], even, b[i]));
            _mm512_storeu_ps(qr + i * ldq + c0 + 16, _mm512_permutex2var_ps(a[i], odd, b[i]));
        }
    }
}

/* What a call's blocks share: Q rows, and the scales that are the same for
 * every row (kernels.h's scale modes): COLS the scale of each column, CHUNK
 * the maps that widen a row's groups to its chunks, LANES each chunk's map. */
#define DOT_LDQ ((DOT_MAX_D + 31) / 32 * 32)
#define DOT_CHUNKS (DOT_LDQ / 16)
#define DOT_CHUNKS_PAD ((DOT_CHUNKS + 15) / 16 * 16)
typedef struct {
    const float *qr;
    int ldq;
    float cols[DOT_LDQ];
    flat_chunk_scales map[DOT_CHUNKS];
} dot_call;

/* K types the dot kernels read 32 dims at a time as 16 even and 16 odd
 * dims, against Q rows stored the same way (gather_q's pairs): bf16 (its
 * halves widen by a shift and a mask) and int4 (a byte's low nibble is the
 * even dim, its high nibble the odd one: one sign extension of 16 bytes,
 * then a shift pair and a shift, 3 instructions per 16 codes where the
 * in-order widening took 5; qk_rows 13.4 -> 9.1 ns per key in L2, 1 row). */
#define PAIRS(t) ((t) == FLAT_BF16 || (t) == FLAT_I4)

/* Codes of a quantized K row as the dot kernels multiply them: F8E4M3 as
 * code / 256 (its 2^8 is in the scales: FLAT_F8_UNIT), its NaN codes recorded by
 * dot_sub and their scores set by dot_block. */
static inline __attribute__((always_inline)) __m512
dot_codes(const flat_dtype t, const void *row, int c0, int dims)
{
    return t == FLAT_F8E4M3 ? flat_f8_codes16_div256_avx512(row, c0, dims)
                            : flat_codes16_avx512(t, row, c0, dims);
}

/* Chunk c0 (16 columns, dims of them valid) of a K row as fp32. chunk: the
 * row's scale per chunk, widened (CHUNK); COLS scales are folded into Q
 * (rows_dot); LANES never reaches the dot kernels (qk_rows_dot). */
static inline __attribute__((always_inline)) __m512
key_chunk(const flat_dtype t, const int sm, const void *row, const float *chunk, int c0, int dims)
{
    if (!flat_dtype_quantized(t))
        return flat_kv_chunk16_avx512(t, FLAT_F32, row, NULL, NULL, c0, dims);
    const __m512 codes = dot_codes(t, row, c0, dims);
    return sm == FLAT_SC_CHUNK ? _mm512_mul_ps(codes, _mm512_set1_ps(chunk[c0 / 16])) : codes;
}

/* Keys are taken kg at a time (a subgroup), all their dims, then the next:
 * a subgroup's row pointers stay in registers (per key and chunk, the
 * address arithmetic and pointer loads of 16 keys in flight outnumbered the
 * FMAs of one row). One row: subgroups of 8 keys (8 FMA chains), whose 16
 * finished sums wait in registers for one reduction per block; more rows:
 * the block is one subgroup (16 / mb keys, 16 chains), the Q chunk of each
 * row loaded once for all its keys (subgroups of 8 / mb keys measured 30%
 * slower at 4 rows). */

/* Dims c0 .. c0+31 of a PAIRS K row (dims <= 32 of them valid) as its even
 * and odd dims in fp32: bf16 by a shift and a mask, int4 by
 * flat_i4_pairs32_avx512 (COLS scales are in Q; CHUNK groups span the 32
 * dims: chunk holds the row's scale per 16-dim chunk). */
static inline __attribute__((always_inline)) void
key_pairs(const flat_dtype t, const int sm, const void *row, const float *chunk, int c0, int dims,
          __m512 *even, __m512 *odd)
{
    if (t == FLAT_BF16) {
        const uint16_t *r = (const uint16_t *)row + c0;
        const __m512i x = dims >= 32 ? _mm512_loadu_si512(r)
                                     : _mm512_maskz_loadu_epi16((__mmask32)((1ull << dims) - 1), r);
        *even = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
        *odd = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(-65536)));
        return;
    }
    flat_i4_pairs32_avx512(row, c0, dims, even, odd);
    if (sm == FLAT_SC_CHUNK) {
        const __m512 sc = _mm512_set1_ps(chunk[c0 / 16]);
        *even = _mm512_mul_ps(*even, sc), *odd = _mm512_mul_ps(*odd, sc);
    }
}

/* acc[i*kb + slot + u] += Q row i . K row u's chunk at c0: 16 dims (32 for bf16),
 * all valid when `fulld`; keys u < nk. */
static inline __attribute__((always_inline)) void
sub_chunk(const flat_dtype t, const int sm, const int mb, const int kg, const int kb,
          const int slot, const int fulld, int nk, int d, int c0, const dot_call *dc,
          const void *const *row, const float (*chunk)[DOT_CHUNKS_PAD], __m512 acc[16])
{
    const float *qr = dc->qr;
    const int ldq = dc->ldq;
    if (PAIRS(t)) {
#pragma GCC unroll 8
        for (int u = 0; u < kg; u++) {
            if (u >= nk)
                break;
            __m512 even, odd;
            key_pairs(t, sm, row[u], chunk[u], c0, fulld ? 32 : d - c0, &even, &odd);
#pragma GCC unroll 8
            for (int i = 0; i < mb; i++) {
                acc[i * kb + slot + u] = _mm512_fmadd_ps(_mm512_loadu_ps(qr + i * ldq + c0), even,
                                                  acc[i * kb + slot + u]);
                acc[i * kb + slot + u] = _mm512_fmadd_ps(_mm512_loadu_ps(qr + i * ldq + c0 + 16), odd,
                                                  acc[i * kb + slot + u]);
            }
        }
        return;
    }
    const int dims = fulld ? 16 : d - c0;
#pragma GCC unroll 8
    for (int u = 0; u < kg; u++) {
        if (u >= nk)
            break;
        const __m512 kv = key_chunk(t, sm, row[u], chunk[u], c0, dims);
#pragma GCC unroll 8
        for (int i = 0; i < mb; i++)
            acc[i * kb + slot + u] = _mm512_fmadd_ps(_mm512_loadu_ps(qr + i * ldq + c0), kv,
                                              acc[i * kb + slot + u]);
    }
}

/* Keys j .. j+nk-1 (nk <= kg), all dims, into res[i*kb + slot + u]. Dims go
 * a 64-byte line of K at a time, one prefetch per row and line (the row
 * QK_ROWS_PREFETCH keys on, or, near the end of the call, the row itself,
 * and the caller's next rows apart: flat_prefetch_chain_avx512), the last
 * partial chunk apart. */
static inline __attribute__((always_inline)) void
dot_sub(const flat_dtype t, const int sm, const int mb, const int kg, const int kb, int slot,
        int nk, int64_t j, int n, int d, const flat_kv_src *ks, const dot_call *dc,
        float (*chunk)[DOT_CHUNKS_PAD], __m512 res[16], __m512i *nan_seen)
{
    const int step = PAIRS(t) ? 32 : 16;                     /* dims per chunk */
    const int line = (int)(512 / flat_dtype_bits(t)) / step; /* chunks per line */
    const int64_t pf = j + kg - 1 + QK_ROWS_PREFETCH < n ? QK_ROWS_PREFETCH * ks->ld : 0;
    const void *row[16], *srow[16];
    flat_dot_rows_avx512(t, kg, ks, j, nk, pf ? QK_ROWS_PREFETCH : 0, row, srow);
    flat_prefetch_chain_avx512(ks, j, nk, n, QK_ROWS_PREFETCH, 0, d);
    if (pf && flat_rows_unaligned(ks->data, ks->ld, t))
#pragma GCC unroll 8
        for (int u = 0; u < kg; u++)
            if (u < nk)
                flat_prefetch_row_tail_avx512(t, flat_elem_ptr(row[u], pf, t), d);
    if (flat_dtype_quantized(t) && sm == FLAT_SC_CHUNK) { /* each row's scale per chunk */
        const int chunks = (d + 15) / 16;
        const flat_chunk_scales map0 = dc->map[0];
        const int f16 = ks->scale_t == FLAT_F16;
        const __m512 unit = _mm512_set1_ps(FLAT_F8_UNIT(t));
#pragma GCC unroll 8
        for (int u = 0; u < kg; u++) {
            if (u >= nk)
                break;
            const __m512 s0 = f16 ? flat_row_scales16_avx512(FLAT_F16, srow[u], &map0)
                                  : flat_row_scales16_avx512(FLAT_F32, srow[u], &map0);
            _mm512_storeu_ps(chunk[u], t == FLAT_F8E4M3 ? _mm512_mul_ps(s0, unit) : s0);
            for (int k0 = 16; k0 < chunks; k0 += 16)
                _mm512_storeu_ps((float *)chunk[u] + k0,
                                 _mm512_mul_ps(unit, flat_row_scales16_avx512(
                                                         ks->scale_t, srow[u], &dc->map[k0 / 16])));
        }
    }
    int c0 = 0;
    if (flat_dtype_quantized(t) && sm == FLAT_SC_CHUNK && mb == 1) {
        /* One row: the scale multiplies each group's partial sum once,
         * sum_g s_g (sum_c q_c code_c), instead of every code (the codes'
         * widening and a multiply per 16 codes were the dearest part of
         * int8 decode; scales of CHUNK groups span whole chunks) */
        const int64_t g = ks->group;
        for (int64_t cg = 0; cg < d; cg += g) {
            __m512 part[8];
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++)
                part[u] = _mm512_setzero_ps();
            for (c0 = (int)cg; c0 < cg + g; c0 += step) {
                if (c0 % (line * step) == 0)
#pragma GCC unroll 8
                    for (int u = 0; u < kg; u++)
                        if (u < nk) {
                            flat_prefetch_kv_avx512(t, flat_elem_ptr(row[u], pf + c0, t));
                            if (t == FLAT_F8E4M3)
                                *nan_seen = flat_f8_nan_track_avx512(
                                    *nan_seen, flat_elem_ptr(row[u], c0, t), d - c0 < 64 ? d - c0 : 64);
                        }
                const __m512 q = _mm512_loadu_ps(dc->qr + c0);
                if (t == FLAT_I4) {
                    const __m512 q1 = _mm512_loadu_ps(dc->qr + c0 + 16);
#pragma GCC unroll 8
                    for (int u = 0; u < kg; u++)
                        if (u < nk) {
                            __m512 even, odd;
                            flat_i4_pairs32_avx512(row[u], c0, 32, &even, &odd);
                            part[u] = _mm512_fmadd_ps(q1, odd, _mm512_fmadd_ps(q, even, part[u]));
                        }
                    continue;
                }
#pragma GCC unroll 8
                for (int u = 0; u < kg; u++)
                    if (u < nk)
                        part[u] = _mm512_fmadd_ps(q, dot_codes(t, row[u], c0, 16), part[u]);
            }
#pragma GCC unroll 8
            for (int u = 0; u < kg; u++)
                if (u < nk)
                    res[slot + u] = _mm512_fmadd_ps(part[u], _mm512_set1_ps(chunk[u][cg / 16]),
                                                    res[slot + u]);
        }
        return;
    }
    for (; c0 + line * step <= d; c0 += line * step) {
#pragma GCC unroll 8
        for (int u = 0; u < kg; u++)
            if (u < nk) {
                flat_prefetch_kv_avx512(t, flat_elem_ptr(row[u], pf + c0, t));
                if (t == FLAT_F8E4M3)
                    *nan_seen = flat_f8_nan_track_avx512(*nan_seen, flat_elem_ptr(row[u], c0, t), 64);
            }
#pragma GCC unroll 8
        for (int v = 0; v < line; v++)
            sub_chunk(t, sm, mb, kg, kb, slot, 1, nk, d, c0 + v * step, dc, row, chunk, res);
    }
    if (c0 < d)
#pragma GCC unroll 8
        for (int u = 0; u < kg; u++)
            if (u < nk) {
                flat_prefetch_kv_avx512(t, flat_elem_ptr(row[u], pf + c0, t));
                if (t == FLAT_F8E4M3)
                    *nan_seen = flat_f8_nan_track_avx512(*nan_seen, flat_elem_ptr(row[u], c0, t),
                                                         d - c0);
            }
    for (; c0 + step <= d; c0 += step)
        sub_chunk(t, sm, mb, kg, kb, slot, 1, nk, d, c0, dc, row, chunk, res);
    if (c0 < d)
        sub_chunk(t, sm, mb, kg, kb, slot, 0, nk, d, c0, dc, row, chunk, res);
}

/* F8E4M3 keys j0 .. j0+keys-1 holding a NaN code get a NaN score in every
 * row, as the product with the code's NaN would give: dot_codes read those
 * codes as finite, and a block that saw one (it should never: flat_quantize
 * makes none) pays for this scan. */
static __attribute__((noinline, cold)) void nan_scores(const flat_kv_src *ks, int64_t j0, int keys,
                                                       int m, int d, float *s, int64_t ld_s)
{
    for (int u = 0; u < keys; u++) {
        const void *row = flat_kv_row(ks, j0 + u, FLAT_F8E4M3);
        for (int c = 0; c < d; c++)
            if (flat_f8_is_nan(row, c)) {
                for (int i = 0; i < m; i++)
                    s[i * ld_s + u] = __builtin_nanf("");
                break;
            }
    }
}

/* mb rows x kb keys from key j0 (keys of them valid), scores stored. */
static inline __attribute__((always_inline)) void
dot_block(const flat_dtype t, const int sm, const int mb, const int full, int m, int keys,
          int64_t j0, int n, int d, const flat_kv_src *ks, const dot_call *dc, float *restrict s,
          int64_t ld_s)
{
    const int kb = 16 / mb, kg = mb == 1 ? 8 : kb;
    float chunk[16][DOT_CHUNKS_PAD]; /* CHUNK: each row's scale per chunk */
    __m512i nan_seen = _mm512_setzero_si512(); /* F8E4M3: flat_f8_nan_track_avx512 */
    __m512 res[16];
#pragma GCC unroll 16
    for (int p = 0; p < 16; p++)
        res[p] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int u0 = 0; u0 < kb; u0 += kg) {
        const int nk = full ? kg : keys - u0 < kg ? keys - u0 : kg;
        if (nk <= 0)
            break;
        dot_sub(t, sm, mb, kg, kb, u0, nk, j0 + u0, n, d, ks, dc,
                &chunk[u0], res, &nan_seen);
    }
    flat_store_pair_sums_avx512(flat_reduce16_avx512(res), mb, m, keys, s + j0, ld_s);
    if (t == FLAT_F8E4M3 && flat_f8_nan_seen_avx512(nan_seen))
        nan_scores(ks, j0, keys, m, d, s + j0, ld_s);
}

/* The call's shared scales (quantized K; kernels.h's modes). */
static inline __attribute__((always_inline)) void
prepare_scales(const flat_dtype t, const int sm, int d, const flat_kv_src *k, dot_call *dc)
{
    if (!flat_dtype_quantized(t))
        return;
    const int chunks = (d + 15) / 16;
    if (sm == FLAT_SC_CHUNK) {
        for (int k0 = 0; k0 < chunks; k0 += 16)
            dc->map[k0 / 16] = flat_chunk_group_map_avx512(k->group, k0,
                                                           chunks - k0 < 16 ? chunks - k0 : 16);
        return;
    }
    for (int c0 = 0; c0 < d; c0 += 16) {
        const int dims = d - c0 < 16 ? d - c0 : 16;
        dc->map[c0 / 16] = flat_chunk_scales_avx512(k->group, c0, dims);
        if (sm == FLAT_SC_COLS)
            _mm512_storeu_ps(dc->cols + c0,
                             flat_row_scales16_avx512(k->scale_t, k->scale, &dc->map[c0 / 16]));
    }
}

static inline __attribute__((always_inline)) void
rows_dot(const flat_dtype t, const int sm, const int mb, int m, int d, int n,
         const float *restrict qp, const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    const int kb = 16 / mb;
    float qr[mb * DOT_LDQ];
    dot_call dc;
    dc.qr = qr;
    dc.ldq = (d + 31) / 32 * 32;
    gather_q(PAIRS(t), m, mb, d, qp, qr, dc.ldq);
    prepare_scales(t, sm, d, k, &dc);
    if (t == FLAT_I4 && sm == FLAT_SC_COLS) /* as the COLS fold below, on gather_q's pairs */
        for (int i = 0; i < mb; i++)
            for (int c = 0; c < dc.ldq; c++) {
                const int dim = 32 * (c / 32) + 2 * (c % 16) + (c / 16) % 2;
                qr[i * dc.ldq + c] *= dim < d ? dc.cols[dim] : 0.0f;
            }
    else if (flat_dtype_quantized(t) && sm == FLAT_SC_COLS) /* (q * s) * code: no multiply per code */
        for (int i = 0; i < mb; i++)
            for (int c0 = 0; c0 < dc.ldq; c0 += 16)
                _mm512_storeu_ps(qr + i * dc.ldq + c0,
                                 _mm512_mul_ps(_mm512_loadu_ps(qr + i * dc.ldq + c0),
                                               c0 < d ? _mm512_mul_ps(_mm512_set1_ps(FLAT_F8_UNIT(t)),
                                                                      _mm512_loadu_ps(dc.cols + c0))
                                                      : _mm512_setzero_ps()));
    int64_t j = 0;
    for (; j + kb <= n; j += kb)
        dot_block(t, sm, mb, 1, m, kb, j, n, d, k, &dc, s, ld_s);
    if (j < n)
        dot_block(t, sm, mb, 0, m, (int)(n - j), j, n, d, k, &dc, s, ld_s);
}

/* The dot-product kernels: 1-4 rows (the row count rounded up to 1, 2 or
 * 4: a few FMAs on zero rows cost nothing while K streams in). With 8 rows
 * (2 keys per block) they ran 20% slower than the transposing block, whose
 * shuffles are then shared by 8 rows. Quantized groups that split chunks
 * (LANES: g8, g3; no format in use), and int4 groups of 16 (which split
 * its 32-dim pairs), take the transposing block: one more
 * set of instances each cache type would compile for a rare layout. */
static inline __attribute__((always_inline)) void
qk_rows_dot(const flat_dtype t, const int sm, int m, int d, int n, const float *restrict qp,
            const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    if (sm == FLAT_SC_LANES || (t == FLAT_I4 && sm == FLAT_SC_CHUNK && k->group % 32))
        flat_qk_transposing__avx512(m, d, n, qp, k, s, ld_s);
    else if (m == 1)
        rows_dot(t, sm, 1, m, d, n, qp, k, s, ld_s);
    else if (m == 2)
        rows_dot(t, sm, 2, m, d, n, qp, k, s, ld_s);
    else
        rows_dot(t, sm, 4, m, d, n, qp, k, s, ld_s);
}

/* One function per cache type (and scale mode), not one body with every
 * instance inlined (convert.h's FLAT_KV_TYPE_FNS says why): 62 -> 30 s. */
FLAT_KV_MODE_FNS_AVX512(qk_dot, qk_rows_dot,
                        (int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
                         float *restrict s, int64_t ld_s),
                        m, d, n, qp, k, s, ld_s)
#define qk_dot(T, SM, ...) qk_dot_##T##_##SM(__VA_ARGS__)
/* exact: qk_rows_exact (1-4 rows on the one-chain transposing block). */
static void qk_rows_entry(const int exact, int m, int d, int n, const float *restrict qp,
                          const flat_kv_src *src, float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    assert(n == 0 || (src->data != NULL && ld_s >= n));
    if (n == 0)
        return;
    flat_kv_src unit;
    const flat_kv_src *k = flat_kv_scaled_avx512(src, &unit);
    if (m <= 4 && exact)
        flat_qk_transposing_exact__avx512(m, d, n, qp, k, s, ld_s);
    else if (m <= 4 && d <= DOT_MAX_D)
        FLAT_KV_SWITCH_MODE_AVX512(k, qk_dot, m, d, n, qp, k, s, ld_s);
    else /* 5-12 rows: the 8- and 12-row blocks have one chain per score */
        flat_qk_transposing__avx512(m, d, n, qp, k, s, ld_s);
}

void flat_qk_rows__avx512(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                          float *restrict s, int64_t ld_s)
{
    qk_rows_entry(0, m, d, n, qp, src, s, ld_s);
}

void flat_qk_rows_exact__avx512(int m, int d, int n, const float *restrict qp,
                                const flat_kv_src *src, float *restrict s, int64_t ld_s)
{
    qk_rows_entry(1, m, d, n, qp, src, s, ld_s);
}
