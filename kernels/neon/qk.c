#if !defined(__aarch64__)
#error "kernels/neon/ is built for AArch64 only"
#endif
/* S = Qp Kp^T for one Q panel: 8 x 12 register blocks (kernels.h). */
#include <arm_neon.h>
#include <assert.h>

#include "../ukernel.h"
#include "kernels.h"

/* acc[0..2] += q * (k0, k1, k2): one row of the block, q broadcast. The
 * compiler folds the broadcast into FMLA-by-element. */
static inline void fma_row(float32x4_t acc[3], float32x4_t q, float32x4_t k0,
                           float32x4_t k1, float32x4_t k2)
{
    acc[0] = vfmaq_f32(acc[0], k0, q);
    acc[1] = vfmaq_f32(acc[1], k1, q);
    acc[2] = vfmaq_f32(acc[2], k2, q);
}

/*
 * One 8 x 12 block: S[i][j] = sum_c qp[c][i] * kp[c][j]. Each dim c loads the
 * 8 Q values as two vectors and the 12 K values as three, then does 24 FMAs,
 * Q lane i against the K vectors. Both panels are exactly d * (8 | 12)
 * floats, so the loads never leave them.
 */
static void qk_block(int d, const float *restrict qp, const float *restrict kp,
                     float *restrict s, int64_t ld_s)
{
    /* Fully unrolled, so every index is a constant and the array lives in
     * registers (no stack round trip per dim). */
    float32x4_t acc[FLAT_NEON_MR][3];
#pragma GCC unroll 8
    for (int i = 0; i < FLAT_NEON_MR; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_f32(0.0f);

    for (int c = 0; c < d; c++) {
        const float *qc = qp + (int64_t)c * FLAT_NEON_MR;
        const float *kc = kp + (int64_t)c * FLAT_NEON_NR;
        float32x4_t q0 = vld1q_f32(qc), q1 = vld1q_f32(qc + 4);
        float32x4_t k0 = vld1q_f32(kc), k1 = vld1q_f32(kc + 4), k2 = vld1q_f32(kc + 8);
        fma_row(acc[0], vdupq_laneq_f32(q0, 0), k0, k1, k2);
        fma_row(acc[1], vdupq_laneq_f32(q0, 1), k0, k1, k2);
        fma_row(acc[2], vdupq_laneq_f32(q0, 2), k0, k1, k2);
        fma_row(acc[3], vdupq_laneq_f32(q0, 3), k0, k1, k2);
        fma_row(acc[4], vdupq_laneq_f32(q1, 0), k0, k1, k2);
        fma_row(acc[5], vdupq_laneq_f32(q1, 1), k0, k1, k2);
        fma_row(acc[6], vdupq_laneq_f32(q1, 2), k0, k1, k2);
        fma_row(acc[7], vdupq_laneq_f32(q1, 3), k0, k1, k2);
    }

#pragma GCC unroll 8
    for (int i = 0; i < FLAT_NEON_MR; i++) {
        float *si = s + i * ld_s;
        vst1q_f32(si, acc[i][0]);
        vst1q_f32(si + 4, acc[i][1]);
        vst1q_f32(si + 8, acc[i][2]);
    }
}

void flat_qk_8x12__neon(int d, int n_panels, const float *restrict qp,
                        const float *restrict kp, float *restrict s, int64_t ld_s)
{
    assert(d >= 1 && n_panels >= 0 && ld_s >= (int64_t)n_panels * FLAT_NEON_NR);
    for (int p = 0; p < n_panels; p++)
        qk_block(d, qp, kp + (int64_t)p * d * FLAT_NEON_NR, s + p * FLAT_NEON_NR, ld_s);
}
