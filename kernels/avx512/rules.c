/* Score rules between qk and the row max: softcap, ALiBi, an additive mask. */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define LOG2E 1.44269504088896340736f

/* tanh as ukernel.h states it (the scalar table's model, lane by lane). */
static inline __m512 tanh_avx512(__m512 x)
{
    const __m512 a = _mm512_abs_ps(x);
    const __m512 z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    const __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    if (is_small == 0xffff) /* capped logits are mostly small: skip exp and divide */
        return small;
    const __m512 e = flat_exp2_avx512(_mm512_mul_ps(_mm512_set1_ps(2.0f * LOG2E), a));
    const __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                                   _mm512_div_ps(_mm512_set1_ps(2.0f),
                                                 _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    /* copysign: t >= 0, so or in x's sign bit */
    const __m512 big = _mm512_or_ps(t, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
    return _mm512_mask_blend_ps(is_small, big, small);
}

float flat_score_rules__avx512(int n, float *s, const flat_rules_row *r)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    assert(n >= 0 && s && r);
    const __m512 cap = _mm512_set1_ps(r->cap), inv = _mm512_set1_ps(r->cap > 0 ? 1.0f / r->cap : 0);
    const __m512 lane = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int c = 0; c < n; c += 16) {
        const __mmask16 k = flat_tail_mask_avx512(n - c < 16 ? n - c : 16);
        __m512 x = _mm512_maskz_loadu_ps(k, s + c);
        if (r->cap > 0)
            x = _mm512_mul_ps(cap, tanh_avx512(_mm512_mul_ps(x, inv)));
        if (r->slope != 0) {
            const __m512 d = _mm512_sub_ps(_mm512_set1_ps(r->dist - (float)c), lane);
            x = _mm512_fmadd_ps(_mm512_set1_ps(r->slope), _mm512_abs_ps(d), x);
        }
        if (r->mask)
            x = _mm512_fmadd_ps(_mm512_set1_ps(LOG2E), _mm512_maskz_loadu_ps(k, r->mask + c), x);
        _mm512_mask_storeu_ps(s + c, k, x);
        m = _mm512_mask_max_ps(m, k, m, x);
    }
    return _mm512_reduce_max_ps(m);
}
