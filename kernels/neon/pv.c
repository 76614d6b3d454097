#if !defined(__aarch64__)
#error "kernels/neon/ is built for AArch64 only"
#endif
/* O = diag(alpha) O + P V: blocks of 4 rows x 16 columns (kernels.h). */
#include <arm_neon.h>
#include <assert.h>
#include <math.h>
#include <stddef.h>

#include "../ukernel.h"
#include "kernels.h"

#define PV_MR FLAT_NEON_PV_MR
#define PV_NV (FLAT_NEON_PV_NC / 4) /* vectors per row of a full tile */

/* acc[i][0..nv) += p_i * V row j, with p_i broadcast: one key of the tile. */
static inline __attribute__((always_inline)) void
pv_key(const flat_dtype t, int nv, float32x4_t acc[PV_MR][PV_NV], const void *vj,
       float32x4_t p0, float32x4_t p1, float32x4_t p2, float32x4_t p3)
{
#pragma GCC unroll 4
    for (int x = 0; x < nv; x++) {
        float32x4_t vx = flat_load4_neon(t, vj, 4 * x);
        acc[0][x] = vfmaq_f32(acc[0][x], vx, p0);
        acc[1][x] = vfmaq_f32(acc[1][x], vx, p1);
        acc[2][x] = vfmaq_f32(acc[2][x], vx, p2);
        acc[3][x] = vfmaq_f32(acc[3][x], vx, p3);
    }
}

/*
 * One tile: rows 0..3 (pr[i]; unused rows alias row 0 and are computed but
 * never stored) by nv*4 columns at o. The accumulators start from alpha*O,
 * or 0 without alpha (O unread), then take one key at a time, so the sum runs
 * in the same order as the scalar kernel. Four keys share one load of each P
 * row; the last n % 4 keys load P element by element, so P and V are read
 * only for j < n.
 */
static inline __attribute__((always_inline)) void
pv_tile(const flat_dtype t, int nv, int rows, int n, const float *const pr[PV_MR],
        const void *restrict v, int64_t ld_v, float *restrict o, int64_t ld_o,
        const float *restrict alpha)
{
    /* Every loop over the tile is fully unrolled, so all indices are
     * constants and acc lives in registers. */
    float32x4_t acc[PV_MR][PV_NV];
#pragma GCC unroll 4
    for (int i = 0; i < PV_MR; i++) {
#pragma GCC unroll 4
        for (int x = 0; x < nv; x++)
            acc[i][x] = i < rows && alpha
                            ? vmulq_n_f32(vld1q_f32(o + i * ld_o + 4 * x), alpha[i])
                            : vdupq_n_f32(0.0f);
    }

    int j = 0;
    for (; j + 4 <= n; j += 4) {
        float32x4_t p0 = vld1q_f32(pr[0] + j), p1 = vld1q_f32(pr[1] + j);
        float32x4_t p2 = vld1q_f32(pr[2] + j), p3 = vld1q_f32(pr[3] + j);
        const void *vj = flat_elem_ptr(v, j * ld_v, t);
        pv_key(t, nv, acc, vj, vdupq_laneq_f32(p0, 0), vdupq_laneq_f32(p1, 0),
               vdupq_laneq_f32(p2, 0), vdupq_laneq_f32(p3, 0));
        pv_key(t, nv, acc, flat_elem_ptr(vj, ld_v, t), vdupq_laneq_f32(p0, 1),
               vdupq_laneq_f32(p1, 1), vdupq_laneq_f32(p2, 1), vdupq_laneq_f32(p3, 1));
        pv_key(t, nv, acc, flat_elem_ptr(vj, 2 * ld_v, t), vdupq_laneq_f32(p0, 2),
               vdupq_laneq_f32(p1, 2), vdupq_laneq_f32(p2, 2), vdupq_laneq_f32(p3, 2));
        pv_key(t, nv, acc, flat_elem_ptr(vj, 3 * ld_v, t), vdupq_laneq_f32(p0, 3),
               vdupq_laneq_f32(p1, 3), vdupq_laneq_f32(p2, 3), vdupq_laneq_f32(p3, 3));
    }
    for (; j < n; j++)
        pv_key(t, nv, acc, flat_elem_ptr(v, j * ld_v, t), vld1q_dup_f32(pr[0] + j),
               vld1q_dup_f32(pr[1] + j), vld1q_dup_f32(pr[2] + j), vld1q_dup_f32(pr[3] + j));

#pragma GCC unroll 4
    for (int i = 0; i < PV_MR; i++) {
        if (i >= rows)
            break;
#pragma GCC unroll 4
        for (int x = 0; x < nv; x++)
            vst1q_f32(o + i * ld_o + 4 * x, acc[i][x]);
    }
}

/* The last dv % 4 columns, element by element, in the same order. */
static inline __attribute__((always_inline)) void
pv_columns(const flat_dtype t, int cols, int rows, int n, const float *const pr[PV_MR],
           const void *restrict v, int64_t ld_v, float *restrict o, int64_t ld_o,
           const float *restrict alpha)
{
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++) {
            float acc = alpha ? alpha[i] * o[i * ld_o + c] : 0.0f;
            for (int j = 0; j < n; j++)
                acc = fmaf(pr[i][j], flat_load_elem(v, j * ld_v + c, t), acc);
            o[i * ld_o + c] = acc;
        }
    }
}

/* Up to PV_MR rows across all dv columns: full tiles, then 4-wide, then
 * single columns. */
static inline __attribute__((always_inline)) void
pv_rows(const flat_dtype t, int rows, int n, int dv, const float *restrict p, int64_t ld_p,
        const void *restrict v, int64_t ld_v, float *restrict o, int64_t ld_o,
        const float *restrict alpha)
{
    const float *pr[PV_MR];
    for (int i = 0; i < PV_MR; i++)
        pr[i] = p + (i < rows ? i : 0) * ld_p;
    int c = 0;
    for (; c + FLAT_NEON_PV_NC <= dv; c += FLAT_NEON_PV_NC)
        pv_tile(t, PV_NV, rows, n, pr, flat_elem_ptr(v, c, t), ld_v, o + c, ld_o, alpha);
    for (; c + 4 <= dv; c += 4)
        pv_tile(t, 1, rows, n, pr, flat_elem_ptr(v, c, t), ld_v, o + c, ld_o, alpha);
    if (c < dv)
        pv_columns(t, dv - c, rows, n, pr, flat_elem_ptr(v, c, t), ld_v, o + c, ld_o, alpha);
}

static inline __attribute__((always_inline)) void
pv(const flat_dtype t, int m, int n, int dv, const float *restrict p, int64_t ld_p,
   const void *restrict v, int64_t ld_v, float *restrict o, int64_t ld_o,
   const float *restrict alpha)
{
    assert(m >= 1 && n >= 0 && dv >= 1 && o);
    assert(n == 0 || (p && v));
    for (int r = 0; r < m; r += PV_MR) {
        int rows = m - r < PV_MR ? m - r : PV_MR;
        pv_rows(t, rows, n, dv, p + r * ld_p, ld_p, v, ld_v, o + r * ld_o, ld_o,
                alpha ? alpha + r : NULL);
    }
}

/* Quantized V, portable: the contract's order (alpha * O, then one FMA per
 * key in order) over elements dequantized as convert.h's flat_kv_load. */
static inline __attribute__((always_inline)) void
pv_quant(const flat_dtype t, int m, int n, int dv, const float *restrict p, int64_t ld_p,
         const flat_kv_src *v, float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    for (int i = 0; i < m; i++)
        for (int c = 0; c < dv; c++) {
            float acc = alpha ? alpha[i] * o[i * ld_o + c] : 0.0f;
            for (int j = 0; j < n; j++)
                acc = fmaf(p[i * ld_p + j], flat_kv_load(v, j, c, t), acc);
            o[i * ld_o + c] = acc;
        }
}

void flat_pv_4x16__neon(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                        const flat_kv_src *src, float *restrict o, int64_t ld_o,
                        const float *restrict alpha)
{
    const void *v = src->data;
    const int64_t ld_v = src->ld;
    switch (src->t) {
    case FLAT_F16: pv(FLAT_F16, m, n, dv, p, ld_p, v, ld_v, o, ld_o, alpha); break;
    case FLAT_BF16: pv(FLAT_BF16, m, n, dv, p, ld_p, v, ld_v, o, ld_o, alpha); break;
    case FLAT_I8: pv_quant(FLAT_I8, m, n, dv, p, ld_p, src, o, ld_o, alpha); break;
    case FLAT_F8E4M3: pv_quant(FLAT_F8E4M3, m, n, dv, p, ld_p, src, o, ld_o, alpha); break;
    case FLAT_I4: pv_quant(FLAT_I4, m, n, dv, p, ld_p, src, o, ld_o, alpha); break;
    default: pv(FLAT_F32, m, n, dv, p, ld_p, v, ld_v, o, ld_o, alpha); break;
    }
}

/*
 * y = scale * x rounded to t, 4 lanes at a time; the last n % 4 elements go
 * one by one through kernels/convert.h, so nothing past n is written. f16:
 * FCVTN rounds to nearest even under the default FPCR (no flush-to-zero,
 * quiet NaNs), IEEE rounding as convert.h. bf16: convert.h's integer
 * rounding (add 0x7fff plus the lowest kept bit; NaN gets its quiet bit),
 * then a narrowing shift keeps the top halves.
 */
static inline __attribute__((always_inline)) void
store_row(const flat_dtype t, int n, const float *restrict x, float scale, void *restrict y)
{
    int c = 0;
    for (; c + 4 <= n; c += 4) {
        const float32x4_t v = vmulq_n_f32(vld1q_f32(x + c), scale);
        if (t == FLAT_F32) {
            vst1q_f32((float *)y + c, v);
        } else if (t == FLAT_F16) {
            vst1_u16((uint16_t *)y + c, vreinterpret_u16_f16(vcvt_f16_f32(v)));
        } else {
            const uint32x4_t u = vreinterpretq_u32_f32(v);
            const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
            const uint32x4_t r = vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff)));
            const uint32x4_t nan = vmvnq_u32(vceqq_f32(v, v));
            const uint32x4_t q = vbslq_u32(nan, vorrq_u32(u, vdupq_n_u32(0x00400000)), r);
            vst1_u16((uint16_t *)y + c, vshrn_n_u32(q, 16));
        }
    }
    for (; c < n; c++)
        flat_store_elem(y, c, scale * x[c], t);
}

void flat_store_row__neon(int n, const float *restrict x, float scale, flat_dtype t,
                          void *restrict y)
{
    assert(n >= 1);
    switch (t) {
    case FLAT_F16: store_row(FLAT_F16, n, x, scale, y); break;
    case FLAT_BF16: store_row(FLAT_BF16, n, x, scale, y); break;
    default: store_row(FLAT_F32, n, x, scale, y); break;
    }
}

void flat_widen_rows__neon(int n, int cols, const flat_kv_src *src, float *restrict y,
                           int64_t ld_y)
{
    FLAT_KV_SWITCH(src->t, flat_kv_widen_rows, n, cols, src, y, ld_y);
}
