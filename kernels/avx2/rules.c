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

/* The rules on one vector of scores x of keys c .. c+7 (dv: dist - c -
 * lane, their ALiBi distances before |.|; the mask read only when fmask,
 * its first `part` elements unless whole), in the contract's order. */
static inline __attribute__((always_inline)) __m256
rules_vec(__m256 x, __m256 dv, const void *mask, int c, __m256i k, int whole, int part,
          int fcap, int fslope, int fmask, __m256 cap, __m256 inv, __m256 slope)
{
    if (fcap)
        x = _mm256_mul_ps(cap, tanh_avx2(_mm256_mul_ps(x, inv)));
    if (fslope)
        x = _mm256_fmadd_ps(slope, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), dv), x);
    if (fmask) { /* 1 f32, 2 f16, 3 bf16, widened exactly (kernels.h) */
        const flat_dtype t = fmask == 1 ? FLAT_F32 : fmask == 2 ? FLAT_F16 : FLAT_BF16;
        x = _mm256_fmadd_ps(_mm256_set1_ps(LOG2E),
                            whole ? flat_loadu8_avx2(t, mask, c)
                                  : flat_load8_part_avx2(t, mask, c, part, k),
                            x);
    }
    return x;
}

/* One loop per combination of rules (fcap, fslope, fmask constant where
 * inlined): the fields stay in registers instead of being reloaded from *r
 * after each store to s, and no rule is tested per vector. Two vectors per
 * step with two maxima, whole vectors unmasked, then the tail. The
 * distances step by 8 exactly (integers below 2^24). */
static inline __attribute__((always_inline)) float
rules_loop(int n, float *s, const flat_rules_row *r, int fcap, int fslope, int fmask)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY), step = _mm256_set1_ps(8.0f);
    const __m256 cap = _mm256_set1_ps(r->cap), inv = _mm256_set1_ps(fcap ? 1.0f / r->cap : 0);
    const __m256 slope = _mm256_set1_ps(r->slope);
    const __m256i all = _mm256_set1_epi32(-1);
    const void *mask = r->mask;
    __m256 dv = _mm256_sub_ps(_mm256_set1_ps(r->dist), _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 m0 = ninf, m1 = ninf;
    int c = 0;
    for (; c + 16 <= n; c += 16) {
        const __m256 d1 = _mm256_sub_ps(dv, step);
        __m256 x0 = rules_vec(_mm256_loadu_ps(s + c), dv, mask, c, all, 1, 8, fcap, fslope, fmask,
                              cap, inv, slope);
        __m256 x1 = rules_vec(_mm256_loadu_ps(s + c + 8), d1, mask, c + 8, all, 1, 8, fcap, fslope,
                              fmask, cap, inv, slope);
        _mm256_storeu_ps(s + c, x0);
        _mm256_storeu_ps(s + c + 8, x1);
        m0 = _mm256_max_ps(m0, x0);
        m1 = _mm256_max_ps(m1, x1);
        dv = _mm256_sub_ps(d1, step);
    }
    for (; c < n; c += 8) {
        const int part = n - c < 8 ? n - c : 8;
        const __m256i k = flat_tail_mask_avx2(part);
        __m256 x = rules_vec(_mm256_maskload_ps(s + c, k), dv, mask, c, k, 0, part, fcap, fslope,
                             fmask, cap, inv, slope);
        _mm256_maskstore_ps(s + c, k, x);
        m0 = _mm256_max_ps(m0, _mm256_blendv_ps(ninf, x, _mm256_castsi256_ps(k)));
        dv = _mm256_sub_ps(dv, step);
    }
    const __m256 m = _mm256_max_ps(m0, m1);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

float flat_score_rules__avx2(int n, float *s, const flat_rules_row *r)
{
    assert(n >= 0 && s && r);
    FLAT_RULES_DISPATCH(rules_loop, n, s, r)
}
