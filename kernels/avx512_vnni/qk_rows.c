/* S = Q K^T for the decode path on int8 and int4 K: vpdpbusd on the codes
 * (kernels.h). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "kernels.h"

#define MR FLAT_AVX512_MR
#define MAX_D 1024
#define MAX_B (MAX_D / 64)
/* K rows are prefetched this many keys ahead: 8 KiB of int8 rows at d = 128
 * (32 and 128 measured no better, flat-bench-quant decode_4k). */
#define PREFETCH 64
#define CHAIN_AHEAD FLAT_AVX512_VNNI_CHAIN_AHEAD

/* What every block of a call shares: up to 4 rows of Q as int8 codes and
 * their per-lane corrections, each block's K scale map. A block is one
 * 64-byte line of a K row: 64 int8 codes, or 128 int4 codes, whose even
 * elements (low nibbles) and odd ones (high) are taken apart; Q's codes of
 * an int4 block lie the same way, its even elements' 64 then its odd ones'. */
typedef struct {
    int8_t q8[4][MAX_D] __attribute__((aligned(64)));
    int32_t corr[4][MAX_B][16] __attribute__((aligned(64))); /* -offset * lane's Q codes */
    int32_t corr_all[4][16] __attribute__((aligned(64)));    /* their sum over blocks */
    float sq[16];                                             /* row scale, per pair lane */
    int nb;                                                   /* blocks (64-byte lines) */
    int d;                                                    /* dims of a row */
    int i4;                                                   /* K is FLAT_I4 */
    __mmask64 tail;                                           /* valid bytes of the last */
    __mmask16 gmask;                                          /* CHUNK: the row's groups */
    int64_t scale_ahead;                                      /* bytes PREFETCH scale rows on */
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
    const int span = c->nb * (c->i4 ? 128 : 64);
    int8_t nat[MAX_D] __attribute__((aligned(16)));
    int8_t *codes = c->i4 ? nat : c->q8[i];
    for (int k = 0; k < span; k += 16) {
        const __mmask16 m = k < d ? flat_tail_mask_avx512(d - k < 16 ? d - k : 16) : 0;
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), inv));
        v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
        _mm_store_si128((__m128i *)(codes + k), _mm512_cvtepi32_epi8(v));
    }
    if (c->i4) /* each block's even elements, then its odd ones */
        for (int b = 0; b < c->nb; b++)
            for (int j = 0; j < 64; j++) {
                c->q8[i][128 * b + j] = nat[128 * b + 2 * j];
                c->q8[i][128 * b + 64 + j] = nat[128 * b + 2 * j + 1];
            }
    /* K's codes are read offset to unsigned (int8 + 128, int4 + 8) */
    const __m512i offset = _mm512_set1_epi8(c->i4 ? 8 : (char)0x80);
    __m512i all = _mm512_setzero_si512();
    for (int b = 0; b < c->nb; b++) {
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset,
                                        _mm512_load_si512(c->q8[i] + (c->i4 ? 128 : 64) * b));
        if (c->i4)
            s = _mm512_dpbusd_epi32(s, offset, _mm512_load_si512(c->q8[i] + 128 * b + 64));
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

/* Lane l of block b holds columns 64b + 4l .. +3 (int4: 128b + 8l .. +7),
 * all in one group (group a multiple of 16): sidx[b] maps lanes to the row's
 * groups (all of them, loaded once per key, when there are at most 16). */
static int block_maps(int64_t group, int d, q8_call *c)
{
    const int groups = (int)(d / group), per = c->i4 ? 8 : 4;
    for (int b = 0; b < c->nb; b++) {
        int32_t idx[16];
        for (int l = 0; l < 16; l++) {
            const int col = 16 * per * b + per * l < d ? 16 * per * b + per * l : d - 1;
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

/* K row's block b as the unsigned operand: int8 codes + 128 in kx[0]; int4
 * codes + 8, the even elements (low nibbles) in kx[0] and the odd ones in
 * kx[1]. The bytes past d are not read (their codes meet Q codes of 0). */
static inline __attribute__((always_inline)) void
key_block(const flat_dtype kt, const void *row, const q8_call *c, int b, __m512i kx[2])
{
    const int8_t *r = (const int8_t *)row + 64 * b;
    const __m512i x = b == c->nb - 1 ? _mm512_maskz_loadu_epi8(c->tail, r) : _mm512_loadu_si512(r);
    if (kt == FLAT_I8) {
        kx[0] = _mm512_xor_si512(x, _mm512_set1_epi8((char)0x80));
        return;
    }
    const __m512i u = _mm512_xor_si512(x, _mm512_set1_epi8((char)0x88)), nib = _mm512_set1_epi8(0x0f);
    kx[0] = _mm512_and_si512(u, nib);
    kx[1] = _mm512_and_si512(_mm512_srli_epi16(u, 4), nib);
}

/* Row i's int8 dot with block b, added to acc. */
static inline __attribute__((always_inline)) __m512i
dot_block(const flat_dtype kt, __m512i acc, const __m512i kx[2], const q8_call *c, int i, int b)
{
    if (kt == FLAT_I8)
        return _mm512_dpbusd_epi32(acc, kx[0], _mm512_load_si512(c->q8[i] + 64 * b));
    acc = _mm512_dpbusd_epi32(acc, kx[0], _mm512_load_si512(c->q8[i] + 128 * b));
    return _mm512_dpbusd_epi32(acc, kx[1], _mm512_load_si512(c->q8[i] + 128 * b + 64));
}

/* mb rows x kb = 16 / mb keys from key j0 (keys of them valid): one int8 dot
 * per (row, key), fp32 vectors per pair, the reduction tree, times sq. */
static inline __attribute__((always_inline)) void
block(const flat_dtype kt, const int sm, const int mb, const int NB, int m,
      int keys, int64_t j0, int64_t n, const flat_kv_src *k, const q8_call *c, float *restrict s,
      int64_t ld_s)
{
    const int kb = 16 / mb, nb = NB ? NB : c->nb;
    __m512 acc[16];
    __m512i iacc[16];
    flat_prefetch_chain_avx512(k, j0, keys, n, CHAIN_AHEAD, 0, c->d);
#pragma GCC unroll 16
    for (int u = 0; u < kb; u++) {
        const int64_t j = j0 + (u < keys ? u : 0); /* past the call: key j0 again, dropped */
        const void *row = flat_kv_row(k, j, kt);
        const void *srow = sm == FLAT_SC_CHUNK ? flat_kv_scale_row(k, j, kt) : NULL;
        if (j + PREFETCH < n) {
#pragma GCC unroll 4
            for (int b = 0; b < nb; b++)
                _mm_prefetch((const char *)flat_elem_ptr(row, PREFETCH * k->ld, kt) + 64 * b,
                             _MM_HINT_T0);
            if (srow)
                _mm_prefetch((const char *)srow + c->scale_ahead, _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int i = 0; i < mb; i++) {
            acc[i * kb + u] = _mm512_setzero_ps();
            iacc[i * kb + u] = _mm512_load_si512(c->corr_all[i]);
        }
        /* the scales' type is a branch per key, not compiled apart (a third
         * of the instances: this file's build time) */
        const __m512 sall =
            sm == FLAT_SC_CHUNK ? row_scales(k->scale_t, srow, c->gmask) : _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int b = 0; b < nb; b++) {
            __m512i kx[2];
            key_block(kt, row, c, b, kx);
            if (sm == FLAT_SC_COLS) {
#pragma GCC unroll 4
                for (int i = 0; i < mb; i++)
                    iacc[i * kb + u] = dot_block(kt, iacc[i * kb + u], kx, c, i, b);
                continue;
            }
            const __m512 sk = _mm512_permutexvar_ps(c->sidx[b], sall);
#pragma GCC unroll 4
            for (int i = 0; i < mb; i++) {
                const __m512i dot = dot_block(kt, _mm512_load_si512(c->corr[i][b]), kx, c, i, b);
                acc[i * kb + u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sk, acc[i * kb + u]);
            }
        }
        if (sm == FLAT_SC_COLS) /* reduced as int32, widened once per 16 */
#pragma GCC unroll 4
            for (int i = 0; i < mb; i++)
                acc[i * kb + u] = _mm512_castsi512_ps(iacc[i * kb + u]);
    }
    const __m512 red = flat_reduce16_any_avx512(sm == FLAT_SC_COLS, acc);
    const __m512 sums = _mm512_mul_ps(
        sm == FLAT_SC_COLS ? _mm512_cvtepi32_ps(_mm512_castps_si512(red)) : red, _mm512_loadu_ps(c->sq));
    flat_store_pair_sums_avx512(sums, mb, m, keys, s + j0, ld_s);
}

static inline __attribute__((always_inline)) void
rows_nb(const flat_dtype kt, const int sm, const int mb, const int NB, int m,
        int n, const flat_kv_src *k, const q8_call *c, float *restrict s, int64_t ld_s)
{
    const int kb = 16 / mb;
    int64_t j = 0;
    for (; j + kb <= n; j += kb)
        block(kt, sm, mb, NB, m, kb, j, n, k, c, s, ld_s);
    if (j < n)
        block(kt, sm, mb, NB, m, (int)(n - j), j, n, k, c, s, ld_s);
}

/* The common block counts compile apart (the block loop unrolled): int8
 * head dims of 65-128 (two lines), int4 ones up to 128 (one). */
static inline __attribute__((always_inline)) void
rows_kt(const flat_dtype kt, const int sm, const int mb, int m, int n,
        const flat_kv_src *k, const q8_call *c, float *restrict s, int64_t ld_s)
{
    if (kt == FLAT_I8 && c->nb == 2)
        rows_nb(kt, sm, mb, 2, m, n, k, c, s, ld_s);
    else if (c->nb == 1)
        rows_nb(kt, sm, mb, 1, m, n, k, c, s, ld_s);
    else
        rows_nb(kt, sm, mb, 0, m, n, k, c, s, ld_s);
}

static inline __attribute__((always_inline)) void
rows_mb(const flat_dtype kt, const int sm, int mb, int m, int n,
        const flat_kv_src *k, const q8_call *c, float *restrict s, int64_t ld_s)
{
    if (mb == 1)
        rows_kt(kt, sm, 1, m, n, k, c, s, ld_s);
    else if (mb == 2)
        rows_kt(kt, sm, 2, m, n, k, c, s, ld_s);
    else
        rows_kt(kt, sm, 4, m, n, k, c, s, ld_s);
}

/* One function per K type (their instances apart, as convert.h's
 * FLAT_KV_TYPE_FNS does for the other tables). */
#define ROWS_FN(name, kt)                                                                       \
    static void name(int sm, int mb, int m, int n, const flat_kv_src *k, const q8_call *c,      \
                     float *restrict s, int64_t ld_s)                                            \
    {                                                                                           \
        if (sm == FLAT_SC_COLS)                                                                 \
            rows_mb(kt, FLAT_SC_COLS, mb, m, n, k, c, s, ld_s);                                 \
        else                                                                                    \
            rows_mb(kt, FLAT_SC_CHUNK, mb, m, n, k, c, s, ld_s);                                \
    }
ROWS_FN(rows_i8, FLAT_I8)
ROWS_FN(rows_i4, FLAT_I4)

/* Rows r0 .. r0+rows-1 (rows <= 4) of the panel; 0 if declined. */
static int group_rows(int r0, int rows, int d, int n, const float *restrict qp,
                      const flat_kv_src *k, float *restrict s, int64_t ld_s)
{
    const int sm = flat_scale_mode_avx512(k);
    const int mb = rows == 1 ? 1 : rows == 2 ? 2 : 4;
    q8_call c;
    c.i4 = k->t == FLAT_I4;
    c.d = d;
    const int per = c.i4 ? 128 : 64; /* codes a line */
    c.nb = (d + per - 1) / per;
    const int last = (int)flat_dtype_bytes(k->t, d) - 64 * (c.nb - 1); /* bytes of the last line */
    c.tail = last >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << last) - 1);
    c.scale_ahead = PREFETCH * k->ld_scale * (k->scale_t == FLAT_F16 ? 2 : 4);
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
    if (c.i4)
        rows_i4(sm, mb, rows, n, k, &c, s, ld_s);
    else
        rows_i8(sm, mb, rows, n, k, &c, s, ld_s);
    return 1;
}

void flat_qk_rows__avx512_vnni(int m, int d, int n, const float *restrict qp,
                               const flat_kv_src *src, float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    const int quant = src->t == FLAT_I8 || src->t == FLAT_I4;
    const int sm = quant ? flat_scale_mode_avx512(src) : FLAT_SC_LANES;
    if (n == 0 || d > MAX_D || !src->scale || sm == FLAT_SC_LANES) {
        flat_qk_rows__avx512(m, d, n, qp, src, s, ld_s);
        return;
    }
    for (int r0 = 0; r0 < m; r0 += 4) {
        const int rows = m - r0 < 4 ? m - r0 : 4;
        if (!group_rows(r0, rows, d, n, qp, src, s + r0 * ld_s, ld_s)) { /* Q not finite */
            flat_qk_rows__avx512(m, d, n, qp, src, s, ld_s);
            return;
        }
    }
}
