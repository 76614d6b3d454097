/* Running a decoded case through its entry point and judging the outcome
 * (see fcase.h). */
#include "fcase.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "dispatch.h"
#include "fcase_int.h"
#include "reference.h"

const char *fc_entry_name(int entry)
{
    static const char *names[] = {"flat_attention", "flat_attention_paged",
                                  "flat_plan_create + execute", "flat_plan_create_paged + run_task"};
    return entry >= 0 && entry < 4 ? names[entry] : "?";
}

void fc_fail(fc_result *r, const char *fmt, ...)
{
    if (r->failure[0])
        return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->failure, sizeof r->failure, fmt, ap);
    va_end(ap);
}

/* Runs the plan's tasks on one worker; a bad call first when asked. */
static int run_plan(fc_case *c, flat_plan *plan, fc_result *r)
{
    if (!c->plan_ws && c->entry == 2)
        return flat_plan_execute(plan, NULL);
    size_t bytes = flat_plan_workspace_size(plan);
    void *ws = aligned_alloc(64, (bytes + 64 + 63) & ~(size_t)63);
    if (!ws)
        return FLAT_ERROR_OUT_OF_MEMORY;
    int s;
    if (c->entry == 2) {
        s = flat_plan_execute(plan, ws);
    } else {
        /* Bad task arguments write nothing and say so. */
        const int64_t n0 = flat_plan_tasks(plan, 0);
        struct { int phase; int64_t task; int worker; void *ws; } bad[4] = {
            {2, 0, 0, ws}, {0, n0, 0, ws}, {0, 0, flat_plan_workers(plan), ws},
            {0, 0, 0, (char *)ws + 8}};
        for (int i = 0; i < 4; i++)
            if (flat_plan_run_task(plan, bad[i].phase, bad[i].task, bad[i].worker, bad[i].ws) !=
                    FLAT_ERROR_INVALID_ARGUMENT ||
                !flat_last_error()[0])
                fc_fail(r, "flat_plan_run_task's bad argument %d was not refused with a message", i);
        if (memcmp(c->arena, c->before, c->arena_bytes) != 0)
            fc_fail(r, "a refused flat_plan_run_task wrote to memory");
        s = FLAT_OK;
        for (int phase = 0; phase < 2 && s == FLAT_OK; phase++) /* in reverse: any order works */
            for (int64_t t = flat_plan_tasks(plan, phase) - 1; t >= 0 && s == FLAT_OK; t--)
                s = flat_plan_run_task(plan, phase, t, (int)(t % flat_plan_workers(plan)), ws);
    }
    free(ws);
    return s;
}

static int call(fc_case *c, fc_result *r)
{
    if (c->entry == 0)
        return flat_attention(c->pq, c->pk, c->pv, c->pout, c->popt);
    if (c->entry == 1)
        return flat_attention_paged(c->pq, c->pkv, c->pout, c->popt);
    flat_plan *plan = (flat_plan *)(uintptr_t)1;
    int s = c->entry == 2 ? flat_plan_create(c->pq, c->pk, c->pv, c->pout, c->popt, &plan)
                          : flat_plan_create_paged(c->pq, c->pkv, c->pout, c->popt, &plan);
    if (s != FLAT_OK) {
        if (plan != NULL)
            fc_fail(r, "a failed plan_create left *plan non-NULL");
        return s;
    }
    if (!flat_plan_describe(plan) || !flat_plan_describe(plan)[0])
        fc_fail(r, "flat_plan_describe is empty");
    s = run_plan(c, plan, r);
    flat_plan_destroy(plan);
    return s;
}

/* Marks the arena bytes the call may write: out's elements and lse. */
static void mark_writable(fc_case *c)
{
    const flat_tensor *o = &c->out.t;
    const int64_t es = o->dtype == FLAT_F32 ? 4 : 2;
    for (int64_t b = 0; b < o->batch; b++)
        for (int64_t h = 0; h < o->heads; h++)
            for (int64_t s = 0; s < o->seq; s++) {
                size_t at = (size_t)((uint8_t *)o->data - c->arena) +
                            (size_t)((b * o->stride_batch + h * o->stride_head + s * o->stride_seq) * es);
                memset(c->writable + at, 1, (size_t)(o->dim * es));
            }
    if (c->lse)
        memset(c->writable + ((uint8_t *)c->lse - c->arena), 1,
               (size_t)(o->batch * o->heads * o->seq) * 4);
}

/* The largest |logit| any row can reach: bounds the fp32 error (README). */
static double logit_bound(const fc_case *c, const flat_tensor *q, const flat_tensor *k)
{
    double scale = ref_scale(q, c->popt), most = 0;
    const int64_t g = q->heads / k->heads;
    for (int64_t b = 0; b < q->batch; b++)
        for (int64_t h = 0; h < q->heads; h++)
            for (int64_t i = 0; i < q->seq; i++)
                for (int64_t j = 0; j < k->seq; j++) {
                    const float *x = ref_row(q, b, h, i), *y = ref_row(k, b, h / g, j);
                    double s = 0;
                    for (int64_t d = 0; d < q->dim; d++)
                        s += fabs((double)x[d] * y[d]);
                    most = fmax(most, fabs(scale) * s);
                }
    if (c->popt && c->popt->alibi_slopes)
        most += 0.5 * (double)(k->seq + q->seq);
    if (c->popt && c->popt->mask)
        most += 3.0;
    return most;
}

/* Whether the call ran on a table with bf16 products: an explicit isa, or
 * the precision policy's choice for these element types (flat.h: AUTO takes
 * one for all-bf16 calls where the CPU has a fast one), asked of the one
 * chooser the library uses. */
static int products(const fc_case *c, flat_dtype compute)
{
    const flat_options none = {0}, *o = c->popt ? c->popt : &none;
    const flat_dtype kv = c->entry == 1 || c->entry == 3 ? c->kv.dtype : c->k.t.dtype;
    flat_status st;
    char why[256];
    const flat_ukernels *uk =
        flat_dispatch_choose(o->isa, o->precision, c->out.t.dtype, kv, &st, why, sizeof why);
    /* int8 products only on an int8 or int4 cache (avx512_vnni: fp32 otherwise) */
    return uk && uk->compute == compute && (compute != FLAT_I8 || kv == FLAT_I8 || kv == FLAT_I4);
}

static int bf16_products(const fc_case *c) { return products(c, FLAT_BF16); }

/* int8 products (FLAT_PRECISION_INT8, flat.h): Q and P rounded to 8 bits */
static int int8_products(const fc_case *c) { return products(c, FLAT_I8); }

/* Row tolerance for this case's output type and table (README "Accuracy"):
 * fp32 logits err by ~1e-5 L/8; the bf16-product tables' by 2^-8 L. */
static double row_tolerance(const fc_case *c, double L)
{
    double t = c->out.t.dtype == FLAT_F32 ? 1e-5 : c->out.t.dtype == FLAT_F16 ? 1e-3 : 8e-3;
    if (bf16_products(c))
        return fmax(t, 1e-2) + L / 256.0;
    if (int8_products(c))
        return fmax(t, 2e-2) + L / 128.0;
    return t * fmax(1.0, L / 8.0);
}

/* Compares out rows with the reference over the views q, k, v (F32
 * shadows): reference row (b, h, i) is out row (qb < 0 ? b : qb, h, i0 + i),
 * its lse at [lse_b < 0 ? b : lse_b][h][i0 + i]. */
void fc_check_rows(fc_case *c, fc_result *r, const flat_tensor *q, const flat_tensor *k,
                       const flat_tensor *v, const flat_options *opt, int64_t qb, int64_t i0,
                       int64_t lse_b)
{
    const int64_t Dv = v->dim;
    const double L = logit_bound(c, q, k), tol = row_tolerance(c, L);
    (void)opt;
    const int bf16_table = bf16_products(c);
    /* f16's resolution below its normal range (2^-14): subnormals are
     * multiples of 2^-24, so tiny rows (a dominant sink) err absolutely. */
    const double floor = c->out.t.dtype == FLAT_F16 ? sqrt((double)Dv) * 0x1p-24 : 0.0;
    const double lse_tol = bf16_table        ? 5e-3 + L / 256.0
                           : int8_products(c) ? 2e-2 + L / 128.0
                                              : 1e-5 * fmax(1.0, L / 8.0);
    double *want = malloc(sizeof(double) * (size_t)(q->batch * q->heads * q->seq * Dv + 1));
    double *want_lse = malloc(sizeof(double) * (size_t)(q->batch * q->heads * q->seq + 1));
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)(q->batch * q->heads * q->seq + 1));
    ref_attention(q, k, v, opt, want, want_lse, seen);
    const flat_tensor *o = &c->out.t;
    for (int64_t b = 0; b < q->batch; b++)
        for (int64_t h = 0; h < q->heads; h++)
            for (int64_t i = 0; i < q->seq; i++) {
                const int64_t row = (b * q->heads + h) * q->seq + i;
                const int64_t ob = qb >= 0 ? qb : b, oi = i0 + i;
                const void *got = (const char *)o->data +
                    (ob * o->stride_batch + h * o->stride_head + oi * o->stride_seq) *
                        (o->dtype == FLAT_F32 ? 4 : 2);
                double err = 0, norm = 0;
                for (int64_t x = 0; x < Dv; x++) {
                    double g = flat_load_elem(got, x, o->dtype), w = want[row * Dv + x];
                    err += (g - w) * (g - w), norm += w * w;
                }
                if (seen[row] == 0 ? err != 0 : !(sqrt(err) <= tol * fmax(sqrt(norm), 1e-30) + floor))
                    fc_fail(r, "row (%lld,%lld,%lld): relative error %.3g > %.3g (sees %lld keys; "
                          "|want| %.3g, got[0] %.9g, want[0] %.9g)",
                          (long long)ob, (long long)h, (long long)oi,
                          sqrt(err) / fmax(sqrt(norm), 1e-300), tol, (long long)seen[row],
                          sqrt(norm), flat_load_elem(got, 0, o->dtype), want[row * Dv]);
                if (!c->lse)
                    continue;
                const int64_t lb = lse_b >= 0 ? lse_b : b;
                const double gl = c->lse[(lb * o->heads + h) * o->seq + oi], wl = want_lse[row];
                if (!(gl == wl || fabs(gl - wl) <= lse_tol * fmax(1.0, fabs(wl))))
                    fc_fail(r, "row (%lld,%lld,%lld): lse %.9g, want %.9g", (long long)ob,
                          (long long)h, (long long)oi, gl, wl);
            }
    free(want);
    free(want_lse);
    free(seen);
}

static void check_success(fc_case *c, fc_result *r)
{
    for (size_t i = 0; i < c->arena_bytes; i++)
        if (!c->writable[i] && c->arena[i] != c->before[i]) {
            fc_fail(r, "byte %zu of the arena outside out's elements and lse changed", i);
            break;
        }
    if (c->entry == 0 || c->entry == 2)
        fc_check_rows(c, r, &c->q.ref, &c->k.ref, &c->v.ref, c->popt, -1, 0, -1);
    else
        fc_check_paged(c, r);
}

/* The case in one line, for failure reports. */
static void describe(const fc_case *c, char *buf, size_t n)
{
    const flat_options *o = &c->opt;
    const flat_tensor *q = &c->q.t;
    snprintf(buf, n,
             "q [%lld,%lld,%lld,%lld] dtype %d, k [%lld,%lld] dv %lld kv dtype %d, out dtype %d; "
             "isa %d dataflow %d threads %d causal %d scale %g kv_lens %d window (%d,%d) "
             "softcap %g sinks %d alibi %d mask %d lse %d flags %llu%s",
             (long long)q->batch, (long long)q->heads, (long long)q->seq, (long long)q->dim,
             q->dtype, (long long)c->k.t.heads, (long long)c->k.t.seq, (long long)c->out.t.dim,
             c->entry == 1 || c->entry == 3 ? c->kv.dtype : c->k.t.dtype, c->out.t.dtype,
             o->isa, o->dataflow, o->num_threads, o->causal, o->scale, o->kv_lens != NULL,
             o->window_left, o->window_right, o->softcap, o->sinks != NULL,
             o->alibi_slopes != NULL, o->mask != NULL, o->lse != NULL,
             (unsigned long long)o->flags, c->popt ? "" : " (opt NULL)");
}

void fc_run(fc_source *src, fc_result *res)
{
    memset(res, 0, sizeof *res);
    fc_case c;
    if (fc_generate(src, &c) != 0) {
        fc_release(&c);
        return;
    }
    mark_writable(&c); /* of the call as meant, before any mistake */
    const char *mistake = fc_inject(src, &c);
    res->entry = c.entry;
    memcpy(c.before, c.arena, c.arena_bytes);
    res->status = call(&c, res);
    if (res->status != FLAT_OK) {
        if (!flat_last_error()[0])
            fc_fail(res, "status %d without a message", res->status);
        if (memcmp(c.arena, c.before, c.arena_bytes) != 0)
            fc_fail(res, "a failed call (%s) wrote to memory", flat_last_error());
        if (!mistake && res->status == FLAT_ERROR_INVALID_ARGUMENT)
            fc_fail(res, "a valid call was refused: %s", flat_last_error());
    } else {
        if (mistake)
            fc_fail(res, "a call with %s was accepted", mistake);
        check_success(&c, res);
    }
    if (res->failure[0]) {
        size_t used = strlen(res->failure);
        snprintf(res->failure + used, sizeof res->failure - used, "\n  case: ");
        used = strlen(res->failure);
        describe(&c, res->failure + used, sizeof res->failure - used);
    }
    fc_release(&c);
}
