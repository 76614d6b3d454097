/* The one place that chooses kernels: a best-first list of compiled tables,
 * the per-call opt.isa, the process-wide FLAT_ISA default, and the
 * precision policy (flat_precision) between fp32- and bf16-product tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "dispatch.h"
#include "error.h"

static const flat_ukernels *const tables[] = {
#if defined(FLAT_HAVE_AVX512)
    &flat_ukernels_avx512,
#endif
/* After avx512: bf16 products are faster but round Q, K, P and V, so the
 * first runnable table keeps the fp32 accuracy; the precision policy
 * (flat_dispatch_choose) or opt.isa / FLAT_ISA choose these. */
#if defined(FLAT_HAVE_AVX512_BF16)
    &flat_ukernels_avx512_bf16,
#endif
#if defined(FLAT_HAVE_AMX_BF16)
    &flat_ukernels_amx_bf16,
#endif
/* int8 products on int8 caches round Q and P: FLAT_PRECISION_INT8 or an
 * explicit isa only. */
#if defined(FLAT_HAVE_AVX512_VNNI)
    &flat_ukernels_avx512_vnni,
#endif
#if defined(FLAT_HAVE_AVX2)
    &flat_ukernels_avx2,
#endif
#if defined(FLAT_HAVE_NEON)
    &flat_ukernels_neon,
#endif
    &flat_ukernels_scalar,
};
enum { N_TABLES = sizeof tables / sizeof tables[0] };
/* The highest flat_isa value (flat.h appends new ones). */
#define LAST_ISA FLAT_ISA_AVX512_VNNI

const flat_ukernels *const *flat_dispatch_tables(int *count)
{
    *count = N_TABLES;
    return tables;
}

int flat_dispatch_runnable(const flat_ukernels *t)
{
    return (t->required & ~flat_cpu()->features) == 0;
}

flat_isa flat_isa_detect(void)
{
    for (int i = 0; i < N_TABLES; i++)
        if (flat_dispatch_runnable(tables[i]))
            return tables[i]->isa;
    return FLAT_ISA_SCALAR;
}

const char *flat_isa_name(flat_isa isa)
{
    switch (isa) {
    case FLAT_ISA_AUTO: return "auto";
    case FLAT_ISA_SCALAR: return "scalar";
    case FLAT_ISA_AVX2: return "avx2";
    case FLAT_ISA_AVX512: return "avx512";
    case FLAT_ISA_NEON: return "neon";
    case FLAT_ISA_AVX512_BF16: return "avx512_bf16";
    case FLAT_ISA_AMX_BF16: return "amx_bf16";
    case FLAT_ISA_AVX512_VNNI: return "avx512_vnni";
    }
    return "unknown";
}

static const flat_ukernels *table_for(flat_isa isa)
{
    for (int i = 0; i < N_TABLES; i++)
        if (tables[i]->isa == isa)
            return tables[i];
    return NULL;
}

/* FLAT_ISA names a process-wide default for AUTO calls. It is read on every
 * AUTO call (a getenv, cheap next to an attention) so tests can set it. */
static const flat_ukernels *select_auto(flat_status *status)
{
    const char *env = getenv("FLAT_ISA");
    if (!env || !*env || strcmp(env, "auto") == 0)
        return table_for(flat_isa_detect());
    for (flat_isa isa = FLAT_ISA_SCALAR; isa <= LAST_ISA; isa++)
        if (strcmp(env, flat_isa_name(isa)) == 0)
            return flat_dispatch_select(isa, status);
    *status = flat_error(FLAT_ERROR_INVALID_ARGUMENT,
                         "FLAT_ISA (\"%.40s\") is not one of auto, scalar, avx2, avx512, neon, "
                         "avx512_bf16, amx_bf16, avx512_vnni",
                         env);
    return NULL;
}

const flat_ukernels *flat_dispatch_select(flat_isa isa, flat_status *status)
{
    if (isa == FLAT_ISA_AUTO)
        return select_auto(status);
    if (isa < FLAT_ISA_AUTO || isa > LAST_ISA) {
        *status = flat_error(FLAT_ERROR_INVALID_ARGUMENT,
                             "opt.isa (%d) is not a flat_isa value", (int)isa);
        return NULL;
    }
    const flat_ukernels *t = table_for(isa);
    if (!t) {
        *status = flat_error(FLAT_ERROR_UNSUPPORTED,
                             "isa %s requested but this build has no %s kernels",
                             flat_isa_name(isa), flat_isa_name(isa));
        return NULL;
    }
    if (!flat_dispatch_runnable(t)) {
        char missing[128];
        const uint32_t lacks = t->required & ~flat_cpu()->features;
        flat_cpu_feature_names(lacks, missing, sizeof missing);
        if (lacks & (FLAT_CPU_AMX_TILE | FLAT_CPU_AMX_BF16))
            *status = flat_error(FLAT_ERROR_UNSUPPORTED,
                                 "isa %s requested but the CPU (or OS) lacks %s (%s)", t->name,
                                 missing, flat_cpu_amx_why());
        else
            *status = flat_error(FLAT_ERROR_UNSUPPORTED,
                                 "isa %s requested but the CPU (or OS) lacks %s", t->name, missing);
        return NULL;
    }
    return t;
}

/* The first runnable table whose products are fp32 (scalar always is). */
static const flat_ukernels *best_fp32(void)
{
    for (int i = 0; i < N_TABLES; i++)
        if (tables[i]->compute == FLAT_F32 && flat_dispatch_runnable(tables[i]))
            return tables[i];
    return &flat_ukernels_scalar;
}

static const flat_ukernels *runnable(flat_isa isa)
{
    const flat_ukernels *t = table_for(isa);
    return t && flat_dispatch_runnable(t) ? t : NULL;
}

static const char *dtype_name(flat_dtype t);

/*
 * The precision policy. Measured rule for avx512_bf16 without AMX: its
 * vdpbf16ps runs at twice the fp32 FMA rate where the core issues it on
 * both FMA pipes (AMD Zen 4/5: the table is 1.6-1.75x the avx512 one end
 * to end, benchmarks/RESULTS.md) and at the fp32 rate where it issues on one
 * (Intel Sapphire Rapids: 0.69-0.86x the avx512 table on the shared shapes,
 * issue 20's table). So AUTO takes it on AMD CPUs only.
 */
/* FLAT_PRECISION_INT8: int8 products where K/V are FLAT_I8 or FLAT_I4, fp32
 * otherwise. */
static const flat_ukernels *choose_int8(flat_dtype kv, flat_status *status, char *why, size_t n)
{
    if (kv != FLAT_I8 && kv != FLAT_I4) {
        snprintf(why, n, "precision int8: fp32 products (k/v %s, not i8 or i4)", dtype_name(kv));
        return best_fp32();
    }
    const flat_ukernels *vnni = runnable(FLAT_ISA_AVX512_VNNI);
    if (!vnni) {
        *status = flat_error(FLAT_ERROR_UNSUPPORTED,
                             "opt.precision (3, int8): no table with int8 products runs here "
                             "(avx512_vnni: %s)",
                             table_for(FLAT_ISA_AVX512_VNNI) ? "the CPU lacks avx512_vnni"
                                                             : "not built");
        return NULL;
    }
    snprintf(why, n, "precision int8: int8 products on vpdpbusd");
    return vnni;
}

static const flat_ukernels *choose_precision(int32_t precision, flat_dtype q, flat_dtype kv,
                                             flat_status *status, char *why, size_t n)
{
    if (precision == FLAT_PRECISION_INT8)
        return choose_int8(kv, status, why, n);
    const int all_bf16 = q == FLAT_BF16 && kv == FLAT_BF16;
    if (precision == FLAT_PRECISION_FP32 || (precision == FLAT_PRECISION_AUTO && !all_bf16)) {
        snprintf(why, n, "precision %s: fp32 products%s%s%s%s",
                 precision == FLAT_PRECISION_FP32 ? "fp32" : "auto",
                 precision == FLAT_PRECISION_FP32 ? "" : " (q ",
                 precision == FLAT_PRECISION_FP32 ? "" : dtype_name(q),
                 precision == FLAT_PRECISION_FP32 ? "" : ", k/v ",
                 precision == FLAT_PRECISION_FP32 ? "" : dtype_name(kv));
        if (precision != FLAT_PRECISION_FP32)
            snprintf(why + strlen(why), n - strlen(why), ": not all bf16)");
        return best_fp32();
    }
    const char *what = precision == FLAT_PRECISION_BF16 ? "precision bf16" : "precision auto, all bf16";
    const flat_ukernels *amx = runnable(FLAT_ISA_AMX_BF16), *vdp = runnable(FLAT_ISA_AVX512_BF16);
    const char *no_amx = table_for(FLAT_ISA_AMX_BF16) ? flat_cpu_amx_why() : "not built";
    if (amx && !(amx->dtypes & FLAT_DTYPE_BIT(kv))) /* every type today; kept for a new one */
        amx = NULL, no_amx = "its kernels do not take this K/V type";
    if (amx) {
        snprintf(why, n, "%s: bf16 products on AMX tiles", what);
        return amx;
    }
    if (vdp && (precision == FLAT_PRECISION_BF16 || flat_cpu()->amd)) {
        snprintf(why, n, "%s: bf16 products on vdpbf16ps (no amx_bf16: %s)%s", what, no_amx,
                 precision == FLAT_PRECISION_BF16 ? "" : "; on AMD it beats fp32 FMA 1.6-1.75x");
        return vdp;
    }
    if (precision == FLAT_PRECISION_BF16) {
        *status = flat_error(FLAT_ERROR_UNSUPPORTED,
                             "opt.precision (2, bf16): no table with bf16 products runs here "
                             "(amx_bf16: %s; avx512_bf16: %s)",
                             no_amx, table_for(FLAT_ISA_AVX512_BF16) ? "the CPU lacks avx512_bf16"
                                                                     : "not built");
        return NULL;
    }
    snprintf(why, n, "%s: fp32 products (no amx_bf16: %s; %s)", what, no_amx,
             vdp ? "avx512_bf16 is slower than fp32 FMA on this non-AMD CPU"
                 : "no avx512_bf16 either");
    return best_fp32();
}

const flat_ukernels *flat_dispatch_choose(flat_isa isa, int32_t precision, flat_dtype q_dtype,
                                          flat_dtype kv_dtype, flat_status *status, char *why,
                                          size_t n)
{
    const char *env = getenv("FLAT_ISA");
    if (isa != FLAT_ISA_AUTO) {
        snprintf(why, n, "opt.isa");
        return flat_dispatch_select(isa, status);
    }
    if (env && *env && strcmp(env, "auto") != 0) {
        snprintf(why, n, "FLAT_ISA=%.40s", env);
        return select_auto(status);
    }
    return choose_precision(precision, q_dtype, kv_dtype, status, why, n);
}

static const char *dtype_name(flat_dtype t)
{
    static const char *names[] = {"f32", "f16", "bf16", "i8", "f8e4m3", "i4"};
    return (int)t >= 0 && (int)t <= FLAT_I4 ? names[t] : "?";
}

int flat_dispatch_takes(const flat_ukernels *t, flat_dtype q_dtype, flat_dtype kv_dtype,
                        flat_status *status)
{
    const flat_dtype need[2] = {q_dtype, kv_dtype};
    static const char *what[2] = {"q/out", "k/v"};
    for (int i = 0; i < 2; i++)
        if (!(t->dtypes & FLAT_DTYPE_BIT(need[i]))) {
            *status = flat_error(FLAT_ERROR_UNSUPPORTED,
                                 "isa %s has no kernels for %s dtype %s", t->name, what[i],
                                 dtype_name(need[i]));
            return 0;
        }
    return 1;
}
