/* S = Qp Kp^T for one Q panel from bf16-pair panels: a 12x32 block per K panel. */
#ifndef __AVX512BF16__
#error "kernels/avx512_bf16 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "kernels.h"

#define MR FLAT_AVX512_BF16_MR
#define NR FLAT_AVX512_BF16_NR

/*
 * One K panel: each step loads the panel's 32 keys x one pair of dims (two
 * vectors, one contiguous 128-byte row of the panel), broadcasts the 12 Q
 * pairs of that step and issues 24 vdpbf16ps on 24 accumulators: 24 chains
 * are twice the 2 pipes x 6 cycles of its latency (measured). The AVX-512
 * table's loop otherwise, prefetch included: the same row of the next panel
 * (the runtime's panel stride, d*NR words), since K streams from L2/L3.
 */
static inline void qk_panel(int d, const uint32_t *restrict qp, const uint32_t *restrict kp,
                            float *restrict s, int64_t ld_s)
{
    const int pairs = (d + 1) / 2;
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int c2 = 0; c2 < pairs; c2++) {
        _mm_prefetch((const char *)(kp + (int64_t)d * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(kp + (int64_t)d * NR + 16), _MM_HINT_T0);
        const __m512i k0 = _mm512_loadu_si512(kp);
        const __m512i k1 = _mm512_loadu_si512(kp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512i q = flat_bcast_pair_avx512bf16(qp + i);
            acc[i][0] = flat_dp_avx512bf16(acc[i][0], q, k0);
            acc[i][1] = flat_dp_avx512bf16(acc[i][1], q, k1);
        }
        qp += MR;
        kp += NR;
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        _mm512_storeu_ps(s + i * ld_s, acc[i][0]);
        _mm512_storeu_ps(s + i * ld_s + 16, acc[i][1]);
    }
}

void flat_qk_12x32__avx512_bf16(int d, int n_panels, const float *restrict qp,
                                const float *restrict kp, float *restrict s, int64_t ld_s)
{
    assert(d >= 1 && n_panels >= 0);
    assert(ld_s >= (int64_t)n_panels * NR);
    const int64_t panel = (int64_t)d * NR;
    for (int p = 0; p < n_panels; p++)
        qk_panel(d, (const uint32_t *)qp, (const uint32_t *)kp + p * panel, s + p * NR, ld_s);
}
