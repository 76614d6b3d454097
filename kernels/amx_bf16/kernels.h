/* AMX-BF16 kernel declarations and tile blocks. */
#ifndef FLAT_AMX_BF16_KERNELS_H
#define FLAT_AMX_BF16_KERNELS_H

#include <immintrin.h>
#include <stdint.h>

/* The bf16 pairs, the packings, the transpose and the vector kernels this
 * table shares: softmax, score rules, store_row (AVX-512), and the
 * avx512_bf16 pv for row blocks too small for a tile. */
#include "../avx512_bf16/kernels.h"
#include "exp.h"
#include "tiles.h"

/*
 * tdpbf16ps: C[16 x 16 fp32] += A[16 x 32 bf16] B[32 x 16 bf16], with B in
 * pairs ("VNNI": row k holds 16 pairs (B[2k][n], B[2k+1][n])). The bf16-pair
 * panels of kernels/ukernel.h are already that: a K panel of nr = 16 keys is
 * 16-word rows, one per pair of dims, i.e. B for S = Q K^T (64-byte rows);
 * a Q panel of mr = 16 rows is B for S^T = K Q^T (the decode path, where K
 * rows in place are A). qk turns the Q panel into A once per call (a 16 x 16
 * word transpose per 32 dims). pv takes P rows, rounded to bf16, as A as
 * they are (row-major), and builds V's key pairs (B) in an L1 block.
 *
 * Where this table rounds: as avx512_bf16 (Q, K, P, V to bf16, nearest
 * even, subnormals to zero; fp32 sums), plus the tile unit's own: each pair
 * product is summed in two fp32 partial sums per 32 dims (keys) and added to
 * the accumulator, every result below 2^-126 flushed to zero (tiles.h).
 * The bound is avx512_bf16's. pv runs 32 rows on 2 x 2 tiles (pv_mr = 32, so
 * each V pair it builds serves 32 rows), 16 on 1 x 4; row blocks of fewer
 * than 16 rows and calls of fewer than 32 keys go to the avx512_bf16 pv
 * (fp32 for 1-2 rows).
 */
#define FLAT_AMX_BF16_MR 16
#define FLAT_AMX_BF16_NR 16
#define FLAT_AMX_BF16_PV_MR 32

void flat_pack_q__amx_bf16(int m, int d, const void *const *rows, flat_dtype t, float scale,
                           float *restrict qp);
void flat_pack_k__amx_bf16(int n, int d, const flat_kv_src *k, float *restrict kp);
void flat_qk_16x16__amx_bf16(int d, int n_panels, const float *restrict qp,
                             const float *restrict kp, float *restrict s, int64_t ld_s);
void flat_qk_rows__amx_bf16(int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
                            float *restrict s, int64_t ld_s);
float flat_row_max__amx_bf16(int n, const float *s);
float flat_exp2_row__amx_bf16(int n, int width, float *s, float m);
void flat_vexp2__amx_bf16(int n, const float *x, float *y);
void flat_pv_32__amx_bf16(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                          const flat_kv_src *v, float *restrict o, int64_t ld_o,
                          const float *restrict alpha);
void flat_widen_rows__amx_bf16(int n, int cols, const flat_kv_src *src, float *restrict y,
                          int64_t ld_y);
void flat_store_row__amx_bf16(int n, const float *restrict x, float scale, flat_dtype t,
                              void *restrict y);
float flat_score_rules__amx_bf16(int n, float *s, const flat_rules_row *r);

/* quantize.c (ukernel.h's quantize_row and first_nonfinite) */
void flat_quantize_row__amx_bf16(int64_t n, const void *x, flat_dtype xt, int64_t group, flat_dtype t,
                           void *restrict codes, void *scale, flat_dtype scale_t, int given);
int64_t flat_first_nonfinite__amx_bf16(int64_t n, const void *x, flat_dtype xt);

#endif
