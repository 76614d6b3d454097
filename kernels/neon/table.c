#if !defined(__aarch64__)
#error "kernels/neon/ is built for AArch64 only"
#endif
/* The NEON kernel table. Advanced SIMD is part of the AArch64 base ISA, but
 * the table still names its feature bit so dispatch treats it like any other. */
#include "../ukernel.h"
#include "kernels.h"

const flat_ukernels flat_ukernels_neon = {
    .isa = FLAT_ISA_NEON,
    .name = "neon",
    .required = FLAT_CPU_NEON,
    .dtypes = FLAT_DTYPES_ALL,
    .mr = FLAT_NEON_MR,
    .nr = FLAT_NEON_NR,
    .pv_mr = FLAT_NEON_PV_MR,
    .pack_q = flat_pack_q_8__neon,
    .pack_k = flat_pack_k_12__neon,
    .qk = flat_qk_8x12__neon,
    .qk_rows = flat_qk_rows__neon,
    .row_max = flat_row_max__neon,
    .exp2_row = flat_exp2_row__neon,
    .pv = flat_pv_4x16__neon,
    .widen_rows = flat_widen_rows__neon,
    .store_row = flat_store_row__neon,
    .score_rules = flat_score_rules__neon,
    .vexp2 = flat_vexp2__neon,
    .quantize_row = flat_quantize_row__neon,
    .first_nonfinite = flat_first_nonfinite__neon,
};
