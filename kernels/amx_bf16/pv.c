/* O = diag(alpha) O + P V on tiles: 32 rows x 32 columns (or 16 x 64) per pass. */
#include <assert.h>
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define PV_MR FLAT_AMX_BF16_PV_MR
/* Keys whose P is rounded to bf16 at once: 32 rows x 256 keys = 16 KiB. */
#define KC 256
/* Columns of the V pair block: four B tiles side by side. */
#define NC 64

/*
 * A is P as bf16, row-major: 16 rows x 32 keys per tile, straight from a
 * P block rounded once per KC keys. B is V in key pairs: row q of a tile
 * holds (V[2q][c], V[2q+1][c]) for 16 columns; they are built per 32 keys x
 * 32 or 64 columns in an L1 block (vpermt2w interleaves two rows), each V
 * element once per block of 32 rows (pv_mr = 32: the runtime's row groups),
 * and serve the four C tiles of the pass (2 x 2 for 32 rows). O stays in
 * the C tiles across the KC keys and goes through memory between KC blocks
 * (alpha is applied to O once, before the first). Keys past n are zero in
 * both P and V (a NaN in V past the call is never read), columns past dv
 * zero in V and cut when O is stored.
 */
/* Tile numbers: literal constants, the instructions encode them. */
#define T_C0 0
#define T_C1 1
#define T_C2 2
#define T_C3 3
#define T_A0 4
#define T_A1 5
#define T_B0 6
#define T_B1 7

static void configure(void)
{
    flat_tile_config c;
    flat_tile_config_init(&c);
    for (int t = T_C0; t <= T_B1; t++)
        flat_tile_shape(&c, t, 16, 64);
    flat_tile_configure(&c);
}

/* P rows [0, rows) x keys [0, nk) as bf16, keys up to a multiple of 32 zero. */
static void convert_p(int rows, int nk, const float *restrict p, int64_t ld_p,
                      uint16_t p16[32][KC])
{
    const int whole = nk / 32 * 32, cnt = nk - whole, end = (nk + 31) / 32 * 32;
    const __mmask16 lo = flat_tail_mask_avx512(cnt < 16 ? cnt : 16);
    const __mmask16 hi = flat_tail_mask_avx512(cnt > 16 ? cnt - 16 : 0);
    for (int i = 0; i < rows; i++) {
        const float *pi = p + i * ld_p;
        for (int u = 0; u < whole; u += 32)
            _mm512_storeu_si512(p16[i] + u, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(pi + u + 16),
                                                                        _mm512_loadu_ps(pi + u)));
        if (whole < end)
            _mm512_storeu_si512(p16[i] + whole,
                                (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, pi + whole + 16),
                                                             _mm512_maskz_loadu_ps(lo, pi + whole)));
    }
}

/* V keys [j0, j0 + nk) of `vs` (nk <= 32) x columns [c0, c0 + cols)
 * (cols <= 64) as 16 pair rows of 64 words; pairs and columns past them 0.
 * Quantized rows are dequantized in fp32 and rounded once to bf16 (the
 * scale maps made once per 32 columns for the 32 keys). */
static inline __attribute__((always_inline)) void
v_pairs(const flat_dtype t, const flat_kv_src *vs, int64_t j0, int nk, int c0, int cols,
        uint32_t vb[16][NC])
{
    const __m512i lo_idx = _mm512_setr_epi32(0x00200000, 0x00210001, 0x00220002, 0x00230003,
                                             0x00240004, 0x00250005, 0x00260006, 0x00270007,
                                             0x00280008, 0x00290009, 0x002a000a, 0x002b000b,
                                             0x002c000c, 0x002d000d, 0x002e000e, 0x002f000f);
    const __m512i hi_idx = _mm512_add_epi16(lo_idx, _mm512_set1_epi16(16));
    const flat_dtype st = flat_dtype_quantized(t) ? vs->scale_t : FLAT_F32;
#pragma GCC unroll 2
    for (int h = 0; h < NC; h += 32) {
        const int count = cols - h < 0 ? 0 : cols - h < 32 ? cols - h : 32;
        flat_chunk_scales cs[2] = {{0}, {0}};
        if (flat_dtype_quantized(t) && count > 0) {
            cs[0] = flat_chunk_scales_avx512(vs->group, c0 + h, count < 16 ? count : 16);
            cs[1] = flat_chunk_scales_avx512(vs->group, c0 + h + 16, count > 16 ? count - 16 : 1);
        }
        for (int q = 0; q < 16; q++) {
            const int ka = 2 * q, kb = 2 * q + 1;
            __m512i x0 = _mm512_setzero_si512(), x1 = _mm512_setzero_si512();
            if (count > 0 && ka < nk)
                x0 = flat_kv_pairs_mapped_avx512bf16(t, st, flat_kv_row(vs, j0 + ka, t),
                                                     flat_kv_scale_row(vs, j0 + ka, t), cs,
                                                     c0 + h, count);
            if (count > 0 && kb < nk)
                x1 = flat_kv_pairs_mapped_avx512bf16(t, st, flat_kv_row(vs, j0 + kb, t),
                                                     flat_kv_scale_row(vs, j0 + kb, t), cs,
                                                     c0 + h, count);
            _mm512_store_si512(vb[q] + h, _mm512_permutex2var_epi16(x0, lo_idx, x1));
            _mm512_store_si512(vb[q] + h + 16, _mm512_permutex2var_epi16(x0, hi_idx, x1));
        }
    }
}

/* C tile `t` <-> O columns [c, c + cols) of the 16 rows (cols <= 16): a
 * whole tile in place, a partial one through an L1 block. */
#define O_TILE_LOAD(t, o, ld_o, c, cols, buf)                                                      \
    do {                                                                                           \
        if ((cols) == 16) {                                                                        \
            FLAT_TILE_LOAD(t, (o) + (c), (ld_o) * 4);                                              \
        } else {                                                                                   \
            for (int i_ = 0; i_ < 16; i_++)                                                        \
                _mm512_store_ps(buf[i_], _mm512_maskz_loadu_ps(flat_tail_mask_avx512(cols),        \
                                                               (o) + i_ * (ld_o) + (c)));          \
            FLAT_TILE_LOAD(t, buf, 64);                                                            \
        }                                                                                          \
    } while (0)
#define O_TILE_STORE(t, o, ld_o, c, cols, buf)                                                     \
    do {                                                                                           \
        if ((cols) == 16) {                                                                        \
            FLAT_TILE_STORE(t, (o) + (c), (ld_o) * 4);                                             \
        } else {                                                                                   \
            FLAT_TILE_STORE(t, buf, 64);                                                           \
            for (int i_ = 0; i_ < 16; i_++)                                                        \
                _mm512_mask_storeu_ps((o) + i_ * (ld_o) + (c), flat_tail_mask_avx512(cols),        \
                                      _mm512_load_ps(buf[i_]));                                    \
        }                                                                                          \
    } while (0)

static inline int tile_cols(int cols, int t) { return cols - 16 * t < 0 ? 0 : cols - 16 * t < 16 ? cols - 16 * t : 16; }

/*
 * One block of 16 rows (two = 0: four C tiles side by side, 64 columns per
 * pass) or 32 rows (two = 1: 2 x 2 C tiles, 32 columns per pass, each A and
 * B tile load serving two products, each V pair built for 32 rows) over
 * keys [0, n) (n >= 1) and all columns; O already scaled by alpha unless
 * `fresh` (alpha == NULL: O is write-only on the first key chunk).
 */
static inline __attribute__((always_inline)) void
pv_block(const flat_dtype t, const int two, int n, int dv, const float *restrict p, int64_t ld_p,
         const flat_kv_src *v, float *restrict o, int64_t ld_o, int fresh)
{
    uint16_t p16[32][KC] __attribute__((aligned(64)));
    uint32_t vb[16][NC] __attribute__((aligned(64)));
    float buf[16][16] __attribute__((aligned(64)));
    const int ncp = two ? 32 : 64;
    for (int j0 = 0; j0 < n; j0 += KC) {
        const int nk = n - j0 < KC ? n - j0 : KC;
        convert_p(two ? 32 : 16, nk, p + j0, ld_p, p16);
        for (int c0 = 0; c0 < dv; c0 += ncp) {
            const int cols = dv - c0 < ncp ? dv - c0 : ncp;
            const int w0 = tile_cols(cols, 0), w1 = tile_cols(cols, 1), w2 = tile_cols(cols, 2),
                      w3 = tile_cols(cols, 3);
            float *o0 = o + c0, *o1 = o + 16 * ld_o + c0;
            if (fresh && j0 == 0) {
                FLAT_TILE_ZERO(T_C0);
                FLAT_TILE_ZERO(T_C1);
                FLAT_TILE_ZERO(T_C2);
                FLAT_TILE_ZERO(T_C3);
            } else if (two) {
                O_TILE_LOAD(T_C0, o0, ld_o, 0, w0, buf);
                O_TILE_LOAD(T_C2, o1, ld_o, 0, w0, buf);
                if (w1) {
                    O_TILE_LOAD(T_C1, o0, ld_o, 16, w1, buf);
                    O_TILE_LOAD(T_C3, o1, ld_o, 16, w1, buf);
                }
            } else {
                O_TILE_LOAD(T_C0, o0, ld_o, 0, w0, buf);
                if (w1) O_TILE_LOAD(T_C1, o0, ld_o, 16, w1, buf);
                if (w2) O_TILE_LOAD(T_C2, o0, ld_o, 32, w2, buf);
                if (w3) O_TILE_LOAD(T_C3, o0, ld_o, 48, w3, buf);
            }
            for (int k = 0; k < nk; k += 32) {
                v_pairs(t, v, j0 + k, nk - k < 32 ? nk - k : 32, c0, cols, vb);
                FLAT_TILE_LOAD(T_A0, p16[0] + k, KC * 2);
                FLAT_TILE_LOAD(T_B0, vb[0], NC * 4);
                FLAT_TILE_DP(T_C0, T_A0, T_B0);
                if (two) {
                    FLAT_TILE_LOAD(T_A1, p16[16] + k, KC * 2);
                    FLAT_TILE_DP(T_C2, T_A1, T_B0);
                    if (w1) {
                        FLAT_TILE_LOAD(T_B1, vb[0] + 16, NC * 4);
                        FLAT_TILE_DP(T_C1, T_A0, T_B1);
                        FLAT_TILE_DP(T_C3, T_A1, T_B1);
                    }
                    continue;
                }
                if (w1) {
                    FLAT_TILE_LOAD(T_B1, vb[0] + 16, NC * 4);
                    FLAT_TILE_DP(T_C1, T_A0, T_B1);
                }
                if (w2) {
                    FLAT_TILE_LOAD(T_B0, vb[0] + 32, NC * 4);
                    FLAT_TILE_DP(T_C2, T_A0, T_B0);
                }
                if (w3) {
                    FLAT_TILE_LOAD(T_B1, vb[0] + 48, NC * 4);
                    FLAT_TILE_DP(T_C3, T_A0, T_B1);
                }
            }
            if (two) {
                O_TILE_STORE(T_C0, o0, ld_o, 0, w0, buf);
                O_TILE_STORE(T_C2, o1, ld_o, 0, w0, buf);
                if (w1) {
                    O_TILE_STORE(T_C1, o0, ld_o, 16, w1, buf);
                    O_TILE_STORE(T_C3, o1, ld_o, 16, w1, buf);
                }
            } else {
                O_TILE_STORE(T_C0, o0, ld_o, 0, w0, buf);
                if (w1) O_TILE_STORE(T_C1, o0, ld_o, 16, w1, buf);
                if (w2) O_TILE_STORE(T_C2, o0, ld_o, 32, w2, buf);
                if (w3) O_TILE_STORE(T_C3, o0, ld_o, 48, w3, buf);
            }
        }
    }
}

/* O rows [0, rows) *= alpha (before the products: the order of ukernel.h). */
static void scale_rows(int rows, int dv, float *restrict o, int64_t ld_o,
                       const float *restrict alpha)
{
    for (int i = 0; i < rows; i++) {
        const __m512 a = _mm512_set1_ps(alpha[i]);
        float *oi = o + i * ld_o;
        int c = 0;
        for (; c + 16 <= dv; c += 16)
            _mm512_storeu_ps(oi + c, _mm512_mul_ps(a, _mm512_loadu_ps(oi + c)));
        if (c < dv) {
            const __mmask16 k = flat_tail_mask_avx512(dv - c);
            _mm512_mask_storeu_ps(oi + c, k, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(k, oi + c)));
        }
    }
}

static inline __attribute__((always_inline)) void
pv(const flat_dtype t, int m, int n, int dv, const float *restrict p, int64_t ld_p,
   const flat_kv_src *v, float *restrict o, int64_t ld_o, const float *restrict alpha)
{
    int r = 0;
    {
        configure();
        for (; r + 16 <= m; r += r + 32 <= m ? 32 : 16) {
            const int two = r + 32 <= m;
            float *ob = o + r * ld_o;
            if (alpha)
                scale_rows(two ? 32 : 16, dv, ob, ld_o, alpha + r);
            if (two)
                pv_block(t, 1, n, dv, p + r * ld_p, ld_p, v, ob, ld_o, alpha == NULL);
            else
                pv_block(t, 0, n, dv, p + r * ld_p, ld_p, v, ob, ld_o, alpha == NULL);
        }
        flat_tile_release();
    }
    if (r < m) /* rows short of a tile: the vector kernels */
        flat_pv_12__avx512_bf16(m - r, n, dv, p + r * ld_p, ld_p, v, o + r * ld_o, ld_o,
                                alpha ? alpha + r : NULL);
}

/* One function per V type (convert.h's FLAT_KV_TYPE_FNS says why). */
FLAT_KV_PV_FNS(pv_t, pv)
#define pv_t(T, ...) pv_t_##T(__VA_ARGS__)

void flat_pv_32__amx_bf16(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                          const flat_kv_src *src, float *restrict o, int64_t ld_o,
                          const float *restrict alpha)
{
    assert(m >= 1 && n >= 0 && dv >= 1);
    assert(n == 0 || (p != NULL && src->data != NULL));
    assert(o != NULL);
    if (n < 32 || m < 16) { /* too few keys or rows for a tile: the vector kernels */
        flat_pv_12__avx512_bf16(m, n, dv, p, ld_p, src, o, ld_o, alpha);
        return;
    }
    flat_kv_src unit;
    const flat_kv_src *v = flat_kv_scaled_avx512(src, &unit); /* F8E4M3 without scales */
    FLAT_KV_SWITCH(v->t, pv_t, m, n, dv, p, ld_p, v, o, ld_o, alpha);
}

/* The output row's rounding is the AVX-512 table's (bit for bit as convert.h). */
void flat_store_row__amx_bf16(int n, const float *restrict x, float scale, flat_dtype t,
                              void *restrict y)
{
    flat_store_row__avx512(n, x, scale, t, y);
}

/* The AVX-512 table's (see avx512_bf16/pv.c). */
void flat_widen_rows__amx_bf16(int n, int cols, const flat_kv_src *src, float *restrict y,
                               int64_t ld_y)
{
    flat_widen_rows__avx512(n, cols, src, y, ld_y);
}
