/* Score rules: fp32 work on the fp32 scores the tiles stored, so this table
 * runs the AVX-512 table's kernel (one definition). */
#include "../ukernel.h"
#include "kernels.h"

float flat_score_rules__amx_bf16(int n, float *s, const flat_rules_row *r)
{
    return flat_score_rules__avx512(n, s, r);
}
