/* Q and K packing into the dim-major panels of kernels/ukernel.h. */
#include "../convert.h"
#include "../ukernel.h"
#include "kernels.h"

static inline __attribute__((always_inline)) void
pack_q(const flat_dtype t, int m, int d, const void *const *rows, float scale, float *restrict qp)
{
    for (int p = 0; p < m; p += FLAT_SCALAR_MR) {
        int rows_here = m - p < FLAT_SCALAR_MR ? m - p : FLAT_SCALAR_MR;
        for (int c = 0; c < d; c++) {
            float *dst = qp + (int64_t)c * FLAT_SCALAR_MR;
            for (int i = 0; i < FLAT_SCALAR_MR; i++)
                dst[i] = i < rows_here ? scale * flat_load_elem(rows[p + i], c, t) : 0.0f;
        }
        qp += (int64_t)d * FLAT_SCALAR_MR;
    }
}

static inline __attribute__((always_inline)) void
pack_k(const flat_dtype t, int n, int d, const void *k, int64_t ld_k, float *restrict kp)
{
    for (int p = 0; p < n; p += FLAT_SCALAR_NR) {
        int keys_here = n - p < FLAT_SCALAR_NR ? n - p : FLAT_SCALAR_NR;
        for (int c = 0; c < d; c++) {
            float *dst = kp + (int64_t)c * FLAT_SCALAR_NR;
            for (int j = 0; j < FLAT_SCALAR_NR; j++)
                dst[j] = j < keys_here ? flat_load_elem(k, (int64_t)(p + j) * ld_k + c, t) : 0.0f;
        }
        kp += (int64_t)d * FLAT_SCALAR_NR;
    }
}

void flat_pack_q__scalar(int m, int d, const void *const *rows, flat_dtype t, float scale,
                         float *restrict qp)
{
    switch (t) {
    case FLAT_F16: pack_q(FLAT_F16, m, d, rows, scale, qp); break;
    case FLAT_BF16: pack_q(FLAT_BF16, m, d, rows, scale, qp); break;
    default: pack_q(FLAT_F32, m, d, rows, scale, qp); break;
    }
}

void flat_pack_k__scalar(int n, int d, const flat_kv_src *src, float *restrict kp)
{
    const void *k = src->data;
    const int64_t ld_k = src->ld;
    const flat_dtype t = src->t;
    switch (t) {
    case FLAT_F16: pack_k(FLAT_F16, n, d, k, ld_k, kp); break;
    case FLAT_BF16: pack_k(FLAT_BF16, n, d, k, ld_k, kp); break;
    default: pack_k(FLAT_F32, n, d, k, ld_k, kp); break;
    }
}
