/* Vector exp2 with the contract's accuracy and flushing rules (AArch64). */
#ifndef FLAT_NEON_EXP_H
#define FLAT_NEON_EXP_H

#include <arm_neon.h>

/*
 * exp2(x) = 2^n * 2^f with n = round(x), f = x - n in [-1/2, 1/2] (exact).
 * 2^f comes from the same degree-6 minimax polynomial as the scalar kernel
 * (Cephes exp2f coefficients), evaluated by Horner with fused multiply-adds;
 * 2^n is built in the exponent field, so the only rounding is in the
 * polynomial: max 0.952 ulp against double exp2 over all 2^32 inputs
 * (through a bit-exact scalar mirror of this function), none above 1 ulp.
 *
 * Ranges, all branch-free:
 *   - x is clamped to [-127, 128] first, so the integer conversion and the
 *     exponent arithmetic never overflow; FMIN/FMAX keep a NaN, and a NaN
 *     then runs through the polynomial and comes out NaN.
 *   - n = 128 (x in (127.5, 128]) has no exponent field; there the result is
 *     built as (p * 2^127) * 2, exact, and overflows to +inf only when the
 *     true value does. x >= 128 (and +inf) give +inf.
 *   - x < -126 gives exactly 0: the contract flushes what would be a denormal,
 *     so P V never meets denormal operands. For x >= -126, n >= -126 and
 *     f >= 0 when n = -126, so the result is always a normal number.
 */
static inline float32x4_t flat_exp2_neon(float32x4_t x)
{
    float32x4_t xc = vmaxq_f32(vminq_f32(x, vdupq_n_f32(128.0f)), vdupq_n_f32(-127.0f));
    float32x4_t n = vrndnq_f32(xc);
    float32x4_t f = vsubq_f32(xc, n);

    float32x4_t p = vdupq_n_f32(1.535336188319500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.339887440266574e-3f), p, f);
    p = vfmaq_f32(vdupq_n_f32(9.618437357674640e-3f), p, f);
    p = vfmaq_f32(vdupq_n_f32(5.550332471162809e-2f), p, f);
    p = vfmaq_f32(vdupq_n_f32(2.402264791363012e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(6.931472028550421e-1f), p, f);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, f);

    /* big lanes (n = 128) take 2^127 here and the factor 2 below; the mask
     * is all ones (-1), so adding it subtracts 1 from n. */
    uint32x4_t big = vcgtq_f32(n, vdupq_n_f32(127.0f));
    int32x4_t e = vaddq_s32(vcvtq_s32_f32(n), vreinterpretq_s32_u32(big));
    float32x4_t scale = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(e, vdupq_n_s32(127)), 23));
    float32x4_t r = vmulq_f32(p, scale);
    r = vbslq_f32(big, vaddq_f32(r, r), r);

    uint32x4_t tiny = vcltq_f32(x, vdupq_n_f32(-126.0f));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(r), tiny));
}

#endif
