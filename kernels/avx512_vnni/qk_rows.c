/* S = Q K^T for the decode path on int8 K: vpdpbusd on the codes (kernels.h). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include "../ukernel.h"
#include "kernels.h"

#define MR FLAT_AVX512_MR
#define MAX_D 1024
#define MAX_B (MAX_D / 64)
/* K rows are prefetched this many keys ahead: 8 KiB of int8 rows at d = 128. */
/* K rows are prefetched this many keys ahead: 8 KiB of int8 rows at d = 128
 * (32 and 128 measured no better, flat-bench-quant decode_4k). */
#define PREFETCH 64

/* What every block of a call shares: up to 4 rows of Q as int8 codes and
 * their per-lane corrections, each 64-code block's K scale map. */
typedef struct {
    int8_t q8[4][MAX_D] __attribute__((aligned(64)));
    int32_t corr[4][MAX_B][16] __attribute__((aligned(64))); /* -128 * lane's 4 Q codes */
    int32_t corr_all[4][16] __attribute__((aligned(64)));    /* their sum over blocks */
    float sq[16];                                             /* row scale, per pair lane */
    int nb;                                                   /* 64-code blocks */
    __mmask64 tail;                                           /* valid bytes of the last */
    __mmask16 gmask;                                          /* CHUNK: the row's groups */
    __m512i sidx[MAX_B];                                      /* lane -> its group */
} q8_call;

/* Row i of the panel at qp (column i; COLS: times each column's K scale) as
 * int8 codes, q = round(x * 127 / max|x|), nearest even. 0 when Q is not
 * finite (the caller then runs the fp32 kernel). */
static int quantize_row(int i, int valid, int d, const float *restrict qp, const float *colsc,
                        q8_call *c, float *sq)
{
    float x[MAX_D];
    __m512 mx = _mm512_setzero_ps();
    __mmask16 bad = 0;
    const __m512i step = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(MR));
    for (int k = 0; k < d; k += 16) {
        const __mmask16 m = valid ? flat_tail_mask_avx512(d - k < 16 ? d - k : 16) : 0;
        __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, step, qp + (int64_t)k * MR + i, 4);
        if (colsc)
            v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, colsc + k));
        _mm512_storeu_ps(x + k, v);
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) |
               _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(3.0e38f), _CMP_GT_OQ);
        mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
    }
    if (bad) /* inf or NaN */
        return 0;
    const float amax = _mm512_reduce_max_ps(mx);
    *sq = amax / 127.0f;
    const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    for (int k = 0; k < c->nb * 64; k += 16) {
        const __mmask16 m = k < d ? flat_tail_mask_avx512(d - k < 16 ? d - k : 16) : 0;
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), inv));
        v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
        _mm_store_si128((__m128i *)(c->q8[i] + k), _mm512_cvtepi32_epi8(v));
    }
    __m512i all = _mm512_setzero_si512();
    for (int b = 0; b < c->nb; b++) {
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80),
                                              _mm512_load_si512(c->q8[i] + 64 * b));
        const __m512i neg = _mm512_sub_epi32(_mm512_setzero_si512(), s);
        _mm512_store_si512(c->corr[i][b], neg);
        all = _mm512_add_epi32(all, neg);
    }
    _mm512_store_si512(c->corr_all[i], all);
    return 1;
}

/* Per-column K scales (COLS: one scale row for every key) as fp32. */
static void column_scales(const flat_kv_src *k, int d, float *colsc)
{
    for (int c = 0; c < d; c++) {
        const int64_t g = c / k->group;
        colsc[c] = k->scale_t == FLAT_F16 ? _cvtsh_ss(((const uint16_t *)k->scale)[g])
                                          : ((const float *)k->scale)[g];
    }
}

/* Lane l of block b holds columns 64b + 4l .. +3, all in group (64b+4l) / group
 * (group a multiple of 16): sidx[b] maps lanes to the row's groups (all of
 * them, loaded once per key, when there are at most 16). */
static int block_maps(int64_t group, int d, q8_call *c)
{
    const int groups = (int)(d / group);
    for (int b = 0; b < c->nb; b++) {
        int32_t idx[16];
        for (int l = 0; l < 16; l++) {
            const int col = 64 * b + 4 * l < d ? 64 * b + 4 * l : d - 1;
            idx[l] = (int)(col / group);
        }
        c->sidx[b] = _mm512_loadu_si512(idx);
    }
    c->gmask = flat_tail_mask_avx512(groups);
    return groups <= 16;
}

/* The key's scales of every group as fp32 (at most 16). */
static inline __attribute__((always_inline)) __m512 row_scales(const flat_dtype st,
                                                               const void *srow, __mmask16 m)
{
    if (st == FLAT_F16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, srow));
    return _mm512_maskz_loadu_ps(m, srow);
}

/* K row's block b, each code + 128 (the unsigned operand); the bytes past d
 * are not read (0 + 128 against Q codes of 0). */
static inline __attribute__((always_inline)) __m512i key_block(const void *row, const q8_call *c,
                                                               int b)
{
    const int8_t *r = (const int8_t *)row + 64 * b;
    const __m512i x = b == c->nb - 1 ? _mm512_maskz_loadu_epi8(c->tail, r) : _mm512_loadu_si512(r);
    return _mm512_xor_si512(x, _mm512_set1_epi8((char)0x80));
}

/* mb rows x kb = 16 / mb keys from key j0 (keys of them valid): one int8 dot
 * per (row, key), fp32 vectors per pair, the reduction tree, times sq. */
static inline __attribute__((always_inline)) void
block(const flat_dtype st, const int sm, const int mb, const int NB, int m, int keys, int64_t j0,
      int64_t n, const flat_kv_src *k, const q8_call *c, float *restrict s, int64_t ld_s)
{
    const int kb = 16 / mb, nb = NB ? NB : c->nb;
    __m512 acc[16];
    __m512i iacc[16];
#pragma GCC unroll 16
    for (int u = 0; u < kb; u++) {
        const int64_t j = j0 + (u < keys ? u : 0); /* past the call: key j0 again, dropped */
        const void *row = flat_kv_row(k, j, FLAT_I8);
        const void *srow = sm == FLAT_SC_CHUNK ? flat_kv_scale_row(k, j, FLAT_I8) : NULL;
        if (j + PREFETCH < n) {
#pragma GCC unroll 4
            for (int b = 0; b < nb; b++)
                _mm_prefetch((const char *)row + PREFETCH * k->ld + 64 * b, _MM_HINT_T0);
            if (srow)
                _mm_prefetch(flat_elem_ptr(srow, PREFETCH * k->ld_scale, st), _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int i = 0; i < mb; i++) {
            acc[i * kb + u] = _mm512_setzero_ps();
            iacc[i * kb + u] = _mm512_load_si512(c->corr_all[i]);
        }
        const __m512 sall = sm == FLAT_SC_CHUNK ? row_scales(st, srow, c->gmask) : _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int b = 0; b < nb; b++) {
            const __m512i kx = key_block(row, c, b);
            if (sm == FLAT_SC_COLS) {
#pragma GCC unroll 4
                for (int i = 0; i < mb; i++)
                    iacc[i * kb + u] = _mm512_dpbusd_epi32(
                        iacc[i * kb + u], kx, _mm512_load_si512(c->q8[i] + 64 * b));
                continue;
            }
            const __m512 sk = _mm512_permutexvar_ps(c->sidx[b], sall);
#pragma GCC unroll 4
            for (int i = 0; i < mb; i++) {
                const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(c->corr[i][b]), kx,
                                                        _mm512_load_si512(c->q8[i] + 64 * b));
                acc[i * kb + u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sk, acc[i * kb + u]);
            }
        }
        if (sm == FLAT_SC_COLS)
#pragma GCC unroll 4
            for (int i = 0; i < mb; i++)
                acc[i * kb + u] = _mm512_cvtepi32_ps(iacc[i * kb + u]);
    }
    const __m512 sums = _mm512_mul_ps(flat_reduce16_avx512(acc), _mm512_loadu_ps(c->sq));
    flat_store_pair_sums_avx512(sums, mb, m, keys, s + j0, ld_s);
}

static inline __attribute__((always_inline)) void
rows_nb(const flat_dtype st, const int sm, const int mb, const int NB, int m, int n,
        const flat_kv_src *k, const q8_call *c, float *restrict s, int64_t ld_s)
{
    const int kb = 16 / mb;
    int64_t j = 0;
    for (; j + kb <= n; j += kb)
        block(st, sm, mb, NB, m, kb, j, n, k, c, s, ld_s);
    if (j < n)
        block(st, sm, mb, NB, m, (int)(n - j), j, n, k, c, s, ld_s);
}

/* Head dims of 65-128 (two blocks) compile apart: the block loop unrolled. */
static inline __attribute__((always_inline)) void
rows_i8(const flat_dtype st, const int sm, const int mb, int m, int n, const flat_kv_src *k,
        const q8_call *c, float *restrict s, int64_t ld_s)
{
    if (c->nb == 2)
        rows_nb(st, sm, mb, 2, m, n, k, c, s, ld_s);
    else if (c->nb == 1)
        rows_nb(st, sm, mb, 1, m, n, k, c, s, ld_s);
    else
        rows_nb(st, sm, mb, 0, m, n, k, c, s, ld_s);
}

#define ROWS_I8(st, sm)                                                                   \
    do {                                                                                  \
        if (mb == 1)                                                                      \
            rows_i8(st, sm, 1, rows, n, k, &c, s, ld_s);                                  \
        else if (mb == 2)                                                                 \
            rows_i8(st, sm, 2, rows, n, k, &c, s, ld_s);                                  \
        else                                                                              \
            rows_i8(st, sm, 4, rows, n, k, &c, s, ld_s);                                  \
    } while (0)

/* Rows r0 .. r0+rows-1 (rows <= 4) of the panel; 0 if declined. */
static int group_i8(int r0, int rows, int d, int n, const float *restrict qp,
                    const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    const int sm = flat_scale_mode_avx512(k);
    const int mb = rows == 1 ? 1 : rows == 2 ? 2 : 4;
    q8_call c;
    c.nb = (d + 63) / 64;
    c.tail = d % 64 ? (__mmask64)((1ull << (d % 64)) - 1) : ~(__mmask64)0;
    float colsc[MAX_D];
    if (sm == FLAT_SC_COLS)
        column_scales(k, d, colsc);
    else if (!block_maps(k->group, d, &c))
        return 0; /* over 16 groups a row */
    float sq[4] = {0, 0, 0, 0};
    for (int i = 0; i < mb; i++)
        if (!quantize_row(i, i < rows, d, qp + r0, sm == FLAT_SC_COLS ? colsc : NULL, &c, &sq[i]))
            return 0;
    for (int p = 0; p < 16; p++)
        c.sq[p] = sq[p / (16 / mb)];
    if (sm == FLAT_SC_COLS)
        ROWS_I8(FLAT_F32, FLAT_SC_COLS);
    else if (k->scale_t == FLAT_F16)
        ROWS_I8(FLAT_F16, FLAT_SC_CHUNK);
    else
        ROWS_I8(FLAT_F32, FLAT_SC_CHUNK);
    return 1;
}

void flat_qk_rows__avx512_vnni(int m, int d, int n, const float *restrict qp,
                               const flat_kv_src *src, float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    const int sm = src->t == FLAT_I8 ? flat_scale_mode_avx512(src) : FLAT_SC_LANES;
    if (n == 0 || d > MAX_D || !src->scale || sm == FLAT_SC_LANES) {
        flat_qk_rows__avx512(m, d, n, qp, src, s, ld_s);
        return;
    }
    for (int r0 = 0; r0 < m; r0 += 4) {
        const int rows = m - r0 < 4 ? m - r0 : 4;
        if (!group_i8(r0, rows, d, n, qp, src, s + r0 * ld_s, ld_s)) { /* Q not finite */
            flat_qk_rows__avx512(m, d, n, qp, src, s, ld_s);
            return;
        }
    }
}
