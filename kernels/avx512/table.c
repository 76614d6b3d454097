/* The AVX-512 kernel table, selected whole by runtime/dispatch.c. */
#ifndef __AVX512F__
#error "kernels/avx512 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq"
#endif

#include "../ukernel.h"
#include "kernels.h"

const flat_ukernels flat_ukernels_avx512 = {
    .isa = FLAT_ISA_AVX512,
    .name = "avx512",
    .required = FLAT_CPU_AVX512F | FLAT_CPU_AVX512BW | FLAT_CPU_AVX512VL |
                FLAT_CPU_AVX512DQ | FLAT_CPU_FMA | FLAT_CPU_AVX2,
    .dtypes = FLAT_DTYPES_ALL,
    .mr = FLAT_AVX512_MR,
    .nr = FLAT_AVX512_NR,
    .pv_mr = FLAT_AVX512_PV_MR,
    .prefetch_next = 1, /* qk_rows.c, pv.c: flat_ahead_row_avx512 */
    .pack_q = flat_pack_q__avx512,
    .pack_k = flat_pack_k__avx512,
    .qk = flat_qk_12x32__avx512,
    .qk_rows = flat_qk_rows__avx512,
    .qk_rows_exact = flat_qk_rows_exact__avx512,
    .row_max = flat_row_max__avx512,
    .exp2_row = flat_exp2_row__avx512,
    .pv = flat_pv_6__avx512,
    .widen_rows = flat_widen_rows__avx512,
    .store_row = flat_store_row__avx512,
    .score_rules = flat_score_rules__avx512,
    .vexp2 = flat_vexp2__avx512,
    .quantize_row = flat_quantize_row__avx512,
    .first_nonfinite = flat_first_nonfinite__avx512,
};
