/* Score rules: fp32 work on fp32 scores, whatever the products were formed
 * in, so this table runs the AVX-512 table's kernel (one definition; this
 * folder is built only with kernels/avx512). */
#ifndef __AVX512BF16__
#error "kernels/avx512_bf16 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16"
#endif

#include "../ukernel.h"
#include "kernels.h"

float flat_score_rules__avx512_bf16(int n, float *s, const flat_rules_row *r)
{
    return flat_score_rules__avx512(n, s, r);
}
