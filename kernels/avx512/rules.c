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

/* The rules on one vector of scores x of keys c .. c+15 (dv: dist - c -
 * lane, their ALiBi distances before |.|), in the contract's order. */
static inline __attribute__((always_inline)) __m512
rules_vec(__m512 x, __m512 dv, const void *mask, int c, __mmask16 k, int fcap, int fslope,
          int fmask, __m512 cap, __m512 inv, __m512 slope)
{
    if (fcap)
        x = _mm512_mul_ps(cap, tanh_avx512(_mm512_mul_ps(x, inv)));
    if (fslope)
        x = _mm512_fmadd_ps(slope, _mm512_abs_ps(dv), x);
    if (fmask == 1)
        x = _mm512_fmadd_ps(_mm512_set1_ps(LOG2E), _mm512_maskz_loadu_ps(k, (const float *)mask + c), x);
    if (fmask >= 2) { /* 16-bit: f16 by vcvtph2ps, bf16 shifted into an f32's top half */
        const __m256i h = _mm256_maskz_loadu_epi16(k, (const uint16_t *)mask + c);
        const __m512 m = fmask == 2 ? _mm512_cvtph_ps(h)
                                    : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        x = _mm512_fmadd_ps(_mm512_set1_ps(LOG2E), m, x);
    }
    return x;
}

/* One loop per combination of rules (fcap, fslope, fmask are constants
 * where it is inlined): the rule fields live in registers, not reloaded
 * from *r after every store to s, and no rule is tested per vector. Two
 * vectors per step with two maxima, whole vectors unmasked, then the tail.
 * The distances step by 16 exactly (integers below 2^24). */
static inline __attribute__((always_inline)) float
rules_loop(int n, float *s, const flat_rules_row *r, int fcap, int fslope, int fmask)
{
    const __m512 cap = _mm512_set1_ps(r->cap), inv = _mm512_set1_ps(fcap ? 1.0f / r->cap : 0);
    const __m512 slope = _mm512_set1_ps(r->slope), step = _mm512_set1_ps(16.0f);
    const void *mask = r->mask;
    __m512 dv = _mm512_sub_ps(_mm512_set1_ps(r->dist),
                              _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    int c = 0;
    for (; c + 32 <= n; c += 32) {
        const __m512 d1 = _mm512_sub_ps(dv, step);
        __m512 x0 = rules_vec(_mm512_loadu_ps(s + c), dv, mask, c, 0xffff, fcap, fslope, fmask,
                              cap, inv, slope);
        __m512 x1 = rules_vec(_mm512_loadu_ps(s + c + 16), d1, mask, c + 16, 0xffff, fcap,
                              fslope, fmask, cap, inv, slope);
        _mm512_storeu_ps(s + c, x0);
        _mm512_storeu_ps(s + c + 16, x1);
        m0 = _mm512_max_ps(m0, x0);
        m1 = _mm512_max_ps(m1, x1);
        dv = _mm512_sub_ps(d1, step);
    }
    for (; c < n; c += 16) {
        const __mmask16 k = flat_tail_mask_avx512(n - c < 16 ? n - c : 16);
        __m512 x = rules_vec(_mm512_maskz_loadu_ps(k, s + c), dv, mask, c, k, fcap, fslope,
                             fmask, cap, inv, slope);
        _mm512_mask_storeu_ps(s + c, k, x);
        m0 = _mm512_mask_max_ps(m0, k, m0, x);
        dv = _mm512_sub_ps(dv, step);
    }
    return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

float flat_score_rules__avx512(int n, float *s, const flat_rules_row *r)
{
    assert(n >= 0 && s && r);
    FLAT_RULES_DISPATCH(rules_loop, n, s, r)
}
