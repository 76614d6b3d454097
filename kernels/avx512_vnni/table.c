/* The AVX-512 + AVX512_VNNI kernel table: int8 products on int8 K/V caches
 * (kernels.h), the AVX-512 table's fp32 kernels for everything else. Listed
 * after the fp32 tables' best in runtime/dispatch.c, so AUTO never picks it
 * (it rounds Q and P); FLAT_PRECISION_INT8, opt.isa or FLAT_ISA=avx512_vnni
 * does. */
#ifndef __AVX512VNNI__
#error "kernels/avx512_vnni must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni"
#endif

#include "../ukernel.h"
#include "kernels.h"

const flat_ukernels flat_ukernels_avx512_vnni = {
    .isa = FLAT_ISA_AVX512_VNNI,
    .name = "avx512_vnni",
    .required = FLAT_CPU_AVX512F | FLAT_CPU_AVX512BW | FLAT_CPU_AVX512VL |
                FLAT_CPU_AVX512DQ | FLAT_CPU_FMA | FLAT_CPU_AVX2 | FLAT_CPU_AVX512VNNI,
    .dtypes = FLAT_DTYPES_ALL,
    .compute = FLAT_I8,
    .mr = FLAT_AVX512_MR,
    .nr = FLAT_AVX512_NR,
    .pv_mr = FLAT_AVX512_PV_MR,
    .prefetch_next = 1, /* qk_rows.c, pv.c (and the avx512 kernels they hand other types to) */
    .pack_q = flat_pack_q__avx512_vnni,
    .pack_k = flat_pack_k__avx512_vnni,
    .qk = flat_qk_12x32__avx512_vnni,
    .qk_rows = flat_qk_rows__avx512_vnni,
    .row_max = flat_row_max__avx512_vnni,
    .exp2_row = flat_exp2_row__avx512_vnni,
    .pv = flat_pv__avx512_vnni,
    .widen_rows = flat_widen_rows__avx512_vnni,
    .store_row = flat_store_row__avx512_vnni,
    .score_rules = flat_score_rules__avx512_vnni,
    .vexp2 = flat_vexp2__avx512_vnni,
    .quantize_row = flat_quantize_row__avx512_vnni,
    .first_nonfinite = flat_first_nonfinite__avx512_vnni,
};
