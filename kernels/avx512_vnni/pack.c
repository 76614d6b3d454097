/* Packing for the GEMM-shaped path: fp32 panels, exactly the AVX-512
 * table's (this table's int8 products are the decode kernels' and pv's;
 * prefill's Q.K^T stays fp32 on dequantized K panels). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include "../ukernel.h"
#include "kernels.h"

void flat_pack_q__avx512_vnni(int m, int d, const void *const *rows, flat_dtype t, float scale,
                              float *restrict qp)
{
    flat_pack_q__avx512(m, d, rows, t, scale, qp);
}

void flat_pack_k__avx512_vnni(int n, int d, const flat_kv_src *src, float *restrict kp)
{
    flat_pack_k__avx512(n, d, src, kp);
}
