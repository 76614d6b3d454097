/* NEON kernel declarations and register-block sizes. */
#ifndef FLAT_NEON_KERNELS_H
#define FLAT_NEON_KERNELS_H

#include <arm_neon.h>
#include <stdint.h>

#include "../convert.h"
#include "../ukernel.h"

/*
 * qk holds an 8 x 12 block of S in 24 of the 32 q registers: 8 query rows
 * (two q vectors of the Q panel, used lane by lane) times 12 keys (three q
 * vectors of the K panel). That leaves 5 registers for the operands and 3
 * spare, so nothing spills; 24 FMAs per 5 loads keeps the FMA pipes fed.
 */
#define FLAT_NEON_MR 8
#define FLAT_NEON_NR 12
/*
 * pv holds 4 rows x 16 columns of O (16 registers) plus 4 vectors of P
 * (4 keys per row, used lane by lane) and 4 of V. Only 4 rows, so rows with
 * unequal masks (causal) are grouped finely.
 */
#define FLAT_NEON_PV_MR 4
#define FLAT_NEON_PV_NC 16

void flat_pack_q_8__neon(int m, int d, const void *const *rows, flat_dtype t, float scale,
                         float *restrict qp);
void flat_pack_k_12__neon(int n, int d, const flat_kv_src *src, float *restrict kp);
void flat_qk_8x12__neon(int d, int n_panels, const float *restrict qp,
                        const float *restrict kp, float *restrict s, int64_t ld_s);
float flat_row_max__neon(int n, const float *s);
float flat_exp2_row__neon(int n, int width, float *s, float m);
void flat_vexp2__neon(int n, const float *x, float *y);
void flat_qk_rows__neon(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s);
void flat_widen_rows__neon(int n, int cols, const flat_kv_src *src, float *restrict y,
                          int64_t ld_y);
void flat_store_row__neon(int n, const float *restrict x, float scale, flat_dtype t,
                          void *restrict y);
void flat_pv_4x16__neon(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                 const flat_kv_src *src, float *restrict o, int64_t ld_o,
                 const float *restrict alpha);

/*
 * 4 elements of a row of type t from element c, widened to fp32 in
 * registers: f16 by FCVTL (exact), bf16 by a widening shift into the upper
 * half (a bf16 is the top of an f32). t is a compile-time constant in every
 * caller, so the f32 path is the plain load.
 */
static inline __attribute__((always_inline)) float32x4_t flat_load4_neon(const flat_dtype t,
                                                                         const void *row,
                                                                         int64_t c)
{
    if (t == FLAT_F32)
        return vld1q_f32((const float *)row + c);
    const uint16x4_t h = vld1_u16((const uint16_t *)row + c);
    if (t == FLAT_F16)
        return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

/* count <= 4 elements, zeros above, never reading past them. */
static inline __attribute__((always_inline)) float32x4_t
flat_load4_part_neon(const flat_dtype t, const void *row, int64_t c, int count)
{
    if (count == 4)
        return flat_load4_neon(t, row, c);
    float x[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < count; i++)
        x[i] = flat_load_elem(row, c + i, t);
    return vld1q_f32(x);
}
float flat_score_rules__neon(int n, float *s, const flat_rules_row *r);

/* quantize.c (ukernel.h's quantize_row and first_nonfinite) */
void flat_quantize_row__neon(int64_t n, const void *x, flat_dtype xt, int64_t group, flat_dtype t,
                           void *restrict codes, void *scale, flat_dtype scale_t, int given);
int64_t flat_first_nonfinite__neon(int64_t n, const void *x, flat_dtype xt);

#endif
