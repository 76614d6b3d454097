/* O = diag(alpha) O + P V on int8 V: P rounded to u8 per chunk, vpdpbusd on
 * four interleaved V rows (kernels.h). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "../ukernel.h"
#include "kernels.h"

#define KC 128     /* keys per chunk: int32 sums stay under 2^24 (exact in fp32) */
#define MAX_G 16   /* V scale groups per row */
#define MAX_DV 1024
#define PREFETCH 32 /* V rows ahead, within the call */

/* One chunk's P codes of up to 4 rows: byte (j4 * G + g) * 4 + t of pq[i]
 * is row i's u8 for key 4 j4 + t and scale group g (so the four keys a
 * vpdpbusd lane takes are one dword, and a 4-key step's dwords of every
 * group one load), and each (row, group)'s scale. */
typedef struct {
    uint8_t pq[4][KC * MAX_G + 64] __attribute__((aligned(64)));
    float sw[4][MAX_G];
} p8_chunk;

/* w = p * s_v of the chunk's (key, group) pairs in key-major order, where a
 * key's scales are contiguous and G (groups a row) is 1, 2, 4 or 8: 16
 * pairs a vector, as they lie in the scale tensor. `unit`: per-column
 * scales (COLS), w = p. Stores w in wbuf and returns the largest w of each
 * group in lanes g (and g + G, ...); *bad when a p or s is negative or not
 * finite (the caller declines). */
static inline __attribute__((always_inline)) __m512
pairs_w(const flat_dtype st, const int unit, int G, int keys, const float *restrict p,
        const void *s0, float *restrict wbuf, int *bad)
{
    const int shift = G == 1 ? 0 : G == 2 ? 1 : G == 4 ? 2 : 3;
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_srli_epi32(lane, shift); /* pair -> its key */
    const int pairs = (keys + 3) / 4 * 4 * G;
    __m512 mx = _mm512_setzero_ps();
    __mmask16 worse = 0;
    for (int e = 0; e < pairs; e += 16) {
        const int k = e >> shift, left = keys * G - e;
        const __mmask16 m = left <= 0 ? 0 : flat_tail_mask_avx512(left < 16 ? left : 16);
        const __m512 pk = _mm512_maskz_loadu_ps(
            keys - k <= 0 ? 0 : flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16), p + k);
        __m512 w = _mm512_permutexvar_ps(idx, pk);
        if (!unit) {
            const __m512 sv = st == FLAT_F16
                                  ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)s0 + e))
                                  : _mm512_maskz_loadu_ps(m, (const float *)s0 + e);
            worse |= _mm512_cmp_ps_mask(sv, _mm512_setzero_ps(), _CMP_NGE_UQ) |
                     _mm512_cmp_ps_mask(sv, _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
            w = _mm512_mul_ps(w, sv);
        }
        worse |= _mm512_mask_cmp_ps_mask(m, w, _mm512_setzero_ps(), _CMP_NGE_UQ) |
                 _mm512_mask_cmp_ps_mask(m, w, _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
        w = _mm512_maskz_mov_ps(m, w);
        _mm512_storeu_ps(wbuf + e, w);
        mx = _mm512_max_ps(mx, w);
    }
    for (int step = 8; step >= G; step /= 2) /* lanes l and l ^ step: one group */
        mx = _mm512_max_ps(mx, _mm512_permutexvar_ps(
                                   _mm512_xor_si512(lane, _mm512_set1_epi32(step)), mx));
    *bad = worse != 0;
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
        const __m512i c = _mm512_min_epi32(
            _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(wbuf + e), inv)), _mm512_set1_epi32(255));
        __m128i b = _mm512_cvtusepi32_epi8(c);
        if (G == 8) {
            const __m512i c2 = _mm512_min_epi32(
                _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(wbuf + e + 16), inv)),
                _mm512_set1_epi32(255));
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

/* Four V rows' 64 columns interleaved: lane (L, t) of x[k] holds the four
 * keys' codes of column 16L + 4k + t. */
static inline __attribute__((always_inline)) void interleave4(const __m512i r[4], __m512i x[4])
{
    const __m512i a = _mm512_unpacklo_epi8(r[0], r[1]), b = _mm512_unpackhi_epi8(r[0], r[1]);
    const __m512i c = _mm512_unpacklo_epi8(r[2], r[3]), d = _mm512_unpackhi_epi8(r[2], r[3]);
    x[0] = _mm512_unpacklo_epi16(a, c);
    x[1] = _mm512_unpackhi_epi16(a, c);
    x[2] = _mm512_unpacklo_epi16(b, d);
    x[3] = _mm512_unpackhi_epi16(b, d);
}

/* o[m] (columns 16m .. 16m+15 of the block) from x-ordered sums: 128-bit
 * lane L' of o[m] is lane m of x[L']. */
static inline __attribute__((always_inline)) void lanes_to_columns(const __m512i x[4], __m512i o[4])
{
    const __m512i t0 = _mm512_shuffle_i32x4(x[0], x[1], 0x44); /* x0.0 x0.1 x1.0 x1.1 */
    const __m512i t1 = _mm512_shuffle_i32x4(x[0], x[1], 0xee); /* x0.2 x0.3 x1.2 x1.3 */
    const __m512i t2 = _mm512_shuffle_i32x4(x[2], x[3], 0x44);
    const __m512i t3 = _mm512_shuffle_i32x4(x[2], x[3], 0xee);
    o[0] = _mm512_shuffle_i32x4(t0, t2, 0x88); /* x0.0 x1.0 x2.0 x3.0 */
    o[1] = _mm512_shuffle_i32x4(t0, t2, 0xdd);
    o[2] = _mm512_shuffle_i32x4(t1, t3, 0x88);
    o[3] = _mm512_shuffle_i32x4(t1, t3, 0xdd);
}

/* Rows < mb (rows of them real) x one 64-column block at col0 (cols of them
 * valid) over the chunk's keys: int32 sums, then O += scale * sums. */
static inline __attribute__((always_inline)) void
chunk_block(const int mb, const int cols_mode, int rows, int keys, int64_t k0, int64_t n,
            const flat_kv_src *v, int dv, int col0, int cols, const p8_chunk *pc, const float *colsc,
            int64_t group, int G, float *restrict o, int64_t ld_o, const float *restrict alpha,
            int first)
{
    const __mmask64 cm = cols >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << cols) - 1);
    /* the P codes' groups of lanes 0-1 (columns col0 .. +31) and 2-3: which
     * dwords of a 4-key step's G each vector lane takes */
    const int ga = cols_mode ? 0 : (int)(col0 / group);
    const int gb = cols_mode ? 0 : (int)((col0 + 32 < col0 + cols ? col0 + 32 : col0) / group);
    const __m512i gsel = _mm512_mask_set1_epi32(_mm512_set1_epi32(ga), 0xff00, gb);
    __m512i acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            acc[i][q] = _mm512_setzero_si512();
    for (int k = 0; k < keys; k += 4) {
        __m512i r[4], x[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const int8_t *row = (const int8_t *)flat_kv_row(v, k0 + k + t, FLAT_I8) + col0;
            /* the first block's pass fetches whole rows ahead (the later
             * blocks find them in L1: a chunk is 128 rows) */
            if (col0 == 0 && k0 + k + t + PREFETCH < n)
                for (int c = 0; c < dv; c += 64)
                    _mm_prefetch((const char *)(row + PREFETCH * v->ld + c), _MM_HINT_T0);
            r[t] = k + t < keys ? _mm512_maskz_loadu_epi8(cm, row) : _mm512_setzero_si512();
        }
        interleave4(r, x);
#pragma GCC unroll 4
        for (int i = 0; i < mb; i++) {
            const __m512i w = _mm512_permutexvar_epi32(
                gsel, _mm512_loadu_si512(pc->pq[i] + (k / 4) * G * 4));
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                acc[i][q] = _mm512_dpbusd_epi32(acc[i][q], w, x[q]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++) {
        if (i >= rows)
            break;
        __m512i oc[4];
        lanes_to_columns(acc[i], oc);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const int c = 16 * q;
            if (c >= cols)
                break;
            const __mmask16 m = flat_tail_mask_avx512(cols - c < 16 ? cols - c : 16);
            float *op = o + i * ld_o + col0 + c;
            const __m512 sc =
                cols_mode ? _mm512_mul_ps(_mm512_set1_ps(pc->sw[i][0]), _mm512_maskz_loadu_ps(m, colsc + col0 + c))
                          : _mm512_set1_ps(pc->sw[i][(col0 + c) / group]);
            const __m512 base = !first ? _mm512_maskz_loadu_ps(m, op)
                                : alpha ? _mm512_mul_ps(_mm512_set1_ps(alpha[i]), _mm512_maskz_loadu_ps(m, op))
                                        : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(op, m, _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(oc[q]), base));
        }
    }
}

/* Rows r .. r+rows-1 (rows <= 4) over all keys. Returns the first key not
 * done (n unless a chunk had a negative or non-finite P or V scale). */
static inline __attribute__((always_inline)) int64_t
rows_i8(const flat_dtype st, const int mb, const int cols_mode, int rows, int n, int dv,
        const float *restrict p, int64_t ld_p, const flat_kv_src *v, const float *colsc,
        float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    const int G = cols_mode ? 1 : (int)(dv / v->group);
    /* key-major when a key's scales are contiguous and G a power of 2 <= 8 */
    const int pairs = cols_mode || (v->ld_scale == G && (G == 1 || G == 2 || G == 4 || G == 8));
    p8_chunk pc;
    float wbuf[KC * 8];
    for (int64_t k0 = 0; k0 < n; k0 += KC) {
        const int keys = n - k0 < KC ? (int)(n - k0) : KC;
        for (int i = 0; i < mb; i++) {
            const float *pi = p + (i < rows ? i : rows - 1) * ld_p + k0;
            if (pairs) {
                int bad;
                const __m512 top =
                    pairs_w(st, cols_mode, G, keys, pi, cols_mode ? NULL : flat_kv_scale_row(v, k0, FLAT_I8),
                            wbuf, &bad);
                if (bad)
                    return k0;
                pairs_codes(G, keys, wbuf, top, pc.pq[i], pc.sw[i]);
            } else if (!strided_codes(st, G, keys, pi, v, k0, pc.pq[i], pc.sw[i])) {
                return k0;
            }
        }
        for (int c0 = 0; c0 < dv; c0 += 64)
            chunk_block(mb, cols_mode, rows, keys, k0, n, v, dv, c0, dv - c0 < 64 ? dv - c0 : 64, &pc,
                        colsc, v->group, G, o, ld_o, alpha, k0 == 0);
    }
    return n;
}

#define ROWS(st, cm)                                                                          \
    (mb == 1   ? rows_i8(st, 1, cm, rows, n, dv, pr, ld_p, v, colsc, orow, ld_o, ar)          \
     : mb == 2 ? rows_i8(st, 2, cm, rows, n, dv, pr, ld_p, v, colsc, orow, ld_o, ar)          \
               : rows_i8(st, 4, cm, rows, n, dv, pr, ld_p, v, colsc, orow, ld_o, ar))

void flat_pv__avx512_vnni(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                          const flat_kv_src *v, float *restrict o, int64_t ld_o,
                          const float *restrict alpha)
{
    assert(m >= 1 && n >= 0 && dv >= 1);
    const int sm = v->t == FLAT_I8 ? flat_scale_mode_avx512(v) : FLAT_SC_LANES;
    const int cols_mode = sm == FLAT_SC_COLS;
    if (sm == FLAT_SC_LANES || n == 0 || dv > MAX_DV || !v->scale ||
        (!cols_mode && (v->group % 32 != 0 || dv / v->group > MAX_G))) {
        flat_pv_6__avx512(m, n, dv, p, ld_p, v, o, ld_o, alpha);
        return;
    }
    float colsc[MAX_DV];
    if (cols_mode)
        for (int c = 0; c < dv; c++)
            colsc[c] = v->scale_t == FLAT_F16 ? _cvtsh_ss(((const uint16_t *)v->scale)[c / v->group])
                                              : ((const float *)v->scale)[c / v->group];
    static const float ones[4] = {1, 1, 1, 1};
    for (int r = 0; r < m; r += 4) {
        const int rows = m - r < 4 ? m - r : 4, mb = rows == 1 ? 1 : rows == 2 ? 2 : 4;
        const float *pr = p + r * ld_p, *ar = alpha ? alpha + r : NULL;
        float *orow = o + r * ld_o;
        const int64_t done = cols_mode ? ROWS(FLAT_F32, 1)
                             : v->scale_t == FLAT_F16 ? ROWS(FLAT_F16, 0)
                                                      : ROWS(FLAT_F32, 0);
        if (done < n) { /* the rest on fp32 products: O so far, then keys done.. */
            const flat_kv_src rest = flat_kv_src_rows(v, done);
            flat_pv_6__avx512(rows, (int)(n - done), dv, pr + done, ld_p, &rest, orow, ld_o,
                              done == 0 ? ar : ones);
        }
    }
}

/* Widened rows: the AVX-512 table's (exact dequantized values). */
void flat_widen_rows__avx512_vnni(int n, int cols, const flat_kv_src *src, float *restrict y,
                                  int64_t ld_y)
{
    flat_widen_rows__avx512(n, cols, src, y, ld_y);
}

void flat_store_row__avx512_vnni(int n, const float *restrict x, float scale, flat_dtype t,
                                 void *restrict y)
{
    flat_store_row__avx512(n, x, scale, t, y);
}
