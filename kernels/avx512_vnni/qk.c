/* S = Qp Kp^T on packed fp32 panels: the AVX-512 table's kernel (prefill's
 * Q.K^T on this table is fp32: pack.c). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include "../ukernel.h"
#include "kernels.h"

void flat_qk_12x32__avx512_vnni(int d, int n_panels, const float *restrict qp,
                                const float *restrict kp, float *restrict s, int64_t ld_s)
{
    flat_qk_12x32__avx512(d, n_panels, qp, kp, s, ld_s);
}
