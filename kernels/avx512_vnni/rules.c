/* Score rules: fp32 work on fp32 scores, the AVX-512 table's kernel. */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include "../ukernel.h"
#include "kernels.h"

float flat_score_rules__avx512_vnni(int n, float *s, const flat_rules_row *r)
{
    return flat_score_rules__avx512(n, s, r);
}
