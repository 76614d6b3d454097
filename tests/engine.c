/* The engine suites' helpers (engine.h). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine.h"
#include "reference.h"

/* ---- an engine's graph op: its threads, tasks in any order, no barrier ---- */

typedef struct {
    const flat_plan *plan;
    void *ws;
    const int64_t *order;
    int64_t n;
    int ith, nth;
    atomic_int *failures;
} op_thread;

/* ggml's custom-op shape: thread ith of nth; threads past the plan's
 * workers have nothing to do (a plan caps its workers at its tasks). */
static void *graph_op(void *arg)
{
    op_thread *t = arg;
    int workers = flat_plan_workers(t->plan), step = t->nth < workers ? t->nth : workers;
    if (t->ith >= workers)
        return NULL;
    for (int64_t i = t->ith; i < t->n; i += step)
        if (flat_plan_run_task(t->plan, 0, t->order[i], t->ith, t->ws) != FLAT_OK)
            atomic_fetch_add(t->failures, 1);
    return NULL;
}

void run_graph_op(const flat_plan *plan, void *ws, int nth, tu_rng *rng)
{
    int64_t n = flat_plan_tasks(plan, 0);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_next(rng) % (uint64_t)(i + 1)), x = order[i];
        order[i] = order[j], order[j] = x;
    }
    atomic_int failures = 0;
    pthread_t tid[8];
    op_thread th[8];
    for (int i = 0; i < nth; i++) {
        th[i] = (op_thread){plan, ws, order, n, i, nth, &failures};
        pthread_create(&tid[i], NULL, graph_op, &th[i]);
    }
    for (int i = 0; i < nth; i++)
        pthread_join(tid[i], NULL);
    free(order);
    assert_int_equal(atomic_load(&failures), 0);
}

void *workspace_for(const flat_plan *plan)
{
    void *ws = NULL;
    assert_int_equal(posix_memalign(&ws, 64, flat_plan_workspace_size(plan) + 64), 0);
    return ws;
}

void make(eproblem *e, const ecase *c, uint64_t seed)
{
    tu_rng rng = {seed};
    memset(e, 0, sizeof *e);
    tu_tensor_alloc(&e->q, TU_BSHD, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_alloc(&e->k, TU_BHSD, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&e->v, TU_BSHD, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&e->o, TU_BHSD, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_fill(&e->q, &rng, 1.0f);
    tu_tensor_fill(&e->k, &rng, 1.0f);
    tu_tensor_fill(&e->v, &rng, 1.0f);
    e->lse = malloc(sizeof(float) * (size_t)(c->B * c->Hq * c->Nq));
    e->opt.causal = c->causal;
    e->opt.lse = e->lse;
}

void unmake(eproblem *e)
{
    tu_tensor_free(&e->q);
    tu_tensor_free(&e->k);
    tu_tensor_free(&e->v);
    tu_tensor_free(&e->o);
    free(e->lse);
}

int same_out(const eproblem *a, const float *want, const float *want_lse, const ecase *c)
{
    size_t n = (size_t)(c->B * c->Hq * c->Nq);
    for (int64_t r = 0; r < (int64_t)n; r++)
        if (memcmp(ref_row(&a->o.t, r / (c->Hq * c->Nq), r / c->Nq % c->Hq, r % c->Nq),
                   want + r * c->D, sizeof(float) * (size_t)c->D) != 0)
            return 0;
    return memcmp(a->lse, want_lse, n * sizeof(float)) == 0;
}

/* out rows, contiguous, and lse of the problem as it stands. */
float *copy_out(const eproblem *e, const ecase *c, float **lse)
{
    size_t rows = (size_t)(c->B * c->Hq * c->Nq);
    float *o = malloc(rows * (size_t)c->D * sizeof(float));
    for (int64_t r = 0; r < (int64_t)rows; r++)
        memcpy(o + r * c->D, ref_row(&e->o.t, r / (c->Hq * c->Nq), r / c->Nq % c->Hq, r % c->Nq),
               sizeof(float) * (size_t)c->D);
    *lse = malloc(rows * sizeof(float));
    memcpy(*lse, e->lse, rows * sizeof(float));
    return o;
}

double worst_error(const eproblem *e, const ecase *c)
{
    size_t rows = (size_t)(c->B * c->Hq * c->Nq);
    double *ref = malloc(sizeof(double) * rows * (size_t)c->D), worst = 0;
    flat_options o = e->opt;
    o.lse = NULL;
    ref_attention(&e->q.t, &e->k.t, &e->v.t, &o, ref, NULL, NULL);
    for (int64_t r = 0; r < (int64_t)rows; r++) {
        const float *got = ref_row(&e->o.t, r / (c->Hq * c->Nq), r / c->Nq % c->Hq, r % c->Nq);
        double num = 0, den = 0;
        for (int64_t d = 0; d < c->D; d++) {
            double x = got[d] - ref[r * c->D + d];
            num += x * x, den += ref[r * c->D + d] * ref[r * c->D + d];
        }
        worst = fmax(worst, sqrt(num / fmax(den, 1e-300)));
    }
    free(ref);
    return worst;
}

