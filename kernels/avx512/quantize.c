/*
 * flat_quantize's row kernel (ukernel.h's quantize_row) and its input check,
 * 16 lanes at a time, bit for bit kernels/encode.h's reference:
 *   - x / s by vdivps (correctly rounded, as the C division), lanes of a
 *     zero scale masked to +0; saturation by max/min (the reference's
 *     compares give the same value, -0 included);
 *   - integers by vcvtps2dq in the default rounding mode (to nearest even,
 *     what the reference's 1.5 * 2^23 trick computes), narrowed by vpmovdb;
 *   - e4m3 by the reference's integer arithmetic on the f32 bits, lane-wise;
 *   - I4 pairs joined inside 64-bit lanes and narrowed by vpmovqb.
 * Scales: a group of whole vectors (group % 16 == 0: 32, 64, 128, a
 * head's dim) gets its scale (amax in registers, one division, vcvtps2ph)
 * and then its codes, dividing by the scale as stored. Other groups: the
 * computed scales are written first, then every 16 lanes read theirs back
 * from the row's scale array (kernels.h's flat_row_scales16_avx512, a permute
 * for any group size), so given and computed scales take the same path.
 */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include "../encode.h"
#include "../ukernel.h"
#include "kernels.h"

/* The largest |x| among elements [c0, c0 + n). */
static inline __attribute__((always_inline)) float amax_span(const flat_dtype xt, const void *x,
                                                             int64_t c0, int64_t n)
{
    __m512 m = _mm512_setzero_ps();
    for (int64_t c = 0; c < n; c += 16) {
        const int k = n - c < 16 ? (int)(n - c) : 16;
        m = _mm512_max_ps(m, _mm512_abs_ps(flat_load16_avx512(xt, x, c0 + c,
                                                              flat_tail_mask_avx512(k))));
    }
    return _mm512_reduce_max_ps(m);
}

/* Codes of 16 quotients (already saturated), as 32-bit lanes: integers, or
 * the e4m3 byte of encode.h's flat_f32_to_e4m3. */
static inline __attribute__((always_inline)) __m512i codes16(const flat_dtype t, __m512 q)
{
    if (t != FLAT_F8E4M3)
        return _mm512_cvtps_epi32(q);
    const __m512i u = _mm512_castps_si512(q);
    const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
    const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    const __m512i sub = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_castsi512_ps(a),
                                                         _mm512_set1_ps(512.0f)));
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(a, 20), _mm512_set1_epi32(1));
    const __m512i up = _mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32(0x7ffff)), odd);
    const __m512i norm = _mm512_sub_epi32(_mm512_srli_epi32(up, 20), _mm512_set1_epi32(120 << 3));
    const __mmask16 small = _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32(0x3c800000));
    return _mm512_or_si512(sign, _mm512_mask_blend_epi32(small, norm, sub));
}

/* Elements c .. c+k-1 (k <= 16; I4: c and k even) with lane scales s. */
static inline __attribute__((always_inline)) void
encode16(const flat_dtype xt, const flat_dtype t, const void *x, int64_t c, int k, __m512 s,
         void *codes)
{
    const __mmask16 m = flat_tail_mask_avx512(k);
    const __m512 v = flat_load16_avx512(xt, x, c, m);
    __m512 q = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_NEQ_UQ), v, s);
    q = _mm512_min_ps(_mm512_max_ps(q, _mm512_set1_ps(flat_code_min(t))),
                      _mm512_set1_ps(flat_code_max(t)));
    const __m512i ci = codes16(t, q);
    if (t != FLAT_I4) { /* a register narrowing and a plain store where whole */
        if (k == 16)
            _mm_storeu_si128((__m128i *)((uint8_t *)codes + c), _mm512_cvtepi32_epi8(ci));
        else
            _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)codes + c, m, ci);
        return;
    }
    /* (even & 15) | (odd & 15) << 4 in the low byte of each 64-bit lane */
    const __m512i nib = _mm512_and_si512(ci, _mm512_set1_epi32(15));
    const __m512i pair = _mm512_or_si512(nib, _mm512_srli_epi64(nib, 28));
    if (k == 16)
        _mm_storel_epi64((__m128i *)((uint8_t *)codes + c / 2), _mm512_cvtepi64_epi8(pair));
    else
        _mm512_mask_cvtepi64_storeu_epi8((uint8_t *)codes + c / 2,
                                         (__mmask8)((1u << (k / 2)) - 1u), pair);
}

/* Group g's scale (whole vectors: group % 16 == 0), computed and stored,
 * or read, broadcast: encode.h's flat_computed_scale with the f16 rounding
 * done by vcvtps2ph (to nearest even, as flat_f32_to_f16 for finite
 * values). */
static inline __attribute__((always_inline)) __m512
group_scale(const flat_dtype xt, const flat_dtype t, const void *x, int64_t g, int64_t group,
            void *scale, flat_dtype st, int given)
{
    if (st == FLAT_F16) {
        uint16_t *at = (uint16_t *)scale + g;
        if (!given) {
            const float s = amax_span(xt, x, g * group, group) / flat_code_max(t);
            const __m256i h = _mm512_cvtps_ph(_mm512_set1_ps(s > 65504.0f ? 65504.0f : s),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            *at = (uint16_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(h));
        }
        return _mm512_cvtph_ps(_mm256_set1_epi16((short)*at));
    }
    float *at = (float *)scale + g;
    if (!given)
        *at = amax_span(xt, x, g * group, group) / flat_code_max(t);
    return _mm512_set1_ps(*at);
}

static inline __attribute__((always_inline)) void
quantize_row(const flat_dtype xt, const flat_dtype t, int64_t n, const void *x, int64_t group,
             void *restrict codes, void *scale, flat_dtype st, int given)
{
    if (group % 16 == 0) { /* a group is whole vectors: its scale, then its codes */
        for (int64_t g = 0; g < n / group; g++) {
            const __m512 s = group_scale(xt, t, x, g, group, scale, st, given);
            for (int64_t c = g * group; c < (g + 1) * group; c += 16)
                encode16(xt, t, x, c, 16, s, codes);
        }
        return;
    }
    if (!given) /* any other group: the scales first, then 16 lanes of any groups */
        for (int64_t g = 0; g < n / group; g++)
            flat_computed_scale(amax_span(xt, x, g * group, group), t, st,
                                (char *)scale + g * flat_dtype_size(st));
    for (int64_t c = 0; c < n; c += 16) { /* the scale row, as the decode kernels read one */
        const int k = n - c < 16 ? (int)(n - c) : 16;
        const flat_chunk_scales cs = flat_chunk_scales_avx512(group, c, k);
        encode16(xt, t, x, c, k, flat_row_scales16_avx512(st, scale, &cs), codes);
    }
}

void flat_quantize_row__avx512(int64_t n, const void *x, flat_dtype xt, int64_t group,
                               flat_dtype t, void *restrict codes, void *scale,
                               flat_dtype scale_t, int given)
{
    FLAT_QUANTIZE_SWITCH(xt, t, quantize_row, n, x, group, codes, scale, scale_t, given);
}

/* 64 bytes at a time: the exponent field all ones is inf or NaN. */
int64_t flat_first_nonfinite__avx512(int64_t n, const void *x, flat_dtype xt)
{
    const int per = xt == FLAT_F32 ? 16 : 32; /* elements per 64 bytes */
    for (int64_t c = 0; c < n; c += per) {
        const int k = n - c < per ? (int)(n - c) : per;
        uint32_t hit;
        if (xt == FLAT_F32) {
            const __m512i e = _mm512_set1_epi32(0x7f800000);
            const __m512i v = _mm512_maskz_loadu_epi32(flat_tail_mask_avx512(k), (const float *)x + c);
            hit = _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, e), e);
        } else {
            const __m512i e = _mm512_set1_epi16(xt == FLAT_F16 ? 0x7c00 : 0x7f80);
            const __mmask32 m = (__mmask32)(k == 32 ? 0xffffffffu : (1u << k) - 1u);
            const __m512i v = _mm512_maskz_loadu_epi16(m, (const uint16_t *)x + c);
            hit = _mm512_cmpeq_epi16_mask(_mm512_and_si512(v, e), e);
        }
        if (hit)
            return c + __builtin_ctz(hit);
    }
    return n;
}
