/* S = Q K^T for the decode path: one bf16-pair Q panel against K rows in place. */
#ifndef __AVX512BF16__
#error "kernels/avx512_bf16 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define MR FLAT_AVX512_BF16_MR
/* K rows are fetched this many keys ahead, as in the AVX-512 table: decode
 * streams K from DRAM, and rows strided by heads defeat the stream
 * prefetcher. */
#define QK_ROWS_PREFETCH 32

/*
 * m_blk rows (a compile-time count >= m) against `keys` <= 16 keys. Each
 * 32-dim chunk of the 16 K rows becomes 16 pairs per row (rounded to bf16
 * here, as pack_k would: decode and prefill see the same K), and the 16x16
 * word transpose leaves pair c0/2 + c2 of key j in lane j of r[c2]; one
 * vdpbf16ps per row then adds two dims to that row's 16 scores. Half the
 * transposes and multiplies of widening to fp32, and the same rounding as
 * qk. vdpbf16ps has 6 cycles of latency, so few rows split the pairs over 2
 * or 4 accumulator sets. Rows m..m_blk-1 run on the panel's zero padding.
 */
static inline __attribute__((always_inline)) void
block16(const flat_dtype t, const int m_blk, const int full, int m, int keys, int ahead, int d,
        const uint32_t *restrict qp, const flat_kv_src *ks, int64_t j0, float *restrict s,
        int64_t ld_s)
{
    const int split = m_blk <= 2 ? 4 : m_blk <= 6 ? 2 : 1;
    const int line = (int)(512 / flat_dtype_bits(t)); /* elements per 64-byte line */
    const int64_t ld_k = ks->ld;
    __m512 acc[4][MR];
#pragma GCC unroll 4
    for (int u = 0; u < split; u++)
#pragma GCC unroll 12
        for (int i = 0; i < m_blk; i++)
            acc[u][i] = _mm512_setzero_ps();
    const flat_along_avx512 along = flat_along_rows_avx512(ks, j0); /* ukernel.h */
    for (int c0 = 0; c0 < d; c0 += 32) {
        const int dims = d - c0 < 32 ? d - c0 : 32, pairs = (dims + 1) / 2;
        flat_chunk_scales cs[2];
        if (flat_dtype_quantized(t)) { /* once per chunk, not per row */
            cs[0] = flat_chunk_scales_avx512(ks->group, c0, dims < 16 ? dims : 16);
            cs[1] = flat_chunk_scales_avx512(ks->group, c0 + 16, dims > 16 ? dims - 16 : 1);
        }
        __m512 r[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            const void *kj = flat_kv_row(ks, j0 + j, t), *sj = flat_kv_scale_row(ks, j0 + j, t);
            if (full || j < keys) {
                /* only rows of this call: past them (a paged cache's next
                 * page) lies other data; the runtime prefetches that */
                const int lines = j + QK_ROWS_PREFETCH < ahead ? 32 : 0;
#pragma GCC unroll 2
                for (int c = 0; c < lines; c += line)
                    _mm_prefetch((const char *)flat_elem_ptr(kj, QK_ROWS_PREFETCH * ld_k + c0 + c,
                                                             t),
                                 _MM_HINT_T0);
                if (lines && c0 == 0 && flat_rows_unaligned(ks->data, ld_k, t))
                    _mm_prefetch((const char *)flat_elem_ptr(kj, QK_ROWS_PREFETCH * ld_k + d, t) - 1,
                                 _MM_HINT_T0); /* the line of its last byte */
                if (sj && c0 == 0 && j + QK_ROWS_PREFETCH < ahead) /* the scales' line */
                    _mm_prefetch((const char *)flat_elem_ptr(sj, QK_ROWS_PREFETCH * ks->ld_scale,
                                                             ks->scale_t),
                                 _MM_HINT_T0);
                r[j] = _mm512_castsi512_ps(
                    flat_kv_pairs_mapped_avx512bf16(t, ks->scale_t, kj, sj, cs, c0, dims));
            } else {
                r[j] = _mm512_setzero_ps();
            }
        }
        flat_transpose16_avx512(r);
        if (along.row0)
            flat_prefetch_along_avx512(&along, c0 / 32, keys);
        const uint32_t *q = qp + (int64_t)(c0 / 2) * MR;
        if (pairs == 16) {
#pragma GCC unroll 16
            for (int c2 = 0; c2 < 16; c2++)
#pragma GCC unroll 12
                for (int i = 0; i < m_blk; i++)
                    acc[c2 % split][i] =
                        flat_dp_avx512bf16(acc[c2 % split][i], flat_bcast_pair_avx512bf16(q + c2 * MR + i),
                                           _mm512_castps_si512(r[c2]));
        } else {
            for (int c2 = 0; c2 < pairs; c2++)
#pragma GCC unroll 12
                for (int i = 0; i < m_blk; i++)
                    acc[0][i] = flat_dp_avx512bf16(acc[0][i], flat_bcast_pair_avx512bf16(q + c2 * MR + i),
                                                   _mm512_castps_si512(r[c2]));
        }
    }
    for (int li = (d + 31) / 32; li < along.lines; li++) /* V rows longer than K's */
        flat_prefetch_along_avx512(&along, li, keys);
    const __mmask16 kmask = flat_tail_mask_avx512(keys);
#pragma GCC unroll 12
    for (int i = 0; i < m_blk; i++) {
        if (i >= m)
            break;
        __m512 sum = acc[0][i];
#pragma GCC unroll 3
        for (int u = 1; u < split; u++)
            sum = _mm512_add_ps(sum, acc[u][i]);
        if (full)
            _mm512_storeu_ps(s + i * ld_s, sum);
        else
            _mm512_mask_storeu_ps(s + i * ld_s, kmask, sum);
    }
}

static inline __attribute__((always_inline)) void
rows_blocked(const flat_dtype t, const int m_blk, int m, int d, int n, const uint32_t *restrict qp,
             const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        flat_prefetch_chain_avx512(k, j, 16, n, QK_ROWS_PREFETCH, 0, d); /* the next runs */
        block16(t, m_blk, 1, m, 16, n - j, d, qp, k, j, s + j, ld_s);
    }
    if (j < n) {
        flat_prefetch_chain_avx512(k, j, n - j, n, QK_ROWS_PREFETCH, 0, d);
        block16(t, m_blk, 0, m, n - j, n - j, d, qp, k, j, s + j, ld_s);
    }
}

/* ---- 1-4 rows: dot products, no transposes ----
 *
 * A bf16 K row is already pairs: one 64-byte load is 16 pairs (32 dims),
 * and one vdpbf16ps against the row's Q pairs adds them to that (row, key)
 * pair's partial sums, which one reduction tree per 16 pairs turns into
 * scores (the AVX-512 table's dot kernels, kernels/avx512/qk_rows.c, whose
 * structure this follows: one row takes keys 8 at a time, 2-4 rows the
 * block's 16 / mb keys at once). The 16x16 transposes of block16 cost 4x
 * the multiplies of one row. Other K types become the pairs block16 makes
 * (the same bits: dequantized in fp32 with the call's scale maps, rounded
 * once), so a key's score does not depend on the path. Q pairs are
 * gathered from the panel once per call. A partial last block computes
 * whole subgroups, its missing keys on a copy of its first row (the same
 * arithmetic per key wherever blocks begin: paged calls stay bitwise
 * contiguous ones). */
#define DOT_MAX_PAIRS 288 /* d <= 576 */
#define DOT_CHUNKS (2 * DOT_MAX_PAIRS / 16)

static inline __attribute__((always_inline)) void
dot_sub(const flat_dtype t, const int mb, const int kg, const int kb, int slot, int nk, int64_t j,
        int n, int d, const flat_kv_src *ks, const flat_chunk_scales *map, const uint32_t *qr,
        int ldq, __m512 res[16])
{
    const int line = (int)(512 / flat_dtype_bits(t)); /* elements per 64-byte line */
    const int64_t pf = j + kg - 1 + QK_ROWS_PREFETCH < n ? QK_ROWS_PREFETCH * ks->ld : 0;
    const void *row[16], *srow[16];
    flat_dot_rows_avx512(t, kg, ks, j, nk, pf ? QK_ROWS_PREFETCH : 0, row, srow);
    flat_prefetch_chain_avx512(ks, j, nk, n, QK_ROWS_PREFETCH, 0, d); /* the next runs */
    if (pf && flat_rows_unaligned(ks->data, ks->ld, t)) /* the line of each row's last byte */
#pragma GCC unroll 8
        for (int u = 0; u < kg; u++)
            _mm_prefetch((const char *)flat_elem_ptr(row[u], pf + d, t) - 1, _MM_HINT_T0);
    for (int c0 = 0; c0 < d; c0 += 32) {
        const int dims = d - c0 < 32 ? d - c0 : 32;
        const __mmask32 lm = dims == 32 ? 0xffffffffu : (__mmask32)((1ull << dims) - 1);
#pragma GCC unroll 8
        for (int u = 0; u < kg; u++) {
            if (c0 % line == 0)
                _mm_prefetch(flat_elem_ptr(row[u], pf + c0, t), _MM_HINT_T0);
            const __m512i x =
                t != FLAT_BF16 ? flat_kv_pairs_mapped_avx512bf16(t, ks->scale_t, row[u], srow[u],
                                                                 &map[c0 / 16], c0, dims)
                : dims == 32   ? _mm512_loadu_si512((const uint16_t *)row[u] + c0)
                               : _mm512_maskz_loadu_epi16(lm, (const uint16_t *)row[u] + c0);
#pragma GCC unroll 4
            for (int i = 0; i < mb; i++)
                res[i * kb + slot + u] = flat_dp_avx512bf16(
                    res[i * kb + slot + u], _mm512_loadu_si512(qr + i * ldq + c0 / 2), x);
        }
    }
}

static inline __attribute__((always_inline)) void
rows_dot(const flat_dtype t, const int mb, int m, int d, int n, const uint32_t *restrict qp,
         const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    const int kb = 16 / mb, kg = mb == 1 ? 8 : kb;
    const int ldq = (d + 31) / 32 * 16; /* pairs, padded to whole vectors */
    uint32_t qr[mb * DOT_MAX_PAIRS];
    const __m512i step = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(MR));
    for (int i = 0; i < mb; i++) /* row i's pairs (zero past the panel's d/2 and for rows >= m) */
        for (int c2 = 0; c2 < ldq; c2 += 16) {
            const int left = (d + 1) / 2 - c2;
            const __mmask16 lm = i < m && left > 0 ? flat_tail_mask_avx512(left < 16 ? left : 16) : 0;
            _mm512_storeu_si512(qr + i * ldq + c2,
                                _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), lm, step,
                                                            qp + (int64_t)c2 * MR + i, 4));
        }
    flat_chunk_scales map[DOT_CHUNKS]; /* each 16-column chunk's, once per call */
    if (flat_dtype_quantized(t))
        for (int c0 = 0; c0 < d; c0 += 16)
            map[c0 / 16] = flat_chunk_scales_avx512(k->group, c0, d - c0 < 16 ? d - c0 : 16);
    for (int64_t j0 = 0; j0 < n; j0 += kb) {
        const int keys = n - j0 < kb ? (int)(n - j0) : kb;
        __m512 res[16];
#pragma GCC unroll 16
        for (int p = 0; p < 16; p++)
            res[p] = _mm512_setzero_ps();
#pragma GCC unroll 2
        for (int u0 = 0; u0 < kb; u0 += kg) {
            if (u0 >= keys)
                break;
            dot_sub(t, mb, kg, kb, u0, keys - u0, j0 + u0, n, d, k, map, qr, ldq, res);
        }
        flat_store_pair_sums_avx512(flat_reduce16_avx512(res), mb, m, keys, s + j0, ld_s);
    }
}

/* Row counts as the AVX-512 table's: extra multiplies on the panel's zero
 * rows cost nothing while K streams from memory. */
static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
        float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    assert(n == 0 || (k->data != NULL && ld_s >= n));
    const uint32_t *q = (const uint32_t *)qp;
    if (n == 0)
        return;
    if (m <= 4 && d <= 2 * DOT_MAX_PAIRS) {
        if (m == 1)
            rows_dot(t, 1, m, d, n, q, k, s, ld_s);
        else if (m == 2)
            rows_dot(t, 2, m, d, n, q, k, s, ld_s);
        else
            rows_dot(t, 4, m, d, n, q, k, s, ld_s);
        return;
    }
    /* the transposing block: 5-12 rows, or dims past DOT_MAX_PAIRS pairs */
    if (m <= 4)
        rows_blocked(t, 4, m, d, n, q, k, s, ld_s);
    else if (m <= 6 && !flat_dtype_quantized(t)) /* quantized: fewer instances (build time) */
        rows_blocked(t, 6, m, d, n, q, k, s, ld_s);
    else if (m <= 8)
        rows_blocked(t, 8, m, d, n, q, k, s, ld_s);
    else
        rows_blocked(t, 12, m, d, n, q, k, s, ld_s);
}

/* One function per K/V type (convert.h's FLAT_KV_TYPE_FNS says why). */
FLAT_KV_TYPE_FNS(qk_rows_t, qk_rows,
                 (int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
                  float *restrict s, int64_t ld_s),
                 m, d, n, qp, k, s, ld_s)
#define qk_rows_t(T, ...) qk_rows_t_##T(__VA_ARGS__)

void flat_qk_rows__avx512_bf16(int m, int d, int n, const float *restrict qp,
                               const flat_kv_src *src, float *restrict s, int64_t ld_s)
{
    flat_kv_src unit;
    const flat_kv_src *k = flat_kv_scaled_avx512(src, &unit);
    FLAT_KV_SWITCH(k->t, qk_rows_t, m, d, n, qp, k, s, ld_s);
}
