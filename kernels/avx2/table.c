/* The AVX2+FMA kernel table (kernels/ukernel.h). */
#ifndef __AVX2__
#error "kernels/avx2 must be compiled with -mavx2 -mfma"
#endif

#include "../ukernel.h"
#include "kernels.h"

const flat_ukernels flat_ukernels_avx2 = {
    .isa = FLAT_ISA_AVX2,
    .name = "avx2",
    .required = FLAT_CPU_AVX2 | FLAT_CPU_FMA,
    .dtypes = FLAT_DTYPES_ALL,
    .mr = FLAT_AVX2_MR,
    .nr = FLAT_AVX2_NR,
    .pv_mr = FLAT_AVX2_PV_MR,
    .pack_q = flat_pack_q__avx2,
    .pack_k = flat_pack_k__avx2,
    .qk = flat_qk_6x16__avx2,
    .qk_rows = flat_qk_rows__avx2,
    .row_max = flat_row_max__avx2,
    .exp2_row = flat_exp2_row__avx2,
    .pv = flat_pv_6__avx2,
    .widen_rows = flat_widen_rows__avx2,
    .store_row = flat_store_row__avx2,
    .score_rules = flat_score_rules__avx2,
    .vexp2 = flat_vexp2__avx2,
    .quantize_row = flat_quantize_row__avx2,
    .first_nonfinite = flat_first_nonfinite__avx2,
};
