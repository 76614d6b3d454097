/* Q and K packing into the dim-major panels of kernels/ukernel.h. */
#include <string.h>

#include "../ukernel.h"
#include "kernels.h"

void flat_pack_q__scalar(int m, int d, const float *const *rows, float scale,
                         float *restrict qp)
{
    for (int p = 0; p < m; p += FLAT_SCALAR_MR) {
        int rows_here = m - p < FLAT_SCALAR_MR ? m - p : FLAT_SCALAR_MR;
        for (int c = 0; c < d; c++) {
            float *dst = qp + (int64_t)c * FLAT_SCALAR_MR;
            for (int i = 0; i < FLAT_SCALAR_MR; i++)
                dst[i] = i < rows_here ? scale * rows[p + i][c] : 0.0f;
        }
        qp += (int64_t)d * FLAT_SCALAR_MR;
    }
}

void flat_pack_k__scalar(int n, int d, const float *k, int64_t ld_k, float *restrict kp)
{
    for (int p = 0; p < n; p += FLAT_SCALAR_NR) {
        int keys_here = n - p < FLAT_SCALAR_NR ? n - p : FLAT_SCALAR_NR;
        for (int c = 0; c < d; c++) {
            float *dst = kp + (int64_t)c * FLAT_SCALAR_NR;
            for (int j = 0; j < FLAT_SCALAR_NR; j++)
                dst[j] = j < keys_here ? k[(int64_t)(p + j) * ld_k + c] : 0.0f;
        }
        kp += (int64_t)d * FLAT_SCALAR_NR;
    }
}
