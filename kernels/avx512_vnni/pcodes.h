/* The u8 P codes of a chunk of keys for avx512_vnni's P.V (pv.c): p times
 * the V row's group scale, rounded per (row, group, chunk) with the scale
 * max(w) / 255 (kernels.h). Included by pv.c only. */
#ifndef FLAT_AVX512_VNNI_PCODES_H
#define FLAT_AVX512_VNNI_PCODES_H

#include <immintrin.h>
#include <string.h>

#include "../ukernel.h"
#include "kernels.h"

#define KC 128   /* keys per chunk: int32 sums stay under 2^24 (exact in fp32) */
#define MAX_G 16 /* V scale groups per row */

/* One chunk's P codes of up to 4 rows: byte (j4 * G + g) * 4 + t of pq[i]
 * is row i's u8 for key 4 j4 + t and scale group g (so the four keys a
 * vpdpbusd lane takes are one dword, and a 4-key step's dwords of every
 * group one load), and each (row, group)'s scale. */
typedef struct {
    uint8_t pq[4][KC * MAX_G + 64] __attribute__((aligned(64)));
    float sw[4][MAX_G];
    int32_t ps[4][MAX_G]; /* int4: each (row, group)'s sum of codes */
} p8_chunk;

/* The V scales of the chunk's (key, group) pairs in key-major order, where
 * a key's scales are contiguous and G (groups a row) is 1, 2, 4 or 8: 16
 * pairs a vector, as they lie in the scale tensor, as fp32 in sbuf (0 past
 * the chunk's keys). Shared by the rows; 0 when one is negative or not
 * finite (the caller declines). */
static inline __attribute__((always_inline)) int
pairs_scales(const flat_dtype st, int G, int keys, const void *s0, float *restrict sbuf)
{
    const int pairs = (keys + 3) / 4 * 4 * G;
    __mmask16 worse = 0;
    for (int e = 0; e < pairs; e += 16) {
        const int left = keys * G - e;
        const __mmask16 m = left <= 0 ? 0 : flat_tail_mask_avx512(left < 16 ? left : 16);
        const __m512 sv = st == FLAT_F16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)s0 + e))
                                         : _mm512_maskz_loadu_ps(m, (const float *)s0 + e);
        worse |= _mm512_cmp_ps_mask(sv, _mm512_setzero_ps(), _CMP_NGE_UQ) |
                 _mm512_cmp_ps_mask(sv, _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
        _mm512_storeu_ps(sbuf + e, sv);
    }
    return worse == 0;
}

/* w = p * s_v of the chunk's pairs (sbuf: pairs_scales'; `unit`: per-column
 * scales, COLS, w = p) in wbuf. Returns the largest w of each group in
 * lanes g (and g + G, ...); *bad when a p is negative or not finite, or a
 * w overflows (the caller declines). */
static inline __attribute__((always_inline)) __m512
pairs_w(const int unit, int G, int keys, const float *restrict p, const float *restrict sbuf,
        float *restrict wbuf, int *bad)
{
    const int shift = G == 1 ? 0 : G == 2 ? 1 : G == 4 ? 2 : 3;
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_srli_epi32(lane, shift); /* pair -> its key */
    const int pairs = (keys + 3) / 4 * 4 * G;
    __m512 mx = _mm512_setzero_ps();
    __mmask16 worse = 0;
    for (int k = 0; k < keys; k += 16) {
        const __m512 x = _mm512_maskz_loadu_ps(flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16), p + k);
        worse |= _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NGE_UQ) |
                 _mm512_cmp_ps_mask(x, _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
    }
    for (int e = 0; e < pairs; e += 16) {
        const int k = e >> shift;
        const __m512 pk = _mm512_maskz_loadu_ps(
            keys - k <= 0 ? 0 : flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16), p + k);
        __m512 w = G == 1 ? pk : _mm512_permutexvar_ps(idx, pk);
        if (!unit)
            w = _mm512_mul_ps(w, _mm512_loadu_ps(sbuf + e));
        _mm512_storeu_ps(wbuf + e, w);
        mx = _mm512_max_ps(mx, w);
    }
    for (int step = 8; step >= G; step /= 2) /* lanes l and l ^ step: one group */
        mx = _mm512_max_ps(mx, _mm512_permutexvar_ps(
                                   _mm512_xor_si512(lane, _mm512_set1_epi32(step)), mx));
    /* p and s finite and >= 0: w too, unless the product overflowed */
    *bad = worse || _mm512_cmp_ps_mask(mx, _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
    return mx;
}

/* The u8 codes of pairs_w's w, rearranged from key-major to pq's order:
 * within each 4 keys, group-major (byte shuffles of 16 or 32 codes). */
static inline __attribute__((always_inline)) void
pairs_codes(int G, int keys, const float *restrict wbuf, __m512 top, uint8_t *restrict pq,
            float *sw)
{
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512 topl = _mm512_permutexvar_ps(_mm512_and_si512(lane, _mm512_set1_epi32(G - 1)), top);
    const __mmask16 pos = _mm512_cmp_ps_mask(topl, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 inv = _mm512_maskz_div_ps(pos, _mm512_set1_ps(255.0f), topl);
    float t[16];
    _mm512_storeu_ps(t, _mm512_mul_ps(topl, _mm512_set1_ps(1.0f / 255.0f)));
    for (int g = 0; g < G; g++)
        sw[g] = t[g];
    /* out byte o <- in byte: G 2: (4 (o/8) + o%4) 2 + (o%8)/4; G 4: (o%4) 4 + o/4;
     * G 8: (o%2) 8 + o/2, then 16-bit interleaves of two such vectors */
    const __m128i s2 = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
    const __m128i s4 = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m128i s8 = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    const int pairs = (keys + 3) / 4 * 4 * G;
    for (int e = 0; e < pairs; e += 16) {
        /* w <= its group's top, so w * inv rounds to 255 at most; the
         * unsigned saturating narrowing would clamp it anyway */
        const __m512i c = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(wbuf + e), inv));
        __m128i b = _mm512_cvtusepi32_epi8(c);
        if (G == 8) {
            const __m512i c2 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(wbuf + e + 16), inv));
            const __m128i a = _mm_shuffle_epi8(b, s8);
            const __m128i d = _mm_shuffle_epi8(_mm512_cvtusepi32_epi8(c2), s8);
            _mm_storeu_si128((__m128i *)(pq + e), _mm_unpacklo_epi16(a, d));
            _mm_storeu_si128((__m128i *)(pq + e + 16), _mm_unpackhi_epi16(a, d));
            e += 16;
            continue;
        }
        if (G == 2)
            b = _mm_shuffle_epi8(b, s2);
        else if (G == 4)
            b = _mm_shuffle_epi8(b, s4);
        _mm_storeu_si128((__m128i *)(pq + e), b);
    }
}

/* Any other scale layout (groups up to 16, key rows apart): the scales of
 * 16 keys transposed in registers, w per group over keys, codes scattered
 * to pq's order a dword (4 keys) at a time. 0 when a p or s is negative or
 * not finite. */
static inline __attribute__((always_inline)) int
strided_codes(const flat_dtype st, int G, int keys, const float *restrict p,
              const flat_kv_src *v, int64_t k0, uint8_t *restrict pq, float *sw)
{
    float sv[MAX_G][KC];
    __mmask16 worse = 0;
    for (int k = 0; k < keys; k += 16) {
        __m512 r[16];
#pragma GCC unroll 16
        for (int u = 0; u < 16; u++) {
            const void *srow = flat_kv_scale_row(v, k0 + k + (k + u < keys ? u : 0), FLAT_I8);
            const __mmask16 m = flat_tail_mask_avx512(G);
            r[u] = st == FLAT_F16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, srow))
                                  : _mm512_maskz_loadu_ps(m, srow);
            worse |= _mm512_cmp_ps_mask(r[u], _mm512_setzero_ps(), _CMP_NGE_UQ) |
                     _mm512_cmp_ps_mask(r[u], _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
        }
        flat_transpose16_avx512(r);
        for (int g = 0; g < G; g++)
            _mm512_storeu_ps(sv[g] + k, r[g]);
    }
    for (int k = 0; k < keys; k += 16) {
        const __m512 x = _mm512_maskz_loadu_ps(flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16), p + k);
        worse |= _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NGE_UQ) |
                 _mm512_cmp_ps_mask(x, _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
    }
    if (worse)
        return 0;
    for (int g = 0; g < G; g++) {
        __m512 mx = _mm512_setzero_ps();
        for (int k = 0; k < keys; k += 16) {
            const __mmask16 m = flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16);
            mx = _mm512_max_ps(mx, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + k),
                                                 _mm512_maskz_loadu_ps(m, sv[g] + k)));
        }
        const float top = _mm512_reduce_max_ps(mx);
        sw[g] = top / 255.0f;
        const __m512 inv = _mm512_set1_ps(top > 0.0f ? 255.0f / top : 0.0f);
        for (int k = 0; k < keys; k += 16) {
            const __mmask16 m = flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16);
            const __m512 w = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + k), inv),
                                           _mm512_maskz_loadu_ps(m, sv[g] + k));
            int32_t d[4];
            _mm_storeu_si128((__m128i *)d, _mm512_cvtusepi32_epi8(_mm512_min_epi32(
                                               _mm512_cvtps_epi32(w), _mm512_set1_epi32(255))));
            for (int q = 0; q < 4 && k + 4 * q < keys; q++)
                memcpy(pq + ((k / 4 + q) * G + g) * 4, &d[q], 4);
        }
    }
    return 1;
}

/* Each group's sum of a row's P codes over the chunk's 4-key steps (int4
 * V's codes are read + 8: the sums owe 8 x this). */
static inline void p_sums(int G, int keys, const uint8_t *restrict pq, int32_t *restrict ps)
{
    const int dwords = (keys + 3) / 4 * G;
    for (int g = 0; g < G; g++)
        ps[g] = 0;
    if (16 % G) { /* lanes of a vector would mix groups */
        for (int e = 0; e < dwords; e++)
            ps[e % G] += pq[4 * e] + pq[4 * e + 1] + pq[4 * e + 2] + pq[4 * e + 3];
        return;
    }
    __m512i acc = _mm512_setzero_si512();
    for (int e = 0; e < dwords; e += 16) {
        const __mmask16 m = flat_tail_mask_avx512(dwords - e < 16 ? dwords - e : 16);
        acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi32(m, pq + 4 * e), _mm512_set1_epi8(1));
    }
    int32_t lane[16];
    _mm512_storeu_si512(lane, acc);
    for (int l = 0; l < 16; l++) /* dword e + l: group l % G */
        ps[l % G] += lane[l];
}

/* The chunk's P codes of rows < mb (those past `rows` repeat the last
 * row): 0 when a p or scale is negative or not finite. wbuf: 2 KC * 8
 * floats. */
static inline __attribute__((always_inline)) int
chunk_codes_t(const flat_dtype st, const int cols_mode, int i4, int mb, int rows, int keys, int64_t k0,
              int G, int pairs, const float *restrict p, int64_t ld_p, const flat_kv_src *v,
              p8_chunk *pc, float *restrict wbuf)
{
    float *sbuf = wbuf + KC * 8; /* the pairs' V scales, shared by the rows */
    if (pairs && !cols_mode && !pairs_scales(st, G, keys, flat_kv_scale_row(v, k0, FLAT_I8), sbuf))
        return 0;
    for (int i = 0; i < mb; i++) {
        const float *pi = p + (i < rows ? i : rows - 1) * ld_p + k0;
        if (pairs) {
            int bad;
            const __m512 top = pairs_w(cols_mode, G, keys, pi, sbuf, wbuf, &bad);
            if (bad)
                return 0;
            pairs_codes(G, keys, wbuf, top, pc->pq[i], pc->sw[i]);
        } else if (!strided_codes(st, G, keys, pi, v, k0, pc->pq[i], pc->sw[i])) {
            return 0;
        }
        if (i4)
            p_sums(G, keys, pc->pq[i], pc->ps[i]);
    }
    return 1;
}

/* One copy per scale layout (pv.c's passes one per rows and V type): the
 * file's build time is its copies (18 of the whole took 3x of 9). */
static inline __attribute__((always_inline)) int chunk_codes(int cols_mode, int i4, int mb, int rows, int keys,
                                                 int64_t k0, int G, int pairs, const float *restrict p,
                                                 int64_t ld_p, const flat_kv_src *v, p8_chunk *pc,
                                                 float *restrict wbuf)
{
    return cols_mode ? chunk_codes_t(FLAT_F32, 1, i4, mb, rows, keys, k0, 1, 1, p, ld_p, v, pc, wbuf)
           : v->scale_t == FLAT_F16
               ? chunk_codes_t(FLAT_F16, 0, i4, mb, rows, keys, k0, G, pairs, p, ld_p, v, pc, wbuf)
               : chunk_codes_t(FLAT_F32, 0, i4, mb, rows, keys, k0, G, pairs, p, ld_p, v, pc, wbuf);
}

#endif
