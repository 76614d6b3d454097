/* The exp2 and tail mask of this table are the AVX-512 table's: the softmax
 * runs on fp32 scores whatever the products were formed in, so there is one
 * definition, kernels/avx512/exp.h, and this folder only includes it. */
#ifndef FLAT_AVX512_VNNI_EXP_H
#define FLAT_AVX512_VNNI_EXP_H

#include "../avx512/exp.h"

#endif
