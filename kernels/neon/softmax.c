#if !defined(__aarch64__)
#error "kernels/neon/ is built for AArch64 only"
#endif
/* Row max and exp2-and-sum, the softmax steps between qk and pv. */
#include <arm_neon.h>
#include <assert.h>
#include <math.h>
#include <string.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

float flat_row_max__neon(int n, const float *s)
{
    assert(n >= 0 && (n == 0 || s));
    /* Two accumulators hide the FMAX latency. */
    float32x4_t m0 = vdupq_n_f32(-INFINITY), m1 = m0;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        m0 = vmaxq_f32(m0, vld1q_f32(s + j));
        m1 = vmaxq_f32(m1, vld1q_f32(s + j + 4));
    }
    if (j + 4 <= n) {
        m0 = vmaxq_f32(m0, vld1q_f32(s + j));
        j += 4;
    }
    float m = vmaxvq_f32(vmaxq_f32(m0, m1));
    for (; j < n; j++)
        m = s[j] > m ? s[j] : m;
    return m;
}

/* exp2(x - m) for the last count < 4 entries of a row, through a padded
 * copy so nothing past them is read or written. Padding is -inf, whose
 * exp2 is 0 (m is finite), so the returned lanes add nothing to the sum. */
static float32x4_t exp2_tail(int count, float *s, float32x4_t m)
{
    float buf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    memcpy(buf, s, (size_t)count * sizeof *s);
    float32x4_t e = flat_exp2_neon(vsubq_f32(vld1q_f32(buf), m));
    vst1q_f32(buf, e);
    memcpy(s, buf, (size_t)count * sizeof *s);
    return e;
}

float flat_exp2_row__neon(int n, int width, float *s, float m)
{
    /* m is not asserted finite: an Inf or NaN input row makes it +inf or
     * NaN, and the row then comes out NaN, as the contract allows. */
    assert(n >= 0 && n <= width && (width == 0 || s));
    float32x4_t vm = vdupq_n_f32(m);
    float32x4_t sum0 = vdupq_n_f32(0.0f), sum1 = sum0;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        float32x4_t e0 = flat_exp2_neon(vsubq_f32(vld1q_f32(s + j), vm));
        float32x4_t e1 = flat_exp2_neon(vsubq_f32(vld1q_f32(s + j + 4), vm));
        vst1q_f32(s + j, e0);
        vst1q_f32(s + j + 4, e1);
        sum0 = vaddq_f32(sum0, e0);
        sum1 = vaddq_f32(sum1, e1);
    }
    if (j + 4 <= n) {
        float32x4_t e = flat_exp2_neon(vsubq_f32(vld1q_f32(s + j), vm));
        vst1q_f32(s + j, e);
        sum0 = vaddq_f32(sum0, e);
        j += 4;
    }
    if (j < n) {
        sum1 = vaddq_f32(sum1, exp2_tail(n - j, s + j, vm));
        j = n;
    }
    /* Keys n..width are masked or padding: their probability is exactly 0. */
    for (; j + 4 <= width; j += 4)
        vst1q_f32(s + j, vdupq_n_f32(0.0f));
    for (; j < width; j++)
        s[j] = 0.0f;
    return vaddvq_f32(vaddq_f32(sum0, sum1));
}

void flat_vexp2__neon(int n, const float *x, float *y)
{
    assert(n >= 0 && (n == 0 || (x && y)));
    int j = 0;
    for (; j + 4 <= n; j += 4)
        vst1q_f32(y + j, flat_exp2_neon(vld1q_f32(x + j)));
    if (j < n) {
        float buf[4] = {0};
        memcpy(buf, x + j, (size_t)(n - j) * sizeof *x);
        vst1q_f32(buf, flat_exp2_neon(vld1q_f32(buf)));
        memcpy(y + j, buf, (size_t)(n - j) * sizeof *y);
    }
}
