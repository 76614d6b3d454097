/* O = diag(alpha) O + P V, rows blocked by FLAT_SCALAR_PV_MR; and the output
 * row store. */
#include <stddef.h>

#include "../convert.h"
#include "../ukernel.h"
#include "kernels.h"

/* One block of up to PV_MR rows: scale (or clear) the O rows, then
 * accumulate one V row at a time so V is read once per block. */
static inline __attribute__((always_inline)) void
pv_block(const flat_dtype t, int m, int n, int dv, const float *restrict p, int64_t ld_p,
         const flat_kv_src *v, float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    for (int i = 0; i < m; i++) {
        float *oi = o + i * ld_o;
        float a = alpha ? alpha[i] : 0.0f;
        for (int c = 0; c < dv; c++)
            oi[c] = alpha ? a * oi[c] : 0.0f;
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float pij = p[i * ld_p + j];
            float *oi = o + i * ld_o;
            for (int c = 0; c < dv; c++)
                oi[c] += pij * flat_kv_load(v, j, c, t);
        }
}

static inline __attribute__((always_inline)) void
pv(const flat_dtype t, int m, int n, int dv, const float *restrict p, int64_t ld_p,
   const flat_kv_src *v, float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    for (int r = 0; r < m; r += FLAT_SCALAR_PV_MR) {
        int rows = m - r < FLAT_SCALAR_PV_MR ? m - r : FLAT_SCALAR_PV_MR;
        pv_block(t, rows, n, dv, p + r * ld_p, ld_p, v, o + r * ld_o, ld_o,
                 alpha ? alpha + r : NULL);
    }
}

void flat_pv_4__scalar(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                       const flat_kv_src *src, float *restrict o, int64_t ld_o,
                       const float *restrict alpha)
{
    FLAT_KV_SWITCH(src->t, pv, m, n, dv, p, ld_p, src, o, ld_o, alpha);
}

void flat_store_row__scalar(int n, const float *restrict x, float scale, flat_dtype t,
                            void *restrict y)
{
    for (int c = 0; c < n; c++)
        flat_store_elem(y, c, scale * x[c], t);
}

void flat_widen_rows__scalar(int n, int cols, const flat_kv_src *src, float *restrict y,
                             int64_t ld_y)
{
    FLAT_KV_SWITCH(src->t, flat_kv_widen_rows, n, cols, src, y, ld_y);
}
