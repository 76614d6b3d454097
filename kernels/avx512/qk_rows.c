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
        const float *restrict qp, const void *k, int64_t ld_k, float *restrict s, int64_t ld_s)
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
        const __mmask16 dmask = flat_tail_mask_avx512(dims);
        __m512 r[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            const void *kj = flat_elem_ptr(k, j * ld_k, t);
            if (full || j < keys) {
                /* one prefetch per 64-byte line (every 16 dims of f32, every
                 * other 16 of a 16-bit type), and only rows of this call:
                 * past them (the next page of a paged cache) lies other data,
                 * whose lines would waste bandwidth; the runtime prefetches
                 * the next run itself */
                if ((t == FLAT_F32 || c0 % 32 == 0) && j + QK_ROWS_PREFETCH < ahead)
                    _mm_prefetch((const char *)flat_elem_ptr(kj, QK_ROWS_PREFETCH * ld_k + c0, t),
                                 _MM_HINT_T0);
                r[j] = flat_load16_avx512(t, kj, c0, dmask);
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
             const void *k, int64_t ld_k, float *restrict s, int64_t ld_s)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        block16(t, m_blk, 1, m, 16, n - j, d, qp, flat_elem_ptr(k, (int64_t)j * ld_k, t), ld_k,
                s + j, ld_s);
    if (j < n)
        block16(t, m_blk, 0, m, n - j, n - j, d, qp, flat_elem_ptr(k, (int64_t)j * ld_k, t),
                ld_k, s + j, ld_s);
}

/* Six instances of the row count instead of twelve: a few extra FMAs on the
 * zero rows of the panel cost nothing while K streams from memory. */
static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const void *k,
        int64_t ld_k, float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    assert(n == 0 || (k != NULL && ld_s >= n));
    if (m == 1)
        rows_blocked(t, 1, m, d, n, qp, k, ld_k, s, ld_s);
    else if (m == 2)
        rows_blocked(t, 2, m, d, n, qp, k, ld_k, s, ld_s);
    else if (m <= 4)
        rows_blocked(t, 4, m, d, n, qp, k, ld_k, s, ld_s);
    else if (m <= 6)
        rows_blocked(t, 6, m, d, n, qp, k, ld_k, s, ld_s);
    else if (m <= 8)
        rows_blocked(t, 8, m, d, n, qp, k, ld_k, s, ld_s);
    else
        rows_blocked(t, 12, m, d, n, qp, k, ld_k, s, ld_s);
}

void flat_qk_rows__avx512(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s)
{
    const void *k = src->data;
    const int64_t ld_k = src->ld;
    const flat_dtype t = src->t;
    switch (t) {
    case FLAT_F16: qk_rows(FLAT_F16, m, d, n, qp, k, ld_k, s, ld_s); break;
    case FLAT_BF16: qk_rows(FLAT_BF16, m, d, n, qp, k, ld_k, s, ld_s); break;
    default: qk_rows(FLAT_F32, m, d, n, qp, k, ld_k, s, ld_s); break;
    }
}
