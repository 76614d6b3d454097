#if !defined(__aarch64__)
#error "kernels/neon/ is built for AArch64 only"
#endif
/* Score rules between qk and the row max: softcap, ALiBi, an additive mask. */
#include <arm_neon.h>
#include <assert.h>
#include <math.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define LOG2E 1.44269504088896340736f

/* tanh as ukernel.h states it (the scalar table's model, lane by lane). */
static inline float32x4_t tanh_neon(float32x4_t x)
{
    const float32x4_t a = vabsq_f32(x), z = vmulq_f32(x, x);
    float32x4_t p = vdupq_n_f32(-5.70498872745e-3f);
    p = vfmaq_f32(vdupq_n_f32(2.06390887954e-2f), p, z);
    p = vfmaq_f32(vdupq_n_f32(-5.37397155531e-2f), p, z);
    p = vfmaq_f32(vdupq_n_f32(1.33314422036e-1f), p, z);
    p = vfmaq_f32(vdupq_n_f32(-3.33332819422e-1f), p, z);
    const float32x4_t small = vfmaq_f32(x, vmulq_f32(p, z), x);
    const float32x4_t e = flat_exp2_neon(vmulq_f32(vdupq_n_f32(2.0f * LOG2E), a));
    const float32x4_t t =
        vsubq_f32(vdupq_n_f32(1.0f), vdivq_f32(vdupq_n_f32(2.0f), vaddq_f32(e, vdupq_n_f32(1.0f))));
    const uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u));
    const float32x4_t big = vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(t), sign));
    return vbslq_f32(vcltq_f32(a, vdupq_n_f32(0.625f)), small, big);
}

float flat_score_rules__neon(int n, float *s, const flat_rules_row *r)
{
    float32x4_t mv = vdupq_n_f32(-INFINITY);
    assert(n >= 0 && s && r);
    const float inv = r->cap > 0 ? 1.0f / r->cap : 0;
    const float lanes[4] = {0, 1, 2, 3};
    const float32x4_t lane = vld1q_f32(lanes);
    int c = 0;
    for (; c + 4 <= n; c += 4) {
        float32x4_t x = vld1q_f32(s + c);
        if (r->cap > 0)
            x = vmulq_n_f32(tanh_neon(vmulq_n_f32(x, inv)), r->cap);
        if (r->slope != 0)
            x = vfmaq_n_f32(x, vabsq_f32(vsubq_f32(vdupq_n_f32(r->dist - (float)c), lane)), r->slope);
        if (r->mask)
            x = vfmaq_n_f32(x, flat_load4_neon(r->mask_t, r->mask, c), LOG2E);
        vst1q_f32(s + c, x);
        mv = vmaxq_f32(mv, x);
    }
    float m = vmaxvq_f32(mv);
    for (; c < n; c++) { /* the tail, lane 0 of the same vector code */
        float32x4_t x = vdupq_n_f32(s[c]);
        if (r->cap > 0)
            x = vmulq_n_f32(tanh_neon(vmulq_n_f32(x, inv)), r->cap);
        float y = vgetq_lane_f32(x, 0);
        if (r->slope != 0)
            y = fmaf(fabsf(r->dist - (float)c), r->slope, y);
        if (r->mask)
            y = fmaf(flat_load_elem(r->mask, c, r->mask_t), LOG2E, y);
        s[c] = y;
        m = y > m ? y : m;
    }
    return m;
}
