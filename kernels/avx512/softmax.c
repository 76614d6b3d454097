/* Row max and exp2-and-sum, the softmax steps between qk and pv. */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

/* Four accumulators hide vmaxps latency; the masked tail loads nothing past
 * n and its zeroed lanes are replaced by -inf so they never win. */
float flat_row_max__avx512(int n, const float *s)
{
    assert(n >= 0);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    int j = 0;
    for (; j + 64 <= n; j += 64) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + j));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(s + j + 16));
        m2 = _mm512_max_ps(m2, _mm512_loadu_ps(s + j + 32));
        m3 = _mm512_max_ps(m3, _mm512_loadu_ps(s + j + 48));
    }
    for (; j + 16 <= n; j += 16)
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + j));
    if (j < n)
        m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(ninf, flat_tail_mask_avx512(n - j), s + j));
    return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
}

/* Four vectors per step with separate sums, so the four exp chains overlap
 * (flat_exp2_noinf_n_avx512) and the adds do not serialise. x = s - m <= 0
 * (or NaN), so exp2 needs no +inf clamp. Lanes of the tail past n are
 * neither read nor summed; the zero fill of [n, width) lets pv run whole key
 * blocks. */
float flat_exp2_row__avx512(int n, int width, float *s, float m)
{
    assert(n >= 0 && n <= width);
    assert(n == 0 || isfinite(m));
    const __m512 vm = _mm512_set1_ps(m);
    __m512 sum[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    int j = 0;
    for (; j + 64 <= n; j += 64) {
        __m512 e[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            e[u] = _mm512_sub_ps(_mm512_loadu_ps(s + j + 16 * u), vm);
        flat_exp2_noinf_n_avx512(4, e);
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            _mm512_storeu_ps(s + j + 16 * u, e[u]);
            sum[u] = _mm512_add_ps(sum[u], e[u]);
        }
    }
    /* The last partial vector also stores its zero lanes up to width. */
    for (; j < n; j += 16) {
        const __mmask16 k = flat_tail_mask_avx512(n - j < 16 ? n - j : 16);
        const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm);
        const __m512 e = _mm512_maskz_mov_ps(k, flat_exp2_noinf_avx512(x));
        _mm512_mask_storeu_ps(s + j, flat_tail_mask_avx512(width - j < 16 ? width - j : 16), e);
        sum[0] = _mm512_add_ps(sum[0], e);
    }
    for (; j < width; j += 16) {
        const int rest = width - j < 16 ? width - j : 16;
        _mm512_mask_storeu_ps(s + j, flat_tail_mask_avx512(rest), _mm512_setzero_ps());
    }
    return _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(sum[0], sum[1]), _mm512_add_ps(sum[2], sum[3])));
}

void flat_vexp2__avx512(int n, const float *x, float *y)
{
    assert(n >= 0);
    for (int j = 0; j < n; j += 16) {
        const __mmask16 k = flat_tail_mask_avx512(n - j < 16 ? n - j : 16);
        _mm512_mask_storeu_ps(y + j, k, flat_exp2_avx512(_mm512_maskz_loadu_ps(k, x + j)));
    }
}
