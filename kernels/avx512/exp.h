/* Vector exp2 with the contract's accuracy and flushing rules, and the tail
 * mask every AVX-512 kernel here uses. */
#ifndef FLAT_AVX512_EXP_H
#define FLAT_AVX512_EXP_H

#include <immintrin.h>

/* Lanes l < k set (0 <= k <= 16): the mask of a k-float tail. */
static inline __mmask16 flat_tail_mask_avx512(int k)
{
    return (__mmask16)((1u << k) - 1u);
}

/*
 * x[u] = exp2(x[u]) for u < count <= 4.
 * exp2(x) = 2^n * 2^f with n = round(x), f = x - n in [-1/2, 1/2] (exact).
 * 2^f is a degree-6 polynomial (the scalar table's Cephes coefficients, so
 * both tables round alike); vscalefps applies 2^n, which saturates to +inf
 * for large finite n without building exponent bits by hand.
 *   x < -126: exactly 0 through the zeroing mask; below -126 the result
 *             would be denormal, and -inf (whose f is NaN) lands here too.
 *   NaN:      the unordered "not less than" keeps NaN lanes, and NaN flows
 *             through the polynomial.
 *   +inf:     NOT handled (f = inf - inf is NaN): callers guarantee x < +inf.
 *             exp2_row does (x = s - m <= 0), and skipping the clamp there
 *             measured 14% faster; flat_exp2_avx512 below clamps.
 */
static inline __attribute__((always_inline)) void flat_exp2_noinf_n_avx512(const int count,
                                                                          __m512 *x)
{
    /* Stage-major over `count` independent vectors: the six dependent FMAs
     * of each polynomial are 24 cycles of latency, and interleaving the
     * vectors in program order lets the scheduler fill the FMA pipes
     * (measured ~5% faster in isolation than one vector after another). */
    const float c[7] = {1.535336188319500e-4f, 1.339887440266574e-3f, 9.618437357674640e-3f,
                        5.550332471162809e-2f, 2.402264791363012e-1f, 6.931472028550421e-1f,
                        1.0f};
    __mmask16 normal[4];
    __m512 n[4], f[4], p[4];
#pragma GCC unroll 4
    for (int u = 0; u < count; u++) {
        normal[u] = _mm512_cmp_ps_mask(x[u], _mm512_set1_ps(-126.0f), _CMP_NLT_UQ);
        n[u] = _mm512_roundscale_ps(x[u], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        f[u] = _mm512_sub_ps(x[u], n[u]);
        p[u] = _mm512_set1_ps(c[0]);
    }
#pragma GCC unroll 6
    for (int k = 1; k < 7; k++)
#pragma GCC unroll 4
        for (int u = 0; u < count; u++)
            p[u] = _mm512_fmadd_ps(p[u], f[u], _mm512_set1_ps(c[k]));
#pragma GCC unroll 4
    for (int u = 0; u < count; u++)
        x[u] = _mm512_maskz_scalef_ps(normal[u], p[u], n[u]);
}

static inline __m512 flat_exp2_noinf_avx512(__m512 x)
{
    flat_exp2_noinf_n_avx512(1, &x);
    return x;
}

/* Every x: min(128, x) keeps f finite for +inf (2^128 overflows to +inf);
 * minps returns its second operand for NaN, so NaN survives the clamp. */
static inline __m512 flat_exp2_avx512(__m512 x)
{
    return flat_exp2_noinf_avx512(_mm512_min_ps(_mm512_set1_ps(128.0f), x));
}

#endif
