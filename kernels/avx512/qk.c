/* S = Qp Kp^T for one Q panel: a 12x32 register block per K panel. */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <assert.h>
#include <immintrin.h>

#include "../ukernel.h"
#include "kernels.h"

#define MR FLAT_AVX512_MR
#define NR FLAT_AVX512_NR

/*
 * One K panel. Each d step loads the panel's 32 keys (two vectors, one
 * contiguous 128-byte row of the panel) and broadcasts the 12 Q values of
 * that dim; 24 FMAs land on 24 independent accumulators. Both panels are
 * read strictly sequentially; the Q panel stays in L1 across K panels.
 */
static inline void qk_panel(int d, const float *restrict qp, const float *restrict kp,
                            float *restrict s, int64_t ld_s)
{
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int c = 0; c < d; c++) {
        /* The same row of the next panel: K streams from L2/L3 one panel
         * (d x 128 bytes, >= 12 d cycles of FMAs) ahead of its use; without
         * it a third of qk's time sat on K loads. A prefetch past the last
         * panel is harmless: prefetches never fault. */
        _mm_prefetch((const char *)(kp + (int64_t)d * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(kp + (int64_t)d * NR + 16), _MM_HINT_T0);
        const __m512 k0 = _mm512_loadu_ps(kp);
        const __m512 k1 = _mm512_loadu_ps(kp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 q = _mm512_set1_ps(qp[i]);
            acc[i][0] = _mm512_fmadd_ps(q, k0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(q, k1, acc[i][1]);
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

void flat_qk_12x32__avx512(int d, int n_panels, const float *restrict qp,
                           const float *restrict kp, float *restrict s, int64_t ld_s)
{
    assert(d >= 1 && n_panels >= 0);
    assert(ld_s >= (int64_t)n_panels * NR);
    const int64_t panel = (int64_t)d * NR;
    for (int p = 0; p < n_panels; p++)
        qk_panel(d, qp, kp + p * panel, s + p * NR, ld_s);
}
