/* O = diag(alpha) O + P V on int8 V: P rounded to u8 per chunk, vpdpbusd on
 * four interleaved V rows (kernels.h). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include "../ukernel.h"
#include "kernels.h"

#define KC 128     /* keys per chunk: int32 sums stay under 2^24 (exact in fp32) */
#define MAX_G 16   /* V scale groups per row */
#define MAX_DV 1024
#define PREFETCH 32 /* V rows ahead, within the call */

/* One chunk's P codes of up to 4 rows: pq[i][g][k] = u8 of row i, group g,
 * key k (4 keys a dword), and each (row, group)'s scale. */
typedef struct {
    uint8_t pq[4][MAX_G][KC] __attribute__((aligned(64)));
    float sw[4][MAX_G];
} p8_chunk;

/* The chunk's V scales, transposed: sv[g][k] (CHUNK); 0 when one is
 * negative or not finite (the caller declines). */
static inline __attribute__((always_inline)) int
chunk_scales(const flat_dtype st, int groups, int keys, const flat_kv_src *v, int64_t k0,
             float (*sv)[KC])
{
    int ok = 1;
    for (int k = 0; k < keys; k += 16) {
        __m512 r[16];
#pragma GCC unroll 16
        for (int u = 0; u < 16; u++) {
            const void *srow = flat_kv_scale_row(v, k0 + k + (k + u < keys ? u : 0), FLAT_I8);
            const __mmask16 m = flat_tail_mask_avx512(groups);
            r[u] = st == FLAT_F16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, srow))
                                  : _mm512_maskz_loadu_ps(m, srow);
            /* negative, inf or NaN: not ordered-greater-or-equal 0 / finite */
            ok &= _mm512_cmp_ps_mask(r[u], _mm512_setzero_ps(), _CMP_NGE_UQ) == 0 &&
                  _mm512_cmp_ps_mask(r[u], _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ) == 0;
        }
        flat_transpose16_avx512(r);
        for (int g = 0; g < groups; g++)
            _mm512_storeu_ps(sv[g] + k, r[g]);
    }
    return ok;
}

/* P row's codes for the chunk: w = p * sv[g] * 255 / max_k w (COLS: w = p). */
static inline __attribute__((always_inline)) void
quantize_p(int groups, int keys, const float *restrict p, float pmax, const float (*sv)[KC],
           int cols_mode, uint8_t (*pq)[KC], float *sw)
{
    for (int g = 0; g < groups; g++) {
        /* the group's largest w: a finer step than max p * max s, which
         * lost half the accuracy where scales vary by token */
        float top = pmax;
        if (!cols_mode) {
            __m512 mx = _mm512_setzero_ps();
            for (int k = 0; k < keys; k += 16) {
                const __mmask16 m = flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16);
                mx = _mm512_max_ps(mx, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + k),
                                                     _mm512_maskz_loadu_ps(m, sv[g] + k)));
            }
            top = _mm512_reduce_max_ps(mx);
        }
        sw[g] = top / 255.0f;
        const __m512 inv = _mm512_set1_ps(top > 0.0f ? 255.0f / top : 0.0f);
        for (int k = 0; k < keys; k += 16) {
            const __mmask16 m = flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16);
            __m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + k), inv);
            if (!cols_mode)
                w = _mm512_mul_ps(w, _mm512_maskz_loadu_ps(m, sv[g] + k));
            const __m512i c = _mm512_min_epi32(_mm512_cvtps_epi32(w), _mm512_set1_epi32(255));
            _mm_storeu_si128((__m128i *)(pq[g] + k), _mm512_cvtusepi32_epi8(c));
        }
        for (int k = keys; k < (keys + 3) / 4 * 4; k++)
            pq[g][k] = 0;
    }
}

/* The largest P of the row in the chunk; -1 when one is negative or not
 * finite (the caller declines). */
static inline float chunk_pmax(int keys, const float *p)
{
    __m512 mx = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (int k = 0; k < keys; k += 16) {
        const __mmask16 m = flat_tail_mask_avx512(keys - k < 16 ? keys - k : 16);
        const __m512 x = _mm512_maskz_loadu_ps(m, p + k);
        bad |= _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NGE_UQ) |
               _mm512_cmp_ps_mask(x, _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
        mx = _mm512_max_ps(mx, x);
    }
    return bad ? -1.0f : _mm512_reduce_max_ps(mx);
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
            int64_t group, float *restrict o, int64_t ld_o, const float *restrict alpha, int first)
{
    const __mmask64 cm = cols >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << cols) - 1);
    /* the P codes' groups of lanes 0-1 (columns col0 .. +31) and 2-3 */
    const int ga = cols_mode ? 0 : (int)(col0 / group);
    const int gb = cols_mode ? 0 : (int)((col0 + 32 < col0 + cols ? col0 + 32 : col0) / group);
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
            const int32_t *wa = (const int32_t *)pc->pq[i][ga] + k / 4;
            const int32_t *wb = (const int32_t *)pc->pq[i][gb] + k / 4;
            const __m512i w = _mm512_mask_set1_epi32(_mm512_set1_epi32(*wa), 0xff00, *wb);
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
    const int groups = cols_mode ? 1 : (int)(dv / v->group);
    p8_chunk pc;
    float sv[MAX_G][KC];
    for (int64_t k0 = 0; k0 < n; k0 += KC) {
        const int keys = n - k0 < KC ? (int)(n - k0) : KC;
        if (!cols_mode && !chunk_scales(st, groups, keys, v, k0, sv))
            return k0;
        float pmax[4];
        for (int i = 0; i < mb; i++) {
            pmax[i] = chunk_pmax(keys, p + (i < rows ? i : rows - 1) * ld_p + k0);
            if (pmax[i] < 0.0f)
                return k0;
        }
        for (int i = 0; i < mb; i++)
            quantize_p(groups, keys, p + (i < rows ? i : rows - 1) * ld_p + k0, pmax[i], sv,
                       cols_mode, pc.pq[i], pc.sw[i]);
        for (int c0 = 0; c0 < dv; c0 += 64)
            chunk_block(mb, cols_mode, rows, keys, k0, n, v, dv, c0, dv - c0 < 64 ? dv - c0 : 64, &pc,
                        colsc, v->group, o, ld_o, alpha, k0 == 0);
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
