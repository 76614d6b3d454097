#include "../ukernel.h"
#include "kernels.h"

const flat_ukernels flat_ukernels_scalar = {
    .isa = FLAT_ISA_SCALAR,
    .name = "scalar",
    .required = 0,
    .dtypes = FLAT_DTYPES_ALL,
    .mr = FLAT_SCALAR_MR,
    .nr = FLAT_SCALAR_NR,
    .pv_mr = FLAT_SCALAR_PV_MR,
    .pack_q = flat_pack_q__scalar,
    .pack_k = flat_pack_k__scalar,
    .qk = flat_qk_4x8__scalar,
    .qk_rows = flat_qk_rows__scalar,
    .row_max = flat_row_max__scalar,
    .exp2_row = flat_exp2_row__scalar,
    .pv = flat_pv_4__scalar,
    .widen_rows = flat_widen_rows__scalar,
    .store_row = flat_store_row__scalar,
    .score_rules = flat_score_rules__scalar,
    .vexp2 = flat_vexp2__scalar,
    .quantize_row = flat_quantize_row__scalar,
    .first_nonfinite = flat_first_nonfinite__scalar,
};
