/* O = diag(alpha) O + P V, rows blocked by FLAT_SCALAR_PV_MR. */
#include <stddef.h>
#include "../ukernel.h"
#include "kernels.h"

/* One block of up to PV_MR rows: scale (or clear) the O rows, then
 * accumulate one V row at a time so V is read once per block. */
static void pv_block(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                     const float *restrict v, int64_t ld_v, float *restrict o,
                     int64_t ld_o, const float *restrict alpha)
{
    for (int i = 0; i < m; i++) {
        float *oi = o + i * ld_o;
        float a = alpha ? alpha[i] : 0.0f;
        for (int c = 0; c < dv; c++)
            oi[c] = alpha ? a * oi[c] : 0.0f;
    }
    for (int j = 0; j < n; j++) {
        const float *vj = v + j * ld_v;
        for (int i = 0; i < m; i++) {
            float pij = p[i * ld_p + j];
            float *oi = o + i * ld_o;
            for (int c = 0; c < dv; c++)
                oi[c] += pij * vj[c];
        }
    }
}

void flat_pv_4__scalar(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                       const float *restrict v, int64_t ld_v, float *restrict o,
                       int64_t ld_o, const float *restrict alpha)
{
    for (int r = 0; r < m; r += FLAT_SCALAR_PV_MR) {
        int rows = m - r < FLAT_SCALAR_PV_MR ? m - r : FLAT_SCALAR_PV_MR;
        pv_block(rows, n, dv, p + r * ld_p, ld_p, v, ld_v, o + r * ld_o, ld_o,
                 alpha ? alpha + r : NULL);
    }
}
