/* NEON kernel declarations and register-block sizes. */
#ifndef FLAT_NEON_KERNELS_H
#define FLAT_NEON_KERNELS_H

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
void flat_pack_k_12__neon(int n, int d, const void *k, int64_t ld_k, flat_dtype t,
                          float *restrict kp);
void flat_qk_8x12__neon(int d, int n_panels, const float *restrict qp,
                        const float *restrict kp, float *restrict s, int64_t ld_s);
float flat_row_max__neon(int n, const float *s);
float flat_exp2_row__neon(int n, int width, float *s, float m);
void flat_vexp2__neon(int n, const float *x, float *y);
void flat_qk_rows__neon(int m, int d, int n, const float *restrict qp, const void *k,
                        int64_t ld_k, flat_dtype t, float *restrict s, int64_t ld_s);
void flat_store_row__neon(int n, const float *restrict x, float scale, flat_dtype t,
                          void *restrict y);
void flat_pv_4x16__neon(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                        const void *restrict v, int64_t ld_v, flat_dtype t, float *restrict o,
                        int64_t ld_o, const float *restrict alpha);

void flat_score_rules__neon(int n, float *s, const flat_rules_row *r);

#endif
