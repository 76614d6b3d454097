/*
 * Extreme inputs, on every kernel table and dataflow, 1 and 2 threads,
 * against the double reference:
 *   - subnormal Q, K and V (logits underflow to 0: a uniform average of
 *     subnormal values), and subnormal V under ordinary logits;
 *   - logits near the fp32 overflow (|q.k| up to 1e38: the softmax is
 *     one-hot, and no inf - inf may turn into NaN), with and without softcap;
 *   - all-equal rows (every key the same, and zero queries);
 *   - one visible key of 2^20 (kv_lens = 1) and a 2-key window at the end
 *     of 2^20 keys.
 * Tolerances: the documented 1e-5 (the bf16-product table 1e-2), plus, for
 * results in the subnormal range, fp32's absolute resolution there (2^-149
 * per accumulated key); the bf16-product table flushes subnormal operands
 * (its kernels.h), so its rows for subnormal V err by up to 2^-126. That these
 * calls are not slow is `flat-bench-extreme`'s line, not a timed test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "reference.h"
#include "testutil.h"

static const flat_ukernels *tables[8];
static int ntables;
static long calls;

typedef enum { SUBNORMAL_QKV, SUBNORMAL_V, HUGE_LOGITS, HUGE_SOFTCAP, EQUAL_KEYS, ZERO_Q } kind;
static const char *kind_names[] = {"subnormal q, k, v", "subnormal v", "logits near 1e38",
                                   "logits near 1e38, softcap 30", "all keys equal",
                                   "zero queries"};

/* Fills x per kind: `role` 0 q, 1 k, 2 v. */
static void fill_for(tu_tensor *x, kind kd, int role, tu_rng *rng)
{
    const flat_tensor *t = &x->t;
    const float big = sqrtf(1e38f / (float)t->dim); /* |q.k| <= 1e38 */
    for (int64_t b = 0; b < t->batch; b++)
        for (int64_t h = 0; h < t->heads; h++)
            for (int64_t s = 0; s < t->seq; s++)
                for (int64_t d = 0; d < t->dim; d++) {
                    float u = tu_uniform(rng, 0.5f, 1.0f), sign = tu_next(rng) & 1 ? -1.0f : 1.0f;
                    float f = sign * u;
                    if (role == 2)
                        f = (kd == SUBNORMAL_QKV || kd == SUBNORMAL_V) ? u * 2e-39f : u;
                    else if (kd == SUBNORMAL_QKV)
                        f = sign * u * 2e-39f;
                    else if (kd == HUGE_LOGITS || kd == HUGE_SOFTCAP)
                        f = sign * u * big;
                    else if (kd == EQUAL_KEYS && role == 1)
                        f = 0.25f + 0.01f * (float)d; /* every key row the same */
                    else if (kd == ZERO_Q && role == 0)
                        f = 0.0f;
                    ref_row(t, b, h, s)[d] = f;
                }
}

/* ||got - want|| <= tol ||want|| + floor. */
static void check_rows(const tu_tensor *o, const double *want, const double *want_lse,
                       const float *lse, double tol, double floor, const char *what)
{
    const flat_tensor *t = &o->t;
    int64_t r = 0;
    for (int64_t b = 0; b < t->batch; b++)
        for (int64_t h = 0; h < t->heads; h++)
            for (int64_t i = 0; i < t->seq; i++, r++) {
                const float *got = ref_row(t, b, h, i);
                double err = 0, norm = 0;
                for (int64_t x = 0; x < t->dim; x++) {
                    double w = want[r * t->dim + x];
                    err += (got[x] - w) * (got[x] - w), norm += w * w;
                }
                if (!(sqrt(err) <= tol * sqrt(norm) + floor))
                    fail_msg("%s: row (%lld,%lld,%lld): error %.3g, |want| %.3g (tol %.2g, "
                             "floor %.2g)", what, (long long)b, (long long)h, (long long)i,
                             sqrt(err), sqrt(norm), tol, floor);
                double lt = (tol > 1e-4 ? 5e-3 : 1e-5) * fmax(1.0, fabs(want_lse[r]));
                if (!(fabs(lse[r] - want_lse[r]) <= lt))
                    fail_msg("%s: row (%lld,%lld,%lld): lse %.9g, want %.9g", what, (long long)b,
                             (long long)h, (long long)i, lse[r], want_lse[r]);
            }
}

static void run_kind(kind kd)
{
    const int64_t B = 2, Hq = 4, Hkv = 2, Nq = 9, Nk = 150, D = 40;
    tu_rng rng = {(uint64_t)kd * 77 + 1};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, TU_BHSD, B, Hq, Nq, D);
    tu_tensor_alloc(&k, TU_BSHD, B, Hkv, Nk, D);
    tu_tensor_alloc(&v, TU_BHSD, B, Hkv, Nk, D);
    tu_tensor_alloc(&o, TU_BHSD, B, Hq, Nq, D);
    fill_for(&q, kd, 0, &rng), fill_for(&k, kd, 1, &rng), fill_for(&v, kd, 2, &rng);
    flat_options base = {0};
    base.causal = 1;
    if (kd == HUGE_LOGITS || kd == HUGE_SOFTCAP)
        base.scale = 1.0f;
    if (kd == HUGE_SOFTCAP)
        base.softcap = 30.0f;
    const int64_t rows = B * Hq * Nq;
    double *want = malloc(sizeof(double) * (size_t)(rows * D)), *want_lse = malloc(sizeof(double) * (size_t)rows);
    float *lse = malloc(sizeof(float) * (size_t)rows);
    ref_attention(&q.t, &k.t, &v.t, &base, want, want_lse, NULL);
    const int subnormal_out = kd == SUBNORMAL_QKV || kd == SUBNORMAL_V;
    /* fp32 in the subnormal range: 2^-149 per accumulated key; the bf16
     * table flushes subnormal V (below 2^-126) in its vdpbf16ps path */
    const double floor = subnormal_out ? sqrt((double)D) * (double)Nk * 0x1p-149 : 0.0;
    const double floor_bf16 = subnormal_out ? sqrt((double)D) * 0x1p-126 : 0.0;
    char what[128];
    for (int ti = 0; ti < ntables; ti++)
        for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE; df++)
            for (int threads = 1; threads <= 2; threads++) {
                flat_options opt = base;
                opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df;
                opt.num_threads = threads, opt.lse = lse;
                const int bf16 = tables[ti]->compute == FLAT_BF16;
                tu_tensor_poison(&o);
                assert_int_equal(flat_attention(&q.t, &k.t, &v.t, &o.t, &opt), FLAT_OK);
                snprintf(what, sizeof what, "%s, %s, dataflow %d, %d thread(s)", kind_names[kd],
                         tables[ti]->name, df, threads);
                check_rows(&o, want, want_lse, lse, bf16 ? 1e-2 : 1e-5, bf16 ? floor_bf16 : floor,
                           what);
                calls++;
            }
    printf("  %-30s every table and dataflow: within bound\n", kind_names[kd]);
    free(want), free(want_lse), free(lse);
    tu_tensor_free(&q), tu_tensor_free(&k), tu_tensor_free(&v), tu_tensor_free(&o);
}

static void test_subnormal(void **state) { (void)state, run_kind(SUBNORMAL_QKV), run_kind(SUBNORMAL_V); }
static void test_huge_logits(void **state) { (void)state, run_kind(HUGE_LOGITS), run_kind(HUGE_SOFTCAP); }
static void test_equal_rows(void **state) { (void)state, run_kind(EQUAL_KEYS), run_kind(ZERO_Q); }

/* 2^20 keys (2^18 in quick mode), of which a row sees one or two. */
static void test_few_visible_of_many(void **state)
{
    (void)state;
    const int64_t Nk = tu_quick() ? (1 << 18) : (1 << 20), D = 16, Nq = 3;
    tu_rng rng = {99};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, TU_BHSD, 1, 2, Nq, D);
    tu_tensor_alloc(&k, TU_BHSD, 1, 1, Nk, D);
    tu_tensor_alloc(&v, TU_BHSD, 1, 1, Nk, D);
    tu_tensor_alloc(&o, TU_BHSD, 1, 2, Nq, D);
    tu_tensor_fill(&q, &rng, 1.0f), tu_tensor_fill(&k, &rng, 1.0f), tu_tensor_fill(&v, &rng, 1.0f);
    int32_t one = 1;
    double want[2 * 3 * 16], want_lse[2 * 3];
    float lse[2 * 3];
    for (int variant = 0; variant < 2; variant++) {
        flat_options base = {0};
        if (variant == 0)
            base.kv_lens = &one; /* every row sees key 0 */
        else
            base.causal = 1, base.window_left = 1; /* the last rows' 2-key windows */
        ref_attention(&q.t, &k.t, &v.t, &base, want, want_lse, NULL);
        for (int ti = 0; ti < ntables; ti++)
            for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE; df++) {
                flat_options opt = base;
                opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df;
                opt.num_threads = 2, opt.lse = lse;
                tu_tensor_poison(&o);
                assert_int_equal(flat_attention(&q.t, &k.t, &v.t, &o.t, &opt), FLAT_OK);
                char what[96];
                snprintf(what, sizeof what, "%s of %lld keys, %s, dataflow %d",
                         variant ? "a 2-key window" : "1 visible key", (long long)Nk,
                         tables[ti]->name, df);
                check_rows(&o, want, want_lse, lse,
                           tables[ti]->compute == FLAT_BF16 ? 1e-2 : 1e-5, 0.0, what);
                calls++;
            }
    }
    printf("  1 visible key and a 2-key window of %lld keys: every table and dataflow\n",
           (long long)Nk);
    tu_tensor_free(&q), tu_tensor_free(&k), tu_tensor_free(&v), tu_tensor_free(&o);
}

static void test_summary(void **state)
{
    (void)state;
    printf("test_extreme: %ld calls checked against the reference\n", calls);
    assert_true(calls > 0);
}

int main(void)
{
    ntables = tu_runnable_tables("test_extreme", tables, 8);
    if (tu_check_required_isas("test_extreme"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subnormal),   cmocka_unit_test(test_huge_logits),
        cmocka_unit_test(test_equal_rows),  cmocka_unit_test(test_few_visible_of_many),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
