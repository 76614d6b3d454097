/* flat_quantize's row kernel and input check: no products, so this table
 * runs the AVX-512 table's kernels (one definition). */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include "../ukernel.h"
#include "kernels.h"

void flat_quantize_row__avx512_vnni(int64_t n, const void *x, flat_dtype xt, int64_t group,
                                    flat_dtype t, void *restrict codes, void *scale,
                                    flat_dtype scale_t, int given)
{
    flat_quantize_row__avx512(n, x, xt, group, t, codes, scale, scale_t, given);
}

int64_t flat_first_nonfinite__avx512_vnni(int64_t n, const void *x, flat_dtype xt)
{
    return flat_first_nonfinite__avx512(n, x, xt);
}
