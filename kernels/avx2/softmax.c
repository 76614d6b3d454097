/* Row max and exp2-and-sum, the softmax steps between qk and pv. */
#ifndef __AVX2__
#error "kernels/avx2 must be compiled with -mavx2 -mfma"
#endif

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

static inline float hmax(__m256 x)
{
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

static inline float hsum(__m256 x)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* Four accumulators hide the max latency; the tail lanes past n read as
 * -inf (masked load, then blend), never from memory. */
float flat_row_max__avx2(int n, const float *s)
{
    assert(n >= 0);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    int j = 0;
    for (; j + 32 <= n; j += 32) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(s + j + 8));
        m2 = _mm256_max_ps(m2, _mm256_loadu_ps(s + j + 16));
        m3 = _mm256_max_ps(m3, _mm256_loadu_ps(s + j + 24));
    }
    for (; j + 8 <= n; j += 8)
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
    if (j < n) {
        const __m256i mask = flat_tail_mask_avx2(n - j);
        const __m256 x = _mm256_maskload_ps(s + j, mask);
        m1 = _mm256_max_ps(m1, _mm256_blendv_ps(ninf, x, _mm256_castsi256_ps(mask)));
    }
    return hmax(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
}

/*
 * s[j] = exp2(s[j] - m) in place, summed; then zeros up to `width` so the
 * padded columns of a K panel contribute nothing to P V. The partial vector
 * at n is masked to 0 before it is summed or stored.
 */
float flat_exp2_row__avx2(int n, int width, float *s, float m)
{
    assert(n >= 0 && n <= width);
    assert(n == 0 || isfinite(m));
    const __m256 vm = _mm256_set1_ps(m);
    /* One accumulator, fed e0 + e1: the 10 polynomial and range constants
     * take most registers, and a second sum was spilled, which put a store
     * and reload on the loop-carried path (6.2 -> 5.7 cycles per vector). */
    __m256 sum = _mm256_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 e0 = flat_exp2_nonpos_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        const __m256 e1 = flat_exp2_nonpos_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), vm));
        _mm256_storeu_ps(s + j, e0);
        _mm256_storeu_ps(s + j + 8, e1);
        sum = _mm256_add_ps(sum, _mm256_add_ps(e0, e1));
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 e = flat_exp2_nonpos_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (j < n) {
        const __m256i mask = flat_tail_mask_avx2(n - j);
        const __m256 x = _mm256_maskload_ps(s + j, mask);
        const __m256 e = _mm256_and_ps(flat_exp2_nonpos_avx2(_mm256_sub_ps(x, vm)),
                                       _mm256_castsi256_ps(mask));
        sum = _mm256_add_ps(sum, e);
        if (width - j >= 8)
            _mm256_storeu_ps(s + j, e);
        else
            _mm256_maskstore_ps(s + j, flat_tail_mask_avx2(width - j), e);
        j += 8;
    }
    for (; j + 8 <= width; j += 8)
        _mm256_storeu_ps(s + j, _mm256_setzero_ps());
    if (j < width)
        _mm256_maskstore_ps(s + j, flat_tail_mask_avx2(width - j), _mm256_setzero_ps());
    return hsum(sum);
}

void flat_vexp2__avx2(int n, const float *x, float *y)
{
    assert(n >= 0);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, flat_exp2_avx2(_mm256_loadu_ps(x + j)));
    if (j < n) {
        const __m256i mask = flat_tail_mask_avx2(n - j);
        _mm256_maskstore_ps(y + j, mask, flat_exp2_avx2(_mm256_maskload_ps(x + j, mask)));
    }
}
