/* AVX-512 + AVX512_BF16 kernel declarations, register blocks and bf16 pairs. */
#ifndef FLAT_AVX512_BF16_KERNELS_H
#define FLAT_AVX512_BF16_KERNELS_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* The widening loads and the 16x16 transpose, and the fp32 kernels this
 * table shares (softmax, store_row, the fp32 pv of narrow calls). */
#include "../avx512/kernels.h"
#include "exp.h"

/*
 * vdpbf16ps multiplies pairs of bf16 and adds both products to an fp32 lane:
 * 32 multiply-adds per instruction against vfmadd231ps's 16, at the same
 * issue rate on Zen 5 (2 per cycle, measured), so twice the fp32 peak.
 *
 * Where this table rounds (to bf16, nearest even; every sum stays fp32):
 *   - Q: pack_q rounds scale * log2(e) * Q, whatever Q's type;
 *   - K: pack_k and qk_rows round f32 and f16 K (bf16 K is used as is);
 *   - P: pv rounds the probabilities exp2(s - m);
 *   - V: pv rounds f32 and f16 V (bf16 V as is).
 * Conversions flush bf16 subnormals (|x| < 2^-126) to zero, as vdpbf16ps
 * treats them; exp2 already flushes P there. The row sums l stay those of
 * the fp32 P. pv falls back to the fp32 AVX-512 pv (no rounding of P or V)
 * for calls of 1-2 rows or under 4 keys: decode's few rows and the causal
 * staircase tails, where it is memory-bound or negligible.
 *
 * qk: 12 x 32 like the AVX-512 table, 24 accumulators + 2 K vectors + 1 Q
 * broadcast; each step now covers two dims (a K panel row is 32 keys x 2
 * dims = 128 bytes, still two vectors).
 * pv: 12 rows x 32 columns of O (24 accumulators, 2 V pair vectors, one P
 * pair broadcast). pv_mr = 12 = mr: the runtime's row groups are a whole Q
 * panel, which the pair form needs (two keys per multiply leave half the
 * accumulators' work per key, so more rows must share each V pair vector).
 * V in key pairs is built in registers from the two V rows (pv.c), not
 * copied into a stack scratch: with the call's 12 rows in one register
 * block, every pair vector already serves all of them, so a scratch would
 * add a store and a load per vector and save nothing. Measured (pv alone,
 * m = 12, n = 1024, dv = 64, P and V in L2, one Zen 5 core, interleaved
 * with a vdpbf16ps peak probe): 415 GFLOP/s with bf16 V (86% of that peak),
 * 392 with f32 V (81%; two conversions more per pair vector), against 229
 * for widening V to fp32 with FMA (the AVX-512 pv; 95% of the FMA peak).
 * Most of the rest is converting P (pv.c, convert_p).
 */
#define FLAT_AVX512_BF16_MR 12
#define FLAT_AVX512_BF16_NR 32
#define FLAT_AVX512_BF16_PV_MR 12

void flat_pack_q__avx512_bf16(int m, int d, const void *const *rows, flat_dtype t, float scale,
                              float *restrict qp);
void flat_pack_k__avx512_bf16(int n, int d, const flat_kv_src *src, float *restrict kp);
/* The packings above for any panel height mr <= 16 (width nr, a multiple of
 * 16): the amx_bf16 table's 16 x 16 tiles read the same bf16 pairs. */
void flat_pack_q_pairs__avx512_bf16(int mr, int m, int d, const void *const *rows, flat_dtype t,
                                    float scale, float *restrict qp);
void flat_pack_k_pairs__avx512_bf16(int nr, int n, int d, const flat_kv_src *src,
                                    float *restrict kp);
void flat_qk_12x32__avx512_bf16(int d, int n_panels, const float *restrict qp,
                                const float *restrict kp, float *restrict s, int64_t ld_s);
void flat_qk_rows__avx512_bf16(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s);
float flat_row_max__avx512_bf16(int n, const float *s);
float flat_exp2_row__avx512_bf16(int n, int width, float *s, float m);
void flat_vexp2__avx512_bf16(int n, const float *x, float *y);
void flat_pv_12__avx512_bf16(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                 const flat_kv_src *src, float *restrict o, int64_t ld_o,
                 const float *restrict alpha);
void flat_widen_rows__avx512_bf16(int n, int cols, const flat_kv_src *src, float *restrict y,
                          int64_t ld_y);
void flat_store_row__avx512_bf16(int n, const float *restrict x, float scale, flat_dtype t,
                                 void *restrict y);

/* Lanes l < k of a 32-lane (16-bit) mask, 0 <= k <= 32. */
static inline __mmask32 flat_tail_mask32_avx512bf16(int k)
{
    return k >= 32 ? 0xffffffffu : (__mmask32)((1u << k) - 1u);
}

/*
 * Elements [c, c + count) of a row of type t (count <= 32; zeros above, and
 * nothing past them read) as 16 bf16 pairs, one per 32-bit lane, each
 * multiplied by `scale` first when `scaled`. bf16 rows that need no scaling
 * load as they are; f32 and f16 ones widen to fp32 (exact) and round once,
 * to nearest even (vcvtne2ps2bf16).
 */
static inline __attribute__((always_inline)) __m512i
flat_pairs_avx512bf16(const flat_dtype t, const int scaled, const void *row, int64_t c, int count,
                      __m512 scale)
{
    const __mmask32 m = flat_tail_mask32_avx512bf16(count);
    if (t == FLAT_BF16 && !scaled)
        return _mm512_maskz_loadu_epi16(m, (const uint16_t *)row + c);
    __m512 lo = flat_load16_avx512(t, row, c, (__mmask16)m);
    __m512 hi = flat_load16_avx512(t, row, c + 16, (__mmask16)(m >> 16));
    if (scaled) {
        lo = _mm512_mul_ps(scale, lo);
        hi = _mm512_mul_ps(scale, hi);
    }
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); /* words 0-15 from lo */
}

/* The same for K rows of any K/V type (unscaled): quantized ones dequantize
 * to fp32 in registers (avx512/kernels.h's flat_kv_chunk16_avx512: srow the
 * row's scales, never NULL: flat_kv_scaled_avx512) and round once to bf16
 * pairs. cs[0], cs[1]: the scale maps of the two 16-column chunks at c, made
 * once per chunk by the caller for all the rows it reads there (their
 * division by the group size cost more than a row's conversion). */
static inline __attribute__((always_inline)) __m512i
flat_kv_pairs_mapped_avx512bf16(const flat_dtype t, flat_dtype scale_t, const void *row,
                                const void *srow, const flat_chunk_scales *cs, int64_t c,
                                int count)
{
    if (!flat_dtype_quantized(t))
        return flat_pairs_avx512bf16(t, 0, row, c, count, _mm512_setzero_ps());
    const __m512 lo = flat_kv_chunk16_avx512(t, scale_t, row, srow, &cs[0], c,
                                             count < 16 ? count : 16);
    const __m512 hi = count > 16 ? flat_kv_chunk16_avx512(t, scale_t, row, srow, &cs[1], c + 16,
                                                          count - 16)
                                 : _mm512_setzero_ps();
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* One 32-bit word (a bf16 pair) in every lane: a broadcast load. memcpy
 * keeps it clear of type-based aliasing (the panels are float buffers). */
static inline __attribute__((always_inline)) __m512i flat_bcast_pair_avx512bf16(const void *p)
{
    int x;
    memcpy(&x, p, sizeof x);
    return _mm512_set1_epi32(x);
}

/* acc += the pairwise products of a and b (bf16 pairs in 32-bit lanes). */
static inline __attribute__((always_inline)) __m512 flat_dp_avx512bf16(__m512 acc, __m512i a,
                                                                       __m512i b)
{
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

float flat_score_rules__avx512_bf16(int n, float *s, const flat_rules_row *r);

/* quantize.c (ukernel.h's quantize_row and first_nonfinite) */
void flat_quantize_row__avx512_bf16(int64_t n, const void *x, flat_dtype xt, int64_t group, flat_dtype t,
                           void *restrict codes, void *scale, flat_dtype scale_t, int given);
int64_t flat_first_nonfinite__avx512_bf16(int64_t n, const void *x, flat_dtype xt);

#endif
