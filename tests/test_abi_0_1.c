/*
 * The 0.1 ABI: this program is compiled against release 0.1.0's header
 * (tests/abi_0_1/flat.h, the struct layouts and enums of 0.1) and linked
 * with the current shared library. Its calls must keep working: results
 * against the double reference, errors with their messages, and the layout
 * facts a 0.1 binary relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flat.h" /* 0.1.0's */
#include "reference.h"

static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffff) / 32768.0f - 1.0f;
}

static void test_layout_is_01(void **state)
{
    (void)state;
    assert_int_equal(sizeof(flat_options), 104);
    assert_int_equal(offsetof(flat_options, isa), 32);
    assert_int_equal(sizeof(flat_tensor), 72);
    assert_string_equal(FLAT_VERSION_STRING, "0.1.0"); /* this header is 0.1's */
    assert_true(strncmp(flat_version(), "0.", 2) == 0); /* the library: same major */
}

static void test_calls_of_01(void **state)
{
    (void)state;
    enum { B = 2, HQ = 4, HKV = 2, NQ = 37, NK = 91, D = 64 };
    uint64_t seed = 7;
    float *q = malloc(sizeof(float) * B * HQ * NQ * D), *k = malloc(sizeof(float) * B * HKV * NK * D);
    float *v = malloc(sizeof(float) * B * HKV * NK * D), *o = malloc(sizeof(float) * B * HQ * NQ * D);
    for (int i = 0; i < B * HQ * NQ * D; i++)
        q[i] = frand(&seed);
    for (int i = 0; i < B * HKV * NK * D; i++)
        k[i] = frand(&seed), v[i] = frand(&seed);
    flat_tensor tq = flat_tensor_bshd(q, FLAT_F32, B, NQ, HQ, D);
    flat_tensor tk = flat_tensor_bshd(k, FLAT_F32, B, NK, HKV, D);
    flat_tensor tv = flat_tensor_bshd(v, FLAT_F32, B, NK, HKV, D);
    flat_tensor to = flat_tensor_bshd(o, FLAT_F32, B, NQ, HQ, D);
    double *ref = malloc(sizeof(double) * B * HQ * NQ * D);
    float lse[B * HQ * NQ];
    int32_t lens[B] = {NK, 50};
    for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_FLASH; df++) {
        flat_options opt = {0}; /* the 0.1 struct, reserved words zero */
        opt.causal = 1, opt.kv_lens = lens, opt.lse = lse, opt.num_threads = 2;
        opt.dataflow = (flat_dataflow)df;
        assert_int_equal(flat_attention(&tq, &tk, &tv, &to, &opt), FLAT_OK);
        ref_attention(&tq, &tk, &tv, &opt, ref, NULL, NULL);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < HQ; h++)
                for (int i = 0; i < NQ; i++) {
                    const float *got = ref_row(&to, b, h, i);
                    const double *want = ref + ((b * HQ + h) * NQ + i) * D;
                    double err = 0, norm = 0;
                    for (int c = 0; c < D; c++)
                        err += (got[c] - want[c]) * (got[c] - want[c]), norm += want[c] * want[c];
                    if (!(sqrt(err) <= 1e-5 * sqrt(norm)))
                        fail_msg("dataflow %d row (%d,%d,%d): error %g", df, b, h, i,
                                 sqrt(err / norm));
                }
    }
    flat_tensor bad = tk;
    bad.dim = 80;
    assert_int_equal(flat_attention(&tq, &bad, &tv, &to, NULL), FLAT_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(flat_last_error(), "k.dim (80) != q.dim (64)"));
    free(ref);
    free(q), free(k), free(v), free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_is_01),
        cmocka_unit_test(test_calls_of_01),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
