/* The AMX-BF16 kernel table: Q K^T and P V on tdpbf16ps tiles, the softmax
 * between them on AVX-512; bf16 products, fp32 sums (kernels.h). AUTO takes
 * it for all-bf16 calls where the CPU has AMX (runtime/dispatch.c); the
 * suites passed on a Sapphire-Rapids-class Xeon (issue 20's device runs).
 * Built with FLAT_AMX_EMULATE, the tiles are a C model (tiles.h) and the
 * table asks only for AVX-512 BF16: test builds on CPUs without AMX. Every
 * K/V type: quantized rows are dequantized and rounded to bf16 where the
 * tiles' operands are built (qk_rows' stage, pv's V pairs, pack_k). */
#include "../ukernel.h"
#include "kernels.h"

#if defined(FLAT_AMX_EMULATE)
#define AMX_BITS 0u
#else
#define AMX_BITS (FLAT_CPU_AMX_TILE | FLAT_CPU_AMX_BF16)
#endif

const flat_ukernels flat_ukernels_amx_bf16 = {
    .isa = FLAT_ISA_AMX_BF16,
    .name = "amx_bf16",
    .required = FLAT_CPU_AVX512F | FLAT_CPU_AVX512BW | FLAT_CPU_AVX512VL | FLAT_CPU_AVX512DQ |
                FLAT_CPU_FMA | FLAT_CPU_AVX2 | FLAT_CPU_AVX512BF16 | AMX_BITS,
    .dtypes = FLAT_DTYPES_ALL,
    .compute = FLAT_BF16,
    .mr = FLAT_AMX_BF16_MR,
    .nr = FLAT_AMX_BF16_NR,
    .qk_min_panels = 8, /* per call: ldtilecfg, Q into A tiles, tilerelease */
    .pv_mr = FLAT_AMX_BF16_PV_MR,
    .pack_q = flat_pack_q__amx_bf16,
    .pack_k = flat_pack_k__amx_bf16,
    .qk = flat_qk_16x16__amx_bf16,
    .qk_rows = flat_qk_rows__amx_bf16,
    .qk_rows_exact = flat_qk_rows__amx_bf16, /* tiles: the same products for any m */
    .row_max = flat_row_max__amx_bf16,
    .exp2_row = flat_exp2_row__amx_bf16,
    .pv = flat_pv_32__amx_bf16,
    .widen_rows = flat_widen_rows__amx_bf16,
    .store_row = flat_store_row__amx_bf16,
    .score_rules = flat_score_rules__amx_bf16,
    .vexp2 = flat_vexp2__amx_bf16,
    .quantize_row = flat_quantize_row__amx_bf16,
    .first_nonfinite = flat_first_nonfinite__amx_bf16,
};
