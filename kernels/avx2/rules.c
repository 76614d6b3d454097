/* Score rules between qk and the row max: softcap, ALiBi, an additive mask. */
#ifndef __AVX2__
#error "kernels/avx2 must be compiled with -mavx2 -mfma"
#endif

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define LOG2E 1.44269504088896340736f

/* tanh as ukernel.h states it (the scalar table's model, lane by lane). */
static inline __m256 tanh_avx2(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 z = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
    const __m256 is_small = _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
    if (_mm256_movemask_ps(is_small) == 0xff) /* mostly small: skip exp and divide */
        return small;
    const __m256 e = flat_exp2_avx2(_mm256_mul_ps(_mm256_set1_ps(2.0f * LOG2E), a));
    const __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                   _mm256_div_ps(_mm256_set1_ps(2.0f),
                                                 _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
    const __m256 big = _mm256_or_ps(t, _mm256_and_ps(x, sign));
    return _mm256_blendv_ps(big, small, is_small);
}

float flat_score_rules__avx2(int n, float *s, const flat_rules_row *r)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf;
    assert(n >= 0 && s && r);
    const __m256 cap = _mm256_set1_ps(r->cap), inv = _mm256_set1_ps(r->cap > 0 ? 1.0f / r->cap : 0);
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), sign = _mm256_set1_ps(-0.0f);
    for (int c = 0; c < n; c += 8) {
        const __m256i k = flat_tail_mask_avx2(n - c < 8 ? n - c : 8);
        __m256 x = _mm256_maskload_ps(s + c, k);
        if (r->cap > 0)
            x = _mm256_mul_ps(cap, tanh_avx2(_mm256_mul_ps(x, inv)));
        if (r->slope != 0) {
            const __m256 d = _mm256_sub_ps(_mm256_set1_ps(r->dist - (float)c), lane);
            x = _mm256_fmadd_ps(_mm256_set1_ps(r->slope), _mm256_andnot_ps(sign, d), x);
        }
        if (r->mask)
            x = _mm256_fmadd_ps(_mm256_set1_ps(LOG2E), _mm256_maskload_ps(r->mask + c, k), x);
        _mm256_maskstore_ps(s + c, k, x);
        m = _mm256_max_ps(m, _mm256_blendv_ps(ninf, x, _mm256_castsi256_ps(k)));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}
