/* The one place that chooses kernels: a best-first list of compiled tables,
 * the per-call opt.isa, and the process-wide FLAT_ISA default. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "dispatch.h"
#include "error.h"

static const flat_ukernels *const tables[] = {
#if defined(FLAT_HAVE_AVX512)
    &flat_ukernels_avx512,
#endif
/* After avx512: bf16 products are faster but round Q, K, P and V, so AUTO
 * (the first runnable table) keeps the fp32 accuracy; opt.isa or FLAT_ISA
 * chooses this one. */
#if defined(FLAT_HAVE_AVX512_BF16)
    &flat_ukernels_avx512_bf16,
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
#define LAST_ISA FLAT_ISA_AVX512_BF16

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
                         "avx512_bf16",
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
        flat_cpu_feature_names(t->required & ~flat_cpu()->features, missing, sizeof missing);
        *status = flat_error(FLAT_ERROR_UNSUPPORTED,
                             "isa %s requested but the CPU (or OS) lacks %s", t->name, missing);
        return NULL;
    }
    return t;
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
