/* O = diag(alpha) O + P V on int8 and int4 V: P rounded to u8 per chunk,
 * vpdpbusd on four interleaved V rows (kernels.h). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "../ukernel.h"
#include "kernels.h"
#include "pcodes.h"

#define MAX_DV 1024
#define PREFETCH 64 /* V rows ahead, within the call */
#define CHAIN_AHEAD FLAT_AVX512_VNNI_CHAIN_AHEAD

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

/* O[i][c0 .. c0+15] (m: the valid ones) = base + scale * (sums - off), the
 * scale that of the chunk's P codes for row i and the columns' V scales. */
static inline __attribute__((always_inline)) void
add_sums(const int cols_mode, const p8_chunk *pc, int i, const float *colsc, int64_t group,
         int c0, __mmask16 m, __m512i sums, int32_t off, float *restrict o, int64_t ld_o,
         const float *restrict alpha, int first)
{
    float *op = o + i * ld_o + c0;
    const __m512 sc = cols_mode ? _mm512_mul_ps(_mm512_set1_ps(pc->sw[i][0]), _mm512_maskz_loadu_ps(m, colsc + c0))
                                : _mm512_set1_ps(pc->sw[i][c0 / group]);
    const __m512 base = !first ? _mm512_maskz_loadu_ps(m, op)
                        : alpha ? _mm512_mul_ps(_mm512_set1_ps(alpha[i]), _mm512_maskz_loadu_ps(m, op))
                                : _mm512_setzero_ps();
    const __m512i net = off ? _mm512_sub_epi32(sums, _mm512_set1_epi32(off)) : sums;
    _mm512_mask_storeu_ps(op, m, _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(net), base));
}

/* The P codes' dword of each 128-bit lane: lane L of a pass takes columns
 * col0 + span L .. +span-1, one V group (groups are multiples of 32). */
static inline __attribute__((always_inline)) __m512i
group_lanes(int cols_mode, int col0, int span, int64_t group, int G)
{
    int gl[4];
    for (int L = 0; L < 4; L++) {
        const int g = cols_mode ? 0 : (int)((col0 + span * L) / group);
        gl[L] = g < G ? g : G - 1;
    }
    return _mm512_set_epi32(gl[3], gl[3], gl[3], gl[3], gl[2], gl[2], gl[2], gl[2], gl[1], gl[1],
                            gl[1], gl[1], gl[0], gl[0], gl[0], gl[0]);
}

/* The first pass over a chunk fetches whole rows (bytes long, ldb apart)
 * PREFETCH keys ahead (the later passes find them in L1: a chunk is 128
 * rows). */
static inline __attribute__((always_inline)) void
prefetch_row(const char *row, int64_t ldb, int bytes, int64_t j, int64_t n)
{
    if (j + PREFETCH < n)
        for (int c = 0; c < bytes; c += 64)
            _mm_prefetch(row + PREFETCH * ldb + c, _MM_HINT_T0);
}

/* acc[i] += the four keys' products from k of row i's P codes (each 128-bit
 * lane its group's) and the interleaved V codes x. */
static inline __attribute__((always_inline)) void
add_products(const int mb, const p8_chunk *pc, __m512i gsel, int G, int k, const __m512i x[4],
             __m512i acc[4][4])
{
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++) {
        const __m512i w = _mm512_permutexvar_epi32(gsel, _mm512_loadu_si512(pc->pq[i] + (k / 4) * G * 4));
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            acc[i][q] = _mm512_dpbusd_epi32(acc[i][q], w, x[q]);
    }
}

/* Rows < mb (rows of them real) x int8 columns col0 .. col0+cols-1 (cols
 * <= 64) over the chunk's keys: int32 sums, then O += scale * sums. */
static inline __attribute__((always_inline)) void
chunk_block(const int mb, const int cols_mode, int rows, int keys, int64_t k0, int64_t n,
            const flat_kv_src *v, int dv, int col0, int cols, const p8_chunk *pc, const float *colsc,
            int64_t group, int G, float *restrict o, int64_t ld_o, const float *restrict alpha,
            int first)
{
    const __mmask64 cm = cols >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << cols) - 1);
    const __m512i gsel = group_lanes(cols_mode, col0, 16, group, G);
    __m512i acc[4][4] = {{_mm512_setzero_si512()}};
    const char *rows0 = (const char *)flat_kv_row(v, k0, FLAT_I8);
    const int64_t ldb = v->ld;
    for (int k = 0; k < keys; k += 4) {
        __m512i r[4], x[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const char *row = rows0 + (k + t) * ldb;
            if (col0 == 0)
                prefetch_row(row, ldb, dv, k0 + k + t, n);
            if (col0 == 0 && t == 0)
                flat_prefetch_chain_avx512(v, k0 + k, 4, n, CHAIN_AHEAD, 0, dv);
            r[t] = k + t < keys ? _mm512_maskz_loadu_epi8(cm, row + col0) : _mm512_setzero_si512();
        }
        interleave4(r, x);
        add_products(mb, pc, gsel, G, k, x, acc);
    }
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++) {
        if (i >= rows)
            break;
        __m512i oc[4];
        lanes_to_columns(acc[i], oc);
        for (int q = 0; q < 4 && 16 * q < cols; q++)
            add_sums(cols_mode, pc, i, colsc, group, col0 + 16 * q,
                     flat_tail_mask_avx512(cols - 16 * q < 16 ? cols - 16 * q : 16), oc[q], 0, o,
                     ld_o, alpha, first);
    }
}

/* Four int4 V rows' pass h of the 64 bytes from column col0: the low (h 0)
 * or high 8 bytes of each 128-bit lane, paired by key (one 8-bit unpack),
 * then split into nibbles, which need no shuffle: in a word (a byte, b
 * byte), & 0x0f0f takes both even elements and >> 4 both odd ones. Codes
 * are read + 8 (xor 0x88: 0 .. 15, a valid signed operand; the sums are
 * corrected by 8 x the P codes' sum). x[2 h2 + p] lane (L, i) holds the
 * four keys' codes of column col0 + 32 L + 16 h + 8 h2 + 2 i + p. */
static inline __attribute__((always_inline)) void interleave4_i4(const __m512i r[4], int h,
                                                                 __m512i x[4])
{
    const __m512i nib = _mm512_set1_epi8(0x0f), off = _mm512_set1_epi8((char)0x88);
    const __m512i ab = _mm512_xor_si512(h ? _mm512_unpackhi_epi8(r[0], r[1]) : _mm512_unpacklo_epi8(r[0], r[1]), off);
    const __m512i cd = _mm512_xor_si512(h ? _mm512_unpackhi_epi8(r[2], r[3]) : _mm512_unpacklo_epi8(r[2], r[3]), off);
    const __m512i abe = _mm512_and_si512(ab, nib), abo = _mm512_and_si512(_mm512_srli_epi16(ab, 4), nib);
    const __m512i cde = _mm512_and_si512(cd, nib), cdo = _mm512_and_si512(_mm512_srli_epi16(cd, 4), nib);
    x[0] = _mm512_unpacklo_epi16(abe, cde);
    x[1] = _mm512_unpacklo_epi16(abo, cdo);
    x[2] = _mm512_unpackhi_epi16(abe, cde);
    x[3] = _mm512_unpackhi_epi16(abo, cdo);
}

/* Rows < mb x int4 columns col0 .. col0+cols-1 (cols <= 128), pass h (see
 * interleave4_i4) over the chunk's keys: int32 sums, then O += scale *
 * (sums - 8 x the P codes' sum). */
static inline __attribute__((always_inline)) void
chunk_block_i4(const int mb, const int cols_mode, int h, int rows, int keys, int64_t k0, int64_t n,
               const flat_kv_src *v, int dv, int col0, int cols, const p8_chunk *pc,
               const float *colsc, int64_t group, int G, float *restrict o, int64_t ld_o,
               const float *restrict alpha, int first)
{
    const int bytes = cols / 2;
    const __mmask64 bm = bytes >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << bytes) - 1);
    const __m512i gsel = group_lanes(cols_mode, col0, 32, group, G);
    __m512i acc[4][4] = {{_mm512_setzero_si512()}};
    const char *rows0 = (const char *)flat_kv_row(v, k0, FLAT_I4);
    const int64_t ldb = v->ld / 2; /* even (ukernel.h) */
    for (int k = 0; k < keys; k += 4) {
        __m512i r[4], x[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const char *row = rows0 + (k + t) * ldb;
            if (col0 == 0 && h == 0)
                prefetch_row(row, ldb, dv / 2, k0 + k + t, n);
            if (col0 == 0 && h == 0 && t == 0)
                flat_prefetch_chain_avx512(v, k0 + k, 4, n, CHAIN_AHEAD, 0, dv);
            r[t] = k + t < keys ? _mm512_maskz_loadu_epi8(bm, row + col0 / 2) : _mm512_setzero_si512();
        }
        interleave4_i4(r, h, x);
        add_products(mb, pc, gsel, G, k, x, acc);
    }
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++) {
        if (i >= rows)
            break;
        /* lane L of u[q]: columns 4q .. 4q+3 of lane L's 16, in order */
        const __m512i u[4] = {_mm512_unpacklo_epi32(acc[i][0], acc[i][1]),
                              _mm512_unpackhi_epi32(acc[i][0], acc[i][1]),
                              _mm512_unpacklo_epi32(acc[i][2], acc[i][3]),
                              _mm512_unpackhi_epi32(acc[i][2], acc[i][3])};
        __m512i oc[4];
        lanes_to_columns(u, oc);
#pragma GCC unroll 4
        for (int L = 0; L < 4; L++) {
            const int c = 32 * L + 16 * h;
            if (c >= cols)
                break;
            const int g = cols_mode ? 0 : (int)((col0 + c) / group);
            add_sums(cols_mode, pc, i, colsc, group, col0 + c,
                     flat_tail_mask_avx512(cols - c < 16 ? cols - c : 16), oc[L], 8 * pc->ps[i][g],
                     o, ld_o, alpha, first);
        }
    }
}

/* Every block of the chunk over the row's columns. */
static inline __attribute__((always_inline)) void
chunk_passes_t(const int mb, const int i4, const int cols_mode, int rows, int keys, int64_t k0, int64_t n,
               const flat_kv_src *v, int dv, const p8_chunk *pc, const float *colsc, int G,
               float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    const int width = i4 ? 128 : 64;
    for (int c0 = 0; c0 < dv; c0 += width) {
        const int cols = dv - c0 < width ? dv - c0 : width;
        if (i4) {
            chunk_block_i4(mb, cols_mode, 0, rows, keys, k0, n, v, dv, c0, cols, pc, colsc, v->group,
                           G, o, ld_o, alpha, k0 == 0);
            if (cols > 16)
                chunk_block_i4(mb, cols_mode, 1, rows, keys, k0, n, v, dv, c0, cols, pc, colsc,
                               v->group, G, o, ld_o, alpha, k0 == 0);
        } else {
            chunk_block(mb, cols_mode, rows, keys, k0, n, v, dv, c0, cols, pc, colsc, v->group, G, o,
                        ld_o, alpha, k0 == 0);
        }
    }
}

static inline __attribute__((always_inline)) void
chunk_passes(int mb, int cols_mode, int rows, int keys, int64_t k0, int64_t n, const flat_kv_src *v,
             int dv, const p8_chunk *pc, const float *colsc, int G, float *restrict o, int64_t ld_o,
             const float *restrict alpha)
{
#define PASSES(mb_, i4_, cm_)                                                                     \
    chunk_passes_t(mb_, i4_, cm_, rows, keys, k0, n, v, dv, pc, colsc, G, o, ld_o, alpha)
#define PASSES_M(i4_, cm_) (mb == 1 ? PASSES(1, i4_, cm_) : mb == 2 ? PASSES(2, i4_, cm_) : PASSES(4, i4_, cm_))
    if (v->t == FLAT_I4)
        cols_mode ? PASSES_M(1, 1) : PASSES_M(1, 0);
    else
        cols_mode ? PASSES_M(0, 1) : PASSES_M(0, 0);
#undef PASSES_M
#undef PASSES
}

/* Rows r .. r+rows-1 (rows <= 4, in mb's block of 1, 2 or 4) over all keys.
 * Returns the first key not done (n unless a chunk had a negative or
 * non-finite P or V scale). */
static int64_t rows_q(int mb, int cols_mode, int rows, int n, int dv, const float *restrict p,
                      int64_t ld_p, const flat_kv_src *v, const float *colsc, float *restrict o,
                      int64_t ld_o, const float *restrict alpha)
{
    const int G = cols_mode ? 1 : (int)(dv / v->group);
    /* key-major when a key's scales are contiguous and G a power of 2 <= 8 */
    const int pairs = cols_mode || (v->ld_scale == G && (G == 1 || G == 2 || G == 4 || G == 8));
    p8_chunk pc;
    float wbuf[2 * KC * 8]; /* w, then the pairs' scales */
    for (int64_t k0 = 0; k0 < n; k0 += KC) {
        const int keys = n - k0 < KC ? (int)(n - k0) : KC;
        if (!chunk_codes(cols_mode, v->t == FLAT_I4, mb, rows, keys, k0, G, pairs, p, ld_p, v, &pc, wbuf))
            return k0;
        chunk_passes(mb, cols_mode, rows, keys, k0, n, v, dv, &pc, colsc, G, o, ld_o, alpha);
    }
    return n;
}

void flat_pv__avx512_vnni(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                          const flat_kv_src *v, float *restrict o, int64_t ld_o,
                          const float *restrict alpha)
{
    assert(m >= 1 && n >= 0 && dv >= 1);
    const int sm = v->t == FLAT_I8 || v->t == FLAT_I4 ? flat_scale_mode_avx512(v) : FLAT_SC_LANES;
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
        const int64_t done = rows_q(mb, cols_mode, rows, n, dv, pr, ld_p, v, colsc, orow, ld_o, ar);
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
