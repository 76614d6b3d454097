/* AVX-512 kernel declarations and register-block sizes. */
#ifndef FLAT_AVX512_KERNELS_H
#define FLAT_AVX512_KERNELS_H

#include <immintrin.h>
#include <stdint.h>

#include "../convert.h"
#include "../ukernel.h"

/*
 * 32 zmm registers. qk holds a 12x32 block in 24 accumulators, plus two K
 * vectors and one Q broadcast (27 live, no spills). Per d step that is 24
 * FMAs for 2 K loads + 12 broadcasts, so the K stream (the operand that comes
 * from L2) costs one 64-byte line per 12 FMAs, half of what 6x64 would need;
 * 24 independent chains are 3x the 2 pipes x 4 cycles of FMA latency.
 * pv keeps 6 rows x 64 columns of O (24 accumulators, 4 V vectors, one P
 * broadcast); dv = 128 takes two column passes, since 3 x 128 would need 33
 * registers (it spilled and measured 25% slower). 6 divides 12, so a Q panel
 * splits into whole pv row groups.
 */
#define FLAT_AVX512_MR 12
#define FLAT_AVX512_NR 32
#define FLAT_AVX512_PV_MR 6

void flat_pack_q__avx512(int m, int d, const void *const *rows, flat_dtype t, float scale,
                         float *restrict qp);
void flat_pack_k__avx512(int n, int d, const flat_kv_src *src, float *restrict kp);
void flat_qk_12x32__avx512(int d, int n_panels, const float *restrict qp,
                           const float *restrict kp, float *restrict s, int64_t ld_s);
float flat_row_max__avx512(int n, const float *s);
float flat_exp2_row__avx512(int n, int width, float *s, float m);
void flat_vexp2__avx512(int n, const float *x, float *y);
void flat_qk_rows__avx512(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s);
void flat_store_row__avx512(int n, const float *restrict x, float scale, flat_dtype t,
                            void *restrict y);
void flat_pv_6__avx512(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                 const flat_kv_src *src, float *restrict o, int64_t ld_o,
                 const float *restrict alpha);

/*
 * 16 elements of a row of type t, from element c, widened to fp32 in
 * registers: f16 by vcvtph2ps (exact), bf16 by zero-extending to 32 bits and
 * shifting into the upper half (a bf16 is the top of an f32). Lanes outside
 * `mask` are 0 and their bytes are not read (masked loads suppress faults),
 * so tails never read past a row. t is a compile-time constant in every
 * caller: the switch folds away and the f32 path is the plain load it was.
 */
static inline __attribute__((always_inline)) __m512
flat_load16_avx512(const flat_dtype t, const void *row, int64_t c, __mmask16 mask)
{
    if (t == FLAT_F32)
        return _mm512_maskz_loadu_ps(mask, (const float *)row + c);
    const __m256i h = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)row + c);
    if (t == FLAT_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The same, all 16 lanes. */
static inline __attribute__((always_inline)) __m512
flat_loadu16_avx512(const flat_dtype t, const void *row, int64_t c)
{
    if (t == FLAT_F32)
        return _mm512_loadu_ps((const float *)row + c);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + c));
    if (t == FLAT_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/*
 * 16x16 transpose in registers (pack_k, pack_q and qk_rows): r[i] holds row i
 * on entry and column i on return. Stage 1 transposes the 4x4 blocks inside
 * each 128-bit lane; stages 2-3 move 128-bit lanes so that column 4L+k
 * gathers lane L of the four row quads. 64 shuffles for 256 floats.
 */
static inline __attribute__((always_inline)) void flat_transpose16_avx512(__m512 r[16])
{
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
        t[k + 4] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
        t[k + 8] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
        t[k + 12] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xdd);
        r[k + 4] = _mm512_shuffle_f32x4(t[k + 4], t[k + 12], 0x88);
        r[k + 12] = _mm512_shuffle_f32x4(t[k + 4], t[k + 12], 0xdd);
    }
}

float flat_score_rules__avx512(int n, float *s, const flat_rules_row *r);

#endif
