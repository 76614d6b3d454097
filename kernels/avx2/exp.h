/* Vector exp2 with the contract's accuracy and flushing rules. */
#ifndef FLAT_AVX2_EXP_H
#define FLAT_AVX2_EXP_H

#include <immintrin.h>

/*
 * exp2(x) = 2^n * 2^f with n = round(x), f = x - n in [-1/2, 1/2] (exact).
 * Adding 1.5 * 2^23 + 127 rounds x to an integer (ties to even) in the low
 * mantissa bits of t, already biased, so t << 23 is 2^n's bit pattern and
 * t - magic is n; this replaces round, convert and add. 2^f is a degree-6
 * polynomial (the scalar table's Cephes coefficients; max error measured
 * over every float in [-130, 0]: 0.95 ulp).
 *
 * For x <= 0 or NaN, as in exp2_row where x = s - max:
 *   x < -126: exactly 0 (the result would be denormal); this covers -inf,
 *             whose f is NaN, and the garbage exponent of very negative n.
 *   NaN:      the comparison is false and NaN flows through the polynomial.
 */
static inline __m256 flat_exp2_nonpos_avx2(__m256 x)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f + 127.0f);
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-126.0f), _CMP_LT_OQ);
    const __m256 t = _mm256_add_ps(x, magic);
    const __m256 f = _mm256_sub_ps(x, _mm256_sub_ps(t, magic));
    __m256 p = _mm256_set1_ps(1.535336188319500e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440266574e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357674640e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471162809e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791363012e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028550421e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, scale));
}

/*
 * Any x: above 127 (and +inf) the result is +inf, as in the scalar table.
 * x = 128 gives the biased exponent 255, and p(0) * inf = inf.
 */
static inline __m256 flat_exp2_avx2(__m256 x)
{
    const __m256 huge = _mm256_cmp_ps(x, _mm256_set1_ps(127.0f), _CMP_GT_OQ);
    return flat_exp2_nonpos_avx2(_mm256_blendv_ps(x, _mm256_set1_ps(128.0f), huge));
}

#endif
