/* S = Q K^T for the decode path: one Q panel against K rows where they lie. */
#include "../convert.h"
#include "../ukernel.h"
#include "kernels.h"

static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const void *k,
        int64_t ld_k, float *restrict s, int64_t ld_s)
{
    for (int j = 0; j < n; j++) {
        const void *kj = flat_elem_ptr(k, (int64_t)j * ld_k, t);
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int c = 0; c < d; c++)
                acc += qp[(int64_t)c * FLAT_SCALAR_MR + i] * flat_load_elem(kj, c, t);
            s[i * ld_s + j] = acc;
        }
    }
}

void flat_qk_rows__scalar(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s)
{
    const void *k = src->data;
    const int64_t ld_k = src->ld;
    const flat_dtype t = src->t;
    switch (t) {
    case FLAT_F16: qk_rows(FLAT_F16, m, d, n, qp, k, ld_k, s, ld_s); break;
    case FLAT_BF16: qk_rows(FLAT_BF16, m, d, n, qp, k, ld_k, s, ld_s); break;
    default: qk_rows(FLAT_F32, m, d, n, qp, k, ld_k, s, ld_s); break;
    }
}
