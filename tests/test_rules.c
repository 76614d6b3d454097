/*
 * The score rules of flat_options (sliding window, softcap, sinks, ALiBi,
 * additive mask), each alone and combined (window + causal + sinks +
 * softcap is gpt-oss's and Gemma's), on every kernel table, every dataflow
 * (AUTO, FLAT, FLASH, DECODE), 1 and 2 threads (decode shapes split keys
 * there, so the merge must count a sink once), contiguous and paged, against
 * the double reference (tests/reference.c applies the same rules
 * straightforwardly). Includes rows the window leaves empty, windows wider
 * than the sequence, a sink far above every logit, -inf mask entries and
 * whole -inf mask rows, and broadcast (stride 0) masks. Bound: each output
 * row's relative 2-norm error <= 1e-5 (softcap's tanh adds up to 2 ulp of
 * the cap to a logit; measured worst is printed), lse within 1e-5 *
 * max(1, |lse|); rows that see nothing are zero with lse = the sink (or
 * -inf); rows a large sink pushes below fp32's range (~1e-41 here) are
 * held to an absolute 1e-30. Also score_rules' tanh against double tanh and SLEEF's tanhf,
 * and score_rules on every combination of rules, mask type and tail length against the
 * formula.
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

#if defined(FLAT_TEST_HAVE_SLEEF)
#include <sleef.h>
#endif

#include "convert.h"
#include "dispatch.h"
#include "reference.h"
#include "testutil.h"

#define TOL 1e-5

static const flat_ukernels *tables[8];
static int ntables;
static long calls;
static double worst;

enum { R_WINDOW = 1, R_SOFTCAP = 2, R_SINKS = 4, R_ALIBI = 8, R_MASK = 16, R_BCAST = 32 };

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D;
    int causal, rules, wl, wr, kvlens;
    float qk_mag;
} rcase;

static void make_options(const rcase *c, flat_options *opt, float *sinks, float *slopes,
                         flat_tensor *mask, tu_tensor *mbuf, tu_rng *rng)
{
    memset(opt, 0, sizeof *opt);
    opt->causal = c->causal;
    if (c->rules & R_WINDOW)
        opt->window_left = c->wl, opt->window_right = c->wr;
    if (c->rules & R_SOFTCAP)
        opt->softcap = 5.0f;
    for (int64_t h = 0; h < c->Hq; h++) {
        sinks[h] = h == 1 ? 100.0f : tu_uniform(rng, -2.0f, 3.0f); /* one far above the logits */
        slopes[h] = exp2f(-8.0f * (float)(h + 1) / (float)c->Hq);  /* BLOOM's slopes */
    }
    if (c->rules & R_SINKS)
        opt->sinks = sinks;
    if (c->rules & R_ALIBI)
        opt->alibi_slopes = slopes;
    if (c->rules & R_MASK) {
        int bc = (c->rules & R_BCAST) != 0;
        tu_tensor_alloc(mbuf, TU_BHSD, bc ? 1 : c->B, bc ? 1 : c->Hq, c->Nq, c->Nk);
        tu_tensor_fill(mbuf, rng, 2.0f);
        for (int64_t b = 0; b < mbuf->t.batch; b++)
            for (int64_t h = 0; h < mbuf->t.heads; h++)
                for (int64_t i = 0; i < c->Nq; i++)
                    for (int64_t j = 0; j < c->Nk; j++)
                        if ((i + 2 * j + h) % 7 == 0 || i == c->Nq / 2) /* a whole -inf row */
                            ref_row(&mbuf->t, b, h, i)[j] = -INFINITY;
        *mask = mbuf->t;
        mask->batch = c->B, mask->heads = c->Hq;
        if (bc)
            mask->stride_batch = 0, mask->stride_head = 0;
        opt->mask = mask;
    }
}

/* The bound of a table: fp32 products 1e-5; bf16 products (avx512_bf16)
 * their own measured bound, as test_dtypes holds them. */
static double tol;

static void check(const rcase *c, const tu_tensor *o, const float *lse, const double *ref,
                  const double *ref_lse, const int64_t *seen, const char *what)
{
    int64_t r = 0;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->Nq; i++, r++) {
                const float *got = ref_row(&o->t, b, h, i);
                const double *want = ref + r * c->D;
                double err = 0, norm = 0;
                for (int64_t x = 0; x < c->D; x++)
                    err += (got[x] - want[x]) * (got[x] - want[x]), norm += want[x] * want[x];
                if (seen[r] == 0 || norm == 0) {
                    if (err != 0 || !(lse[r] == ref_lse[r] || fabs(lse[r] - ref_lse[r]) < 1e-5))
                        fail_msg("%s %s: row (%lld,%lld,%lld) sees nothing: want 0 and lse %g, "
                                 "got lse %g", c->name, what, (long long)b, (long long)h,
                                 (long long)i, ref_lse[r], lse[r]);
                    continue;
                }
                if (sqrt(norm) < 1e-30) { /* a sink far above: the row underflows fp32 */
                    if (!(sqrt(err) < 1e-30))
                        fail_msg("%s %s: row (%lld,%lld,%lld) should be ~0", c->name, what,
                                 (long long)b, (long long)h, (long long)i);
                    continue;
                }
                double rel = sqrt(err / norm);
                if (tol == TOL)
                    worst = rel > worst ? rel : worst;
                if (!(rel <= tol))
                    fail_msg("%s %s: row (%lld,%lld,%lld) sees %lld keys: relative error %.3g",
                             c->name, what, (long long)b, (long long)h, (long long)i,
                             (long long)seen[r], rel);
                if (!(fabs(lse[r] - ref_lse[r]) <= (tol > TOL ? 5e-3 : TOL) * fmax(1.0, fabs(ref_lse[r]))))
                    fail_msg("%s %s: row (%lld,%lld,%lld): lse %.9g, want %.9g", c->name, what,
                             (long long)b, (long long)h, (long long)i, lse[r], ref_lse[r]);
            }
}

/* K and V as 16-token pages of a pool, head-major, pages reversed. */
static void paged_copy(const tu_tensor *k, const tu_tensor *v, int32_t *lens, float **pools,
                       int32_t **table, flat_paged_kv *kv)
{
    const int64_t B = k->t.batch, H = k->t.heads, N = k->t.seq, D = k->t.dim, ps = 16;
    const int64_t per = (N + ps - 1) / ps, pages = B * per, page = H * ps * D;
    pools[0] = calloc((size_t)(pages * page), sizeof(float));
    pools[1] = calloc((size_t)(pages * page), sizeof(float));
    *table = malloc(sizeof(int32_t) * (size_t)pages);
    for (int64_t i = 0; i < pages; i++)
        (*table)[i] = (int32_t)(pages - 1 - i);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t j = 0; j < N; j++) {
                int64_t at = (*table)[b * per + j / ps] * page + h * ps * D + (j % ps) * D;
                memcpy(pools[0] + at, ref_row(&k->t, b, h, j), sizeof(float) * (size_t)D);
                memcpy(pools[1] + at, ref_row(&v->t, b, h, j), sizeof(float) * (size_t)D);
            }
    *kv = (flat_paged_kv){FLAT_F32, pools[0], pools[1], pages, ps, H, D, D, page, D, ps * D,
                          page, D, ps * D, B, lens, *table, per, NULL};
}

static void run_case(const rcase *c)
{
    tu_rng rng = {(uint64_t)(c->rules * 1000 + c->Nk + c->Nq)};
    tu_tensor q, k, v, o, mbuf;
    tu_tensor_alloc(&q, TU_BSHD, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_alloc(&k, TU_BHSD, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&v, TU_BHSD, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&o, TU_BSHD, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_fill(&q, &rng, c->qk_mag);
    tu_tensor_fill(&k, &rng, c->qk_mag);
    tu_tensor_fill(&v, &rng, 1.0f);
    float sinks[64], slopes[64];
    flat_tensor mask;
    flat_options base;
    make_options(c, &base, sinks, slopes, &mask, &mbuf, &rng);
    int32_t lens[8];
    for (int64_t b = 0; b < c->B; b++)
        lens[b] = c->kvlens ? (int32_t)(b % 3 == 1 ? 0 : c->Nk - 5 * b) : (int32_t)c->Nk;
    base.kv_lens = lens;
    const int64_t rows = c->B * c->Hq * c->Nq;
    double *ref = malloc(sizeof(double) * (size_t)(rows * c->D));
    double *ref_lse = malloc(sizeof(double) * (size_t)rows);
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)rows);
    float *lse = malloc(sizeof(float) * (size_t)rows);
    ref_attention(&q.t, &k.t, &v.t, &base, ref, ref_lse, seen);
    float *pools[2];
    int32_t *table;
    flat_paged_kv kv;
    paged_copy(&k, &v, lens, pools, &table, &kv);
    char what[96];
    for (int ti = 0; ti < ntables; ti++)
        for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE; df++)
            for (int threads = 1; threads <= 2; threads++) {
                flat_options opt = base;
                tol = tables[ti]->compute == FLAT_BF16 ? 1e-2 : TOL;
                opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df;
                opt.num_threads = threads, opt.lse = lse;
                /* paged: a sequence's queries are its last tokens, so every
                 * sequence needs at least q.seq of them */
                const int paged = (ti + df + threads) % 3 == 0 && !(c->rules & R_MASK) &&
                                  !c->kvlens && c->Nq <= c->Nk;
                tu_tensor_poison(&o);
                flat_status s;
                if (paged) {
                    opt.kv_lens = NULL;
                    s = flat_attention_paged(&q.t, &kv, &o.t, &opt);
                } else {
                    s = flat_attention(&q.t, &k.t, &v.t, &o.t, &opt);
                }
                snprintf(what, sizeof what, "[%s df=%d threads=%d%s]", tables[ti]->name, df,
                         threads, paged ? " paged" : "");
                if (s != FLAT_OK)
                    fail_msg("%s %s: %s: %s", c->name, what, flat_status_string(s),
                             flat_last_error());
                check(c, &o, lse, ref, ref_lse, seen, what);
                calls++;
            }
    free(pools[0]), free(pools[1]), free(table);
    free(lse), free(seen), free(ref_lse), free(ref);
    tu_tensor_free(&q), tu_tensor_free(&k), tu_tensor_free(&v), tu_tensor_free(&o);
    if (c->rules & R_MASK)
        tu_tensor_free(&mbuf);
}

static void test_each_rule(void **state)
{
    (void)state;
    const rcase cases[] = {
        {"window causal", 1, 4, 2, 96, 300, 64, 1, R_WINDOW, 40, 0, 0, 1.0f},
        {"window both sides", 2, 4, 2, 33, 90, 32, 0, R_WINDOW, 5, 7, 1, 1.0f},
        {"window empties rows", 1, 2, 1, 40, 20, 32, 0, R_WINDOW, 3, 2, 0, 1.0f},
        {"window wider than all", 1, 4, 4, 17, 50, 64, 1, R_WINDOW, 1000, 1000, 0, 1.0f},
        {"softcap", 1, 4, 2, 70, 150, 64, 1, R_SOFTCAP, 0, 0, 0, 3.0f},
        {"sinks", 3, 4, 2, 20, 130, 64, 1, R_SINKS, 0, 0, 1, 1.0f},
        {"alibi", 1, 8, 8, 50, 120, 32, 0, R_ALIBI, 0, 0, 0, 1.0f},
        {"mask", 2, 4, 2, 23, 77, 32, 0, R_MASK, 0, 0, 0, 1.0f},
        {"broadcast mask", 2, 4, 2, 23, 77, 32, 1, R_MASK | R_BCAST, 0, 0, 0, 1.0f},
        /* keys enough for several rules pieces per Q panel and K chunk
         * (keys.c: a mask's pieces and their prefetches), causal */
        {"long mask", 1, 4, 2, 40, 1500, 32, 1, R_MASK | R_ALIBI | R_SOFTCAP, 0, 0, 0, 1.0f},
        {"long broadcast mask", 1, 4, 4, 30, 1100, 64, 0, R_MASK | R_BCAST | R_ALIBI, 0, 0, 0,
         1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
}

static void test_combined(void **state)
{
    (void)state;
    const int gpt = R_WINDOW | R_SINKS | R_SOFTCAP;
    const rcase cases[] = {
        {"gpt-oss/gemma prefill", 1, 8, 2, 64, 200, 64, 1, gpt, 31, 0, 0, 2.0f},
        {"gpt-oss/gemma decode", 1, 8, 1, 1, 3000, 64, 1, gpt, 127, 0, 1, 2.0f},
        {"spec decode all rules", 2, 8, 2, 5, 700, 64, 1, gpt | R_ALIBI | R_MASK, 64, 0, 1, 1.0f},
        {"decode split with sinks", 1, 4, 1, 1, 6000, 128, 0, R_SINKS | R_ALIBI, 0, 0, 0, 1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
}

/* score_rules with cap 1 and nothing else is tanh: within 2 ulp of double
 * tanh (and of SLEEF's tanhf), absolute error under 2 ulp of 1 overall. */
static void test_tanh(void **state)
{
    (void)state;
    const int n = 200000;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    tu_rng rng = {77};
    for (int i = 0; i < n; i++) /* mixed vectors, and whole vectors below 0.625 (fast path) */
        x[i] = i < n / 2 ? (i % 2 ? tu_uniform(&rng, -1.0f, 1.0f) : tu_uniform(&rng, -12.0f, 12.0f))
                         : tu_uniform(&rng, -0.62f, 0.62f);
    x[0] = 0.0f, x[1] = 0.625f, x[2] = -0.625f, x[3] = 1e-30f, x[4] = 20.0f;
    for (int t = 0; t < ntables; t++) {
        memcpy(y, x, sizeof(float) * n);
        const flat_rules_row rule = {1.0f, 0.0f, 0.0f, NULL, FLAT_F32};
        const float got_max = tables[t]->score_rules(n, y, &rule);
        float want_max = -INFINITY;
        for (int i = 0; i < n; i++)
            want_max = y[i] > want_max ? y[i] : want_max;
        assert_true(got_max == want_max); /* the rules' pass is also the row max */
        for (int len = 0; len < 40; len++) { /* and on every tail length */
            float z[40], zmax = -INFINITY;
            memcpy(z, x + 1000, sizeof(float) * (size_t)len);
            const float m = tables[t]->score_rules(len, z, &rule);
            for (int i = 0; i < len; i++)
                zmax = z[i] > zmax ? z[i] : zmax;
            if (!(m == zmax))
                fail_msg("%s score_rules n=%d returned max %g, want %g", tables[t]->name, len, m, zmax);
        }
        double worst_ulp = 0, worst_abs = 0, worst_sleef = 0;
        for (int i = 0; i < n; i++) {
            double want = tanh((double)x[i]), ulp = fmax(fabs(want), 1e-37) * 0x1p-23;
            double e = fabs(y[i] - want);
            worst_abs = fmax(worst_abs, e);
            if (fabs(x[i]) < 0.625f)
                worst_ulp = fmax(worst_ulp, e / ulp);
#if defined(FLAT_TEST_HAVE_SLEEF)
            worst_sleef = fmax(worst_sleef, fabs(y[i] - Sleef_tanhf_u10(x[i])) / ulp);
#endif
        }
        printf("  %-7s tanh: %.2f ulp below 0.625, max abs error %.2g (%.2f ulp of 1); "
               "vs Sleef_tanhf_u10 %.2f ulp\n", tables[t]->name, worst_ulp, worst_abs,
               worst_abs / 0x1p-24, worst_sleef);
        assert_true(worst_ulp <= 2.0);
        assert_true(worst_abs <= 2 * 0x1p-24);
    }
    free(x), free(y);
}

/* score_rules on every combination of rules (the mask in f32, f16 and
 * bf16), every tail length and long rows (the kernels run one loop per
 * combination, two vectors a step), against the formula in double: each
 * score within a few ulp (the cap's tanh: 2 ulp of the cap), -inf where the
 * mask is, the returned max exactly the max of the results, nothing past n
 * written; and a 16-bit mask gives the bits of the f32 mask of its values. */
static void test_rule_combinations(void **state)
{
    (void)state;
    enum { N = 1000 };
    float x[N], y[N], y32[N], mask[N], wide[3][N];
    uint16_t m16[2][N];
    tu_rng rng = {5};
    for (int i = 0; i < N; i++) {
        x[i] = tu_uniform(&rng, -8.0f, 8.0f);
        mask[i] = i % 13 == 5 ? -INFINITY : tu_uniform(&rng, -3.0f, 3.0f);
        m16[0][i] = flat_f32_to_f16(mask[i]), m16[1][i] = flat_f32_to_bf16(mask[i]);
        wide[0][i] = mask[i], wide[1][i] = flat_f16_to_f32(m16[0][i]);
        wide[2][i] = flat_bf16_to_f32(m16[1][i]);
    }
    const void *masks[3] = {mask, m16[0], m16[1]};
    const flat_dtype types[3] = {FLAT_F32, FLAT_F16, FLAT_BF16};
    const int lens[] = {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 333, N};
    for (int t = 0; t < ntables; t++)
        for (int combo = 0; combo < 16; combo++)
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                const int n = lens[li], mt = combo >> 2 ? (combo >> 2) - 1 : 0;
                const flat_rules_row r = {combo & 1 ? 5.0f : 0.0f, combo & 2 ? -0.37f : 0.0f,
                                          (float)(li * 37 % 200) - 60.0f,
                                          combo >> 2 ? masks[mt] : NULL, types[mt]};
                memcpy(y, x, sizeof x);
                const float got_max = tables[t]->score_rules(n, y, &r);
                float want_max = -INFINITY;
                for (int c = 0; c < n; c++) {
                    double w = x[c];
                    if (r.cap > 0)
                        w = r.cap * tanh(w / r.cap);
                    w += (double)r.slope * fabs((double)r.dist - c);
                    if (r.mask)
                        w += 1.4426950408889634 * wide[mt][c];
                    const double err = fabs(y[c] - w), bound = 8e-7 * (fabs(w) + 10.0);
                    if (isinf(w) ? y[c] != w : !(err <= bound))
                        fail_msg("%s score_rules combo %d n=%d: s[%d] = %.9g, want %.9g",
                                 tables[t]->name, combo, n, c, y[c], w);
                    want_max = y[c] > want_max ? y[c] : want_max;
                }
                if (!(got_max == want_max))
                    fail_msg("%s score_rules combo %d n=%d returned max %g, want %g",
                             tables[t]->name, combo, n, got_max, want_max);
                for (int c = n; c < N; c++) /* nothing past n is written */
                    if (memcmp(&y[c], &x[c], sizeof(float)))
                        fail_msg("%s score_rules combo %d n=%d wrote s[%d]", tables[t]->name,
                                 combo, n, c);
                if (mt == 0)
                    continue;
                flat_rules_row r32 = r; /* the f32 mask of the same values */
                r32.mask = wide[mt], r32.mask_t = FLAT_F32;
                memcpy(y32, x, sizeof x);
                tables[t]->score_rules(n, y32, &r32);
                if (memcmp(y, y32, sizeof y))
                    fail_msg("%s score_rules combo %d n=%d: a 16-bit mask changed the bits",
                             tables[t]->name, combo, n);
            }
}

static void test_summary(void **state)
{
    (void)state;
    printf("  rules: %ld calls, max row relative error %.3g (bound %g)\n", calls, worst, TOL);
    assert_true(calls > 0);
}

int main(void)
{
    ntables = tu_runnable_tables("test_rules", tables, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_rule),
        cmocka_unit_test(test_combined),
        cmocka_unit_test(test_tanh),
        cmocka_unit_test(test_rule_combinations),
        cmocka_unit_test(test_summary),
    };
    if (tu_check_required_isas("test_rules"))
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
