/* S = Q K^T for the decode path on tiles: S^T = K Q^T, K rows in place as A. */
#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define MR FLAT_AMX_BF16_MR
/* Keys fetched ahead: decode streams K from DRAM, rows strided by heads. */
#define AHEAD 32

/*
 * The Q panel (qp[c2][i], 16 words per pair of dims) is a B tile as it
 * stands, so 16 keys' rows of 32 bf16 dims are A: a bf16 cache is read in
 * place (one tile load per 16 keys x 32 dims), f32 and f16 rows are rounded
 * into a 1 KiB block first (as pack_k rounds them: decode and prefill see the
 * same K; quantized rows are dequantized in fp32 and rounded once, as
 * pack_k does). The 16 x 16 result is keys x rows; it leaves the tile through an
 * L1 block and a 16 x 16 transpose. Rows past m (garbage in the panel) only
 * reach columns that are never stored.
 */
/* Tile numbers: literal constants, the instructions encode them. */
#define T_C 0
#define T_A_FULL 1
#define T_B_FULL 2
#define T_A_TAIL 3
#define T_B_TAIL 4

static void configure(int tail)
{
    flat_tile_config c;
    flat_tile_config_init(&c);
    flat_tile_shape(&c, T_C, 16, 64);
    flat_tile_shape(&c, T_A_FULL, 16, 64);
    flat_tile_shape(&c, T_B_FULL, 16, 64);
    flat_tile_shape(&c, T_A_TAIL, 16, 4 * tail);
    flat_tile_shape(&c, T_B_TAIL, tail, 64);
    flat_tile_configure(&c);
}

/* Keys [j0, j0 + keys) of `ks`, dims [c0, c0 + dims) as bf16 pairs in a[j];
 * rows past `keys` are 0 (keys past the call are never read). */
static inline __attribute__((always_inline)) void
stage(const flat_dtype t, const flat_kv_src *ks, int64_t j0, int keys, int c0, int dims,
      uint32_t a[16][16])
{
    /* quantized K: the chunks' scale maps once for the 16 keys */
    flat_chunk_scales cs[2] = {{0}, {0}};
    if (flat_dtype_quantized(t)) {
        cs[0] = flat_chunk_scales_avx512(ks->group, c0, dims < 16 ? dims : 16);
        cs[1] = flat_chunk_scales_avx512(ks->group, c0 + 16, dims > 16 ? dims - 16 : 1);
    }
    const flat_dtype st = flat_dtype_quantized(t) ? ks->scale_t : FLAT_F32;
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        _mm512_storeu_si512(a[j], j < keys ? flat_kv_pairs_mapped_avx512bf16(
                                                 t, st, flat_kv_row(ks, j0 + j, t),
                                                 flat_kv_scale_row(ks, j0 + j, t), cs, c0, dims)
                                           : _mm512_setzero_si512());
}

/* 16 keys (or `keys` < 16, the last block) against all of the panel's rows. */
static inline __attribute__((always_inline)) void
block16(const flat_dtype t, int m, int keys, int ahead, int d, const uint32_t *restrict qp,
        const flat_kv_src *ks, int64_t j0, float *restrict s, int64_t ld_s)
{
    const void *k = flat_kv_row(ks, j0, t);
    const int64_t ld_k = ks->ld;
    const int pairs = (d + 1) / 2, chunks = (pairs + 15) / 16;
    const int line = (int)(512 / flat_dtype_bits(t)); /* elements per 64-byte line */
    for (int j = 0; j < keys; j++) /* only rows of this call: past them lies other data */
        if (j + AHEAD < ahead)
            for (int c = 0; c < d; c += line)
                _mm_prefetch((const char *)flat_elem_ptr(k, (j + AHEAD) * ld_k + c, t),
                             _MM_HINT_T0);
    uint32_t a[16][16] __attribute__((aligned(64)));
    float c16[16][16] __attribute__((aligned(64)));
    FLAT_TILE_ZERO(T_C);
    for (int c = 0; c < chunks; c++) {
        const int c0 = 32 * c, dims = d - c0 < 32 ? d - c0 : 32, last = c == chunks - 1;
        const uint32_t *b = qp + (int64_t)c * 16 * MR;
        /* in place: bf16, 16 keys, and no pad dim past an odd d */
        const int direct = t == FLAT_BF16 && keys == 16 && dims % 2 == 0;
        const void *src = direct ? flat_elem_ptr(k, c0, t) : (const void *)a;
        const int64_t stride = direct ? ld_k * 2 : 64;
        if (!direct)
            stage(t, ks, j0, keys, c0, dims, a);
        if (last) {
            FLAT_TILE_LOAD(T_A_TAIL, src, stride);
            FLAT_TILE_LOAD(T_B_TAIL, b, 64);
            FLAT_TILE_DP(T_C, T_A_TAIL, T_B_TAIL);
        } else {
            FLAT_TILE_LOAD(T_A_FULL, src, stride);
            FLAT_TILE_LOAD(T_B_FULL, b, 64);
            FLAT_TILE_DP(T_C, T_A_FULL, T_B_FULL);
        }
    }
    FLAT_TILE_STORE(T_C, c16, 64);
    __m512 r[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        r[j] = _mm512_load_ps(c16[j]);
    flat_transpose16_avx512(r); /* r[i]: row i's scores of the 16 keys */
    const __mmask16 kmask = keys >= 16 ? 0xffff : flat_tail_mask_avx512(keys);
    for (int i = 0; i < m; i++)
        _mm512_mask_storeu_ps(s + i * ld_s, kmask, r[i]);
}

static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
        float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    assert(n == 0 || (k->data != NULL && ld_s >= n));
    if (n == 0)
        return;
    const int pairs = (d + 1) / 2, chunks = (pairs + 15) / 16;
    configure(pairs - (chunks - 1) * 16);
    for (int j = 0; j < n; j += 16)
        block16(t, m, n - j < 16 ? n - j : 16, n - j, d, (const uint32_t *)qp, k, j, s + j, ld_s);
    flat_tile_release();
}

/* One function per K type (convert.h's FLAT_KV_TYPE_FNS says why). */
FLAT_KV_TYPE_FNS(qk_rows_t, qk_rows,
                 (int m, int d, int n, const float *restrict qp, const flat_kv_src *k,
                  float *restrict s, int64_t ld_s),
                 m, d, n, qp, k, s, ld_s)
#define qk_rows_t(T, ...) qk_rows_t_##T(__VA_ARGS__)

void flat_qk_rows__amx_bf16(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                            float *restrict s, int64_t ld_s)
{
    flat_kv_src unit;
    const flat_kv_src *k = flat_kv_scaled_avx512(src, &unit); /* F8E4M3 without scales */
    FLAT_KV_SWITCH(k->t, qk_rows_t, m, d, n, qp, k, s, ld_s);
}
