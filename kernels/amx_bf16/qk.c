/* S = Q K^T for one Q panel against K panels, on tiles: 16 x 16 per K panel. */
#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "kernels.h"

#define MR FLAT_AMX_BF16_MR
#define NR FLAT_AMX_BF16_NR
/* Dim chunks (32 dims, one A tile of 1 KiB) turned into A per pass: 8 KiB of
 * stack covers d <= 256 in one pass; larger d reloads S between passes. */
#define GROUP 8

/* Tiles: C of panels p and p + 1, A of a whole chunk with its two B, and
 * the last chunk's A and B shaped to its pairs (1..16: an odd or short d
 * never reads the words past the panel's pairs, which are not written). */
/* Tile numbers: literal constants, the instructions encode them. */
#define T_C0 0
#define T_C1 1
#define T_A_FULL 2
#define T_B0_FULL 3
#define T_B1_FULL 4
#define T_A_TAIL 5
#define T_B0_TAIL 6
#define T_B1_TAIL 7

static void configure(int tail)
{
    flat_tile_config c;
    flat_tile_config_init(&c);
    flat_tile_shape(&c, T_C0, 16, 64);
    flat_tile_shape(&c, T_C1, 16, 64);
    flat_tile_shape(&c, T_A_FULL, 16, 64);
    flat_tile_shape(&c, T_B0_FULL, 16, 64);
    flat_tile_shape(&c, T_B1_FULL, 16, 64);
    flat_tile_shape(&c, T_A_TAIL, 16, 4 * tail);
    flat_tile_shape(&c, T_B0_TAIL, tail, 64);
    flat_tile_shape(&c, T_B1_TAIL, tail, 64);
    flat_tile_configure(&c);
}

/* Chunks [c0, c0 + count) of the Q panel (qp[c2][i], 16 words per pair of
 * dims) as A tiles: a[c][i][k] = qp[(c0 + c)*16 + k][i]; pairs at or past
 * `pairs` read as 0 (they are not in the panel). */
static void q_to_a(const uint32_t *restrict qp, int pairs, int c0, int count,
                   uint32_t a[GROUP][16][16])
{
    for (int c = 0; c < count; c++) {
        __m512 r[16];
        const int base = (c0 + c) * 16;
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++)
            r[k] = base + k < pairs ? _mm512_loadu_ps(qp + (int64_t)(base + k) * MR)
                                    : _mm512_setzero_ps();
        flat_transpose16_avx512(r);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            _mm512_storeu_ps(a[c][i], r[i]);
    }
}

void flat_qk_16x16__amx_bf16(int d, int n_panels, const float *restrict qp,
                             const float *restrict kp, float *restrict s, int64_t ld_s)
{
    assert(d >= 1 && n_panels >= 0);
    assert(ld_s >= (int64_t)n_panels * NR);
    if (n_panels == 0)
        return;
    const int pairs = (d + 1) / 2, chunks = (pairs + 15) / 16, tail = pairs - (chunks - 1) * 16;
    const int64_t panel = (int64_t)d * NR, ld_s_bytes = ld_s * 4; /* panel stride, words */
    const uint32_t *k32 = (const uint32_t *)kp;
    uint32_t a[GROUP][16][16] __attribute__((aligned(64)));
    configure(tail);
    /* d <= 64: the one or two A tiles stay loaded across the panels */
    const int resident = chunks <= 2;
    for (int g0 = 0; g0 < chunks; g0 += GROUP) {
        const int count = chunks - g0 < GROUP ? chunks - g0 : GROUP;
        q_to_a((const uint32_t *)qp, pairs, g0, count, a);
        if (resident) {
            if (chunks == 2)
                FLAT_TILE_LOAD(T_A_FULL, a[0], 64);
            FLAT_TILE_LOAD(T_A_TAIL, a[chunks - 1], 64);
        }
        for (int p = 0; p < n_panels; p += 2) {
            const int two = p + 1 < n_panels;
            float *s0 = s + (int64_t)p * NR, *s1 = s0 + NR;
            const uint32_t *b0 = k32 + p * panel, *b1 = b0 + panel;
            if (g0 == 0) {
                FLAT_TILE_ZERO(T_C0);
                FLAT_TILE_ZERO(T_C1);
            } else { /* a later pass over the dims adds onto what the first stored */
                FLAT_TILE_LOAD(T_C0, s0, ld_s_bytes);
                if (two)
                    FLAT_TILE_LOAD(T_C1, s1, ld_s_bytes);
            }
            for (int c = 0; c < count; c++) {
                const int64_t at = (int64_t)(g0 + c) * 16 * 16; /* the chunk's first B row */
                if (g0 + c == chunks - 1) {
                    if (!resident)
                        FLAT_TILE_LOAD(T_A_TAIL, a[c], 64);
                    FLAT_TILE_LOAD(T_B0_TAIL, b0 + at, 64);
                    FLAT_TILE_DP(T_C0, T_A_TAIL, T_B0_TAIL);
                    if (two) {
                        FLAT_TILE_LOAD(T_B1_TAIL, b1 + at, 64);
                        FLAT_TILE_DP(T_C1, T_A_TAIL, T_B1_TAIL);
                    }
                } else {
                    if (!resident)
                        FLAT_TILE_LOAD(T_A_FULL, a[c], 64);
                    FLAT_TILE_LOAD(T_B0_FULL, b0 + at, 64);
                    FLAT_TILE_DP(T_C0, T_A_FULL, T_B0_FULL);
                    if (two) {
                        FLAT_TILE_LOAD(T_B1_FULL, b1 + at, 64);
                        FLAT_TILE_DP(T_C1, T_A_FULL, T_B1_FULL);
                    }
                }
            }
            FLAT_TILE_STORE(T_C0, s0, ld_s_bytes);
            if (two)
                FLAT_TILE_STORE(T_C1, s1, ld_s_bytes);
        }
    }
    flat_tile_release();
}
