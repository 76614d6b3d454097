/* Q and K packing into the dim-major panels of kernels/ukernel.h. */
#ifndef __AVX2__
#error "kernels/avx2 must be compiled with -mavx2 -mfma"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "kernels.h"

/* pack_q is O(m d) against O(m n d) for qk, so a plain loop serves; the
 * destination is written sequentially and padding rows are zeroed. 16-bit
 * elements widen one at a time in registers (F16C / a shift). */
static inline __attribute__((always_inline)) void
pack_q(const flat_dtype t, int m, int d, const void *const *rows, float scale, float *restrict qp)
{
    assert(m >= 1 && d >= 1);
    for (int p = 0; p < m; p += FLAT_AVX2_MR) {
        const int here = m - p < FLAT_AVX2_MR ? m - p : FLAT_AVX2_MR;
        for (int c = 0; c < d; c++) {
            float *dst = qp + (int64_t)c * FLAT_AVX2_MR;
            for (int i = 0; i < here; i++)
                dst[i] = scale * flat_load1_avx2(t, rows[p + i], c);
            for (int i = here; i < FLAT_AVX2_MR; i++)
                dst[i] = 0.0f;
        }
        qp += (int64_t)d * FLAT_AVX2_MR;
    }
}

void flat_pack_q__avx2(int m, int d, const void *const *rows, flat_dtype t, float scale,
                       float *restrict qp)
{
    switch (t) {
    case FLAT_F16: pack_q(FLAT_F16, m, d, rows, scale, qp); break;
    case FLAT_BF16: pack_q(FLAT_BF16, m, d, rows, scale, qp); break;
    default: pack_q(FLAT_F32, m, d, rows, scale, qp); break;
    }
}

/* A full panel of 16 keys moves as 8x8 transposes, so each K row is read in
 * vectors (16-bit rows widen in the load); the last, partial panel (and the
 * dims past the last multiple of 8) go element by element. Dims [c, c + 8)
 * of the 8 rows from src (element offsets, type t). */
static inline __attribute__((always_inline)) void
transpose8(const flat_dtype t, const void *src, int64_t c, int64_t ld, float *dst, int64_t ld_dst)
{
    __m256 r0 = flat_loadu8_avx2(t, src, c + 0 * ld), r1 = flat_loadu8_avx2(t, src, c + 1 * ld);
    __m256 r2 = flat_loadu8_avx2(t, src, c + 2 * ld), r3 = flat_loadu8_avx2(t, src, c + 3 * ld);
    __m256 r4 = flat_loadu8_avx2(t, src, c + 4 * ld), r5 = flat_loadu8_avx2(t, src, c + 5 * ld);
    __m256 r6 = flat_loadu8_avx2(t, src, c + 6 * ld), r7 = flat_loadu8_avx2(t, src, c + 7 * ld);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    r0 = _mm256_shuffle_ps(t0, t2, 0x44);
    r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    r2 = _mm256_shuffle_ps(t1, t3, 0x44);
    r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    r4 = _mm256_shuffle_ps(t4, t6, 0x44);
    r5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    r6 = _mm256_shuffle_ps(t5, t7, 0x44);
    r7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ld_dst, _mm256_permute2f128_ps(r0, r4, 0x20));
    _mm256_storeu_ps(dst + 1 * ld_dst, _mm256_permute2f128_ps(r1, r5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld_dst, _mm256_permute2f128_ps(r2, r6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld_dst, _mm256_permute2f128_ps(r3, r7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld_dst, _mm256_permute2f128_ps(r0, r4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld_dst, _mm256_permute2f128_ps(r1, r5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld_dst, _mm256_permute2f128_ps(r2, r6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld_dst, _mm256_permute2f128_ps(r3, r7, 0x31));
}

static inline __attribute__((always_inline)) void
pack_k_partial(const flat_dtype t, int keys, int d, const void *k, int64_t ld_k, float *restrict kp)
{
    for (int c = 0; c < d; c++) {
        float *dst = kp + (int64_t)c * FLAT_AVX2_NR;
        for (int j = 0; j < keys; j++)
            dst[j] = flat_load1_avx2(t, k, j * ld_k + c);
        for (int j = keys; j < FLAT_AVX2_NR; j++)
            dst[j] = 0.0f;
    }
}

static inline __attribute__((always_inline)) void
pack_k(const flat_dtype t, int n, int d, const void *k, int64_t ld_k, float *restrict kp)
{
    assert(n >= 1 && d >= 1);
    const int64_t panel = (int64_t)d * FLAT_AVX2_NR;
    int p = 0;
    for (; p + FLAT_AVX2_NR <= n; p += FLAT_AVX2_NR) {
        const void *kb = flat_elem_ptr(k, p * ld_k, t);
        int c = 0;
        for (; c + 8 <= d; c += 8) {
            transpose8(t, kb, c, ld_k, kp + c * FLAT_AVX2_NR, FLAT_AVX2_NR);
            transpose8(t, kb, 8 * ld_k + c, ld_k, kp + c * FLAT_AVX2_NR + 8, FLAT_AVX2_NR);
        }
        for (; c < d; c++)
            for (int j = 0; j < FLAT_AVX2_NR; j++)
                kp[c * FLAT_AVX2_NR + j] = flat_load1_avx2(t, kb, j * ld_k + c);
        kp += panel;
    }
    if (p < n)
        pack_k_partial(t, n - p, d, flat_elem_ptr(k, p * ld_k, t), ld_k, kp);
}

void flat_pack_k__avx2(int n, int d, const flat_kv_src *src, float *restrict kp)
{
    const void *k = src->data;
    const int64_t ld_k = src->ld;
    const flat_dtype t = src->t;
    switch (t) {
    case FLAT_F16: pack_k(FLAT_F16, n, d, k, ld_k, kp); break;
    case FLAT_BF16: pack_k(FLAT_BF16, n, d, k, ld_k, kp); break;
    default: pack_k(FLAT_F32, n, d, k, ld_k, kp); break;
    }
}
