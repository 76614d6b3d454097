/*
 * The decode path (FLAT_DATAFLOW_DECODE and AUTO's choice of it) on every
 * kernel table the host runs, against the double-precision reference:
 *   - GQA groups 1, 4, 8 and 32 (MQA when there is one kv head);
 *   - kv_len from 1 to 70000, including non-multiples of every block width
 *     (16-key qk_rows blocks, 32-key K panels, the planner's key blocks);
 *   - causal with q_len 2..16 (speculative verification, chunked prefill
 *     tails) and kv_lens with zeros;
 *   - split-KV counts forced from 1 to 64 through the planner's own hook
 *     (flat_tiling_set_splits), including more splits than key panels, so
 *     most ranges are empty.
 * Tolerance as in test_attention: relative 2-norm error of each output row
 * <= 1e-5, rows that see no key exactly zero with lse = -inf, and lse within
 * 1e-5 * max(1, |lse|); tables with bf16 products (avx512_bf16, amx_bf16)
 * at their own bound, test_dtypes': rows 1e-2, lse 5e-3. Hidden K/V rows
 * (past kv_lens) are NaN: a read of one would poison the row.
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
#include "call.h"
#include "problem.h"
#include "reference.h"
#include "testutil.h"

#define ROW_TOL 1e-5
#define BF16_ROW_TOL 1e-2 /* tables with bf16 products (flat.h) */
#define BF16_LSE_TOL 5e-3

static const flat_ukernels *tables[8];
static int ntables;
static long calls;
static double worst, worst_bf16;

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D;
    int causal, kvlens;
    tu_layout layout;
} dcase;

/* One planned call with the split count forced: flat_plan_create's steps
 * (validate, select, build) with the planner's test hook in between, then
 * flat_plan_execute. splits 0: the planner's own choice. */
static flat_status run_forced(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                              const flat_tensor *out, const flat_options *opt, int splits)
{
    flat_problem p;
    flat_status s = flat_validate(q, k, v, out, opt, &p);
    if (s != FLAT_OK)
        return s;
    const flat_ukernels *uk = flat_dispatch_select(opt->isa, &s);
    if (!uk)
        return s;
    flat_plan *plan;
    if ((s = flat_plan_build(&p, uk, opt->dataflow, opt->num_threads, splits, &plan)) != FLAT_OK)
        return s;
    assert_true(plan->t.k_in_place || opt->dataflow != FLAT_DATAFLOW_DECODE);
    if (splits > 0)
        assert_int_equal(plan->t.splits, splits);
    s = flat_plan_execute(plan, NULL);
    flat_plan_destroy(plan);
    return s;
}

static int32_t kv_len_pattern(int64_t b, int64_t nk)
{
    switch (b % 4) {
    case 0: return (int32_t)nk;
    case 1: return 0;
    case 2: return (int32_t)((nk + 1) / 2);
    default: return 1;
    }
}

/* NaN in the K and V rows that kv_lens hides. */
static void hide_rows(tu_tensor *k, tu_tensor *v, const int32_t *lens)
{
    for (int64_t b = 0; b < k->t.batch; b++)
        for (int64_t h = 0; h < k->t.heads; h++)
            for (int64_t j = lens[b]; j < k->t.seq; j++)
                for (int64_t c = 0; c < k->t.dim; c++) {
                    ref_row(&k->t, b, h, j)[c] = NAN;
                    ref_row(&v->t, b, h, j)[c] = NAN;
                }
}

static void check_rows(const dcase *c, const tu_tensor *o, const float *lse, const double *ref,
                       const double *ref_lse, const int64_t *seen, const char *what, int bf16)
{
    const double row_tol = bf16 ? BF16_ROW_TOL : ROW_TOL, lse_tol = bf16 ? BF16_LSE_TOL : ROW_TOL;
    int64_t r = 0;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->Nq; i++, r++) {
                const float *got = ref_row(&o->t, b, h, i);
                const double *want = ref + r * c->D;
                double err = 0, norm = 0;
                for (int64_t x = 0; x < c->D; x++) {
                    double d = got[x] - want[x];
                    err += d * d, norm += want[x] * want[x];
                }
                if (seen[r] == 0) {
                    if (err != 0 || lse[r] != -INFINITY)
                        fail_msg("%s %s: row (%lld,%lld,%lld) sees no key but is not 0/-inf",
                                 c->name, what, (long long)b, (long long)h, (long long)i);
                    continue;
                }
                double rel = sqrt(err) / sqrt(norm);
                if (!bf16)
                    worst = rel > worst ? rel : worst;
                else
                    worst_bf16 = rel > worst_bf16 ? rel : worst_bf16;
                if (!(rel <= row_tol))
                    fail_msg("%s %s: row (%lld,%lld,%lld) sees %lld keys: relative error %.3g",
                             c->name, what, (long long)b, (long long)h, (long long)i,
                             (long long)seen[r], rel);
                double le = fabs(lse[r] - ref_lse[r]);
                if (!(le <= lse_tol * fmax(1.0, fabs(ref_lse[r]))))
                    fail_msg("%s %s: row (%lld,%lld,%lld): lse %.9g, want %.9g", c->name, what,
                             (long long)b, (long long)h, (long long)i, lse[r], ref_lse[r]);
            }
}

/* Every table x splits x threads, each checked against one reference. */
static void run_case(const dcase *c, const int *splits, int nsplits)
{
    tu_rng rng = {(uint64_t)(c->Nk * 131 + c->Hq * 7 + c->Nq)};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, c->layout, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_alloc(&k, c->layout, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&v, c->layout, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&o, c->layout, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    int32_t lens[16];
    flat_options base = {0};
    base.causal = c->causal;
    if (c->kvlens) {
        for (int64_t b = 0; b < c->B; b++)
            lens[b] = kv_len_pattern(b, c->Nk);
        hide_rows(&k, &v, lens);
        base.kv_lens = lens;
    }
    const int64_t rows = c->B * c->Hq * c->Nq;
    double *ref = malloc(sizeof(double) * (size_t)(rows * c->D));
    double *ref_lse = malloc(sizeof(double) * (size_t)rows);
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)rows);
    float *lse = malloc(sizeof(float) * (size_t)rows);
    ref_attention(&q.t, &k.t, &v.t, &base, ref, ref_lse, seen);
    char what[96];
    for (int ti = 0; ti < ntables; ti++)
        for (int si = 0; si < nsplits; si++)
            for (int threads = 1; threads <= 2; threads++) {
                flat_options opt = base;
                opt.isa = tables[ti]->isa;
                opt.dataflow = FLAT_DATAFLOW_DECODE;
                opt.num_threads = threads;
                opt.lse = lse;
                tu_tensor_poison(&o);
                flat_status s = run_forced(&q.t, &k.t, &v.t, &o.t, &opt, splits[si]);
                snprintf(what, sizeof what, "[%s splits=%d threads=%d]", tables[ti]->name,
                         splits[si], threads);
                if (s != FLAT_OK)
                    fail_msg("%s %s: %s: %s", c->name, what, flat_status_string(s),
                             flat_last_error());
                if (tu_tensor_padding_changed(&o) >= 0)
                    fail_msg("%s %s: out padding written", c->name, what);
                check_rows(c, &o, lse, ref, ref_lse, seen, what,
                           tables[ti]->compute == FLAT_BF16);
                calls++;
            }
    free(lse);
    free(seen);
    free(ref_lse);
    free(ref);
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
}

/* One query row per head, GQA groups 1, 4, 8, 32, kv_len across every block
 * edge up to 70000 (4097 in quick mode), splits 1..64. */
static void test_groups_and_lengths(void **state)
{
    (void)state;
    static const int groups[] = {1, 4, 8, 32};
    static const int64_t lens[] = {1, 2, 15, 16, 17, 31, 33, 100, 511, 513, 1000, 4097, 70000};
    static const int splits[] = {0, 1, 2, 3, 7, 64};
    char name[96];
    for (int gi = 0; gi < 4; gi++)
        for (int li = 0; li < (int)(sizeof lens / sizeof lens[0]); li++) {
            int64_t nk = lens[li];
            if (nk > 4097 && (tu_quick() || gi % 2))
                continue; /* 70000 keys for groups 1 and 8: the longest runs */
            dcase c = {name, 1, groups[gi], 1, 1, nk, 128, 0, 0, TU_BSHD};
            if (groups[gi] <= 4)
                c.Hkv = 2, c.Hq = 2 * groups[gi];
            c.D = li % 3 == 0 ? 64 : li % 3 == 1 ? 128 : 80;
            c.layout = li % 2 ? TU_BHSD : TU_BSHD;
            snprintf(name, sizeof name, "decode G=%d Hkv=%lld Nk=%lld D=%lld %s", groups[gi],
                     (long long)c.Hkv, (long long)nk, (long long)c.D, tu_layout_name(c.layout));
            run_case(&c, splits, nk > 4097 ? 3 : 6);
        }
}

/* q_len 2..16, causal (bottom-right) and not, with kv_lens holding 0 and 1. */
static void test_small_q_len(void **state)
{
    (void)state;
    static const int splits[] = {0, 1, 5, 64};
    char name[96];
    for (int nq = 2; nq <= 16; nq += tu_quick() ? 7 : 1)
        for (int causal = 0; causal <= 1; causal++) {
            dcase c = {name, 4, 8, 2, nq, 300 + 37 * nq, 64, causal, 1, TU_PADDED};
            snprintf(name, sizeof name, "small q_len Nq=%d Nk=%lld causal=%d kv_lens", nq,
                     (long long)c.Nk, causal);
            run_case(&c, splits, 4);
        }
}

/* AUTO takes the decode path for few rows per kv head and must agree. */
static void test_auto_chooses_decode(void **state)
{
    (void)state;
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, TU_BHSD, 1, 8, 1, 64);
    tu_tensor_alloc(&k, TU_BHSD, 1, 2, 1000, 64);
    tu_tensor_alloc(&v, TU_BHSD, 1, 2, 1000, 64);
    tu_tensor_alloc(&o, TU_BHSD, 1, 8, 1, 64);
    flat_problem p;
    flat_options opt = {0};
    assert_int_equal(flat_validate(&q.t, &k.t, &v.t, &o.t, &opt, &p), FLAT_OK);
    flat_tiling plan;
    flat_tiling_choose(&p, tables[0], FLAT_DATAFLOW_AUTO, 2, &plan);
    assert_true(plan.k_in_place); /* 4 rows per kv head */
    tu_tensor_free(&q);
    tu_tensor_alloc(&q, TU_BHSD, 1, 8, FLAT_DECODE_MAX_ROWS, 64);
    tu_tensor_free(&o);
    tu_tensor_alloc(&o, TU_BHSD, 1, 8, FLAT_DECODE_MAX_ROWS, 64);
    assert_int_equal(flat_validate(&q.t, &k.t, &v.t, &o.t, &opt, &p), FLAT_OK);
    flat_tiling_choose(&p, tables[0], FLAT_DATAFLOW_AUTO, 2, &plan);
    assert_false(plan.k_in_place); /* 4 x FLAT_DECODE_MAX_ROWS rows per kv head: GEMM-shaped */
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
}

static void test_summary(void **state)
{
    (void)state;
    printf("  decode: %ld calls, max row relative error %.3g (bound %g); bf16-product tables "
           "%.3g (bound %g)\n",
           calls, worst, ROW_TOL, worst_bf16, BF16_ROW_TOL);
    assert_true(calls > 0);
}

int main(void)
{
    ntables = tu_runnable_tables("test_decode", tables, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups_and_lengths),
        cmocka_unit_test(test_small_q_len),
        cmocka_unit_test(test_auto_chooses_decode),
        cmocka_unit_test(test_summary),
    };
    if (tu_check_required_isas("test_decode"))
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
