/*
 * The FLAT_ISA environment variable, as the dispatcher sees it. ctest runs
 * this suite once per value (FLAT_ISA=scalar, avx2, avx512, neon, avx512_bf16,
 * amx_bf16, auto, nonsense) with FLAT_VERBOSE=1; the expectation follows from the value:
 *
 *   a table built and runnable here -> AUTO calls run that table: the
 *       FLAT_VERBOSE line says "flat: isa=<name> ..." and the result is
 *       bit-identical to opt.isa = <that table>;
 *   a known name not built / not runnable -> AUTO calls fail with
 *       FLAT_ERROR_UNSUPPORTED naming it, out untouched;
 *   anything else -> a clean error naming FLAT_ISA, out untouched.
 *
 * In every case explicit opt.isa values ignore FLAT_ISA, and so does
 * flat_isa_detect().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "testutil.h"

enum { NQ = 37, NK = 150, D = 64 };

static tu_tensor q, k, v, o;
static float ref_bits[2 * NQ * D];

static const flat_ukernels *table_named(const char *name, int *runnable)
{
    int count;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    for (int i = 0; i < count; i++)
        if (strcmp(all[i]->name, name) == 0) {
            *runnable = flat_dispatch_runnable(all[i]);
            return all[i];
        }
    *runnable = 0;
    return NULL;
}

/* Runs flat_attention with stderr captured into buf. */
static flat_status call_capturing(const flat_options *opt, char *buf, size_t n)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    flat_status st = flat_attention(&q.t, &k.t, &v.t, &o.t, opt);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t got = fread(buf, 1, n - 1, tmp);
    buf[got] = '\0';
    fclose(tmp);
    return st;
}

static int setup(void **state)
{
    (void)state;
    tu_rng rng = {31};
    tu_tensor_alloc(&q, TU_BHSD, 1, 2, NQ, D);
    tu_tensor_alloc(&k, TU_BHSD, 1, 1, NK, D);
    tu_tensor_alloc(&v, TU_BHSD, 1, 1, NK, D);
    tu_tensor_alloc(&o, TU_BHSD, 1, 2, NQ, D);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
    return 0;
}

static void test_auto_follows_flat_isa(void **state)
{
    (void)state;
    const char *env = getenv("FLAT_ISA");
    const char *verbose = getenv("FLAT_VERBOSE");
    assert_non_null(env); /* ctest sets it; running this without it tests nothing */
    assert_true(verbose && *verbose == '1');
    printf("  FLAT_ISA=%s\n", env);

    static const char *known[] = {"scalar", "avx2", "avx512", "neon", "avx512_bf16", "amx_bf16"};
    int is_known = 0;
    for (int i = 0; i < (int)(sizeof known / sizeof known[0]); i++)
        is_known |= strcmp(env, known[i]) == 0;
    int runnable = 0;
    const flat_ukernels *t = strcmp(env, "auto") == 0
                                 ? table_named(flat_isa_name(flat_isa_detect()), &runnable)
                                 : table_named(env, &runnable);

    flat_options opt = {0};
    opt.causal = 1;
    opt.num_threads = 1;
    opt.dataflow = FLAT_DATAFLOW_FLASH;
    char err[4096];
    tu_tensor_poison(&o);
    flat_status st = call_capturing(&opt, err, sizeof err);
    printf("  AUTO -> %s; stderr: %s", flat_status_string(st), err[0] ? err : "(empty)\n");

    if (t && runnable) {
        if (st != FLAT_OK)
            fail_msg("FLAT_ISA=%s: status %s: %s", env, flat_status_string(st),
                     flat_last_error());
        char want[64];
        snprintf(want, sizeof want, "flat: isa=%s ", t->name);
        if (!strstr(err, want))
            fail_msg("FLAT_ISA=%s: FLAT_VERBOSE output lacks \"%s\": %s", env, want, err);
        memcpy(ref_bits, o.buf, sizeof ref_bits);
        /* the same table named explicitly gives the same bits */
        opt.isa = t->isa;
        tu_tensor_poison(&o);
        assert_int_equal(call_capturing(&opt, err, sizeof err), FLAT_OK);
        if (memcmp(ref_bits, o.buf, sizeof ref_bits) != 0)
            fail_msg("FLAT_ISA=%s: AUTO and opt.isa=%s differ", env, t->name);
    } else {
        if (is_known) {
            if (st != FLAT_ERROR_UNSUPPORTED)
                fail_msg("FLAT_ISA=%s (not runnable here): status %s, want UNSUPPORTED", env,
                         flat_status_string(st));
            if (!strstr(flat_last_error(), env))
                fail_msg("message \"%s\" does not name %s", flat_last_error(), env);
        } else {
            if (st != FLAT_ERROR_INVALID_ARGUMENT && st != FLAT_ERROR_UNSUPPORTED)
                fail_msg("FLAT_ISA=%s: status %s, want a clean error", env,
                         flat_status_string(st));
            if (!strstr(flat_last_error(), "FLAT_ISA"))
                fail_msg("message \"%s\" does not name FLAT_ISA", flat_last_error());
        }
        printf("  message: %s\n", flat_last_error());
        assert_int_equal(tu_tensor_padding_changed(&o), -1);
        for (size_t i = 0; i < o.n; i++)
            if (tu_bits(o.buf[i]) != TU_POISON_BITS)
                fail_msg("FLAT_ISA=%s: rejected call wrote out[%zu]", env, i);
    }
}

/* Explicit opt.isa ignores FLAT_ISA, whatever it holds. */
static void test_explicit_isa_ignores_env(void **state)
{
    (void)state;
    flat_options opt = {0};
    opt.isa = FLAT_ISA_SCALAR;
    opt.num_threads = 1;
    char err[4096];
    flat_status st = call_capturing(&opt, err, sizeof err);
    if (st != FLAT_OK)
        fail_msg("opt.isa=scalar with FLAT_ISA=%s: %s: %s", getenv("FLAT_ISA"),
                 flat_status_string(st), flat_last_error());
    if (!strstr(err, "flat: isa=scalar "))
        fail_msg("opt.isa=scalar ran something else: %s", err);
    opt.isa = flat_isa_detect();
    assert_int_equal(call_capturing(&opt, err, sizeof err), FLAT_OK);
}

/* flat_isa_detect() reports the CPU, not FLAT_ISA. */
static void test_detect_ignores_env(void **state)
{
    (void)state;
    int count;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    flat_isa best = FLAT_ISA_SCALAR;
    for (int i = count - 1; i >= 0; i--)
        if (flat_dispatch_runnable(all[i]))
            best = all[i]->isa;
    assert_int_equal(flat_isa_detect(), best);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_follows_flat_isa),
        cmocka_unit_test(test_explicit_isa_ignores_env),
        cmocka_unit_test(test_detect_ignores_env),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
