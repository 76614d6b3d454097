/*
 * Cache sizes the host misreports (issue 19: a VM whose CPUID claims a 508
 * MiB L3 and which has no sysfs cache entries) cannot change a plan:
 *   - absurd sizes forced through the test hook (the same parser and sanity
 *     ranges as FLAT_CACHE_SIZES) give exactly the plans of the defaults:
 *     the same description (which names the L2 budget) and workspace size;
 *   - sizes inside the sane range are taken as they are, and the plan's
 *     workspace stays within what the range's largest L2 allows;
 *   - a split-KV plan that FLAT's rows would fit says why it is FLASH;
 *   - run again by ctest with FLAT_CACHE_SIZES=32K,508M,508M in the
 *     environment (test_cache_sizes_env), the sizes detected at start are the
 *     defaults for L2 and L3 and the plans equal the defaults' plans.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "flat.h"

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D;
    int causal;
} problem;

/* Prefill both ways (FLAT fits / does not), GQA, decode with and without
 * split-KV, and a speculative-decode check. */
static const problem problems[] = {
    {"bert", 2, 4, 4, 128, 128, 64, 0},        {"s1k", 1, 4, 4, 1024, 1024, 64, 0},
    {"long4k", 1, 2, 2, 4096, 4096, 64, 1},    {"gqa", 1, 8, 2, 512, 512, 128, 1},
    {"decode", 1, 8, 8, 1, 4096, 128, 0},      {"decode_split", 1, 2, 1, 1, 32768, 128, 0},
    {"spec", 1, 8, 2, 8, 2048, 128, 1},        {"mqa_split", 1, 64, 1, 1, 2048, 64, 0},
};
enum { N_PROBLEMS = sizeof problems / sizeof problems[0] };

typedef struct {
    char describe[N_PROBLEMS][1024];
    size_t workspace[N_PROBLEMS];
} plans;

static void plan_all(plans *out)
{
    for (int i = 0; i < N_PROBLEMS; i++) {
        const problem *p = &problems[i];
        size_t nq = (size_t)(p->B * p->Hq * p->Nq * p->D), nk = (size_t)(p->B * p->Hkv * p->Nk * p->D);
        float *qd = calloc(nq, 4), *kd = calloc(nk, 4), *vd = calloc(nk, 4), *od = calloc(nq, 4);
        assert_true(qd && kd && vd && od);
        flat_tensor q = flat_tensor_bhsd(qd, FLAT_F32, p->B, p->Hq, p->Nq, p->D);
        flat_tensor k = flat_tensor_bhsd(kd, FLAT_F32, p->B, p->Hkv, p->Nk, p->D);
        flat_tensor v = flat_tensor_bhsd(vd, FLAT_F32, p->B, p->Hkv, p->Nk, p->D);
        flat_tensor o = flat_tensor_bhsd(od, FLAT_F32, p->B, p->Hq, p->Nq, p->D);
        flat_options opt = {.causal = p->causal, .num_threads = 2};
        flat_plan *plan = NULL;
        if (flat_plan_create(&q, &k, &v, &o, &opt, &plan) != FLAT_OK)
            fail_msg("%s: %s", p->name, flat_last_error());
        snprintf(out->describe[i], sizeof out->describe[i], "%s", flat_plan_describe(plan));
        out->workspace[i] = flat_plan_workspace_size(plan);
        flat_plan_destroy(plan);
        free(qd), free(kd), free(vd), free(od);
    }
}

static plans with_caches(const char *spec)
{
    plans p;
    assert_int_equal(flat_cpu_set_caches_for_test(spec), 0);
    plan_all(&p);
    return p;
}

static void assert_same_plans(const plans *a, const plans *b, const char *spec)
{
    for (int i = 0; i < N_PROBLEMS; i++) {
        if (strcmp(a->describe[i], b->describe[i]) != 0 || a->workspace[i] != b->workspace[i])
            fail_msg("%s under %s:\n  %s (%zu bytes)\nwith defaults:\n  %s (%zu bytes)",
                     problems[i].name, spec, a->describe[i], a->workspace[i], b->describe[i],
                     b->workspace[i]);
    }
}

/* Sizes no CPU has: each falls back to its default. */
static void test_absurd_sizes_plan_as_defaults(void **state)
{
    (void)state;
    static plans defaults, forced;
    defaults = with_caches("0,0,0");
    assert_int_equal(flat_cpu()->l2_bytes, FLAT_CPU_L2_DEFAULT);
    assert_int_equal(flat_cpu()->l3_bytes, FLAT_CPU_L3_DEFAULT);
    static const char *const absurd[] = {"32K,508M,508M", "1G,1G,1G", "1,1,1", "0,64G,0",
                                         "32k,384m,4g"};
    for (size_t s = 0; s < sizeof absurd / sizeof absurd[0]; s++) {
        forced = with_caches(absurd[s]);
        assert_true(flat_cpu()->l2_bytes >= FLAT_CPU_L2_MIN);
        assert_true(flat_cpu()->l2_bytes <= FLAT_CPU_L2_MAX);
        assert_true(flat_cpu()->l3_bytes <= FLAT_CPU_L3_MAX);
        assert_same_plans(&forced, &defaults, absurd[s]);
    }
    /* the last, "32k,384m,4g": a sane L1d is kept beside the absurd L2 */
    assert_int_equal(flat_cpu()->l1d_bytes, 32 << 10);
    assert_int_equal(flat_cpu_set_caches_for_test(NULL), 0);
}

/* Plausible sizes are believed; the largest plausible L2 bounds the plan. */
static void test_sane_sizes_taken(void **state)
{
    (void)state;
    static plans small, large;
    small = with_caches("48K,256K,32M");
    assert_int_equal(flat_cpu()->l2_bytes, 256 << 10);
    large = with_caches("48K,2M,32M");
    assert_int_equal(flat_cpu()->l2_bytes, 2 << 20);
    assert_non_null(strstr(large.describe[0], "L2/2=1024KiB"));
    assert_non_null(strstr(small.describe[0], "L2/2=128KiB"));
    for (int i = 0; i < N_PROBLEMS; i++)
        assert_true(large.workspace[i] <= (size_t)64 << 20); /* MiBs, never the GiBs of 508 MiB */
    assert_int_equal(flat_cpu_set_caches_for_test(NULL), 0);
}

/* A split-KV call whose rows would fit FLAT runs FLASH: its reason names the
 * split, not "FLAT row buffer fits L2" (issue 19). */
static void test_split_reason_names_flash(void **state)
{
    (void)state;
    static plans p;
    p = with_caches("32K,1M,32M");
    const char *d = p.describe[N_PROBLEMS - 1];
    assert_non_null(strstr(d, "dataflow=FLASH"));
    assert_null(strstr(d, "splits=1 "));
    if (strstr(d, "FLAT row buffer fits") || !strstr(d, "because split-KV"))
        fail_msg("reason of a split FLASH plan: %s", d);
    assert_int_equal(flat_cpu_set_caches_for_test(NULL), 0);
}

/* Malformed specs change nothing. */
static void test_malformed_spec_refused(void **state)
{
    (void)state;
    int64_t l2 = flat_cpu()->l2_bytes;
    static const char *const bad[] = {"", "1M", "1M,2M", "1M,2M,3M,4M", "a,b,c", "-1,2M,3M",
                                      "1M,2M,3T", "99999999999999G,1M,1M"};
    for (size_t s = 0; s < sizeof bad / sizeof bad[0]; s++)
        assert_int_equal(flat_cpu_set_caches_for_test(bad[s]), -1);
    assert_int_equal(flat_cpu()->l2_bytes, l2);
}

/* Under ctest's FLAT_CACHE_SIZES=32K,508M,508M (test_cache_sizes_env): the
 * sizes detected at start already are the defaults' where they are absurd. */
static void test_environment_variable(void **state)
{
    (void)state;
    const char *env = getenv("FLAT_CACHE_SIZES");
    if (!env || strcmp(env, "32K,508M,508M") != 0) {
        /* the plain run: real detection lands in the sane ranges */
        assert_true(flat_cpu()->l2_bytes >= FLAT_CPU_L2_MIN);
        assert_true(flat_cpu()->l2_bytes <= FLAT_CPU_L2_MAX);
        return;
    }
    static plans at_start, defaults;
    assert_int_equal(flat_cpu()->l1d_bytes, 32 << 10);
    assert_int_equal(flat_cpu()->l2_bytes, FLAT_CPU_L2_DEFAULT);
    assert_int_equal(flat_cpu()->l3_bytes, FLAT_CPU_L3_DEFAULT);
    plan_all(&at_start);
    defaults = with_caches("0,0,0");
    assert_same_plans(&at_start, &defaults, "FLAT_CACHE_SIZES=32K,508M,508M");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_environment_variable), /* first: before any hook call */
        cmocka_unit_test(test_absurd_sizes_plan_as_defaults),
        cmocka_unit_test(test_sane_sizes_taken),
        cmocka_unit_test(test_split_reason_names_flash),
        cmocka_unit_test(test_malformed_spec_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
