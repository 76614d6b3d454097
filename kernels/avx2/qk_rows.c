/* S = Q K^T for the decode path: one Q panel against K rows where they lie. */
#ifndef __AVX2__
#error "kernels/avx2 must be compiled with -mavx2 -mfma"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "kernels.h"

#define MR FLAT_AVX2_MR
/* K rows are fetched this many keys ahead (16 KiB at d = 128): decode streams
 * K from DRAM, and rows strided by heads (BSHD) defeat the stream prefetcher. */
#define QK_ROWS_PREFETCH 32

/* r[i] = row i on entry, column i on return (8x8 floats, 24 shuffles). */
static inline __attribute__((always_inline)) void transpose8(__m256 r[8])
{
    __m256 t[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        t[k] = _mm256_permute2f128_ps(r[k], r[4 + k], 0x20);
        t[k + 4] = _mm256_permute2f128_ps(r[k], r[4 + k], 0x31);
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        r[k] = t[k];
}

/*
 * m_blk rows (a compile-time count >= m) against `keys` <= 8 keys: each
 * 8-dim chunk of the 8 K rows is transposed in registers so that lane j of
 * r[c] is K[j][c0 + c], and one broadcast-FMA per row adds a dim to 8
 * scores. Up to 3 rows, even and odd dims accumulate apart to cover the FMA
 * latency. Rows m..m_blk-1 compute on the panel's zero padding, unstored.
 */
static inline __attribute__((always_inline)) void
block8(const flat_dtype t, const int m_blk, const int full, int m, int keys, int ahead, int d,
       const float *restrict qp, const flat_kv_src *ks, int64_t j0, float *restrict s,
       int64_t ld_s)
{
    const int split = m_blk <= 3 ? 2 : 1;
    const int64_t ld_k = ks->ld;
    __m256 acc[2][MR];
#pragma GCC unroll 2
    for (int u = 0; u < split; u++)
#pragma GCC unroll 6
        for (int i = 0; i < m_blk; i++)
            acc[u][i] = _mm256_setzero_ps();
    for (int c0 = 0; c0 < d; c0 += 8) {
        const int dims = d - c0 < 8 ? d - c0 : 8;
        __m256 r[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const void *kj = flat_kv_row(ks, j0 + j, t), *sj = flat_kv_scale_row(ks, j0 + j, t);
            if (full || j < keys) {
                /* one prefetch per 64-byte line (16 f32 or 32 16-bit dims),
                 * only rows of this call (a paged cache's next page lies
                 * elsewhere: the runtime prefetches it) */
                if (c0 % (512 / flat_dtype_bits(t)) == 0 && j + QK_ROWS_PREFETCH < ahead)
                    _mm_prefetch((const char *)flat_elem_ptr(kj, QK_ROWS_PREFETCH * ld_k + c0, t),
                                 _MM_HINT_T0);
                if (c0 == 0 && j + QK_ROWS_PREFETCH < ahead &&
                    flat_rows_unaligned(ks->data, ld_k, t)) /* the line of its last byte */
                    _mm_prefetch((const char *)flat_elem_ptr(kj, QK_ROWS_PREFETCH * ld_k + d, t) - 1,
                                 _MM_HINT_T0);
                if (sj && c0 == 0 && j + QK_ROWS_PREFETCH < ahead) /* the scales' line */
                    _mm_prefetch((const char *)flat_elem_ptr(sj, QK_ROWS_PREFETCH * ks->ld_scale,
                                                             ks->scale_t),
                                 _MM_HINT_T0);
                r[j] = flat_kv_load8_avx2(t, ks, kj, sj, c0, dims);
            } else {
                r[j] = _mm256_setzero_ps();
            }
        }
        transpose8(r);
        const float *q = qp + (int64_t)c0 * MR;
        if (dims == 8) {
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++)
#pragma GCC unroll 6
                for (int i = 0; i < m_blk; i++)
                    acc[c % split][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + c * MR + i),
                                                        r[c], acc[c % split][i]);
        } else {
            for (int c = 0; c < dims; c++)
#pragma GCC unroll 6
                for (int i = 0; i < m_blk; i++)
                    acc[0][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + c * MR + i), r[c],
                                                acc[0][i]);
        }
    }
    const __m256i kmask = flat_tail_mask_avx2(keys);
#pragma GCC unroll 6
    for (int i = 0; i < m_blk; i++) {
        if (i >= m)
            break;
        const __m256 sum = split == 2 ? _mm256_add_ps(acc[0][i], acc[1][i]) : acc[0][i];
        if (full)
            _mm256_storeu_ps(s + i * ld_s, sum);
        else
            _mm256_maskstore_ps(s + i * ld_s, kmask, sum);
    }
}

static inline __attribute__((always_inline)) void
rows_blocked(const flat_dtype t, const int m_blk, int m, int d, int n, const float *restrict qp,
             const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    int j = 0;
    for (; j + 8 <= n; j += 8)
        block8(t, m_blk, 1, m, 8, n - j, d, qp, k, j, s + j, ld_s);
    if (j < n)
        block8(t, m_blk, 0, m, n - j, n - j, d, qp, k, j, s + j, ld_s);
}

static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
        float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    assert(n == 0 || (k->data != NULL && ld_s >= n));
    if (m == 1)
        rows_blocked(t, 1, m, d, n, qp, k, s, ld_s);
    else if (m == 2)
        rows_blocked(t, 2, m, d, n, qp, k, s, ld_s);
    else if (m <= 4)
        rows_blocked(t, 4, m, d, n, qp, k, s, ld_s);
    else
        rows_blocked(t, 6, m, d, n, qp, k, s, ld_s);
}

/* One function per K/V type (convert.h's FLAT_KV_TYPE_FNS says why). */
FLAT_KV_TYPE_FNS(qk_rows_t, qk_rows,
                 (int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
                  float *restrict s, int64_t ld_s),
                 m, d, n, qp, k, s, ld_s)
#define qk_rows_t(T, ...) qk_rows_t_##T(__VA_ARGS__)

void flat_qk_rows__avx2(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                        float *restrict s, int64_t ld_s)
{
    FLAT_KV_SWITCH(src->t, qk_rows_t, m, d, n, qp, src, s, ld_s);
}
