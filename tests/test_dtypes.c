/*
 * Every element-type combination of the contract (q/out in f32, f16, bf16 x
 * k/v in f32, f16, bf16) on every kernel table that takes it, every dataflow
 * (AUTO, FLAT, FLASH, DECODE), against the double reference computed on the
 * same, already rounded, inputs. Bounds on each output row's relative 2-norm
 * error, by the output's type:
 *   f32   1e-5  (the fp32 bound: only the inputs are rounded, and the
 *                reference sees the same rounded values)
 *   f16   1e-3  (one output rounding, 2^-11 relative per element, plus the
 *                fp32 compute)
 *   bf16  8e-3  (one output rounding, 2^-8 relative, plus the compute)
 * A table that claims a type (flat_ukernels.dtypes) is tested in it; one
 * that does not must refuse the call with FLAT_ERROR_UNSUPPORTED. Rows that
 * see no key are exactly zero with lse = -inf; a NaN in one K row reaches
 * only the rows that read it. The worst error of each combination is printed.
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
/* [products: 0 fp32, 1 bf16 (compute = FLAT_BF16)][q/out dtype][k/v dtype] */
static double worst[2][3][3], worst_lse[2][3][3];
static long calls[2][3][3];

static const char *dt_name(int t) { return t == FLAT_F16 ? "f16" : t == FLAT_BF16 ? "bf16" : "f32"; }

/* A table with bf16 products rounds Q, K, P and V (each by up to 2^-8,
 * relative) before the fp32 sums, whatever the types: its rows are held to
 * BF16_PRODUCTS_ROW and its lse to BF16_PRODUCTS_LSE (absolute, natural log
 * units) for every combination. Measured on these cases (avx512_bf16, Zen 5,
 * logits of O(1)): rows at most 4.0e-3 off (q/out bf16, k/v f16; 2.4e-3 to
 * 4.0e-3 over the nine combinations, the output rounding adding little to
 * the compute's), lse at most 2.3e-3; the bounds leave 2.5x and 2x. */
#define BF16_PRODUCTS_ROW 1e-2
#define BF16_PRODUCTS_LSE 5e-3

static int bf16_products(const flat_ukernels *t) { return t->compute == FLAT_BF16; }

static double bound(const flat_ukernels *t, flat_dtype out)
{
    if (bf16_products(t))
        return BF16_PRODUCTS_ROW;
    return out == FLAT_F32 ? 1e-5 : out == FLAT_F16 ? 1e-3 : 8e-3;
}

static double lse_bound(const flat_ukernels *t, double ref)
{
    return bf16_products(t) ? BF16_PRODUCTS_LSE : 1e-5 * fmax(1.0, fabs(ref));
}

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D, Dv;
    int causal, kvlens, nan_key;
    tu_layout layout;
} tcase;

static int table_takes(const flat_ukernels *t, int qd, int kd)
{
    return (t->dtypes & FLAT_DTYPE_BIT(qd)) && (t->dtypes & FLAT_DTYPE_BIT(kd));
}

/* Checks every output row of one call; returns the worst relative error
 * and, in *wl, the worst lse error. */
static double check(const tcase *c, const flat_ukernels *t, const tu_tensor *o, const float *lse,
                    const double *ref, const double *ref_lse, const int64_t *seen,
                    const char *what, double *wl)
{
    double w = 0;
    *wl = 0;
    int64_t r = 0;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->Nq; i++, r++) {
                const double *want = ref + r * c->Dv;
                double err = 0, norm = 0;
                int nan_row = 0;
                for (int64_t x = 0; x < c->Dv; x++) {
                    float g = tu_tensor_get(o, b, h, i, x);
                    nan_row |= isnan(g);
                    err += (g - want[x]) * (g - want[x]), norm += want[x] * want[x];
                }
                int reads_nan = isnan(ref_lse[r]);
                if (reads_nan || nan_row) {
                    if (reads_nan != nan_row || (lse[r] == lse[r]) == reads_nan)
                        fail_msg("%s %s: row (%lld,%lld,%lld): NaN %s the reference", c->name,
                                 what, (long long)b, (long long)h, (long long)i,
                                 nan_row ? "where not in" : "missing from");
                    continue;
                }
                if (seen[r] == 0) {
                    if (err != 0 || lse[r] != -INFINITY)
                        fail_msg("%s %s: row (%lld,%lld,%lld) sees no key but is not 0/-inf",
                                 c->name, what, (long long)b, (long long)h, (long long)i);
                    continue;
                }
                double rel = sqrt(err) / sqrt(norm);
                w = rel > w ? rel : w;
                if (!(rel <= bound(t, o->t.dtype)))
                    fail_msg("%s %s: row (%lld,%lld,%lld): relative error %.3g > %g", c->name,
                             what, (long long)b, (long long)h, (long long)i, rel,
                             bound(t, o->t.dtype));
                const double le = fabs(lse[r] - ref_lse[r]);
                *wl = le > *wl ? le : *wl;
                if (!(le <= lse_bound(t, ref_lse[r])))
                    fail_msg("%s %s: row (%lld,%lld,%lld): lse %.9g, want %.9g", c->name, what,
                             (long long)b, (long long)h, (long long)i, lse[r], ref_lse[r]);
            }
    return w;
}

static void run_combination(const tcase *c, int qd, int kd)
{
    tu_rng rng = {(uint64_t)(c->Nk * 31 + c->Nq * 7 + qd * 3 + kd)};
    tu_tensor q, k, v, o, tq, tk, tv, to;
    tu_tensor_alloc(&q, c->layout, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_alloc(&k, c->layout, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&v, c->layout, c->B, c->Hkv, c->Nk, c->Dv);
    tu_tensor_alloc(&o, c->layout, c->B, c->Hq, c->Nq, c->Dv);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    if (c->nan_key)
        ref_row(&k.t, 0, 0, c->Nk / 2)[1] = NAN;
    int32_t lens[8];
    flat_options base = {0};
    base.causal = c->causal;
    if (c->kvlens) {
        static const int32_t pattern[4] = {-1, 0, 1, -2};
        for (int64_t b = 0; b < c->B; b++)
            lens[b] = pattern[b % 4] == -1   ? (int32_t)c->Nk
                      : pattern[b % 4] == -2 ? (int32_t)(c->Nk / 3)
                                             : pattern[b % 4];
        base.kv_lens = lens;
    }
    tu_tensor_typed(&q, (flat_dtype)qd, &tq);
    tu_tensor_typed(&k, (flat_dtype)kd, &tk);
    tu_tensor_typed(&v, (flat_dtype)kd, &tv);
    tu_tensor_typed(&o, (flat_dtype)qd, &to);
    const int64_t rows = c->B * c->Hq * c->Nq;
    double *ref = malloc(sizeof(double) * (size_t)(rows * c->Dv));
    double *ref_lse = malloc(sizeof(double) * (size_t)rows);
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)rows);
    float *lse = malloc(sizeof(float) * (size_t)rows);
    ref_attention(&q.t, &k.t, &v.t, &base, ref, ref_lse, seen);
    char what[96];
    for (int ti = 0; ti < ntables; ti++)
        for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE; df++) {
            flat_options opt = base;
            opt.isa = tables[ti]->isa;
            opt.dataflow = (flat_dataflow)df;
            opt.num_threads = 1 + (ti + df) % 2;
            opt.lse = lse;
            tu_tensor_poison(&to);
            snprintf(what, sizeof what, "[q %s kv %s %s df=%d threads=%d]", dt_name(qd),
                     dt_name(kd), tables[ti]->name, df, opt.num_threads);
            flat_status s = flat_attention(&tq.t, &tk.t, &tv.t, &to.t, &opt);
            if (!table_takes(tables[ti], qd, kd)) {
                if (s != FLAT_ERROR_UNSUPPORTED || tu_tensor_padding_changed(&to) != -1)
                    fail_msg("%s %s: a table without these types must refuse, untouched",
                             c->name, what);
                continue;
            }
            if (s != FLAT_OK)
                fail_msg("%s %s: %s: %s", c->name, what, flat_status_string(s),
                         flat_last_error());
            if (tu_tensor_padding_changed(&to) >= 0)
                fail_msg("%s %s: out padding written", c->name, what);
            double wl, w = check(c, tables[ti], &to, lse, ref, ref_lse, seen, what, &wl);
            const int bf = bf16_products(tables[ti]);
            worst[bf][qd][kd] = w > worst[bf][qd][kd] ? w : worst[bf][qd][kd];
            worst_lse[bf][qd][kd] = wl > worst_lse[bf][qd][kd] ? wl : worst_lse[bf][qd][kd];
            calls[bf][qd][kd]++;
        }
    free(lse);
    free(seen);
    free(ref_lse);
    free(ref);
    tu_tensor *all[8] = {&q, &k, &v, &o, &tq, &tk, &tv, &to};
    for (int i = 0; i < 8; i++)
        tu_tensor_free(all[i]);
}

static void run_all_combinations(const tcase *c)
{
    for (int qd = FLAT_F32; qd <= FLAT_BF16; qd++)
        for (int kd = FLAT_F32; kd <= FLAT_BF16; kd++)
            run_combination(c, qd, kd);
}

static void test_decode_shapes(void **state)
{
    (void)state;
    tcase c = {"decode G=4", 2, 8, 2, 1, 1000, 128, 128, 0, 1, 0, TU_BSHD};
    run_all_combinations(&c);
    tcase s = {"spec decode causal", 1, 8, 2, 7, 300, 64, 64, 1, 0, 0, TU_BHSD};
    run_all_combinations(&s);
}

static void test_prefill_shapes(void **state)
{
    (void)state;
    tcase c = {"prefill causal GQA", 1, 4, 2, 65, 130, 64, 64, 1, 0, 0, TU_PADDED};
    run_all_combinations(&c);
    tcase d = {"odd dims kv_lens", 4, 2, 1, 33, 77, 80, 48, 0, 1, 0, TU_BHSD};
    run_all_combinations(&d);
}

static void test_nan_key(void **state)
{
    (void)state;
    tcase c = {"NaN in one key", 1, 2, 1, 5, 200, 32, 32, 1, 0, 1, TU_BHSD};
    run_all_combinations(&c);
}

static void test_summary(void **state)
{
    (void)state;
    for (int bf = 0; bf < 2; bf++) {
        const flat_ukernels *first = NULL;
        char names[96] = "";
        for (int ti = 0; ti < ntables; ti++)
            if (bf16_products(tables[ti]) == bf) {
                first = first ? first : tables[ti];
                snprintf(names + strlen(names), sizeof names - strlen(names), " %s",
                         tables[ti]->name);
            }
        if (!first)
            continue;
        printf("  %s products (tables:%s):\n", bf ? "bf16" : "fp32", names);
        for (int qd = 0; qd < 3; qd++)
            for (int kd = 0; kd < 3; kd++) {
                printf("    q/out %-4s k/v %-4s: %4ld calls, max row relative error %.3g "
                       "(bound %g), max |lse error| %.3g\n",
                       dt_name(qd), dt_name(kd), calls[bf][qd][kd], worst[bf][qd][kd],
                       bound(first, (flat_dtype)qd), worst_lse[bf][qd][kd]);
                /* the scalar table takes every type; a bf16 table claims all */
                assert_true(calls[bf][qd][kd] > 0);
            }
    }
}

int main(void)
{
    ntables = tu_runnable_tables("test_dtypes", tables, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_shapes),
        cmocka_unit_test(test_prefill_shapes),
        cmocka_unit_test(test_nan_key),
        cmocka_unit_test(test_summary),
    };
    if (tu_check_required_isas("test_dtypes"))
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
