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
        const uint32_t *restrict qp, const void *k, int64_t ld_k, float *restrict s,
        int64_t ld_s)
{
    const int split = m_blk <= 2 ? 4 : m_blk <= 6 ? 2 : 1;
    const int line = t == FLAT_F32 ? 16 : 32; /* elements per 64-byte line */
    __m512 acc[4][MR];
#pragma GCC unroll 4
    for (int u = 0; u < split; u++)
#pragma GCC unroll 12
        for (int i = 0; i < m_blk; i++)
            acc[u][i] = _mm512_setzero_ps();
    for (int c0 = 0; c0 < d; c0 += 32) {
        const int dims = d - c0 < 32 ? d - c0 : 32, pairs = (dims + 1) / 2;
        __m512 r[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            const void *kj = flat_elem_ptr(k, j * ld_k, t);
            if (full || j < keys) {
                /* only rows of this call: past them (a paged cache's next
                 * page) lies other data; the runtime prefetches that */
                const int lines = j + QK_ROWS_PREFETCH < ahead ? 32 : 0;
#pragma GCC unroll 2
                for (int c = 0; c < lines; c += line)
                    _mm_prefetch((const char *)flat_elem_ptr(kj, QK_ROWS_PREFETCH * ld_k + c0 + c,
                                                             t),
                                 _MM_HINT_T0);
                r[j] = _mm512_castsi512_ps(
                    flat_pairs_avx512bf16(t, 0, kj, c0, dims, _mm512_setzero_ps()));
            } else {
                r[j] = _mm512_setzero_ps();
            }
        }
        flat_transpose16_avx512(r);
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
             const void *k, int64_t ld_k, float *restrict s, int64_t ld_s)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        block16(t, m_blk, 1, m, 16, n - j, d, qp, flat_elem_ptr(k, (int64_t)j * ld_k, t), ld_k, s + j,
                ld_s);
    if (j < n)
        block16(t, m_blk, 0, m, n - j, n - j, d, qp, flat_elem_ptr(k, (int64_t)j * ld_k, t), ld_k,
                s + j, ld_s);
}

/* Row counts as the AVX-512 table's: extra multiplies on the panel's zero
 * rows cost nothing while K streams from memory. */
static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const void *k,
        int64_t ld_k, float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    assert(n == 0 || (k != NULL && ld_s >= n));
    const uint32_t *q = (const uint32_t *)qp;
    if (m == 1)
        rows_blocked(t, 1, m, d, n, q, k, ld_k, s, ld_s);
    else if (m == 2)
        rows_blocked(t, 2, m, d, n, q, k, ld_k, s, ld_s);
    else if (m <= 4)
        rows_blocked(t, 4, m, d, n, q, k, ld_k, s, ld_s);
    else if (m <= 6)
        rows_blocked(t, 6, m, d, n, q, k, ld_k, s, ld_s);
    else if (m <= 8)
        rows_blocked(t, 8, m, d, n, q, k, ld_k, s, ld_s);
    else
        rows_blocked(t, 12, m, d, n, q, k, ld_k, s, ld_s);
}

void flat_qk_rows__avx512_bf16(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
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
