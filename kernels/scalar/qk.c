/* S = Qp Kp^T for one Q panel, register-blocked like the SIMD kernels. */
#include "../ukernel.h"
#include "kernels.h"

void flat_qk_4x8__scalar(int d, int n_panels, const float *restrict qp,
                         const float *restrict kp, float *restrict s, int64_t ld_s)
{
    for (int p = 0; p < n_panels; p++) {
        float acc[FLAT_SCALAR_MR][FLAT_SCALAR_NR] = {{0}};
        const float *kpanel = kp + (int64_t)p * d * FLAT_SCALAR_NR;
        for (int c = 0; c < d; c++) {
            const float *qc = qp + (int64_t)c * FLAT_SCALAR_MR;
            const float *kc = kpanel + (int64_t)c * FLAT_SCALAR_NR;
            for (int i = 0; i < FLAT_SCALAR_MR; i++)
                for (int j = 0; j < FLAT_SCALAR_NR; j++)
                    acc[i][j] += qc[i] * kc[j];
        }
        for (int i = 0; i < FLAT_SCALAR_MR; i++)
            for (int j = 0; j < FLAT_SCALAR_NR; j++)
                s[i * ld_s + p * FLAT_SCALAR_NR + j] = acc[i][j];
    }
}
