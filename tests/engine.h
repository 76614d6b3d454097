/* An engine's view of flat for the engine suites (test_engine, test_repoint):
 * its graph op running a plan's tasks on its own threads, and problems. */
#ifndef FLAT_TEST_ENGINE_H
#define FLAT_TEST_ENGINE_H

#include "testutil.h"

/* Runs the plan's phase-0 tasks as one graph op of an engine: nth pthreads
 * of its own, thread ith taking every nth task of a shuffled list as worker
 * ith (threads past flat_plan_workers idle), no barrier. Asserts every task
 * returned FLAT_OK. */
void run_graph_op(const flat_plan *plan, void *ws, int nth, tu_rng *rng);

/* A 64-byte aligned workspace of the plan's size. */
void *workspace_for(const flat_plan *plan);

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D;
    int causal;
} ecase;

/* q, k, v (random), out, lse and options (causal, lse) of a case. */
typedef struct {
    tu_tensor q, k, v, o;
    float *lse;
    flat_options opt;
} eproblem;

void make(eproblem *e, const ecase *c, uint64_t seed);
void unmake(eproblem *e);
/* out rows (contiguous) and lse as they stand, malloc'ed. */
float *copy_out(const eproblem *e, const ecase *c, float **lse);
/* Non-zero when out and lse hold exactly these bits. */
int same_out(const eproblem *a, const float *want, const float *want_lse, const ecase *c);
/* Largest relative row error of out against the double reference. */
double worst_error(const eproblem *e, const ecase *c);

#endif
