/*
 * flat_quantize's row kernel (ukernel.h's quantize_row) and its input check,
 * 8 lanes at a time, bit for bit kernels/encode.h's reference: the AVX-512
 * table's method (avx512/quantize.c says why each step agrees) at 8 lanes.
 * AVX2 has no byte-masked stores and no 16-bit masked loads, so the last
 * n % 8 elements of a row, and the amax of groups that are not whole
 * vectors, go through the reference itself.
 */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "kernels/avx2 must be compiled with -mavx2 -mfma -mf16c"
#endif

#include "../encode.h"
#include "../ukernel.h"
#include "kernels.h"

/* The largest |x| among elements [c0, c0 + n), n a multiple of 8. */
static inline __attribute__((always_inline)) float amax_span(const flat_dtype xt, const void *x,
                                                             int64_t c0, int64_t n)
{
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (int64_t c = 0; c < n; c += 8)
        m = _mm256_max_ps(m, _mm256_and_ps(flat_loadu8_avx2(xt, x, c0 + c), abs));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* Codes of 8 saturated quotients as 32-bit lanes (avx512/quantize.c). */
static inline __attribute__((always_inline)) __m256i codes8(const flat_dtype t, __m256 q)
{
    if (t != FLAT_F8E4M3)
        return _mm256_cvtps_epi32(q);
    const __m256i u = _mm256_castps_si256(q);
    const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
    const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    const __m256i sub = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(a),
                                                         _mm256_set1_ps(512.0f)));
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(a, 20), _mm256_set1_epi32(1));
    const __m256i up = _mm256_add_epi32(_mm256_add_epi32(a, _mm256_set1_epi32(0x7ffff)), odd);
    const __m256i norm = _mm256_sub_epi32(_mm256_srli_epi32(up, 20), _mm256_set1_epi32(120 << 3));
    /* a < 2^31, so the signed compare is the unsigned one */
    const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x3c800000), a);
    return _mm256_or_si256(sign, _mm256_blendv_epi8(norm, sub, small));
}

/* Elements c .. c+7 with lane scales s. */
static inline __attribute__((always_inline)) void encode8(const flat_dtype xt, const flat_dtype t,
                                                          const void *x, int64_t c, __m256 s,
                                                          void *codes)
{
    const __m256 v = flat_loadu8_avx2(xt, x, c);
    const __m256 nz = _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_NEQ_UQ);
    __m256 q = _mm256_and_ps(_mm256_div_ps(v, s), nz); /* a zero scale: +0 */
    q = _mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(flat_code_min(t))),
                      _mm256_set1_ps(flat_code_max(t)));
    __m256i ci = codes8(t, q);
    if (t == FLAT_I4) { /* (even & 15) | (odd & 15) << 4 in byte 0 of each 64-bit lane */
        const __m256i nib = _mm256_and_si256(ci, _mm256_set1_epi32(15));
        const __m256i pair = _mm256_or_si256(nib, _mm256_srli_epi64(nib, 28));
        const __m256i b = _mm256_shuffle_epi8(
            pair, _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                   0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
        const __m128i four = _mm_unpacklo_epi16(_mm256_castsi256_si128(b),
                                                _mm256_extracti128_si256(b, 1));
        const int32_t w = _mm_cvtsi128_si32(four);
        memcpy((uint8_t *)codes + c / 2, &w, 4);
        return;
    }
    const __m256i b = _mm256_shuffle_epi8(
        ci, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8,
                             12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
    _mm_storel_epi64((__m128i *)((uint8_t *)codes + c),
                     _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
}

/* Group g's scale (group % 8 == 0): avx512/quantize.c's group_scale. */
static inline __attribute__((always_inline)) float
group_scale(const flat_dtype xt, const flat_dtype t, const void *x, int64_t g, int64_t group,
            void *scale, flat_dtype st, int given)
{
    if (st == FLAT_F16) {
        uint16_t *at = (uint16_t *)scale + g;
        if (!given) {
            const float s = amax_span(xt, x, g * group, group) / flat_code_max(t);
            *at = (uint16_t)_mm_extract_epi16(
                _mm_cvtps_ph(_mm_set_ss(s > 65504.0f ? 65504.0f : s), _MM_FROUND_TO_NEAREST_INT), 0);
        }
        return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(*at)));
    }
    float *at = (float *)scale + g;
    if (!given)
        *at = amax_span(xt, x, g * group, group) / flat_code_max(t);
    return *at;
}

static inline __attribute__((always_inline)) void
quantize_row(const flat_dtype xt, const flat_dtype t, int64_t n, const void *x, int64_t group,
             void *restrict codes, void *scale, flat_dtype st, int given)
{
    if (group % 8 == 0) { /* a group is whole vectors: its scale, then its codes */
        for (int64_t g = 0; g < n / group; g++) {
            const __m256 s = _mm256_set1_ps(group_scale(xt, t, x, g, group, scale, st, given));
            for (int64_t c = g * group; c < (g + 1) * group; c += 8)
                encode8(xt, t, x, c, s, codes);
        }
        return;
    }
    if (!given) /* any other group: the scales first (the reference's amax) */
        for (int64_t g = 0; g < n / group; g++)
            flat_group_scale_ref(x, xt, g * group, group, t, scale, g, st, 0);
    flat_kv_src sv = flat_kv_src_plain(NULL, 0, t); /* the scale row, as kernels.h reads one */
    sv.scale = scale, sv.scale_t = st, sv.group = group;
    const int64_t whole = n - n % 8;
    for (int64_t c = 0; c < whole; c += 8)
        encode8(xt, t, x, c, flat_scales8_avx2(&sv, scale, c, 8), codes);
    flat_encode_tail_ref(x, xt, whole, n, t, scale, st, group, codes);
}

void flat_quantize_row__avx2(int64_t n, const void *x, flat_dtype xt, int64_t group,
                             flat_dtype t, void *restrict codes, void *scale, flat_dtype scale_t,
                             int given)
{
    FLAT_QUANTIZE_SWITCH(xt, t, quantize_row, n, x, group, codes, scale, scale_t, given);
}

/* 32 bytes at a time: the exponent field all ones is inf or NaN. */
int64_t flat_first_nonfinite__avx2(int64_t n, const void *x, flat_dtype xt)
{
    const int per = xt == FLAT_F32 ? 8 : 16; /* elements per 32 bytes */
    const int64_t whole = n - n % per;
    for (int64_t c = 0; c < whole; c += per) {
        uint32_t hit;
        if (xt == FLAT_F32) {
            const __m256i e = _mm256_set1_epi32(0x7f800000);
            const __m256i v = _mm256_loadu_si256((const __m256i *)((const float *)x + c));
            hit = (uint32_t)_mm256_movemask_ps(
                _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(v, e), e)));
        } else {
            const __m256i e = _mm256_set1_epi16(xt == FLAT_F16 ? 0x7c00 : 0x7f80);
            const __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)x + c));
            /* two mask bits per 16-bit lane */
            hit = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_and_si256(v, e), e)) &
                  0x55555555u;
            hit = hit ? 1u << (__builtin_ctz(hit) / 2) : 0;
        }
        if (hit)
            return c + __builtin_ctz(hit);
    }
    const int64_t tail = flat_first_nonfinite_ref(n - whole, flat_elem_ptr(x, whole, xt), xt);
    return whole + tail;
}
