/* AVX2+FMA kernel declarations and register-block sizes. */
#ifndef FLAT_AVX2_KERNELS_H
#define FLAT_AVX2_KERNELS_H

#include <immintrin.h>
#include <stdint.h>

#include "../convert.h"
#include "../ukernel.h"

/*
 * 16 ymm registers: qk holds a 6x16 block in 12 accumulators, plus two K
 * vectors and one Q broadcast (15 live). Twelve independent FMA chains cover
 * the 2 pipes x 4-cycle latency of current cores with room to spare, and a
 * 16-float K panel row is one 64-byte cache line. pv uses the same 6x16
 * shape over (rows x dv), so the runtime's row groups match both kernels.
 */
#define FLAT_AVX2_MR 6
#define FLAT_AVX2_NR 16
#define FLAT_AVX2_PV_MR 6

void flat_pack_q__avx2(int m, int d, const void *const *rows, flat_dtype t, float scale,
                       float *restrict qp);
void flat_pack_k__avx2(int n, int d, const flat_kv_src *src, float *restrict kp);
void flat_qk_6x16__avx2(int d, int n_panels, const float *restrict qp,
                        const float *restrict kp, float *restrict s, int64_t ld_s);
float flat_row_max__avx2(int n, const float *s);
float flat_exp2_row__avx2(int n, int width, float *s, float m);
void flat_vexp2__avx2(int n, const float *x, float *y);
void flat_qk_rows__avx2(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s);
void flat_store_row__avx2(int n, const float *restrict x, float scale, flat_dtype t,
                          void *restrict y);
void flat_pv_6__avx2(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                 const flat_kv_src *src, float *restrict o, int64_t ld_o,
                 const float *restrict alpha);

/* Lanes l < k set (0 <= k <= 8): the mask for maskload/maskstore of a tail. */
static inline __m256i flat_tail_mask_avx2(int k)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), lane);
}

/*
 * Loads of a row of type t from element c, widened to fp32 in registers:
 * f16 by F16C (vcvtph2ps, exact), bf16 by zero-extending to 32 bits and
 * shifting into the upper half (a bf16 is the top of an f32). t is a
 * compile-time constant in every caller, so the f32 path is the plain load.
 */
static inline __attribute__((always_inline)) float flat_load1_avx2(const flat_dtype t,
                                                                   const void *row, int64_t c)
{
    if (t == FLAT_F32)
        return ((const float *)row)[c];
    const uint16_t h = ((const uint16_t *)row)[c];
    return t == FLAT_F16 ? _cvtsh_ss(h) : flat_bf16_to_f32(h);
}

static inline __attribute__((always_inline)) __m256 flat_widen8_avx2(const flat_dtype t,
                                                                     __m128i h)
{
    if (t == FLAT_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* 8 elements. */
static inline __attribute__((always_inline)) __m256 flat_loadu8_avx2(const flat_dtype t,
                                                                     const void *row, int64_t c)
{
    if (t == FLAT_F32)
        return _mm256_loadu_ps((const float *)row + c);
    return flat_widen8_avx2(t, _mm_loadu_si128((const __m128i *)((const uint16_t *)row + c)));
}

/* count < 8 elements (mask = flat_tail_mask_avx2(count)), zeros above. AVX2
 * has no 16-bit masked load, so 16-bit tails go through a small local array:
 * the row is never read past its last element. */
static inline __attribute__((always_inline)) __m256
flat_load8_part_avx2(const flat_dtype t, const void *row, int64_t c, int count, __m256i mask)
{
    if (t == FLAT_F32)
        return _mm256_maskload_ps((const float *)row + c, mask);
    uint16_t h[8] = {0};
    for (int i = 0; i < count; i++)
        h[i] = ((const uint16_t *)row)[c + i];
    return flat_widen8_avx2(t, _mm_loadu_si128((const __m128i *)h));
}
float flat_score_rules__avx2(int n, float *s, const flat_rules_row *r);

#endif
