/* Q and K packing: the bf16-pair panels of kernels/ukernel.h (compute =
 * BF16) at this table's 16 x 16, the avx512_bf16 table's code (one
 * definition). A K panel is then a B tile as it stands (16 rows of 16 pairs,
 * 64 bytes each); a Q panel a B tile for the decode path's S^T = K Q^T. */
#include "../ukernel.h"
#include "kernels.h"

void flat_pack_q__amx_bf16(int m, int d, const void *const *rows, flat_dtype t, float scale,
                           float *restrict qp)
{
    flat_pack_q_pairs__avx512_bf16(FLAT_AMX_BF16_MR, m, d, rows, t, scale, qp);
}

void flat_pack_k__amx_bf16(int n, int d, const flat_kv_src *k, float *restrict kp)
{
    flat_pack_k_pairs__avx512_bf16(FLAT_AMX_BF16_NR, n, d, k, kp);
}
