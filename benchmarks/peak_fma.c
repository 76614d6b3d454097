/*
 * FP32 FMA peak probe: the one file outside kernels/ that holds intrinsics
 * (DESIGN.md). benchmarks/CMakeLists.txt compiles it once per kernel table,
 * each time with that ISA's flags only and exactly one PEAK_FMA_<ISA>
 * defined, which yields peak_fma_chains_<isa>(); probes.c times it.
 *
 * Template parameters, set per ISA below:
 *   VEC, LANES     the vector type and its fp32 lanes
 *   SET1(x)        broadcast
 *   MADD(acc,a,b)  acc * a + b, one fused op where the ISA has FMA
 *   STORE(p, v)    unaligned store of LANES floats
 *   CHAINS         independent accumulators. An FMA's result is ready ~4
 *                  cycles after issue and a core issues 2 per cycle, so at
 *                  least 8 must be in flight; more cost nothing as long as
 *                  they and the two constants fit the register file.
 *   FN             the exported name
 *
 * The "scalar" table is portable C built for the baseline ISA, so its ceiling
 * is the baseline's vector unit: SSE2 on x86-64 (4 lanes, separate multiply
 * and add: no FMA in the baseline), NEON on AArch64.
 */
#include <stdint.h>

#if defined(PEAK_FMA_AMX_BF16)
/* The amx_bf16 table's ceiling: tdpbf16ps, C[16x16] += A[16x32] B[32x16] in
 * bf16 pairs, 16*16*32 multiply-adds (16384 FLOP) per instruction. Four
 * independent accumulator tiles fed by two A and two B tiles (the 2x2 block
 * of the tile file): each product waits only on its own C. Built with the
 * table's flags, so in an FLAT_AMX_EMULATE build it measures the C model. */
#include "../kernels/amx_bf16/tiles.h"

static volatile float sink;

/* Tile numbers are literals: the instructions encode them. */
#define T_C0 0
#define T_C1 1
#define T_C2 2
#define T_C3 3
#define T_A0 4
#define T_A1 5
#define T_B0 6
#define T_B1 7

double peak_fma_chains_amx_bf16(int64_t iters);

double peak_fma_chains_amx_bf16(int64_t iters)
{

    static const uint16_t one_ish = 0x3a83; /* bf16 ~1e-3: the sums stay normal */
    uint16_t a[16][32] __attribute__((aligned(64)));
    float c[16][16] __attribute__((aligned(64)));
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 32; j++)
            a[i][j] = one_ish;
    flat_tile_config cfg;
    flat_tile_config_init(&cfg);
    for (int t = 0; t < 8; t++)
        flat_tile_shape(&cfg, t, 16, 64);
    flat_tile_configure(&cfg);
    FLAT_TILE_ZERO(T_C0);
    FLAT_TILE_ZERO(T_C1);
    FLAT_TILE_ZERO(T_C2);
    FLAT_TILE_ZERO(T_C3);
    FLAT_TILE_LOAD(T_A0, a, 64);
    FLAT_TILE_LOAD(T_A1, a, 64);
    FLAT_TILE_LOAD(T_B0, a, 64);
    FLAT_TILE_LOAD(T_B1, a, 64);
    for (int64_t i = 0; i < iters; i++) {
        FLAT_TILE_DP(T_C0, T_A0, T_B0);
        FLAT_TILE_DP(T_C1, T_A0, T_B1);
        FLAT_TILE_DP(T_C2, T_A1, T_B0);
        FLAT_TILE_DP(T_C3, T_A1, T_B1);
    }
    FLAT_TILE_STORE(T_C0, c, 64);
    flat_tile_release();
    sink = c[0][0];
    return (double)iters * 4 * 16 * 16 * 32 * 2;
}

#elif defined(PEAK_FMA_AVX512_BF16)
/* The bf16 compute table's ceiling: vdpbf16ps, 16 lanes x 2 bf16 products
 * and 2 adds into fp32 per instruction (FLOPs = 4 per lane, counted below). */
#include <immintrin.h>
typedef __m512 VEC;
#define LANES 16
#define CHAINS 16 /* of 32 zmm */
#define SET1(x) _mm512_set1_ps(x)
#define MADD(acc, a, b) _mm512_dpbf16_ps(acc, (__m512bh)(a), (__m512bh)(b))
#define STORE(p, v) _mm512_storeu_ps(p, v)
#define FLOPS_PER_LANE 4
#define FN peak_fma_chains_avx512_bf16

#elif defined(PEAK_FMA_AVX512) || defined(PEAK_FMA_AVX512_VNNI)
/* avx512_vnni: its prefill (the roofline's compute side) is the fp32 FMA of
 * the avx512 table; its int8 products are the decode path's, judged by
 * bandwidth */
#include <immintrin.h>
typedef __m512 VEC;
#define LANES 16
#define CHAINS 16 /* of 32 zmm */
#define SET1(x) _mm512_set1_ps(x)
#define MADD(acc, a, b) _mm512_fmadd_ps(acc, a, b)
#define STORE(p, v) _mm512_storeu_ps(p, v)
#if defined(PEAK_FMA_AVX512_VNNI)
#define FN peak_fma_chains_avx512_vnni
#else
#define FN peak_fma_chains_avx512
#endif

#elif defined(PEAK_FMA_AVX2)
#include <immintrin.h>
typedef __m256 VEC;
#define LANES 8
#define CHAINS 12 /* of 16 ymm */
#define SET1(x) _mm256_set1_ps(x)
#define MADD(acc, a, b) _mm256_fmadd_ps(acc, a, b)
#define STORE(p, v) _mm256_storeu_ps(p, v)
#define FN peak_fma_chains_avx2

#elif defined(PEAK_FMA_BASELINE) && defined(__x86_64__)
#include <emmintrin.h>
typedef __m128 VEC;
#define LANES 4
#define CHAINS 12 /* of 16 xmm */
#define SET1(x) _mm_set1_ps(x)
#define MADD(acc, a, b) _mm_add_ps(_mm_mul_ps(acc, a), b)
#define STORE(p, v) _mm_storeu_ps(p, v)
#define FN peak_fma_chains_baseline

#elif (defined(PEAK_FMA_BASELINE) || defined(PEAK_FMA_NEON)) && defined(__aarch64__)
#include <arm_neon.h>
typedef float32x4_t VEC;
#define LANES 4
#define CHAINS 24 /* of 32 q */
#define SET1(x) vdupq_n_f32(x)
#define MADD(acc, a, b) vfmaq_f32(b, acc, a)
#define STORE(p, v) vst1q_f32(p, v)
#if defined(PEAK_FMA_NEON)
#define FN peak_fma_chains_neon
#else
#define FN peak_fma_chains_baseline
#endif

#elif defined(PEAK_FMA_BASELINE)
/* Another architecture: plain C, whatever the compiler makes of it. */
typedef float VEC;
#define LANES 1
#define CHAINS 8
#define SET1(x) (x)
#define MADD(acc, a, b) ((acc) * (a) + (b))
#define STORE(p, v) (*(p) = (v))
#define FN peak_fma_chains_baseline

#else
#error "define one PEAK_FMA_<ISA> (see benchmarks/CMakeLists.txt)"
#endif

#if !defined(PEAK_FMA_AMX_BF16)

/* Written once per probe so the compiler cannot drop the chains. */
static volatile float sink;

double FN(int64_t iters);

/* Runs CHAINS recurrences acc = acc * a + b for `iters` steps and returns the
 * FLOPs done (2 per lane per step). a < 1 makes each chain converge to
 * b / (1 - a), so values stay normal: no overflow, no denormal slow path. */
double FN(int64_t iters)
{
    const VEC a = SET1(0.999999f), b = SET1(1e-6f);
    VEC acc[CHAINS];
    for (int c = 0; c < CHAINS; c++)
        acc[c] = SET1((float)c);
    for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 32
        for (int c = 0; c < CHAINS; c++)
            acc[c] = MADD(acc[c], a, b);
    }
    float lanes[LANES], sum = 0;
    for (int c = 0; c < CHAINS; c++) {
        STORE(lanes, acc[c]);
        for (int l = 0; l < LANES; l++)
            sum += lanes[l];
    }
    sink = sum;
#ifndef FLOPS_PER_LANE
#define FLOPS_PER_LANE 2 /* one FMA */
#endif
    return (double)iters * CHAINS * LANES * FLOPS_PER_LANE;
}
#endif /* !PEAK_FMA_AMX_BF16 */
