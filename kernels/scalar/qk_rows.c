/* S = Q K^T for the decode path: one Q panel against K rows where they lie. */
#include "../ukernel.h"
#include "kernels.h"

void flat_qk_rows__scalar(int m, int d, int n, const float *restrict qp, const float *k,
                          int64_t ld_k, float *restrict s, int64_t ld_s)
{
    for (int j = 0; j < n; j++) {
        const float *kj = k + (int64_t)j * ld_k;
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int c = 0; c < d; c++)
                acc += qp[(int64_t)c * FLAT_SCALAR_MR + i] * kj[c];
            s[i * ld_s + j] = acc;
        }
    }
}
