/* Q and K packing into bf16-pair panels (kernels/ukernel.h, compute = BF16). */
#ifndef __AVX512BF16__
#error "kernels/avx512_bf16 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define MR FLAT_AVX512_BF16_MR
#define NR FLAT_AVX512_BF16_NR

/* The amx_bf16 table packs the same pairs for its 16 x 16 tiles: both
 * packings take the panel height (width) as an argument, exported below. */

/*
 * Both packings are transposes of 32-bit words: a row's dims [c0, c0 + 32)
 * become 16 bf16 pairs in one register (flat_pairs_avx512bf16: converted and
 * rounded there, or loaded as they are for bf16 K), and the AVX-512 table's
 * 16x16 transpose turns 16 such rows into 16 pair-columns, so word j of r[c2]
 * is pair c0/2 + c2 of row j. Half the shuffles of the fp32 packing per dim,
 * since a word holds two dims.
 */
/* Pairs [c0/2, c0/2 + 16) of up to 16 rows (rows >= count are zero) into
 * dst + c2*ld_dst (32-bit words), `lanes` words per pair. */
static inline __attribute__((always_inline)) void
pack_block(const flat_dtype t, const int scaled, const flat_kv_src *ks, const void *const src[16],
           const void *const srows[16], int count, int c0, int d, __m512 scale,
           uint32_t *restrict dst, int ld_dst, __mmask16 lanes)
{
    const int dims = d - c0 < 32 ? d - c0 : 32, pairs = (dims + 1) / 2;
    /* quantized K: the chunks' scale maps once for their 16 rows (their
     * division by the group size cost more than a row's conversion) */
    flat_chunk_scales cs[2] = {{0}, {0}};
    if (flat_dtype_quantized(t)) {
        cs[0] = flat_chunk_scales_avx512(ks->group, c0, dims < 16 ? dims : 16);
        cs[1] = flat_chunk_scales_avx512(ks->group, c0 + 16, dims > 16 ? dims - 16 : 1);
    }
    __m512 r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        r[i] = i < count ? _mm512_castsi512_ps(
                               scaled ? flat_pairs_avx512bf16(t, 1, src[i], c0, dims, scale)
                                      : flat_kv_pairs_mapped_avx512bf16(
                                            t, flat_dtype_quantized(t) ? ks->scale_t : FLAT_F32,
                                            src[i], srows[i], cs, c0, dims))
                         : _mm512_setzero_ps();
    flat_transpose16_avx512(r);
#pragma GCC unroll 16
    for (int c2 = 0; c2 < 16; c2++)
        if (c2 < pairs)
            _mm512_mask_storeu_epi32(dst + (int64_t)(c0 / 2 + c2) * ld_dst, lanes,
                                     _mm512_castps_si512(r[c2]));
}

static inline __attribute__((always_inline)) void
pack_q(const flat_dtype t, const int mr, int m, int d, const void *const *rows, float scale,
       float *restrict qp)
{
    assert(m >= 1 && d >= 1 && rows != NULL);
    const __m512 vs = _mm512_set1_ps(scale);
    const __mmask16 lanes = mr >= 16 ? 0xffff : flat_tail_mask_avx512(mr);
    for (int p = 0; p < m; p += mr) {
        const void *src[16] = {0};
        const int count = m - p < mr ? m - p : mr;
        for (int i = 0; i < count; i++)
            src[i] = rows[p + i];
        for (int c0 = 0; c0 < d; c0 += 32)
            pack_block(t, 1, NULL, src, src, count, c0, d, vs, (uint32_t *)qp, mr, lanes);
        qp += (int64_t)d * mr; /* the runtime's panel stride; the pairs fill half */
    }
}

void flat_pack_q_pairs__avx512_bf16(int mr, int m, int d, const void *const *rows, flat_dtype t,
                                    float scale, float *restrict qp)
{
    assert(mr >= 1 && mr <= 16);
    switch (t) {
    case FLAT_F16: pack_q(FLAT_F16, mr, m, d, rows, scale, qp); break;
    case FLAT_BF16: pack_q(FLAT_BF16, mr, m, d, rows, scale, qp); break;
    default: pack_q(FLAT_F32, mr, m, d, rows, scale, qp); break;
    }
}

void flat_pack_q__avx512_bf16(int m, int d, const void *const *rows, flat_dtype t, float scale,
                              float *restrict qp)
{
    flat_pack_q_pairs__avx512_bf16(MR, m, d, rows, t, scale, qp);
}

static inline __attribute__((always_inline)) void
pack_k(const flat_dtype t, const int nr, int n, int d, const flat_kv_src *k, float *restrict kp)
{
    assert(n >= 1 && d >= 1 && k->data != NULL);
    const int line = (int)(512 / flat_dtype_bits(t)); /* elements per 64-byte line */
    const int64_t ld_k = k->ld;
    for (int p = 0; p < n; p += nr) {
        for (int h = 0; h < nr; h += 16) {
            const void *src[16] = {0}, *srows[16] = {0};
            const int count = n - p - h < 0 ? 0 : n - p - h < 16 ? n - p - h : 16;
            for (int i = 0; i < count; i++) {
                src[i] = flat_kv_row(k, p + h + i, t);
                srows[i] = flat_kv_scale_row(k, p + h + i, t);
                /* as the AVX-512 table: 16 row streams defeat the hardware
                 * prefetcher, so fetch the next block's rows (never faults) */
                for (int c = 0; c < d; c += line)
                    _mm_prefetch((const char *)flat_elem_ptr(src[i], nr * ld_k + c, t),
                                 _MM_HINT_T0);
            }
            for (int c0 = 0; c0 < d; c0 += 32)
                pack_block(t, 0, k, src, srows, count, c0, d, _mm512_setzero_ps(),
                           (uint32_t *)kp + h, nr, 0xffff);
        }
        kp += (int64_t)d * nr;
    }
}

void flat_pack_k_pairs__avx512_bf16(int nr, int n, int d, const flat_kv_src *src,
                                    float *restrict kp)
{
    assert(nr >= 16 && nr % 16 == 0);
    flat_kv_src unit;
    const flat_kv_src *k = flat_kv_scaled_avx512(src, &unit); /* F8E4M3 without scales */
    FLAT_KV_SWITCH(k->t, pack_k, nr, n, d, k, kp);
}

void flat_pack_k__avx512_bf16(int n, int d, const flat_kv_src *src, float *restrict kp)
{
    flat_pack_k_pairs__avx512_bf16(NR, n, d, src, kp);
}
