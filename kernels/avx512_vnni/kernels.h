/* AVX-512 + AVX512_VNNI kernel declarations: int8 products on int8 caches. */
#ifndef FLAT_AVX512_VNNI_KERNELS_H
#define FLAT_AVX512_VNNI_KERNELS_H

#include <immintrin.h>
#include <stdint.h>

/* The fp32 kernels this table runs for everything but int8 K/V (and for
 * the int8 calls its integer kernels decline: see below). */
#include "../avx512/kernels.h"
#include "exp.h"

/* Rows of the runs the caller hands over next (a paged cache's next pages:
 * ukernel.h) are asked for this many keys ahead by qk_rows and pv: the
 * runtime chains two runs, 32 keys of 16-token pages. */
#define FLAT_AVX512_VNNI_CHAIN_AHEAD 32

/*
 * vpdpbusd multiplies 64 unsigned by 64 signed bytes and adds each four
 * products to an int32 lane: 64 multiply-adds per instruction against
 * vfmadd231ps's 16. Decode on an int8 cache with fp32 products spends most
 * of its time widening codes (sign extension, int-to-float, a scale per
 * chunk: 3 vector operations per 16 codes) and, with 4 query rows per kv
 * head, 8 FMAs per 16 codes besides: bound by the core, not by memory
 * (flat-bench-quant: 36-64% of the read bandwidth on Zen 4). Here codes
 * are multiplied as they lie:
 *
 *   Q.K^T (qk_rows, int8 and int4 K): each query row's Q (pack_q's panel:
 *     scale * log2 e folded) is rounded to int8 with one scale per row and call,
 *     sq = max|q| / 127 (per-column K scales folded into q first). K's
 *     codes, xor 0x80, are the unsigned operand (k + 128); -128 * (sum of
 *     each lane's four Q codes) starts each lane, so the int32 lane is the
 *     exact code dot product. Int4 K: each 64-byte line's nibbles, xor 8,
 *     are split into its even and odd elements (an and, a shift), against
 *     Q codes stored in that order; the offset is 8. Per line a lane's int32 is widened and
 *     multiplied by its K group's scale (groups of 16k columns: a vector
 *     of the row's scales) into one fp32 vector per (row, key); the
 *     reduction tree of the fp32 dot kernels sums it, times sq.
 *   P.V (pv): P times the V row's group scale, w = p * s_v, is rounded to
 *     u8 per (row, group, chunk of <= 128 keys) with the scale max(w) / 255
 *     (a bound, max p * max s_v, lost half the accuracy where scales vary
 *     by token: test_quant_accuracy 1.1e-2 -> 7.8e-3); four V rows are
 *     interleaved in registers (two unpacks per 128-bit lane and pair) so
 *     that one vpdpbusd adds four keys' products to 16 columns; each chunk's
 *     int32 sums are widened, scaled and added to O. Int4 V: the rows'
 *     bytes are paired by key first (one 8-bit unpack), then each word's
 *     nibbles split with an and and a shift (no shuffle: & 0x0f0f is both
 *     keys' even element, >> 4 their odd one), read + 8 (xor 0x88: 0..15,
 *     a valid signed operand), and the sums corrected by 8 x the sum of
 *     the (row, group)'s P codes over the chunk.
 *
 * Accuracy (stated in flat.h, held by tests/test_quant_kernels.c): a score
 * is off by at most sq/2 * sum_c |k_c| (Q's rounding) plus fp32 rounding;
 * an O element by at most (w scale)/2 * sum_j |v_jc| per chunk plus fp32
 * rounding. Neither is bitwise stable under splits of a call (a chunk's u8
 * scale depends on its keys), so the batch-invariant flag refuses this
 * table's int8 products (runtime/plan.c).
 *
 * Declined (the fp32 AVX-512 kernels run instead, exactly as that table):
 * any K or V type but FLAT_I8 and FLAT_I4; qk_rows with
 * d > 1024 or a non-finite Q; K
 * scale groups that are not a multiple of 16 (per-token groups of 8 ...);
 * pv with V groups not a multiple of 32 or more than 16 groups per row,
 * negative or non-finite P or V scales (from that chunk of keys on).
 */
void flat_pack_q__avx512_vnni(int m, int d, const void *const *rows, flat_dtype t, float scale,
                              float *restrict qp);
void flat_pack_k__avx512_vnni(int n, int d, const flat_kv_src *src, float *restrict kp);
void flat_qk_12x32__avx512_vnni(int d, int n_panels, const float *restrict qp,
                                const float *restrict kp, float *restrict s, int64_t ld_s);
void flat_qk_rows__avx512_vnni(int m, int d, int n, const float *restrict qp,
                               const flat_kv_src *src, float *restrict s, int64_t ld_s);
float flat_row_max__avx512_vnni(int n, const float *s);
float flat_exp2_row__avx512_vnni(int n, int width, float *s, float m);
void flat_vexp2__avx512_vnni(int n, const float *x, float *y);
void flat_pv__avx512_vnni(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                          const flat_kv_src *src, float *restrict o, int64_t ld_o,
                          const float *restrict alpha);
void flat_widen_rows__avx512_vnni(int n, int cols, const flat_kv_src *src, float *restrict y,
                                  int64_t ld_y);
void flat_store_row__avx512_vnni(int n, const float *restrict x, float scale, flat_dtype t,
                                 void *restrict y);
float flat_score_rules__avx512_vnni(int n, float *s, const flat_rules_row *r);
void flat_quantize_row__avx512_vnni(int64_t n, const void *x, flat_dtype xt, int64_t group,
                                    flat_dtype t, void *restrict codes, void *scale,
                                    flat_dtype scale_t, int given);
int64_t flat_first_nonfinite__avx512_vnni(int64_t n, const void *x, flat_dtype xt);

#endif
