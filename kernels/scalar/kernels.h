/* Scalar kernel declarations and register-block sizes. */
#ifndef FLAT_SCALAR_KERNELS_H
#define FLAT_SCALAR_KERNELS_H

#include "../ukernel.h"

#define FLAT_SCALAR_MR 4
#define FLAT_SCALAR_NR 8
#define FLAT_SCALAR_PV_MR 4

void flat_pack_q__scalar(int m, int d, const void *const *rows, flat_dtype t, float scale,
                         float *restrict qp);
void flat_pack_k__scalar(int n, int d, const flat_kv_src *src, float *restrict kp);
void flat_qk_4x8__scalar(int d, int n_panels, const float *restrict qp,
                         const float *restrict kp, float *restrict s, int64_t ld_s);
float flat_row_max__scalar(int n, const float *s);
float flat_exp2_row__scalar(int n, int width, float *s, float m);
void flat_vexp2__scalar(int n, const float *x, float *y);
void flat_qk_rows__scalar(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s);
void flat_pv_4__scalar(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                 const flat_kv_src *src, float *restrict o, int64_t ld_o,
                 const float *restrict alpha);
void flat_widen_rows__scalar(int n, int cols, const flat_kv_src *src, float *restrict y,
                          int64_t ld_y);
void flat_store_row__scalar(int n, const float *restrict x, float scale, flat_dtype t,
                            void *restrict y);

float flat_score_rules__scalar(int n, float *s, const flat_rules_row *r);

/* quantize.c (ukernel.h's quantize_row and first_nonfinite) */
void flat_quantize_row__scalar(int64_t n, const void *x, flat_dtype xt, int64_t group, flat_dtype t,
                           void *restrict codes, void *scale, flat_dtype scale_t, int given);
int64_t flat_first_nonfinite__scalar(int64_t n, const void *x, flat_dtype xt);

#endif
