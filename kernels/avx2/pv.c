/* O = diag(alpha) O + P V, rows blocked by FLAT_AVX2_PV_MR. */
#ifndef __AVX2__
#error "kernels/avx2 must be compiled with -mavx2 -mfma"
#endif

#include <assert.h>
#include <immintrin.h>
#include <stddef.h>

#include "../ukernel.h"
#include "kernels.h"

/*
 * The register block is R rows (R <= 6) x 16 columns of O: per key j, two V
 * vectors of row j meet R broadcasts of P[i][j], 2R independent FMA chains.
 * Columns past the last multiple of 16 take an 8-wide block, then a masked
 * one; V and O lanes past dv are never touched.
 *
 * Keys go in steps of PV_KEYS, and each step sweeps all of dv, so V is read
 * row after row (sequential when ld_v == dv) instead of down 64-byte column
 * strips, which the hardware prefetchers follow poorly. Each step also
 * prefetches the line PV_PREFETCH rows ahead (into the next step), never
 * past row n - 1. The price is one load and store of the O block per step,
 * from L1. Measured on the runtime's call pattern (6-row blocks, 96-key
 * calls, dv = 64, Zen 5): strip-wise 108 GFLOP/s with V in L2 and 94 with V
 * in L3; stepped with the prefetch 119 and 110; stepped without it, 104/87.
 *
 * R is a compile-time constant in every caller, so the loops over rows
 * unroll and the accumulators stay in registers.
 */
#define PV_KEYS 24
#define PV_PREFETCH 24

typedef struct {
    const float *alpha; /* first step: O = alpha * O, or 0 if NULL */
    int first;          /* later steps accumulate onto O as stored */
    int n;              /* keys in the whole call, the prefetch bound */
    int tail;           /* rows lie off 64-byte lines: dv, whose last byte's
                           line column 0 also prefetches; else 0 */
} pv_step;

static inline __attribute__((always_inline)) __m256
pv_start(const float *o, pv_step st, int i, __m256i mask, int masked)
{
    if (st.first && !st.alpha)
        return _mm256_setzero_ps();
    const __m256 oi = masked ? _mm256_maskload_ps(o, mask) : _mm256_loadu_ps(o);
    return st.first ? _mm256_mul_ps(_mm256_set1_ps(st.alpha[i]), oi) : oi;
}

/* pf: this column block starts a 64-byte line of the V row (always for
 * f32; every other 16-column block of a 16-bit type, every 4th of a byte
 * type), so it prefetches; and, at column 0, the row's scales. */
static inline __attribute__((always_inline)) void
prefetch_ahead(const flat_dtype t, const int pf, const flat_kv_src *vs, int64_t col, int j, int j0,
               pv_step st)
{
    if (pf && j0 + j + PV_PREFETCH < st.n) {
        _mm_prefetch((const char *)flat_elem_ptr(flat_kv_row(vs, j0 + j + PV_PREFETCH, t), col, t),
                     _MM_HINT_T0);
        const void *sj = flat_kv_scale_row(vs, j0 + j + PV_PREFETCH, t);
        if (st.tail && col == 0)
            _mm_prefetch((const char *)flat_elem_ptr(flat_kv_row(vs, j0 + j + PV_PREFETCH, t),
                                                     st.tail, t) - 1,
                         _MM_HINT_T0);
        if (sj && col == 0)
            _mm_prefetch((const char *)sj, _MM_HINT_T0);
    }
}

/* Keys j0 .. j0+nk of one 16-column block (columns col ..). */
static inline __attribute__((always_inline)) void
pv_cols16(const flat_dtype t, const int pf, int R, int j0, int nk, const float *restrict p,
          int64_t ld_p, const flat_kv_src *vs, int64_t col, float *restrict o, int64_t ld_o,
          pv_step st)
{
    const __m256i none = _mm256_setzero_si256();
    __m256 acc0[FLAT_AVX2_PV_MR], acc1[FLAT_AVX2_PV_MR];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
        acc0[i] = pv_start(o + i * ld_o, st, i, none, 0);
        acc1[i] = pv_start(o + i * ld_o + 8, st, i, none, 0);
    }
    for (int j = 0; j < nk; j++) {
        prefetch_ahead(t, pf, vs, col, j, j0, st);
        const void *vj = flat_kv_row(vs, j0 + j, t), *sj = flat_kv_scale_row(vs, j0 + j, t);
        const __m256 v0 = flat_kv_load8_avx2(t, vs, vj, sj, col, 8);
        const __m256 v1 = flat_kv_load8_avx2(t, vs, vj, sj, col + 8, 8);
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            const __m256 pij = _mm256_broadcast_ss(p + i * ld_p + j);
            acc0[i] = _mm256_fmadd_ps(pij, v0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(pij, v1, acc1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
        _mm256_storeu_ps(o + i * ld_o, acc0[i]);
        _mm256_storeu_ps(o + i * ld_o + 8, acc1[i]);
    }
}

/* Up to 8 columns; `cols` < 8 switches to masked loads and stores. */
static inline __attribute__((always_inline)) void
pv_cols8(const flat_dtype t, const int pf, int R, int j0, int nk, int cols,
         const float *restrict p, int64_t ld_p, const flat_kv_src *vs, int64_t col,
         float *restrict o, int64_t ld_o, pv_step st)
{
    const int masked = cols < 8;
    const __m256i mask = flat_tail_mask_avx2(cols);
    __m256 acc[FLAT_AVX2_PV_MR];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++)
        acc[i] = pv_start(o + i * ld_o, st, i, mask, masked);
    for (int j = 0; j < nk; j++) {
        prefetch_ahead(t, pf, vs, col, j, j0, st);
        const __m256 vj = flat_kv_load8_avx2(t, vs, flat_kv_row(vs, j0 + j, t),
                                             flat_kv_scale_row(vs, j0 + j, t), col, cols);
#pragma GCC unroll 6
        for (int i = 0; i < R; i++)
            acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + i * ld_p + j), vj, acc[i]);
    }
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
        if (masked)
            _mm256_maskstore_ps(o + i * ld_o, mask, acc[i]);
        else
            _mm256_storeu_ps(o + i * ld_o, acc[i]);
    }
}

/* n == 0 still runs one (empty) step: O = alpha * O or 0. */
static inline __attribute__((always_inline)) void
pv_rows(const flat_dtype t, int R, int n, int dv, const float *restrict p, int64_t ld_p,
        const flat_kv_src *v, float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    const int line = (int)(512 / flat_dtype_bits(t)); /* columns per 64-byte line */
    const int tail = flat_rows_unaligned(v->data, v->ld, t) ? dv : 0;
    int j0 = 0;
    do {
        const int nk = n - j0 < PV_KEYS ? n - j0 : PV_KEYS;
        const pv_step st = {alpha, j0 == 0, n, tail};
        const float *pj = p + j0;
        int c = 0;
        for (; c + 16 <= dv; c += 16)
            pv_cols16(t, c % line == 0, R, j0, nk, pj, ld_p, v, c, o + c, ld_o, st);
        for (; c < dv; c += 8)
            pv_cols8(t, c % line == 0, R, j0, nk, dv - c < 8 ? dv - c : 8, pj, ld_p, v, c, o + c,
                     ld_o, st);
        j0 += PV_KEYS;
    } while (j0 < n);
}

static inline __attribute__((always_inline)) void
pv(const flat_dtype t, int m, int n, int dv, const float *restrict p, int64_t ld_p,
   const flat_kv_src *v, float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    assert(m >= 1 && n >= 0 && dv >= 1);
    assert(n == 0 || m == 1 || ld_p >= n);
    assert(m == 1 || ld_o >= dv);
    int r = 0;
    for (; r + FLAT_AVX2_PV_MR <= m; r += FLAT_AVX2_PV_MR)
        pv_rows(t, 6, n, dv, p + r * ld_p, ld_p, v, o + r * ld_o, ld_o, alpha ? alpha + r : NULL);
    if (r >= m)
        return;
    /* The last row block, 1..5 rows, one instance per height. */
    const int R = m - r;
    p += r * ld_p, o += r * ld_o, alpha = alpha ? alpha + r : NULL;
    switch (R) {
    case 1: pv_rows(t, 1, n, dv, p, ld_p, v, o, ld_o, alpha); break;
    case 2: pv_rows(t, 2, n, dv, p, ld_p, v, o, ld_o, alpha); break;
    case 3: pv_rows(t, 3, n, dv, p, ld_p, v, o, ld_o, alpha); break;
    case 4: pv_rows(t, 4, n, dv, p, ld_p, v, o, ld_o, alpha); break;
    default: pv_rows(t, 5, n, dv, p, ld_p, v, o, ld_o, alpha); break;
    }
}

/* One function per V type (convert.h's FLAT_KV_TYPE_FNS says why). */
FLAT_KV_PV_FNS(pv_t, pv)
#define pv_t(T, ...) pv_t_##T(__VA_ARGS__)

void flat_pv_6__avx2(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                     const flat_kv_src *src, float *restrict o, int64_t ld_o,
                     const float *restrict alpha)
{
    FLAT_KV_SWITCH(src->t, pv_t, m, n, dv, p, ld_p, src, o, ld_o, alpha);
}

/*
 * y = scale * x rounded to t, 8 lanes at a time; the last n % 8 elements go
 * one by one through kernels/convert.h (AVX2 has no 16-bit masked store, and
 * nothing past n may be written). f16: vcvtps2ph with round-to-nearest-even,
 * IEEE rounding as convert.h, overflow and NaN included. bf16: convert.h's
 * integer rounding (add 0x7fff plus the lowest kept bit; NaN gets its quiet
 * bit), then the top halves packed to 16 bits.
 */
static inline __attribute__((always_inline)) void
store_row(const flat_dtype t, int n, const float *restrict x, float scale, void *restrict y)
{
    const __m256 vs = _mm256_set1_ps(scale);
    int c = 0;
    for (; c + 8 <= n; c += 8) {
        const __m256 v = _mm256_mul_ps(vs, _mm256_loadu_ps(x + c));
        __m128i h;
        if (t == FLAT_F32) {
            _mm256_storeu_ps((float *)y + c, v);
            continue;
        } else if (t == FLAT_F16) {
            h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        } else {
            const __m256i u = _mm256_castps_si256(v);
            const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
            __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
            const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), nan);
            r = _mm256_srli_epi32(r, 16);
            /* packus works within 128-bit lanes: [r0-3 r0-3 | r4-7 r4-7]; the
             * qword permute brings r0-3 and r4-7 together */
            const __m256i packed = _mm256_packus_epi32(r, r);
            h = _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
        }
        _mm_storeu_si128((__m128i *)((uint16_t *)y + c), h);
    }
    for (; c < n; c++)
        flat_store_elem(y, c, scale * x[c], t);
}

void flat_store_row__avx2(int n, const float *restrict x, float scale, flat_dtype t,
                          void *restrict y)
{
    assert(n >= 1);
    switch (t) {
    case FLAT_F16: store_row(FLAT_F16, n, x, scale, y); break;
    case FLAT_BF16: store_row(FLAT_BF16, n, x, scale, y); break;
    default: store_row(FLAT_F32, n, x, scale, y); break;
    }
}

/* The values pv_cols16 / pv_cols8 multiply, 8 columns at a time. */
static inline __attribute__((always_inline)) void
widen_rows(const flat_dtype t, int n, int cols, const flat_kv_src *v, float *restrict y,
           int64_t ld_y)
{
    for (int j = 0; j < n; j++) {
        const void *row = flat_kv_row(v, j, t), *srow = flat_kv_scale_row(v, j, t);
        for (int c = 0; c < cols; c += 8) {
            const int k = cols - c < 8 ? cols - c : 8;
            const __m256 x = flat_kv_load8_avx2(t, v, row, srow, c, k);
            if (k == 8)
                _mm256_storeu_ps(y + j * ld_y + c, x);
            else
                _mm256_maskstore_ps(y + j * ld_y + c, flat_tail_mask_avx2(k), x);
        }
    }
}

void flat_widen_rows__avx2(int n, int cols, const flat_kv_src *src, float *restrict y,
                           int64_t ld_y)
{
    FLAT_KV_SWITCH(src->t, widen_rows, n, cols, src, y, ld_y);
}
