/* Row max and exp2-and-sum: fp32 work on fp32 scores, so this table runs the
 * AVX-512 table's kernels (one definition). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include "../ukernel.h"
#include "kernels.h"

float flat_row_max__avx512_vnni(int n, const float *s) { return flat_row_max__avx512(n, s); }

float flat_exp2_row__avx512_vnni(int n, int width, float *s, float m)
{
    return flat_exp2_row__avx512(n, width, s, m);
}

void flat_vexp2__avx512_vnni(int n, const float *x, float *y) { flat_vexp2__avx512(n, x, y); }
