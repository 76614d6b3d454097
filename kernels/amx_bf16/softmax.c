/* Row max and exp2-and-sum: fp32 work on fp32 scores, on AVX-512 between
 * the two tile products (the AVX-512 table's kernels, one definition). */
#include "../ukernel.h"
#include "kernels.h"

float flat_row_max__amx_bf16(int n, const float *s) { return flat_row_max__avx512(n, s); }

float flat_exp2_row__amx_bf16(int n, int width, float *s, float m)
{
    return flat_exp2_row__avx512(n, width, s, m);
}

void flat_vexp2__amx_bf16(int n, const float *x, float *y) { flat_vexp2__avx512(n, x, y); }
