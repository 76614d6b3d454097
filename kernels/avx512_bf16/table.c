/* The AVX-512 + AVX512_BF16 kernel table: bf16 products, fp32 sums. Listed
 * after the fp32 AVX-512 table in runtime/dispatch.c, so AUTO never picks
 * it (it rounds more); opt.isa or FLAT_ISA=avx512_bf16 does. */
#ifndef __AVX512BF16__
#error "kernels/avx512_bf16 must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16"
#endif

#include "../ukernel.h"
#include "kernels.h"

const flat_ukernels flat_ukernels_avx512_bf16 = {
    .isa = FLAT_ISA_AVX512_BF16,
    .name = "avx512_bf16",
    .required = FLAT_CPU_AVX512F | FLAT_CPU_AVX512BW | FLAT_CPU_AVX512VL |
                FLAT_CPU_AVX512DQ | FLAT_CPU_FMA | FLAT_CPU_AVX2 | FLAT_CPU_AVX512BF16,
    .dtypes = FLAT_DTYPES_ALL,
    .compute = FLAT_BF16,
    .mr = FLAT_AVX512_BF16_MR,
    .nr = FLAT_AVX512_BF16_NR,
    .pv_mr = FLAT_AVX512_BF16_PV_MR,
    .prefetch_next = 1, /* qk_rows.c, pv.c (and the avx512 kernels they hand work to) */
    .pack_q = flat_pack_q__avx512_bf16,
    .pack_k = flat_pack_k__avx512_bf16,
    .qk = flat_qk_12x32__avx512_bf16,
    .qk_rows = flat_qk_rows__avx512_bf16,
    .row_max = flat_row_max__avx512_bf16,
    .exp2_row = flat_exp2_row__avx512_bf16,
    .pv = flat_pv_12__avx512_bf16,
    .widen_rows = flat_widen_rows__avx512_bf16,
    .store_row = flat_store_row__avx512_bf16,
    .score_rules = flat_score_rules__avx512_bf16,
    .vexp2 = flat_vexp2__avx512_bf16,
    .quantize_row = flat_quantize_row__avx512_bf16,
    .first_nonfinite = flat_first_nonfinite__avx512_bf16,
};
