/* AVX2+FMA kernel declarations and register-block sizes. */
#ifndef FLAT_AVX2_KERNELS_H
#define FLAT_AVX2_KERNELS_H

#include <immintrin.h>

#include "../ukernel.h"

/*
 * 16 ymm registers: qk holds a 6x16 block in 12 accumulators, plus two K
 * vectors and one Q broadcast (15 live). Twelve independent FMA chains cover
 * the 2 pipes x 4-cycle latency of current cores with room to spare, and a
 * 16-float K panel row is one 64-byte cache line. pv uses the same 6x16
 * shape over (rows x dv), so the runtime's row groups match both kernels.
 */
#define FLAT_AVX2_MR 6
#define FLAT_AVX2_NR 16
#define FLAT_AVX2_PV_MR 6

void flat_pack_q__avx2(int m, int d, const void *const *rows, flat_dtype t, float scale,
                       float *restrict qp);
void flat_pack_k__avx2(int n, int d, const void *k, int64_t ld_k, flat_dtype t,
                       float *restrict kp);
void flat_qk_6x16__avx2(int d, int n_panels, const float *restrict qp,
                        const float *restrict kp, float *restrict s, int64_t ld_s);
float flat_row_max__avx2(int n, const float *s);
float flat_exp2_row__avx2(int n, int width, float *s, float m);
void flat_vexp2__avx2(int n, const float *x, float *y);
void flat_qk_rows__avx2(int m, int d, int n, const float *restrict qp, const void *k,
                        int64_t ld_k, flat_dtype t, float *restrict s, int64_t ld_s);
void flat_store_row__avx2(int n, const float *restrict x, float scale, flat_dtype t,
                          void *restrict y);
void flat_pv_6__avx2(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                     const void *restrict v, int64_t ld_v, flat_dtype t, float *restrict o,
                     int64_t ld_o, const float *restrict alpha);

/* Lanes l < k set (0 <= k <= 8): the mask for maskload/maskstore of a tail. */
static inline __m256i flat_tail_mask_avx2(int k)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), lane);
}

void flat_score_rules__avx2(int n, float *s, const flat_rules_row *r);

#endif
