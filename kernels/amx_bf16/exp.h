/* The exp2 and tail mask of this table are the AVX-512 table's: the softmax
 * runs on fp32 scores in vector registers, between the two tile products,
 * so there is one definition, kernels/avx512/exp.h. */
#ifndef FLAT_AMX_BF16_EXP_H
#define FLAT_AMX_BF16_EXP_H

#include "../avx512/exp.h"

#endif
