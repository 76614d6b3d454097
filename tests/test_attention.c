/*
 * End-to-end: flat_attention against the double-precision reference, for
 * every kernel table the host runs (opt.isa) and AUTO, times the dataflows
 * AUTO, FLAT, FLASH and DECODE, times num_threads 1 and 2.
 *
 * Tolerance (the one flat.h documents): for every output row,
 *     ||out_row - ref_row||_2 <= 1e-5 * ||ref_row||_2,
 * and a row that sees no key must be exactly zero with lse = -inf. lse is
 * held to |lse - ref| <= 1e-5 * max(1, |ref|) (natural log units).
 *
 * Two facts of fp32 arithmetic shape the test data rather than the bound:
 *   - An output row is a convex combination of V rows. With zero-mean V and
 *     very few columns (Dv < 16) a row can cancel to nearly 0, and then no
 *     fp32 method meets a *relative* bound (measured: the error is ~1e-8 of
 *     sum_j p_j |v_j|, but 3e-5 of the cancelled row). So for Dv < 16, V is
 *     drawn from [0, 2) (no cancellation); for Dv >= 16 from [-1, 1).
 *   - A logit s costs u*|s| just to round to fp32 (u = 2^-24), and the
 *     softmax passes logit errors straight into the weights. With |q|,|k| <= 1
 *     the logits are O(1) and 1e-5 holds with margin. test_magnitudes feeds
 *     logits up to 1e2..1e6 and holds each row to the README's documented
 *     1e-5 * max(1, L/8) (L: the largest |scaled logit| the row sees) and,
 *     independently, to 1e-5 plus the first-order effect of fp32 logit
 *     rounding (logit_error_bound); lse gets that term too.
 *
 * Every input buffer's padding (strided layouts) is NaN, and so are the K
 * and V rows that kv_lens hides: a read of either shows up as NaN. out's
 * padding is a poison pattern that must survive the call.
 *
 * FLAT_TEST_FILTER=<glob> runs only the matching tests (cmocka's filter).
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

#define ROW_TOL 1e-5
#define LSE_TOL 1e-5

static const flat_ukernels *tables[8];
static int ntables;
static int quick;

/* The worst errors seen, per table (index ntables: AUTO). */
static double max_row_err[9], max_lse_err[9];
static double max_mag_err; /* magnitude cases: error / max(1, L/8) */
static long runs[9];

/* Sizes in quick mode (qemu, the sanitizer and no-OpenMP legs): the same
 * paths, shorter sequences; cases meant for 1 and 2 threads run one count
 * per (table, dataflow), alternating; AUTO (the best table, which runs
 * every dataflow explicitly) only with the AUTO dataflow; test_sizes runs
 * each (Nq, Nk) pair causal and not, MQA and GQA, in 2 of the 4 combinations. */
static int64_t SZ(int64_t n)
{
    return quick && n > 300 ? 257 : n;
}

typedef enum { P_NONE = 0, P_NAN_K, P_NAN_V, P_NAN_Q, P_INF_K, P_INF_V } poison_kind;

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D, Dv;
    tu_layout lq, lk, lv, lo;
    int causal;
    int kvlens;    /* use the kv_lens pattern below (includes 0) */
    float scale;   /* 0: default 1/sqrt(D) */
    float qk_mag;  /* q and k uniform in [-mag, mag) */
    float v_mag;
    int no_lse;    /* do not request lse */
    poison_kind poison;
    int threads_both; /* run num_threads 1 and 2 for every isa x dataflow */
    int logit_bound;  /* add the fp32 logit-rounding term to the bounds (large logits) */
} acase;

static const char *df_name(flat_dataflow d)
{
    return d == FLAT_DATAFLOW_FLAT     ? "FLAT"
           : d == FLAT_DATAFLOW_FLASH  ? "FLASH"
           : d == FLAT_DATAFLOW_DECODE ? "DECODE"
                                       : "AUTO";
}

/* kv_lens pattern for batch b: partial, 0, full, 1, ... */
static int32_t kv_len_pattern(int64_t b, int64_t nk)
{
    switch (b % 4) {
    case 0: return (int32_t)((nk + 1) / 2);
    case 1: return 0;
    case 2: return (int32_t)nk;
    default: return 1;
    }
}

typedef struct {
    int64_t b, h, i;   /* poisoned query row, or key row (h is the kv head, i the key) */
} poison_at;

/* Whether output row (b, h, i) reads the poisoned input. */
static int row_reads_poison(const acase *c, const poison_at *pa, const flat_tensor *q,
                            const flat_tensor *k, const flat_options *opt, int64_t b,
                            int64_t h, int64_t i)
{
    if (c->poison == P_NONE || b != pa->b)
        return 0;
    if (c->poison == P_NAN_Q) {
        int any = 0;
        for (int64_t j = 0; j < k->seq && !any; j++)
            any = ref_visible(q, k, opt, b, i, j);
        return h == pa->h && i == pa->i && any;
    }
    if (h / (c->Hq / c->Hkv) != pa->h)
        return 0;
    return ref_visible(q, k, opt, b, i, pa->i);
}

/*
 * First-order effect of fp32 logit rounding on one output row and its lse.
 * delta_j = (D + 4) u scale sum_d |q_d k_jd| bounds the error of logit j
 * (the dot product, the scale folded into Q, the base-2 conversion); the
 * softmax weights then move by p_j (delta_j + sum_l p_l delta_l), so
 *     ||d out|| <= sum_j p_j (delta_j + dbar) ||v_j||,   |d lse| <= max_j delta_j.
 */
static void logit_error_bound(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                              const flat_options *opt, int64_t b, int64_t h, int64_t i,
                              double *out_bound, double *lse_bound, double *max_logit)
{
    const int64_t hk = h / (q->heads / k->heads);
    const double scale = ref_scale(q, opt), u = 1.0 / 16777216.0;
    const float *qi = ref_row(q, b, h, i);
    double mx = -INFINITY;
    double *s = malloc(sizeof(double) * (size_t)k->seq), *dl = malloc(sizeof(double) * (size_t)k->seq);
    for (int64_t j = 0; j < k->seq; j++) {
        s[j] = -INFINITY, dl[j] = 0;
        if (!ref_visible(q, k, opt, b, i, j))
            continue;
        const float *kj = ref_row(k, b, hk, j);
        double dot = 0, mag = 0;
        for (int64_t d = 0; d < q->dim; d++)
            dot += (double)qi[d] * kj[d], mag += fabs((double)qi[d] * kj[d]);
        s[j] = scale * dot;
        dl[j] = (double)(q->dim + 4) * u * scale * mag;
        mx = s[j] > mx ? s[j] : mx;
    }
    double sum = 0, dbar = 0, dmax = 0, ob = 0, lmax = 0;
    for (int64_t j = 0; j < k->seq; j++)
        if (!isinf(s[j]))
            lmax = fabs(s[j]) > lmax ? fabs(s[j]) : lmax;
    for (int64_t j = 0; j < k->seq; j++)
        sum += isinf(s[j]) ? 0 : exp(s[j] - mx);
    for (int64_t j = 0; j < k->seq; j++)
        if (!isinf(s[j])) {
            dbar += exp(s[j] - mx) / sum * dl[j];
            dmax = dl[j] > dmax ? dl[j] : dmax;
        }
    for (int64_t j = 0; j < k->seq; j++)
        if (!isinf(s[j])) {
            const float *vj = ref_row(v, b, hk, j);
            double vn = 0;
            for (int64_t d = 0; d < v->dim; d++)
                vn += (double)vj[d] * vj[d];
            ob += exp(s[j] - mx) / sum * (dl[j] + dbar) * sqrt(vn);
        }
    free(s);
    free(dl);
    *out_bound = ob, *lse_bound = dmax, *max_logit = lmax;
}

static void run_case(const acase *c)
{
    tu_rng rng = {0x5eed0000u + (uint64_t)c->Nq * 131 + (uint64_t)c->Nk * 7 + (uint64_t)c->D};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, c->lq, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_alloc(&k, c->lk, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&v, c->lv, c->B, c->Hkv, c->Nk, c->Dv);
    tu_tensor_alloc(&o, c->lo, c->B, c->Hq, c->Nq, c->Dv);
    const float qk_mag = c->qk_mag > 0 ? c->qk_mag : 1.0f;
    tu_tensor_fill(&q, &rng, qk_mag);
    tu_tensor_fill(&k, &rng, qk_mag);
    const float v_mag = c->v_mag > 0 ? c->v_mag : 1.0f;
    if (c->Dv < 16) /* no cancellation (see the top of the file) */
        tu_tensor_fill_range(&v, &rng, 0.0f, 2.0f * v_mag);
    else
        tu_tensor_fill(&v, &rng, v_mag);

    int32_t *kv_lens = NULL;
    if (c->kvlens) {
        kv_lens = malloc(sizeof(int32_t) * (size_t)c->B);
        for (int64_t b = 0; b < c->B; b++) {
            kv_lens[b] = kv_len_pattern(b, c->Nk);
            /* hidden keys are NaN: reading one poisons the row */
            if (c->lk != TU_BCAST && c->lv != TU_BCAST)
                for (int64_t h = 0; h < c->Hkv; h++)
                    for (int64_t j = kv_lens[b]; j < c->Nk; j++) {
                        for (int64_t d = 0; d < c->D; d++)
                            ref_row(&k.t, b, h, j)[d] = NAN;
                        for (int64_t d = 0; d < c->Dv; d++)
                            ref_row(&v.t, b, h, j)[d] = NAN;
                    }
        }
    }

    flat_options base = {0};
    base.scale = c->scale;
    base.causal = c->causal;
    base.kv_lens = kv_lens;

    /* One poisoned input row, placed so that some rows read it and some don't. */
    poison_at pa = {0, 0, 0};
    if (c->poison != P_NONE) {
        pa.b = c->kvlens ? 0 : c->B > 1 ? 1 : 0; /* kv_lens[0] is partial, [1] is 0 */
        int64_t kvl = ref_kv_len(&k.t, &base, pa.b);
        if (c->poison == P_NAN_Q) {
            pa.h = c->Hq - 1, pa.i = c->Nq / 2;
            float *row = ref_row(&q.t, pa.b, pa.h, pa.i);
            row[c->D / 2] = NAN;
        } else {
            pa.h = c->Hkv - 1, pa.i = kvl / 2;
            const float val = (c->poison == P_INF_K || c->poison == P_INF_V) ? INFINITY : NAN;
            if (c->poison == P_NAN_K || c->poison == P_INF_K)
                ref_row(&k.t, pa.b, pa.h, pa.i)[c->D - 1] = val;
            else
                ref_row(&v.t, pa.b, pa.h, pa.i)[0] = val;
        }
    }

    const int64_t rows = c->B * c->Hq * c->Nq;
    double *ref = malloc(sizeof(double) * (size_t)(rows * c->Dv));
    double *ref_lse = malloc(sizeof(double) * (size_t)rows);
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)rows);
    ref_attention(&q.t, &k.t, &v.t, &base, ref, ref_lse, seen);

    /* Large logits: the per-row fp32 logit terms (see the top of the file). */
    double *extra = NULL, *lse_extra = NULL, *max_logit = NULL;
    if (c->logit_bound) {
        extra = malloc(sizeof(double) * (size_t)rows);
        lse_extra = malloc(sizeof(double) * (size_t)rows);
        max_logit = malloc(sizeof(double) * (size_t)rows);
        int64_t r = 0;
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t h = 0; h < c->Hq; h++)
                for (int64_t i = 0; i < c->Nq; i++, r++)
                    logit_error_bound(&q.t, &k.t, &v.t, &base, b, h, i, &extra[r],
                                      &lse_extra[r], &max_logit[r]);
    }
    float *lse = malloc(sizeof(float) * (size_t)(rows + 4));
    int64_t poisoned_rows = 0;

    for (int ti = 0; ti <= ntables; ti++) {
        const flat_isa isa = ti < ntables ? tables[ti]->isa : FLAT_ISA_AUTO;
        const char *isa_name = ti < ntables ? tables[ti]->name : "auto";
        for (int di = 0; di <= FLAT_DATAFLOW_DECODE; di++) {
            if (quick && ti == ntables && di > 0) /* AUTO's table ran every dataflow above */
                break;
            const flat_dataflow df = (flat_dataflow)di;
            int thread_set[4], nthr = 0;
            if (c->threads_both && !quick) /* quick: the two counts alternate instead */
                thread_set[nthr++] = 1, thread_set[nthr++] = 2;
            else
                thread_set[nthr++] = 1 + (ti + di) % 2;
            if (ti == ntables && di == 0) {
                thread_set[nthr++] = 0; /* the OpenMP default */
                thread_set[nthr++] = 3; /* more threads than cores (2 here) */
            }
            for (int tt = 0; tt < nthr; tt++) {
                flat_options opt = base;
                opt.isa = isa;
                opt.dataflow = df;
                opt.num_threads = thread_set[tt];
                opt.lse = c->no_lse ? NULL : lse;
                tu_tensor_poison(&o);
                for (int64_t r = 0; r < rows + 4; r++)
                    lse[r] = tu_from_bits(TU_POISON_BITS);

                flat_status st = flat_attention(&q.t, &k.t, &v.t, &o.t, &opt);
                if (st != FLAT_OK)
                    fail_msg("%s [%s %s threads=%d]: status %s: %s", c->name, isa_name,
                             df_name(df), opt.num_threads, flat_status_string(st),
                             flat_last_error());
                int64_t pad = tu_tensor_padding_changed(&o);
                if (pad >= 0)
                    fail_msg("%s [%s %s threads=%d]: out padding float %lld was written",
                             c->name, isa_name, df_name(df), opt.num_threads, (long long)pad);
                for (int64_t r = rows; r < rows + 4; r++)
                    if (tu_bits(lse[r]) != TU_POISON_BITS)
                        fail_msg("%s [%s %s]: wrote lse[%lld] past [B,Hq,Nq]", c->name,
                                 isa_name, df_name(df), (long long)r);
                if (c->no_lse)
                    for (int64_t r = 0; r < rows; r++)
                        if (tu_bits(lse[r]) != TU_POISON_BITS)
                            fail_msg("%s: lse not requested but written", c->name);

                int64_t r = 0, pois = 0;
                for (int64_t b = 0; b < c->B; b++)
                    for (int64_t h = 0; h < c->Hq; h++)
                        for (int64_t i = 0; i < c->Nq; i++, r++) {
                            const float *got = ref_row(&o.t, b, h, i);
                            const double *want = ref + r * c->Dv;
                            char where[160];
                            snprintf(where, sizeof where,
                                     "%s [%s %s threads=%d] row (b=%lld, h=%lld, i=%lld)",
                                     c->name, isa_name, df_name(df), opt.num_threads,
                                     (long long)b, (long long)h, (long long)i);
                            if (row_reads_poison(c, &pa, &q.t, &k.t, &base, b, h, i)) {
                                /* NaN must show (it was read); Inf may or may not */
                                int nonfinite = 0;
                                for (int64_t d = 0; d < c->Dv; d++)
                                    nonfinite |= !isfinite(got[d]);
                                if ((c->poison == P_NAN_K || c->poison == P_NAN_V ||
                                     c->poison == P_NAN_Q) &&
                                    !nonfinite)
                                    fail_msg("%s: reads the NaN input but is all finite", where);
                                pois++;
                                continue;
                            }
                            if (seen[r] == 0) {
                                for (int64_t d = 0; d < c->Dv; d++)
                                    if (got[d] != 0.0f)
                                        fail_msg("%s sees no key: out[%lld] = %g, want 0",
                                                 where, (long long)d, got[d]);
                                if (!c->no_lse && !(isinf(lse[r]) && lse[r] < 0))
                                    fail_msg("%s sees no key: lse = %g, want -inf", where,
                                             lse[r]);
                                continue;
                            }
                            double num = 0, den = 0;
                            for (int64_t d = 0; d < c->Dv; d++) {
                                double e = (double)got[d] - want[d];
                                num += e * e, den += want[d] * want[d];
                            }
                            const double err = sqrt(num) / sqrt(den);
                            if (!c->logit_bound && !(err <= ROW_TOL))
                                fail_msg("%s (sees %lld keys): relative error %.3g > %.0e "
                                         "(out[0] = %.9g, want %.9g)",
                                         where, (long long)seen[r], err, ROW_TOL, got[0],
                                         want[0]);
                            if (c->logit_bound) {
                                /* README: 1e-5 * max(1, L/8) for logits up to |L| */
                                const double readme = ROW_TOL * fmax(1.0, max_logit[r] / 8);
                                if (!(err <= readme))
                                    fail_msg("%s: relative error %.3g > 1e-5 * max(1, L/8) = "
                                             "%.3g (L = %.4g)",
                                             where, err, readme, max_logit[r]);
                                /* fp32 logit rounding, first order */
                                if (!(sqrt(num) <= ROW_TOL * sqrt(den) + extra[r]))
                                    fail_msg("%s: error %.3g > 1e-5 |ref| + logit term %.3g "
                                             "(relative %.3g)",
                                             where, sqrt(num), extra[r], err);
                                if (err / fmax(1.0, max_logit[r] / 8) > max_mag_err)
                                    max_mag_err = err / fmax(1.0, max_logit[r] / 8);
                            }
                            if (err > max_row_err[ti] && !c->logit_bound)
                                max_row_err[ti] = err;
                            if (!c->no_lse) {
                                const double le = fabs((double)lse[r] - ref_lse[r]);
                                const double lim = LSE_TOL * fmax(1.0, fabs(ref_lse[r])) +
                                                   (lse_extra ? lse_extra[r] : 0);
                                if (!(le <= lim))
                                    fail_msg("%s: lse = %.9g, want %.9g (error %.3g > %.3g)",
                                             where, lse[r], ref_lse[r], le, lim);
                                const double rel = le / fmax(1.0, fabs(ref_lse[r]));
                                if (rel > max_lse_err[ti] && !c->logit_bound)
                                    max_lse_err[ti] = rel;
                            }
                        }
                poisoned_rows = pois;
                runs[ti]++;
            }
        }
    }
    /* The poison cases must actually have rows on both sides. */
    if (c->poison != P_NONE && (poisoned_rows == 0 || poisoned_rows == rows))
        fail_msg("%s: the poisoned input reaches %lld of %lld rows; the case tests nothing",
                 c->name, (long long)poisoned_rows, (long long)rows);

    free(extra);
    free(lse_extra);
    free(max_logit);
    free(lse);
    free(seen);
    free(ref_lse);
    free(ref);
    free(kv_lens);
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
}

/* Defaults for a case: one batch, MHA with 2 heads, BHSD, lse on. */
static acase base_case(const char *name, int64_t nq, int64_t nk, int64_t d)
{
    acase c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.B = 1, c.Hq = 2, c.Hkv = 2;
    c.Nq = SZ(nq), c.Nk = SZ(nk), c.D = d, c.Dv = d;
    c.lq = c.lk = c.lv = c.lo = TU_BHSD;
    return c;
}

static int64_t count_empty_rows(const acase *c)
{
    /* rows that see no key, by the reference's rule (for non-vacuity checks) */
    flat_tensor q = {0}, k = {0};
    q.batch = c->B, q.seq = c->Nq;
    k.seq = c->Nk;
    int32_t *kl = NULL;
    if (c->kvlens) {
        kl = malloc(sizeof(int32_t) * (size_t)c->B);
        for (int64_t b = 0; b < c->B; b++)
            kl[b] = kv_len_pattern(b, c->Nk);
    }
    flat_options o = {0};
    o.causal = c->causal, o.kv_lens = kl;
    int64_t n = 0;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t i = 0; i < c->Nq; i++) {
            int any = 0;
            for (int64_t j = 0; j < c->Nk && !any; j++)
                any = ref_visible(&q, &k, &o, b, i, j);
            n += !any;
        }
    free(kl);
    return n * c->Hq;
}

/* ------------------------------------------------------------------ */

/* The oracle itself, on numbers worked by hand. */
static void test_reference_sanity(void **state)
{
    (void)state;
    /* q = [1, 0], keys [1, 0] and [0, 1], scale 1: logits 1 and 0.
     * p = [e, 1] / (e + 1); v rows [1, 2] and [3, 4]. */
    float qd[2] = {1, 0}, kd[4] = {1, 0, 0, 1}, vd[4] = {1, 2, 3, 4};
    flat_tensor q = flat_tensor_bhsd(qd, FLAT_F32, 1, 1, 1, 2);
    flat_tensor k = flat_tensor_bhsd(kd, FLAT_F32, 1, 1, 2, 2);
    flat_tensor v = flat_tensor_bhsd(vd, FLAT_F32, 1, 1, 2, 2);
    flat_options opt = {0};
    opt.scale = 1.0f;
    double out[2], lse;
    ref_attention(&q, &k, &v, &opt, out, &lse, NULL);
    const double e = exp(1.0), p0 = e / (e + 1), p1 = 1 / (e + 1);
    assert_true(fabs(out[0] - (p0 * 1 + p1 * 3)) < 1e-15);
    assert_true(fabs(out[1] - (p0 * 2 + p1 * 4)) < 1e-15);
    assert_true(fabs(lse - log(e + 1)) < 1e-15);
    /* causal with q_len 1 < kv_len 2: the one query sees both keys */
    opt.causal = 1;
    ref_attention(&q, &k, &v, &opt, out, &lse, NULL);
    assert_true(fabs(lse - log(e + 1)) < 1e-15);
    /* kv_lens = 1: only key 0, so out = v0 and lse = 1 */
    int32_t kl = 1;
    opt.kv_lens = &kl;
    ref_attention(&q, &k, &v, &opt, out, &lse, NULL);
    assert_true(out[0] == 1.0 && out[1] == 2.0 && fabs(lse - 1.0) < 1e-15);
    /* kv_lens = 0: nothing visible */
    kl = 0;
    ref_attention(&q, &k, &v, &opt, out, &lse, NULL);
    assert_true(out[0] == 0.0 && out[1] == 0.0 && isinf(lse) && lse < 0);
    /* bottom-right causal, q_len 2 > kv_len 1: row 0 sees nothing, row 1 sees key 0 */
    float q2[4] = {1, 0, 0, 1};
    flat_tensor qq = flat_tensor_bhsd(q2, FLAT_F32, 1, 1, 2, 2);
    flat_tensor k1 = flat_tensor_bhsd(kd, FLAT_F32, 1, 1, 1, 2);
    flat_tensor v1 = flat_tensor_bhsd(vd, FLAT_F32, 1, 1, 1, 2);
    flat_options oc = {0};
    oc.causal = 1;
    assert_false(ref_visible(&qq, &k1, &oc, 0, 0, 0));
    assert_true(ref_visible(&qq, &k1, &oc, 0, 1, 0));
    /* GQA: 4 query heads on 2 kv heads: heads 0,1 -> 0 and 2,3 -> 1 */
    float q4[8] = {1, 0, 1, 0, 1, 0, 1, 0}, k2[4] = {1, 0, 1, 0}, v2[4] = {5, 6, 7, 8};
    flat_tensor gq = flat_tensor_bhsd(q4, FLAT_F32, 1, 4, 1, 2);
    flat_tensor gk = flat_tensor_bhsd(k2, FLAT_F32, 1, 2, 1, 2);
    flat_tensor gv = flat_tensor_bhsd(v2, FLAT_F32, 1, 2, 1, 2);
    double go[8];
    ref_attention(&gq, &gk, &gv, NULL, go, NULL, NULL);
    assert_true(go[0] == 5 && go[2] == 5 && go[4] == 7 && go[6] == 7);
    (void)qq, (void)v1;
}

/* q_len x kv_len over {1, 7, 63, 64, 65, 1000}^2, causal and not, with lse
 * and without, MQA at D = 64 and GQA at D = 128. */
static void test_sizes(void **state)
{
    (void)state;
    static const int64_t n[] = {1, 7, 63, 64, 65, 1000};
    char name[96];
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++)
            for (int causal = 0; causal < 2; causal++)
                for (int gqa = 0; gqa < 2; gqa++) {
                    if (quick && (a + b + causal + gqa) % 2) /* each pair: 2 of the 4 */
                        continue;
                    snprintf(name, sizeof name, "sizes Nq=%lld Nk=%lld causal=%d %s",
                             (long long)SZ(n[a]), (long long)SZ(n[b]), causal,
                             gqa ? "GQA D=128" : "MQA D=64");
                    acase c = base_case(name, n[a], n[b], gqa ? 128 : 64);
                    c.Hq = gqa ? 4 : 2, c.Hkv = gqa ? 2 : 1;
                    c.causal = causal;
                    c.no_lse = (a + b + causal) % 3 == 0;
                    c.threads_both = n[a] * n[b] < 1000 * 1000;
                    run_case(&c);
                }
}

/* Head dims 32..256 (and odd ones), with Dv == D and Dv != D. */
static void test_head_dims(void **state)
{
    (void)state;
    static const int64_t d[] = {32, 64, 80, 96, 128, 256, 1, 7, 33};
    static const int64_t dv_other[] = {128, 80, 64, 256, 32, 96, 5, 1, 31};
    char name[64];
    for (int i = 0; i < 9; i++)
        for (int same = 0; same < 2; same++) {
            const int64_t dv = same ? d[i] : dv_other[i];
            snprintf(name, sizeof name, "head dims D=%lld Dv=%lld", (long long)d[i],
                     (long long)dv);
            acase c = base_case(name, 65, 130, d[i]);
            c.Dv = dv;
            c.B = 2, c.Hq = 4, c.Hkv = 2;
            c.causal = i % 2;
            c.threads_both = 1;
            run_case(&c);
        }
}

/* MLA-like decode (DeepSeek's absorbed attention: one kv head of 576 dims for
 * all query heads, V of 512 or 576) and speculative rows on it: 16 and 32 rows
 * per kv head, past the dot kernels' 4, where the decode path fetches K and V
 * crosswise (plan->along), over enough keys for several key blocks and a
 * partial last one. */
static void test_mla_dims(void **state)
{
    (void)state;
    static const int64_t dv[] = {512, 576};
    char name[80];
    for (int i = 0; i < 2; i++)
        for (int spec = 0; spec < 2; spec++) {
            snprintf(name, sizeof name, "MLA-like D=576 Dv=%lld rows=%d", (long long)dv[i],
                     spec ? 32 : 16);
            acase c = base_case(name, spec ? 2 : 1, 700, 576);
            c.Dv = dv[i];
            c.Hq = 16, c.Hkv = 1;
            c.causal = spec;
            c.threads_both = 1;
            run_case(&c);
        }
}

/* Strided views: BHSD, BSHD, padded, [S,B,H,D], batch-broadcast K/V, and mixes. */
static void test_layouts(void **state)
{
    (void)state;
    static const tu_layout mix[][4] = {
        {TU_BHSD, TU_BHSD, TU_BHSD, TU_BHSD},     {TU_BSHD, TU_BSHD, TU_BSHD, TU_BSHD},
        {TU_PADDED, TU_PADDED, TU_PADDED, TU_PADDED}, {TU_SBHD, TU_SBHD, TU_SBHD, TU_SBHD},
        {TU_BSHD, TU_PADDED, TU_SBHD, TU_PADDED}, {TU_SBHD, TU_BCAST, TU_BCAST, TU_BSHD},
        {TU_PADDED, TU_BSHD, TU_BHSD, TU_SBHD},   {TU_BHSD, TU_BCAST, TU_PADDED, TU_BHSD},
    };
    char name[96];
    for (size_t m = 0; m < sizeof mix / sizeof mix[0]; m++)
        for (int causal = 0; causal < 2; causal++) {
            snprintf(name, sizeof name, "layouts q=%s k=%s v=%s out=%s causal=%d",
                     tu_layout_name(mix[m][0]), tu_layout_name(mix[m][1]),
                     tu_layout_name(mix[m][2]), tu_layout_name(mix[m][3]), causal);
            acase c = base_case(name, 33, 70, 64);
            c.B = 3, c.Hq = 4, c.Hkv = 2, c.Dv = 48;
            c.lq = mix[m][0], c.lk = mix[m][1], c.lv = mix[m][2], c.lo = mix[m][3];
            c.causal = causal;
            c.threads_both = 1;
            run_case(&c);
        }
}

/* MHA, GQA groups of 2..8, MQA; prefill-like and decode. */
static void test_gqa_mqa(void **state)
{
    (void)state;
    static const int64_t heads[][2] = {{1, 1}, {3, 3}, {8, 2}, {8, 1}, {6, 3}, {12, 4}, {5, 1}};
    char name[64];
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++)
        for (int decode = 0; decode < 2; decode++) {
            snprintf(name, sizeof name, "heads Hq=%lld Hkv=%lld %s", (long long)heads[i][0],
                     (long long)heads[i][1], decode ? "decode" : "prefill");
            acase c = base_case(name, decode ? 1 : 20, decode ? 1000 : 90, 64);
            c.B = 2, c.Hq = heads[i][0], c.Hkv = heads[i][1];
            c.causal = 1;
            c.lq = TU_BSHD, c.lk = c.lv = TU_PADDED, c.lo = TU_BSHD;
            c.threads_both = 1;
            run_case(&c);
        }
}

/* Causal with q_len < kv_len (KV cache) and q_len > kv_len (fully masked rows). */
static void test_causal(void **state)
{
    (void)state;
    static const int64_t nn[][2] = {{1, 1000}, {7, 65}, {64, 1000}, {63, 64}, {65, 65},
                                    {65, 7},   {1000, 63}, {64, 1}, {7, 1}, {130, 129}};
    char name[64];
    for (size_t i = 0; i < sizeof nn / sizeof nn[0]; i++) {
        snprintf(name, sizeof name, "causal Nq=%lld Nk=%lld", (long long)SZ(nn[i][0]),
                 (long long)SZ(nn[i][1]));
        acase c = base_case(name, nn[i][0], nn[i][1], 80);
        c.Dv = 64, c.B = 2, c.Hq = 4, c.Hkv = 2, c.causal = 1;
        c.threads_both = c.Nq * c.Nk <= 100000;
        if (c.Nq > c.Nk)
            assert_true(count_empty_rows(&c) > 0); /* the point of the case */
        run_case(&c);
    }
}

/* kv_lens with a zero, a one, partial and full, with and without causal. */
static void test_kv_lens(void **state)
{
    (void)state;
    static const int64_t nn[][2] = {{1, 64}, {7, 65}, {65, 64}, {1, 1000}, {64, 1000}, {200, 300}};
    char name[80];
    for (size_t i = 0; i < sizeof nn / sizeof nn[0]; i++)
        for (int causal = 0; causal < 2; causal++) {
            snprintf(name, sizeof name, "kv_lens Nq=%lld Nk=%lld causal=%d",
                     (long long)SZ(nn[i][0]), (long long)SZ(nn[i][1]), causal);
            acase c = base_case(name, nn[i][0], nn[i][1], 64);
            c.B = 5, c.Hq = 4, c.Hkv = 1, c.Dv = 96;
            c.causal = causal, c.kvlens = 1;
            c.lk = c.lv = TU_PADDED;
            c.threads_both = c.Nq * c.Nk <= 20000;
            assert_true(count_empty_rows(&c) > 0); /* kv_lens[1] == 0 */
            run_case(&c);
        }
}

/* |q|, |k| ~ 1000 (logits ~ 1e5..1e6: exp overflows unless the max is
 * subtracted), tiny inputs, large V, explicit scales. */
static void test_magnitudes(void **state)
{
    (void)state;
    static const float qk[] = {1000.0f, 30.0f, 1e-3f, 1.0f, 1.0f, 1.0f};
    static const float vm[] = {1.0f, 1.0f, 1.0f, 1e4f, 1.0f, 1.0f};
    static const float sc[] = {0.0f, 0.0f, 0.0f, 0.0f, 0.5f, 1e-3f};
    char name[80];
    for (int i = 0; i < 6; i++)
        for (int causal = 0; causal < 2; causal++) {
            snprintf(name, sizeof name, "magnitude qk=%g v=%g scale=%g causal=%d", qk[i], vm[i],
                     sc[i], causal);
            acase c = base_case(name, 65, 300, 128);
            c.B = 2, c.Hq = 2, c.Hkv = 1;
            c.qk_mag = qk[i], c.v_mag = vm[i], c.scale = sc[i];
            c.logit_bound = qk[i] > 1.0f;
            c.causal = causal;
            c.threads_both = 1;
            run_case(&c);
        }
}

/* NaN / Inf in one input row reaches only the rows that read it. */
static void test_nonfinite_inputs(void **state)
{
    (void)state;
    static const poison_kind kinds[] = {P_NAN_K, P_NAN_V, P_NAN_Q, P_INF_K, P_INF_V};
    static const char *names[] = {"NaN in K", "NaN in V", "NaN in Q", "Inf in K", "Inf in V"};
    char name[80];
    for (int i = 0; i < 5; i++)
        for (int causal = 0; causal < 2; causal++)
            for (int sz = 0; sz < 2; sz++) {
                snprintf(name, sizeof name, "%s causal=%d %s", names[i], causal,
                         sz ? "long" : "short");
                acase c = base_case(name, sz ? 70 : 9, sz ? 1000 : 40, 64);
                c.B = 2, c.Hq = 4, c.Hkv = 2;
                c.causal = causal;
                c.kvlens = sz; /* also with hidden (NaN) keys */
                c.poison = kinds[i];
                c.threads_both = !sz;
                run_case(&c);
            }
}

/* Finite inputs whose logits overflow fp32 (|q|, |k| ~ 1e20): no crash, and
 * no silent wrong answer: each row is either right or visibly non-finite. */
static void test_overflowing_logits(void **state)
{
    (void)state;
    static const float mags[] = {1e20f, 1e18f};
    for (int mi = 0; mi < 2; mi++) {
    tu_rng rng = {77};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, TU_BHSD, 1, 2, 9, 32);
    tu_tensor_alloc(&k, TU_BHSD, 1, 2, 40, 32);
    tu_tensor_alloc(&v, TU_BHSD, 1, 2, 40, 32);
    tu_tensor_alloc(&o, TU_BHSD, 1, 2, 9, 32);
    tu_tensor_fill(&q, &rng, mags[mi]);
    tu_tensor_fill(&k, &rng, mags[mi]);
    tu_tensor_fill(&v, &rng, 1.0f);
    double *ref = malloc(sizeof(double) * 2 * 9 * 32);
    ref_attention(&q.t, &k.t, &v.t, NULL, ref, NULL, NULL);
    for (int ti = 0; ti < ntables; ti++)
        for (int df = 1; df <= 2; df++) {
            flat_options opt = {0};
            opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df, opt.num_threads = 1;
            tu_tensor_poison(&o);
            flat_status st = flat_attention(&q.t, &k.t, &v.t, &o.t, &opt);
            if (st != FLAT_OK)
                fail_msg("%s %s: status %s: %s", tables[ti]->name, df_name((flat_dataflow)df),
                         flat_status_string(st), flat_last_error());
            int right = 0, nonfinite = 0;
            for (int r = 0; r < 2 * 9; r++) {
                double num = 0, den = 0;
                int bad = 0;
                for (int d = 0; d < 32; d++) {
                    bad |= !isfinite(o.buf[r * 32 + d]);
                    double e = o.buf[r * 32 + d] - ref[r * 32 + d];
                    num += e * e, den += ref[r * 32 + d] * ref[r * 32 + d];
                }
                if (bad)
                    nonfinite++;
                else if (sqrt(num) <= ROW_TOL * sqrt(den))
                    right++;
                else
                    fail_msg("%s %s: row %d is finite but wrong (relative error %.3g)",
                             tables[ti]->name, df_name((flat_dataflow)df), r,
                             sqrt(num / den));
            }
            printf("  %-7s %-5s |q|,|k| ~ %g: %d rows right, %d rows non-finite\n",
                   tables[ti]->name, df_name((flat_dataflow)df), mags[mi], right, nonfinite);
        }
    free(ref);
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
    }
}

/* Decode and long contexts: one query row against many keys, where the
 * runtime may split keys across threads, and kv_len far above L2 (FLASH). */
static void test_long_kv(void **state)
{
    (void)state;
    /* B * Hkv == 1 leaves one task for two threads: the runtime splits the
     * keys (split-KV) and merges by lse, also over kv_lens-hidden NaN keys. */
    static const int64_t cfg[][4] = {/* B, Hq, Hkv, Nk */ {1, 1, 1, 4096}, {1, 2, 1, 20000},
                                     {1, 4, 1, 5000}, {1, 8, 8, 3000}};
    char name[80];
    for (int i = 0; i < 4; i++)
        for (int nq = 1; nq <= 8; nq += 7) {
            snprintf(name, sizeof name, "long kv B=%lld Hq=%lld Hkv=%lld Nq=%d Nk=%lld",
                     (long long)cfg[i][0], (long long)cfg[i][1], (long long)cfg[i][2], nq,
                     (long long)SZ(cfg[i][3]));
            acase c = base_case(name, nq, cfg[i][3], 64);
            c.B = cfg[i][0], c.Hq = cfg[i][1], c.Hkv = cfg[i][2];
            c.causal = i % 2;
            c.kvlens = i == 2;
            c.threads_both = 1;
            run_case(&c);
        }
    /* Both query heads share each split of the one kv head: a NaN in one
     * head's query must poison its row in every split and the merge, and
     * leave the other head's row exact. */
    acase c = base_case("long kv split-KV with a NaN query", 1, 4096, 64);
    c.Hq = 2, c.Hkv = 1;
    c.poison = P_NAN_Q;
    c.threads_both = 1;
    run_case(&c);
}

/*
 * Long prefill, checked on sampled rows (the full double reference would be
 * O(N^2 D) per head): Nq = Nk = 4096, causal, GQA, every table x FLAT and
 * FLASH x 2 threads. The rows sampled include the first and last of each
 * query block edge region, so every task's rows are represented.
 */
static void test_long_prefill_sampled(void **state)
{
    (void)state;
    const int64_t N = quick ? 1024 : 4096, Hq = 2, Hkv = 1, D = 64;
    tu_rng rng = {4096};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, TU_BSHD, 1, Hq, N, D);
    tu_tensor_alloc(&k, TU_BSHD, 1, Hkv, N, D);
    tu_tensor_alloc(&v, TU_BSHD, 1, Hkv, N, D);
    tu_tensor_alloc(&o, TU_BSHD, 1, Hq, N, D);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    float *lse = malloc(sizeof(float) * (size_t)(Hq * N));
    flat_options base = {0};
    base.causal = 1;
    enum { NS = 48 };
    int64_t rows[NS];
    for (int s = 0; s < NS; s++) /* ends, block edges, random */
        rows[s] = s < 4 ? (int64_t[]){0, 1, N - 2, N - 1}[s]
                  : s < 24 ? ((s - 4) * 97 + 47) % N
                           : (int64_t)(tu_next(&rng) % (uint64_t)N);
    double *ref = malloc(sizeof(double) * (size_t)(Hq * NS * D)), ref_lse[2 * NS];
    for (int64_t h = 0; h < Hq; h++)
        for (int s = 0; s < NS; s++)
            ref_attention_row(&q.t, &k.t, &v.t, &base, 0, h, rows[s], ref + (h * NS + s) * D,
                              &ref_lse[h * NS + s]);
    for (int ti = 0; ti < ntables; ti++)
        for (int df = 1; df <= 2; df++) {
            flat_options opt = base;
            opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df, opt.num_threads = 2;
            opt.lse = lse;
            tu_tensor_poison(&o);
            flat_status st = flat_attention(&q.t, &k.t, &v.t, &o.t, &opt);
            if (st != FLAT_OK)
                fail_msg("%s: %s", flat_status_string(st), flat_last_error());
            for (int64_t h = 0; h < Hq; h++)
                for (int s = 0; s < NS; s++) {
                    const float *got = ref_row(&o.t, 0, h, rows[s]);
                    const double *want = ref + (h * NS + s) * D;
                    double num = 0, den = 0;
                    for (int64_t d = 0; d < D; d++) {
                        double e = got[d] - want[d];
                        num += e * e, den += want[d] * want[d];
                    }
                    if (!(sqrt(num) <= ROW_TOL * sqrt(den)))
                        fail_msg("long prefill N=%lld [%s %s] row (h=%lld, i=%lld): relative "
                                 "error %.3g",
                                 (long long)N, tables[ti]->name, df_name((flat_dataflow)df),
                                 (long long)h, (long long)rows[s], sqrt(num / den));
                    const double lr = ref_lse[h * NS + s], lg = lse[h * N + rows[s]];
                    if (!(fabs(lg - lr) <= LSE_TOL * fmax(1.0, fabs(lr))))
                        fail_msg("long prefill [%s %s] row (h=%lld, i=%lld): lse %.9g want %.9g",
                                 tables[ti]->name, df_name((flat_dataflow)df), (long long)h,
                                 (long long)rows[s], lg, lr);
                }
            assert_int_equal(tu_tensor_padding_changed(&o), -1);
        }
    free(ref);
    free(lse);
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
}

/* opt == NULL means defaults (scale 1/sqrt(D), no mask, AUTO everything). */
static void test_null_options(void **state)
{
    (void)state;
    tu_rng rng = {99};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, TU_BHSD, 2, 3, 17, 40);
    tu_tensor_alloc(&k, TU_BHSD, 2, 3, 29, 40);
    tu_tensor_alloc(&v, TU_BHSD, 2, 3, 29, 24);
    tu_tensor_alloc(&o, TU_BHSD, 2, 3, 17, 24);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    double *ref = malloc(sizeof(double) * 2 * 3 * 17 * 24);
    ref_attention(&q.t, &k.t, &v.t, NULL, ref, NULL, NULL);
    assert_int_equal(flat_attention(&q.t, &k.t, &v.t, &o.t, NULL), FLAT_OK);
    for (int r = 0; r < 2 * 3 * 17; r++) {
        double num = 0, den = 0;
        for (int d = 0; d < 24; d++) {
            double e = o.buf[r * 24 + d] - ref[r * 24 + d];
            num += e * e, den += ref[r * 24 + d] * ref[r * 24 + d];
        }
        assert_true(sqrt(num) <= ROW_TOL * sqrt(den));
    }
    free(ref);
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
}

/* Every kv_lens[b] == 0: no key is visible anywhere (the planner once divided
 * by the zero key blocks this gives): zero rows, lse = -inf, on every table,
 * dataflow and both thread counts. */
static void test_no_visible_key(void **state)
{
    (void)state;
    tu_rng rng = {7};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, TU_BHSD, 2, 4, 40, 32);
    tu_tensor_alloc(&k, TU_BHSD, 2, 2, 50, 32);
    tu_tensor_alloc(&v, TU_BHSD, 2, 2, 50, 32);
    tu_tensor_alloc(&o, TU_BHSD, 2, 4, 40, 32);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    int32_t lens[2] = {0, 0};
    float lse[2 * 4 * 40];
    for (int ti = 0; ti < ntables; ti++)
        for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE; df++)
            for (int threads = 1; threads <= 2; threads++) {
                flat_options opt = {0};
                opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df;
                opt.num_threads = threads, opt.kv_lens = lens, opt.lse = lse;
                flat_status s = flat_attention(&q.t, &k.t, &v.t, &o.t, &opt);
                if (s != FLAT_OK)
                    fail_msg("%s %s: status %s: %s", tables[ti]->name,
                             df_name((flat_dataflow)df), flat_status_string(s), flat_last_error());
                for (int64_t i = 0; i < 2 * 4 * 40 * 32; i++)
                    if (o.buf[i] != 0.0f)
                        fail_msg("%s %s: out[%lld] = %g, want 0", tables[ti]->name,
                                 df_name((flat_dataflow)df), (long long)i, o.buf[i]);
                for (int i = 0; i < 2 * 4 * 40; i++)
                    if (!(isinf(lse[i]) && lse[i] < 0))
                        fail_msg("%s: lse[%d] = %g, want -inf", tables[ti]->name, i, lse[i]);
            }
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
}

/* Same call twice gives the same bits (no uninitialised workspace reads). */
static void test_repeatable(void **state)
{
    (void)state;
    tu_rng rng = {123};
    tu_tensor q, k, v, o;
    tu_tensor_alloc(&q, TU_BHSD, 1, 4, 100, 64);
    tu_tensor_alloc(&k, TU_BHSD, 1, 2, 333, 64);
    tu_tensor_alloc(&v, TU_BHSD, 1, 2, 333, 64);
    tu_tensor_alloc(&o, TU_BHSD, 1, 4, 100, 64);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    float *first = malloc(o.n * sizeof(float));
    for (int ti = 0; ti < ntables; ti++)
        for (int df = 1; df <= 2; df++) {
            flat_options opt = {0};
            opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df, opt.causal = 1;
            opt.num_threads = 2;
            assert_int_equal(flat_attention(&q.t, &k.t, &v.t, &o.t, &opt), FLAT_OK);
            memcpy(first, o.buf, o.n * sizeof(float));
            tu_tensor_poison(&o);
            assert_int_equal(flat_attention(&q.t, &k.t, &v.t, &o.t, &opt), FLAT_OK);
            if (memcmp(first, o.buf, o.n * sizeof(float)) != 0)
                fail_msg("%s %s: two identical calls gave different bits", tables[ti]->name,
                         df_name((flat_dataflow)df));
        }
    free(first);
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
}

static void test_required_isas(void **state)
{
    (void)state;
    assert_int_equal(tu_check_required_isas("test_attention"), 0);
}

static void test_summary(void **state)
{
    (void)state;
    printf("  large logits: max relative error / max(1, L/8) = %.3g (bound 1e-5)\n",
           max_mag_err);
    for (int ti = 0; ti <= ntables; ti++) {
        printf("  %-7s %5ld calls: max row relative error %.3g, max lse relative error %.3g "
               "(bound %.0e; magnitude cases not included)\n",
               ti < ntables ? tables[ti]->name : "auto", runs[ti], max_row_err[ti],
               max_lse_err[ti], ROW_TOL);
        assert_true(runs[ti] > 0);
    }
}

int main(void)
{
    const char *filter = getenv("FLAT_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    quick = tu_quick();
    ntables = tu_runnable_tables("test_attention", tables, 8);
    ntables = tu_fp32_product_tables("test_attention", tables, ntables); /* the 1e-5 bound */
    if (quick)
        printf("test_attention: quick mode (sequences above 300 shortened to 257, one thread "
               "count per table and dataflow, half the size grid)\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_sanity), cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_head_dims),        cmocka_unit_test(test_mla_dims),        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_gqa_mqa),          cmocka_unit_test(test_causal),
        cmocka_unit_test(test_kv_lens),          cmocka_unit_test(test_magnitudes),
        cmocka_unit_test(test_nonfinite_inputs), cmocka_unit_test(test_overflowing_logits),
        cmocka_unit_test(test_long_kv),          cmocka_unit_test(test_long_prefill_sampled),
        cmocka_unit_test(test_null_options),     cmocka_unit_test(test_repeatable),
        cmocka_unit_test(test_no_visible_key),
        cmocka_unit_test(test_required_isas),    cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
