/* AVX2+FMA kernel declarations and register-block sizes. */
#ifndef FLAT_AVX2_KERNELS_H
#define FLAT_AVX2_KERNELS_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

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
void flat_widen_rows__avx2(int n, int cols, const flat_kv_src *src, float *restrict y,
                          int64_t ld_y);
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
/* ---- quantized K/V (ukernel.h's flat_kv_src): codes widened in registers ---- */

/* n <= 8 bytes from p (nothing past them read): AVX2 has no byte-masked load. */
static inline __attribute__((always_inline)) __m128i flat_bytes8_avx2(const void *p, int n)
{
    if (n == 8)
        return _mm_loadl_epi64((const __m128i *)p);
    if (n == 4) { /* a whole chunk of I4: one 32-bit load, not a byte loop (190 ns per key) */
        int w;
        memcpy(&w, p, sizeof w);
        return _mm_cvtsi32_si128(w);
    }
    uint8_t b[16] = {0};
    for (int i = 0; i < n; i++)
        b[i] = ((const uint8_t *)p)[i];
    return _mm_loadu_si128((const __m128i *)b);
}

/* Codes of elements c .. c+n-1 (n <= 8, lanes >= n zero) of a row of
 * quantized type t, as exact fp32: the AVX-512 table's conversions
 * (avx512/kernels.h, flat_codes16_avx512) at 8 lanes. */
static inline __attribute__((always_inline)) __m256
flat_codes8_avx2(const flat_dtype t, const void *row, int64_t c, int n)
{
    if (t == FLAT_I4) {
        const __m128i b = flat_bytes8_avx2((const uint8_t *)row + c / 2, (n + 1) / 2);
        const __m256i x = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
        const __m256i sh = _mm256_setr_epi32(28, 24, 28, 24, 28, 24, 28, 24);
        __m256i v = _mm256_srai_epi32(_mm256_sllv_epi32(x, sh), 28);
        if (n < 8)
            v = _mm256_and_si256(v, flat_tail_mask_avx2(n));
        return _mm256_cvtepi32_ps(v);
    }
    const __m128i b = flat_bytes8_avx2((const uint8_t *)row + c, n);
    if (t == FLAT_I8)
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    const __m128i x = _mm_cvtepu8_epi16(b), em = _mm_and_si128(x, _mm_set1_epi16(0x7f));
    const __m128i h = _mm_or_si128(_mm_slli_epi16(em, 7),
                                   _mm_slli_epi16(_mm_and_si128(x, _mm_set1_epi16(0x80)), 8));
    const __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
    const __m256 nan = _mm256_castsi256_ps(
        _mm256_cvtepi16_epi32(_mm_cmpeq_epi16(em, _mm_set1_epi16(0x7f))));
    return _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_nanf("")), nan);
}

/* Groups the fast paths below do not cover, and the last partial chunk of
 * f16 scales of groups 1, 2 and 4 (AVX2 has no masked 16-bit load): one
 * scale per lane, out of line, so that the hot loops stay small. */
static __attribute__((noinline, unused)) void flat_scales8_any_avx2(const flat_kv_src *src,
                                                                    const void *srow, int64_t c,
                                                                    int n, float *lanes)
{
    for (int i = 0; i < 8; i++)
        lanes[i] = i < n ? flat_scale_f32(srow, (c + i) / src->group, src->scale_t) : 0.0f;
}

/* The scales of columns c .. c+n-1 (c a multiple of 8) of one row: a
 * broadcast when a group spans the 8, a load for groups of 1, a permute for
 * groups of 2 and 4 (f16 scales: whole chunks), one scalar per lane
 * otherwise (per-channel f16 scales took 320 ns per key at d 128). */
static inline __attribute__((always_inline)) __m256
flat_scales8_avx2(const flat_kv_src *src, const void *srow, int64_t c, int n)
{
    const int64_t g = src->group;
    if (g % 8 == 0) {
        const float s = src->scale_t == FLAT_F16
                            ? _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(((const uint16_t *)srow)[c / g])))
                            : ((const float *)srow)[c / g];
        return _mm256_set1_ps(s);
    }
    if (src->scale_t == FLAT_F32 && (g == 1 || g == 2 || g == 4)) {
        const __m256 s = _mm256_maskload_ps((const float *)srow + c / g,
                                            flat_tail_mask_avx2((n + (int)g - 1) / (int)g));
        if (g == 1)
            return s;
        const __m256i idx = g == 2 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)
                                   : _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        return _mm256_permutevar8x32_ps(s, idx);
    }
    if (src->scale_t == FLAT_F16 && n == 8 && (g == 1 || g == 2 || g == 4)) {
        /* a whole chunk: its 8 / g scales are all in the row (exact loads) */
        const uint16_t *h = (const uint16_t *)srow + c / g;
        __m128i x;
        if (g == 1)
            x = _mm_loadu_si128((const __m128i *)h);
        else if (g == 2)
            x = _mm_loadl_epi64((const __m128i *)h);
        else {
            int w;
            memcpy(&w, h, sizeof w);
            x = _mm_cvtsi32_si128(w);
        }
        const __m256 s = _mm256_cvtph_ps(x);
        if (g == 1)
            return s;
        const __m256i idx = g == 2 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)
                                   : _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        return _mm256_permutevar8x32_ps(s, idx);
    }
    float lanes[8];
    flat_scales8_any_avx2(src, srow, c, n, lanes);
    return _mm256_loadu_ps(lanes);
}

/* Columns c .. c+n-1 (n <= 8) of a K/V row as fp32, any K/V type: convert.h's
 * flat_kv_load, lanes >= n zero. row and srow: the row's data and scales. */
static inline __attribute__((always_inline)) __m256
flat_kv_load8_avx2(const flat_dtype t, const flat_kv_src *src, const void *row, const void *srow,
                   int64_t c, int n)
{
    if (!flat_dtype_quantized(t))
        return n == 8 ? flat_loadu8_avx2(t, row, c)
                      : flat_load8_part_avx2(t, row, c, n, flat_tail_mask_avx2(n));
    const __m256 codes = flat_codes8_avx2(t, row, c, n);
    return srow ? _mm256_mul_ps(codes, flat_scales8_avx2(src, srow, c, n)) : codes;
}

static inline __attribute__((always_inline)) const void *flat_kv_row(const flat_kv_src *s,
                                                                     int64_t j, const flat_dtype t)
{
    return flat_elem_ptr(s->data, j * s->ld, t);
}

static inline __attribute__((always_inline)) const void *
flat_kv_scale_row(const flat_kv_src *s, int64_t j, const flat_dtype t)
{
    return flat_dtype_quantized(t) && s->scale ? flat_elem_ptr(s->scale, j * s->ld_scale, s->scale_t)
                                               : NULL;
}

float flat_score_rules__avx2(int n, float *s, const flat_rules_row *r);

/* quantize.c (ukernel.h's quantize_row and first_nonfinite) */
void flat_quantize_row__avx2(int64_t n, const void *x, flat_dtype xt, int64_t group, flat_dtype t,
                           void *restrict codes, void *scale, flat_dtype scale_t, int given);
int64_t flat_first_nonfinite__avx2(int64_t n, const void *x, flat_dtype xt);

#endif
