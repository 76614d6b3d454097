/* S = Q K^T for the decode path: one Q panel against K rows where they lie. */
#include "../convert.h"
#include "../ukernel.h"
#include "kernels.h"

static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
        float *restrict s, int64_t ld_s)
{
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int c = 0; c < d; c++)
                acc += qp[(int64_t)c * FLAT_SCALAR_MR + i] * flat_kv_load(k, j, c, t);
            s[i * ld_s + j] = acc;
        }
}

void flat_qk_rows__scalar(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                          float *restrict s, int64_t ld_s)
{
    FLAT_KV_SWITCH(src->t, qk_rows, m, d, n, qp, src, s, ld_s);
}
