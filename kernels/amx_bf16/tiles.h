/*
 * The tile operations the amx_bf16 table is written in: configure, load,
 * store, zero, tdpbf16ps and release. Normally the AMX instructions
 * themselves (gcc's -mamx-tile -mamx-bf16 intrinsics); with FLAT_AMX_EMULATE
 * (CMake -DFLAT_AMX_EMULATE=ON, for test builds on CPUs without AMX) a
 * portable C model of the same instructions, so the table runs, and the
 * suites hold it to its bound, anywhere AVX-512 BF16 runs.
 *
 * The model follows Intel's pseudo-code (SDM, TDPBF16PS): for each row m of
 * C and each column n, two fp32 partial sums, one over the even elements of
 * the pairs and one over the odd, start at 0 and take one FMA per pair k (a
 * bf16 product is exact in fp32, so each FMA rounds once, to nearest even);
 * then C[m][n] += (even + odd). Input denormals read as zero, every result
 * that would be denormal is flushed to zero, MXCSR plays no part. Loads read
 * `rows` rows of `colsb` bytes of the tile's configured shape and nothing
 * more (the rest of the tile is zero); stores write exactly that. Shapes
 * that disagree (A's columns against B's rows, ...) fault on the hardware
 * and assert here.
 *
 * Tile numbers are compile-time constants (the instructions encode them).
 * Configuration is per thread; the table loads it at the start of each
 * kernel call that uses tiles and releases it before returning, so no tile
 * state outlives a call (an engine's threads never carry AMX state, and a
 * forked child or a fresh thread starts clean).
 */
#ifndef FLAT_AMX_BF16_TILES_H
#define FLAT_AMX_BF16_TILES_H

#include <stdint.h>
#include <string.h>

/* The 64-byte operand of LDTILECFG, palette 1: per tile, bytes per row and
 * rows (aligned to its size: one cache line). */
typedef struct __attribute__((aligned(64))) {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} flat_tile_config;

_Static_assert(sizeof(flat_tile_config) == 64, "LDTILECFG takes 64 bytes");

/* Sets tile t's shape in c (rows <= 16, colsb <= 64). */
static inline void flat_tile_shape(flat_tile_config *c, int t, int rows, int colsb)
{
    c->rows[t] = (uint8_t)rows;
    c->colsb[t] = (uint16_t)colsb;
}

static inline void flat_tile_config_init(flat_tile_config *c)
{
    memset(c, 0, sizeof *c);
    c->palette = 1;
}

#if !defined(FLAT_AMX_EMULATE)

/* gcc names the features __AMX_TILE__ and __AMX_BF16__, clang __AMXTILE__
 * and __AMXBF16__ */
#if !(defined(__AMX_TILE__) || defined(__AMXTILE__)) || !(defined(__AMX_BF16__) || defined(__AMXBF16__))
#error "kernels/amx_bf16 must be compiled with -mamx-tile -mamx-bf16 (or -DFLAT_AMX_EMULATE)"
#endif
#include <immintrin.h>

#define FLAT_TILE_LOAD(t, ptr, stride_bytes) _tile_loadd(t, ptr, stride_bytes)
#define FLAT_TILE_STORE(t, ptr, stride_bytes) _tile_stored(t, ptr, stride_bytes)
#define FLAT_TILE_ZERO(t) _tile_zero(t)
#define FLAT_TILE_DP(c, a, b) _tile_dpbf16ps(c, a, b)

static inline void flat_tile_configure(const flat_tile_config *c) { _tile_loadconfig(c); }
static inline void flat_tile_release(void) { _tile_release(); }

#else /* FLAT_AMX_EMULATE: the portable model */

#include <assert.h>
#include <math.h>

typedef struct {
    flat_tile_config cfg;
    int configured;
    float t[8][16][16]; /* 8 tiles of 16 rows x 64 bytes */
} flat_tile_model;

/* Each translation unit that includes this has its own model; a kernel call
 * configures, uses and releases it within one unit and one thread. */
static _Thread_local flat_tile_model flat_tile_state;

static inline void flat_tile_configure(const flat_tile_config *c)
{
    assert(c->palette == 1);
    for (int t = 0; t < 8; t++)
        assert(c->rows[t] <= 16 && c->colsb[t] <= 64 && c->colsb[t] % 4 == 0);
    flat_tile_state.cfg = *c;
    flat_tile_state.configured = 1;
    memset(flat_tile_state.t, 0, sizeof flat_tile_state.t);
}

static inline void flat_tile_release(void)
{
    flat_tile_state.configured = 0;
    memset(&flat_tile_state.cfg, 0, sizeof flat_tile_state.cfg);
    memset(flat_tile_state.t, 0, sizeof flat_tile_state.t);
}

static inline void flat_tile_model_load(int t, const void *ptr, int64_t stride)
{
    const flat_tile_config *c = &flat_tile_state.cfg;
    assert(flat_tile_state.configured && c->rows[t] > 0);
    memset(flat_tile_state.t[t], 0, sizeof flat_tile_state.t[t]);
    for (int r = 0; r < c->rows[t]; r++)
        memcpy(flat_tile_state.t[t][r], (const char *)ptr + r * stride, c->colsb[t]);
}

static inline void flat_tile_model_store(int t, void *ptr, int64_t stride)
{
    const flat_tile_config *c = &flat_tile_state.cfg;
    assert(flat_tile_state.configured && c->rows[t] > 0);
    for (int r = 0; r < c->rows[t]; r++)
        memcpy((char *)ptr + r * stride, flat_tile_state.t[t][r], c->colsb[t]);
}

static inline void flat_tile_model_zero(int t)
{
    assert(flat_tile_state.configured);
    memset(flat_tile_state.t[t], 0, sizeof flat_tile_state.t[t]);
}

/* Denormal results flushed to zero (sign kept). NaN and inf pass. */
static inline float flat_tile_ftz(float x) { return fabsf(x) < 0x1p-126f ? copysignf(0.0f, x) : x; }

/* bf16 half h (0 low, 1 high) of a 32-bit word as fp32, denormals as zero. */
static inline float flat_tile_bf16(const float *word, int h)
{
    uint32_t w;
    memcpy(&w, word, sizeof w);
    uint32_t b = h ? w & 0xffff0000u : w << 16;
    if ((b & 0x7f800000u) == 0)
        b &= 0x80000000u;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline void flat_tile_model_dp(int tc, int ta, int tb)
{
    const flat_tile_config *c = &flat_tile_state.cfg;
    assert(flat_tile_state.configured);
    const int rows = c->rows[tc], n_cols = c->colsb[tc] / 4, k_pairs = c->colsb[ta] / 4;
    assert(c->rows[ta] == rows && c->rows[tb] == k_pairs && c->colsb[tb] == c->colsb[tc]);
    float(*C)[16] = flat_tile_state.t[tc];
    float(*A)[16] = flat_tile_state.t[ta];
    float(*B)[16] = flat_tile_state.t[tb];
    for (int m = 0; m < rows; m++)
        for (int n = 0; n < n_cols; n++) {
            float even = 0.0f, odd = 0.0f;
            for (int k = 0; k < k_pairs; k++) {
                even = flat_tile_ftz(fmaf(flat_tile_bf16(&A[m][k], 0), flat_tile_bf16(&B[k][n], 0), even));
                odd = flat_tile_ftz(fmaf(flat_tile_bf16(&A[m][k], 1), flat_tile_bf16(&B[k][n], 1), odd));
            }
            C[m][n] = flat_tile_ftz(flat_tile_ftz(C[m][n]) + flat_tile_ftz(even + odd));
        }
}

#define FLAT_TILE_LOAD(t, ptr, stride_bytes) flat_tile_model_load(t, ptr, stride_bytes)
#define FLAT_TILE_STORE(t, ptr, stride_bytes) flat_tile_model_store(t, ptr, stride_bytes)
#define FLAT_TILE_ZERO(t) flat_tile_model_zero(t)
#define FLAT_TILE_DP(c, a, b) flat_tile_model_dp(c, a, b)

#endif /* FLAT_AMX_EMULATE */

#endif
