/* S = Q K^T in qk's order: one Q panel against packed K panels (a 12x32
 * register block per K panel), and qk_rows' transposing block, which gives
 * K rows where they lie the same products in the same order (5-12 rows,
 * head dims past the dot kernels', qk_rows_exact: qk_rows.c calls it). */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define MR FLAT_AVX512_MR
#define NR FLAT_AVX512_NR
#define QK_ROWS_PREFETCH FLAT_AVX512_QK_ROWS_PREFETCH

/*
 * One K panel. Each d step loads the panel's 32 keys (two vectors, one
 * contiguous 128-byte row of the panel) and broadcasts the 12 Q values of
 * that dim; 24 FMAs land on 24 independent accumulators. Both panels are
 * read strictly sequentially; the Q panel stays in L1 across K panels.
 */
static inline void qk_panel(int d, const float *restrict qp, const float *restrict kp,
                            float *restrict s, int64_t ld_s)
{
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int c = 0; c < d; c++) {
        /* The same row of the next panel: K streams from L2/L3 one panel
         * (d x 128 bytes, >= 12 d cycles of FMAs) ahead of its use; without
         * it a third of qk's time sat on K loads. A prefetch past the last
         * panel is harmless: prefetches never fault. */
        _mm_prefetch((const char *)(kp + (int64_t)d * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(kp + (int64_t)d * NR + 16), _MM_HINT_T0);
        const __m512 k0 = _mm512_loadu_ps(kp);
        const __m512 k1 = _mm512_loadu_ps(kp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 q = _mm512_set1_ps(qp[i]);
            acc[i][0] = _mm512_fmadd_ps(q, k0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(q, k1, acc[i][1]);
        }
        qp += MR;
        kp += NR;
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        _mm512_storeu_ps(s + i * ld_s, acc[i][0]);
        _mm512_storeu_ps(s + i * ld_s + 16, acc[i][1]);
    }
}

void flat_qk_12x32__avx512(int d, int n_panels, const float *restrict qp,
                           const float *restrict kp, float *restrict s, int64_t ld_s)
{
    assert(d >= 1 && n_panels >= 0);
    assert(ld_s >= (int64_t)n_panels * NR);
    const int64_t panel = (int64_t)d * NR;
    for (int p = 0; p < n_panels; p++)
        qk_panel(d, qp, kp + p * panel, s + p * NR, ld_s);
}

/* One prefetch per 64-byte line of K row j + QK_ROWS_PREFETCH (and of its
 * scales at column 0), only for rows of this call: the rows past it (the
 * next page of a paged cache) block16 asks for apart
 * (flat_prefetch_chain_avx512). */
static inline __attribute__((always_inline)) void
prefetch_key(const flat_dtype t, const flat_kv_src *ks, const void *kj, const void *sj, int64_t j,
             int n, int c0, int d)
{
    if (j + QK_ROWS_PREFETCH >= n)
        return;
    if (c0 % (512 / flat_dtype_bits(t)) == 0)
        flat_prefetch_kv_avx512(t, flat_elem_ptr(kj, QK_ROWS_PREFETCH * ks->ld + c0, t));
    if (c0 == 0 && flat_rows_unaligned(ks->data, ks->ld, t))
        flat_prefetch_row_tail_avx512(t, flat_elem_ptr(kj, QK_ROWS_PREFETCH * ks->ld, t), d);
    if (sj && c0 == 0)
        _mm_prefetch((const char *)flat_elem_ptr(sj, QK_ROWS_PREFETCH * ks->ld_scale, ks->scale_t),
                     _MM_HINT_T0);
}

/* ---- The transposing block (5-12 rows, dims > DOT_MAX_D) ----
 *
 * m_blk rows (a compile-time count >= m) against `keys` <= 16 keys. Each
 * 16-dim chunk of the 16 K rows is loaded and transposed in registers, so
 * lane j of r[c] is K[j][c0 + c]; broadcasting q[i][c0 + c] and one FMA adds
 * it to row i's 16 scores: per score the same products in the same order as
 * qk (the contract's m == mr promise). Up to 6 rows, even and odd dims go
 * to separate accumulators so that 2 m_blk chains cover the FMA latency,
 * unless `exact` (qk_rows_exact: one chain per score, qk's order).
 * Rows m..m_blk-1 compute on the panel's zero padding and are not stored. */
static inline __attribute__((always_inline)) void
block16(const flat_dtype t, const int m_blk, const int exact, const int full, int m, int keys,
        int ahead, int d,
        const float *restrict qp, const flat_kv_src *ks, int64_t j0, float *restrict s,
        int64_t ld_s)
{
    /* exact: one chain per score whatever m_blk (qk_rows_exact: qk's order) */
    const int split = m_blk <= 6 && !exact ? 2 : 1;
    __m512 acc[2][MR];
#pragma GCC unroll 2
    for (int u = 0; u < split; u++)
#pragma GCC unroll 12
        for (int i = 0; i < m_blk; i++)
            acc[u][i] = _mm512_setzero_ps();
    const flat_along_avx512 along = flat_along_rows_avx512(ks, j0);
    for (int c0 = 0; c0 < d; c0 += 16) {
        const int dims = d - c0 < 16 ? d - c0 : 16;
        const flat_chunk_scales cs = flat_dtype_quantized(t)
                                         ? flat_chunk_scales_avx512(ks->group, c0, dims)
                                         : (flat_chunk_scales){0};
        __m512 r[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            const void *kj = flat_kv_row(ks, j0 + j, t), *sj = flat_kv_scale_row(ks, j0 + j, t);
            if (full || j < keys) {
                prefetch_key(t, ks, kj, sj, j, ahead, c0, d);
                r[j] = flat_kv_chunk16_avx512(t, ks->scale_t, kj, sj, &cs, c0, dims);
            } else {
                r[j] = _mm512_setzero_ps();
            }
        }
        flat_transpose16_avx512(r);
        if (along.row0)
            flat_prefetch_along_avx512(&along, c0 / 16, keys);
        const float *q = qp + (int64_t)c0 * MR;
        if (dims == 16) {
#pragma GCC unroll 16
            for (int c = 0; c < 16; c++)
#pragma GCC unroll 12
                for (int i = 0; i < m_blk; i++)
                    acc[c % split][i] = _mm512_fmadd_ps(_mm512_set1_ps(q[c * MR + i]), r[c],
                                                        acc[c % split][i]);
        } else {
            for (int c = 0; c < dims; c++)
#pragma GCC unroll 12
                for (int i = 0; i < m_blk; i++)
                    acc[0][i] = _mm512_fmadd_ps(_mm512_set1_ps(q[c * MR + i]), r[c], acc[0][i]);
        }
    }
    for (int li = (d + 15) / 16; li < along.lines; li++) /* V rows longer than K's */
        flat_prefetch_along_avx512(&along, li, keys);
    const __mmask16 kmask = flat_tail_mask_avx512(keys);
#pragma GCC unroll 12
    for (int i = 0; i < m_blk; i++) {
        if (i >= m)
            break;
        const __m512 sum = split == 2 ? _mm512_add_ps(acc[0][i], acc[1][i]) : acc[0][i];
        if (full)
            _mm512_storeu_ps(s + i * ld_s, sum);
        else
            _mm512_mask_storeu_ps(s + i * ld_s, kmask, sum);
    }
}

static inline __attribute__((always_inline)) void
rows_transposed(const flat_dtype t, const int m_blk, const int exact, int m, int d, int n,
                const float *restrict qp, const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        flat_prefetch_chain_avx512(k, j, 16, n, QK_ROWS_PREFETCH, 0, d);
        block16(t, m_blk, exact, 1, m, 16, n - j, d, qp, k, j, s + j, ld_s);
    }
    if (j < n) {
        flat_prefetch_chain_avx512(k, j, n - j, n, QK_ROWS_PREFETCH, 0, d);
        block16(t, m_blk, exact, 0, m, n - j, n - j, d, qp, k, j, s + j, ld_s);
    }
}

/* The transposing block: 5-12 rows (the whole panel: the batch-invariant
 * promise), dims past DOT_MAX_D. */
static inline __attribute__((always_inline)) void
qk_rows_transposed(const flat_dtype t, int m, int d, int n, const float *restrict qp,
                   const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    if (m <= 4)
        rows_transposed(t, 4, 0, m, d, n, qp, k, s, ld_s);
    else if (m <= 8)
        rows_transposed(t, 8, 0, m, d, n, qp, k, s, ld_s);
    else
        rows_transposed(t, 12, 0, m, d, n, qp, k, s, ld_s);
}

/* qk_rows_exact's 1-4 rows: the transposing block with one chain per score
 * (its 8- and 12-row instances have one already). One row's chain of FMAs
 * is latency-bound, but still under a memory-bound decode's time per key. */
static inline __attribute__((always_inline)) void
qk_rows_exact(const flat_dtype t, int m, int d, int n, const float *restrict qp,
              const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    if (m == 1)
        rows_transposed(t, 1, 1, m, d, n, qp, k, s, ld_s);
    else
        rows_transposed(t, 4, 1, m, d, n, qp, k, s, ld_s);
}

/* One function per cache type (convert.h's FLAT_KV_TYPE_FNS says why). */
FLAT_KV_TYPE_FNS(qk_transposed, qk_rows_transposed,
                 (int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
                  float *restrict s, int64_t ld_s),
                 m, d, n, qp, k, s, ld_s)
#define qk_transposed(T, ...) qk_transposed_##T(__VA_ARGS__)
FLAT_KV_TYPE_FNS(qk_exact, qk_rows_exact,
                 (int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
                  float *restrict s, int64_t ld_s),
                 m, d, n, qp, k, s, ld_s)
#define qk_exact(T, ...) qk_exact_##T(__VA_ARGS__)

void flat_qk_transposing__avx512(int m, int d, int n, const float *restrict qp,
                                 const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    FLAT_KV_SWITCH(k->t, qk_transposed, m, d, n, qp, k, s, ld_s);
}

void flat_qk_transposing_exact__avx512(int m, int d, int n, const float *restrict qp,
                                       const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    FLAT_KV_SWITCH(k->t, qk_exact, m, d, n, qp, k, s, ld_s);
}
