/*
 * The 0.2 ABI: this program is compiled against release 0.2.0's header
 * (tests/abi_0_2/flat.h: the struct layouts and enums of 0.2) and linked with
 * the current shared library. A 0.2 binary's calls must keep working: the
 * score rules, bf16 caches, the paged call and plans run on the engine's
 * threads, against the double reference or bitwise against each other, and
 * errors with their messages. Its zeroed reserved words (0.3's precision,
 * kv_quant and flags) mean 0.3's defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flat.h" /* 0.2.0's */
#include "reference.h"

enum { B = 2, HQ = 4, HKV = 2, NQ = 9, NK = 70, D = 64, PAGE = 16 };

static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffff) / 32768.0f - 1.0f;
}

static float *random_floats(size_t n, uint64_t *seed)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = frand(seed);
    return x;
}

static void test_layout_is_02(void **state)
{
    (void)state;
    assert_int_equal(sizeof(flat_options), 104);
    assert_int_equal(offsetof(flat_options, sinks), 56);
    assert_int_equal(offsetof(flat_options, mask), 72);
    assert_int_equal(offsetof(flat_options, reserved), 80);
    assert_int_equal(sizeof(flat_tensor), 72);
    assert_int_equal(sizeof(flat_paged_kv), 152);
    assert_int_equal(offsetof(flat_paged_kv, seq_lens), 120);
    assert_int_equal(offsetof(flat_paged_kv, q_offsets), 144);
    assert_string_equal(FLAT_VERSION_STRING, "0.2.0"); /* this header is 0.2's */
    assert_true(strncmp(flat_version(), "0.", 2) == 0); /* the library: same major */
}

/* Each out row within 1e-5 (relative 2-norm) of the double reference. */
static void expect_reference(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                             const flat_tensor *o, const flat_options *opt, const char *what)
{
    double *ref = malloc(sizeof(double) * B * HQ * NQ * D);
    ref_attention(q, k, v, opt, ref, NULL, NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < HQ; h++)
            for (int i = 0; i < NQ; i++) {
                const float *got = ref_row(o, b, h, i);
                const double *want = ref + ((b * HQ + h) * NQ + i) * D;
                double err = 0, norm = 0;
                for (int c = 0; c < D; c++)
                    err += (got[c] - want[c]) * (got[c] - want[c]), norm += want[c] * want[c];
                if (!(sqrt(err) <= 1e-5 * sqrt(norm) + 1e-30))
                    fail_msg("%s row (%d,%d,%d): error %g", what, b, h, i, sqrt(err / norm));
            }
    free(ref);
}

/* Every 0.2 score rule at once, on every dataflow. */
static void test_rules_of_02(void **state)
{
    (void)state;
    uint64_t seed = 11;
    float *q = random_floats(B * HQ * NQ * D, &seed), *k = random_floats(B * HKV * NK * D, &seed);
    float *v = random_floats(B * HKV * NK * D, &seed), *o = malloc(sizeof(float) * B * HQ * NQ * D);
    float *mask = random_floats(B * HQ * NQ * NK, &seed);
    mask[5] = -INFINITY;
    float sinks[HQ] = {0.5f, -1.0f, 2.0f, 0.0f}, slopes[HQ] = {0.25f, 0.125f, 0.0625f, 0.03125f};
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, B, HQ, NQ, D);
    flat_tensor tk = flat_tensor_bhsd(k, FLAT_F32, B, HKV, NK, D);
    flat_tensor tv = flat_tensor_bhsd(v, FLAT_F32, B, HKV, NK, D);
    flat_tensor to = flat_tensor_bhsd(o, FLAT_F32, B, HQ, NQ, D);
    flat_tensor tm = flat_tensor_bhsd(mask, FLAT_F32, B, HQ, NQ, NK);
    for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE; df++) {
        flat_options opt = {0}; /* the 0.2 struct: reserved32 and reserved[] zero */
        opt.causal = 1, opt.window_left = 40, opt.softcap = 30.0f, opt.sinks = sinks;
        opt.alibi_slopes = slopes, opt.mask = &tm, opt.num_threads = 2;
        opt.dataflow = (flat_dataflow)df;
        assert_int_equal(flat_attention(&tq, &tk, &tv, &to, &opt), FLAT_OK);
        expect_reference(&tq, &tk, &tv, &to, &opt, "rules");
    }
    flat_options bad = {0};
    bad.window_left = -2;
    assert_int_equal(flat_attention(&tq, &tk, &tv, &to, &bad), FLAT_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(flat_last_error(), "window_left"));
    free(q), free(k), free(v), free(o), free(mask);
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* A bf16 paged cache (vLLM's NHD pages, scrambled) against the same values
 * laid out contiguously, bitwise; then a plan of the paged call run task by
 * task on this thread, bitwise again. */
static void test_paged_and_plans_of_02(void **state)
{
    (void)state;
    enum { PAGES_PER_SEQ = (NK + PAGE - 1) / PAGE, POOL = B * PAGES_PER_SEQ };
    uint64_t seed = 5;
    float *q = random_floats(B * HQ * NQ * D, &seed);
    uint16_t *k = malloc(2 * B * HKV * NK * D), *v = malloc(2 * B * HKV * NK * D);
    uint16_t *kp = calloc((size_t)POOL * PAGE * HKV * D, 2), *vp = calloc((size_t)POOL * PAGE * HKV * D, 2);
    int32_t table[B * PAGES_PER_SEQ], lens[B] = {NK, 33};
    for (int i = 0; i < B * HKV * NK * D; i++)
        k[i] = to_bf16(frand(&seed)), v[i] = to_bf16(frand(&seed));
    for (int i = 0; i < B * PAGES_PER_SEQ; i++)
        table[i] = (i * 3 + 1) % POOL; /* 3 and POOL = 10 coprime */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < HKV; h++)
            for (int s = 0; s < NK; s++) {
                size_t at = ((size_t)(table[b * PAGES_PER_SEQ + s / PAGE] * PAGE + s % PAGE) * HKV + h) * D;
                memcpy(kp + at, k + ((size_t)(b * HKV + h) * NK + s) * D, 2 * D);
                memcpy(vp + at, v + ((size_t)(b * HKV + h) * NK + s) * D, 2 * D);
            }
    float *o1 = malloc(sizeof(float) * B * HQ * NQ * D), *o2 = malloc(sizeof(float) * B * HQ * NQ * D);
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, B, HQ, NQ, D);
    flat_tensor tk = flat_tensor_bhsd(k, FLAT_BF16, B, HKV, NK, D);
    flat_tensor tv = flat_tensor_bhsd(v, FLAT_BF16, B, HKV, NK, D);
    flat_tensor t1 = flat_tensor_bhsd(o1, FLAT_F32, B, HQ, NQ, D);
    flat_tensor t2 = flat_tensor_bhsd(o2, FLAT_F32, B, HQ, NQ, D);
    flat_paged_kv kv = {FLAT_BF16, kp, vp, POOL, PAGE, HKV, D, D,
                        PAGE * HKV * D, HKV * D, D, PAGE * HKV * D, HKV * D, D,
                        B, lens, table, PAGES_PER_SEQ, NULL};
    flat_options opt = {0};
    opt.causal = 1, opt.num_threads = 1, opt.kv_lens = lens;
    assert_int_equal(flat_attention(&tq, &tk, &tv, &t1, &opt), FLAT_OK);
    opt.kv_lens = NULL;
    assert_int_equal(flat_attention_paged(&tq, &kv, &t2, &opt), FLAT_OK);
    assert_memory_equal(o1, o2, sizeof(float) * B * HQ * NQ * D);

    flat_plan *plan = NULL;
    opt.num_threads = 2;
    assert_int_equal(flat_plan_create_paged(&tq, &kv, &t2, &opt, &plan), FLAT_OK);
    void *ws = NULL;
    assert_int_equal(posix_memalign(&ws, 64, flat_plan_workspace_size(plan) + 64), 0);
    memset(o2, 0xff, sizeof(float) * B * HQ * NQ * D);
    for (int phase = 0; phase < 2; phase++)
        for (int64_t t = flat_plan_tasks(plan, phase) - 1; t >= 0; t--)
            assert_int_equal(flat_plan_run_task(plan, phase, t, (int)(t % flat_plan_workers(plan)), ws),
                             FLAT_OK);
    opt.kv_lens = lens;
    assert_int_equal(flat_attention(&tq, &tk, &tv, &t1, &opt), FLAT_OK);
    assert_memory_equal(o1, o2, sizeof(float) * B * HQ * NQ * D);
    assert_non_null(strstr(flat_plan_describe(plan), "paged"));
    flat_plan_destroy(plan);
    free(ws), free(q), free(k), free(v), free(kp), free(vp), free(o1), free(o2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_is_02),
        cmocka_unit_test(test_rules_of_02),
        cmocka_unit_test(test_paged_and_plans_of_02),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
