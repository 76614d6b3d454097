/* S = Q K^T for the decode path: one Q panel against K rows where they lie. */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define MR FLAT_AVX512_MR
/* K rows are fetched this many keys ahead (16 KiB at d = 128): decode streams
 * K from DRAM, and rows strided by heads (BSHD) defeat the hardware stream
 * prefetcher. */
#define QK_ROWS_PREFETCH 32

/*
 * m_blk rows (a compile-time count >= m) against `keys` <= 16 keys. Each
 * 16-dim chunk of the 16 K rows is loaded and transposed in registers, so
 * lane j of r[c] is K[j][c0 + c]; broadcasting q[i][c0 + c] and one FMA adds
 * it to row i's 16 scores. No horizontal sums, and K is read once for all
 * rows. Up to 6 rows, even and odd dims go to separate accumulators so that
 * 2 m_blk chains cover the FMA latency. Rows m..m_blk-1 compute on the
 * panel's zero padding and are not stored.
 */
static inline __attribute__((always_inline)) void
block16(const flat_dtype t, const int m_blk, const int full, int m, int keys, int ahead, int d,
        const float *restrict qp, const flat_kv_src *ks, int64_t j0, float *restrict s,
        int64_t ld_s)
{
    const int split = m_blk <= 6 ? 2 : 1;
    __m512 acc[2][MR];
#pragma GCC unroll 2
    for (int u = 0; u < split; u++)
#pragma GCC unroll 12
        for (int i = 0; i < m_blk; i++)
            acc[u][i] = _mm512_setzero_ps();
    for (int c0 = 0; c0 < d; c0 += 16) {
        const int dims = d - c0 < 16 ? d - c0 : 16;
        __m512 r[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            const void *kj = flat_kv_row(ks, j0 + j, t), *sj = flat_kv_scale_row(ks, j0 + j, t);
            if (full || j < keys) {
                /* one prefetch per 64-byte line (every 16 dims of f32, every
                 * other 16 of a 16-bit type), and only rows of this call:
                 * past them (the next page of a paged cache) lies other data,
                 * whose lines would waste bandwidth; the runtime prefetches
                 * the next run itself */
                if (c0 % (512 / flat_dtype_bits(t)) == 0 && j + QK_ROWS_PREFETCH < ahead)
                    _mm_prefetch((const char *)flat_elem_ptr(kj, QK_ROWS_PREFETCH * ks->ld + c0, t),
                                 _MM_HINT_T0);
                if (sj && c0 == 0 && j + QK_ROWS_PREFETCH < ahead) /* the scales' line */
                    _mm_prefetch((const char *)flat_elem_ptr(sj, QK_ROWS_PREFETCH * ks->ld_scale,
                                                             ks->scale_t),
                                 _MM_HINT_T0);
                r[j] = flat_kv_load16_avx512(t, ks, kj, sj, c0, dims);
            } else {
                r[j] = _mm512_setzero_ps();
            }
        }
        flat_transpose16_avx512(r);
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
rows_blocked(const flat_dtype t, const int m_blk, int m, int d, int n, const float *restrict qp,
             const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        block16(t, m_blk, 1, m, 16, n - j, d, qp, k, j, s + j, ld_s);
    if (j < n)
        block16(t, m_blk, 0, m, n - j, n - j, d, qp, k, j, s + j, ld_s);
}

/* Six instances of the row count instead of twelve: a few extra FMAs on the
 * zero rows of the panel cost nothing while K streams from memory. */
static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
        float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    assert(n == 0 || (k->data != NULL && ld_s >= n));
    if (flat_dtype_quantized(t)) { /* three instances: code size (and build time) */
        if (m == 1)
            rows_blocked(t, 1, m, d, n, qp, k, s, ld_s);
        else if (m <= 4)
            rows_blocked(t, 4, m, d, n, qp, k, s, ld_s);
        else
            rows_blocked(t, 12, m, d, n, qp, k, s, ld_s);
        return;
    }
    if (m == 1)
        rows_blocked(t, 1, m, d, n, qp, k, s, ld_s);
    else if (m == 2)
        rows_blocked(t, 2, m, d, n, qp, k, s, ld_s);
    else if (m <= 4)
        rows_blocked(t, 4, m, d, n, qp, k, s, ld_s);
    else if (m <= 6)
        rows_blocked(t, 6, m, d, n, qp, k, s, ld_s);
    else if (m <= 8)
        rows_blocked(t, 8, m, d, n, qp, k, s, ld_s);
    else
        rows_blocked(t, 12, m, d, n, qp, k, s, ld_s);
}

void flat_qk_rows__avx512(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                          float *restrict s, int64_t ld_s)
{
    FLAT_KV_SWITCH(src->t, qk_rows, m, d, n, qp, src, s, ld_s);
}
