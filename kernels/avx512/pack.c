/* Q and K packing into the dim-major panels of kernels/ukernel.h. */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define MR FLAT_AVX512_MR
#define NR FLAT_AVX512_NR

/* Both packings are transposes (row-major rows -> dim-major panels), done
 * 16x16 at a time in registers (flat_transpose16_avx512, kernels.h): 16 row
 * loads, 64 in-register shuffles, 16 panel stores, instead of 256 strided
 * scalar moves. 16-bit rows widen to fp32 in the row load itself, so the
 * panels are fp32 whatever the input type. */
/* Dims [c0, c0 + 16) of up to 16 rows of type t (rows >= count are zero),
 * transposed into dst + c*ld_dst, storing `lanes` floats for each dim
 * c < d - c0. */
static inline __attribute__((always_inline)) void
pack_block(const flat_dtype t, const flat_kv_src *ks, const void *const src[16],
           const void *const srows[16], int count, int c0, int d, float scale,
           float *restrict dst, int ld_dst, __mmask16 lanes)
{
    const int dims = d - c0 < 16 ? d - c0 : 16;
    const __m512 vs = _mm512_set1_ps(scale);
    /* quantized K: the chunk's scale map once for its 16 rows (its division
     * by the group size cost more than a row's conversion) */
    const flat_chunk_scales cs = flat_dtype_quantized(t) ? flat_chunk_scales_avx512(ks->group, c0, dims)
                                                         : (flat_chunk_scales){0};
    const flat_dtype st = flat_dtype_quantized(t) ? ks->scale_t : FLAT_F32;
    __m512 r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        r[i] = i < count ? _mm512_mul_ps(vs, flat_kv_chunk16_avx512(t, st, src[i], srows[i], &cs, c0, dims))
                         : _mm512_setzero_ps();
    flat_transpose16_avx512(r);
#pragma GCC unroll 16
    for (int c = 0; c < 16; c++)
        if (c < dims)
            _mm512_mask_storeu_ps(dst + (int64_t)(c0 + c) * ld_dst, lanes, r[c]);
}

static inline __attribute__((always_inline)) void
pack_q(const flat_dtype t, int m, int d, const void *const *rows, float scale, float *restrict qp)
{
    assert(m >= 1 && d >= 1 && rows != NULL);
    for (int p = 0; p < m; p += MR) {
        const void *src[16] = {0};
        const int count = m - p < MR ? m - p : MR;
        for (int i = 0; i < count; i++)
            src[i] = rows[p + i];
        for (int c0 = 0; c0 < d; c0 += 16)
            pack_block(t, NULL, src, src, count, c0, d, scale, qp, MR, flat_tail_mask_avx512(MR));
        qp += (int64_t)d * MR;
    }
}

void flat_pack_q__avx512(int m, int d, const void *const *rows, flat_dtype t, float scale,
                         float *restrict qp)
{
    switch (t) {
    case FLAT_F16: pack_q(FLAT_F16, m, d, rows, scale, qp); break;
    case FLAT_BF16: pack_q(FLAT_BF16, m, d, rows, scale, qp); break;
    default: pack_q(FLAT_F32, m, d, rows, scale, qp); break;
    }
}

/* Scaling K by 1.0 is exact, so both packings share one block routine. */
static inline __attribute__((always_inline)) void
pack_k(const flat_dtype t, int n, int d, const flat_kv_src *k, float *restrict kp)
{
    assert(n >= 1 && d >= 1 && k->data != NULL);
    /* one prefetch per 64-byte line of a row: 16 f32, 32 16-bit, 64 8-bit elements */
    const int line = (int)(512 / flat_dtype_bits(t));
    const int64_t ld_k = k->ld;
    for (int p = 0; p < n; p += NR) {
        for (int h = 0; h < NR; h += 16) {
            const void *src[16] = {0}, *srows[16] = {0};
            const int count = n - p - h < 0 ? 0 : n - p - h < 16 ? n - p - h : 16;
            for (int i = 0; i < count; i++) {
                src[i] = flat_kv_row(k, p + h + i, t);
                srows[i] = flat_kv_scale_row(k, p + h + i, t);
                /* 16 row streams at once defeat the hardware prefetcher;
                 * ask for the same rows of the next block (prefetches of
                 * rows past n are harmless: they never fault). */
                for (int c = 0; c < d; c += line)
                    _mm_prefetch((const char *)flat_elem_ptr(src[i], NR * ld_k + c, t),
                                 _MM_HINT_T0);
            }
            for (int c0 = 0; c0 < d; c0 += 16)
                pack_block(t, k, src, srows, count, c0, d, 1.0f, kp + h, NR, 0xffff);
        }
        kp += (int64_t)d * NR;
    }
}

void flat_pack_k__avx512(int n, int d, const flat_kv_src *src, float *restrict kp)
{
    flat_kv_src unit;
    const flat_kv_src *k = flat_kv_scaled_avx512(src, &unit); /* F8E4M3 without scales */
    FLAT_KV_SWITCH(k->t, pack_k, n, d, k, kp);
}
