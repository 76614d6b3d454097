/* One task of a plan: a phase-0 unit on a worker's scratch, or a phase-1
 * merge of a split block. Called by parallel.c (which runs them all) and by
 * plan.c (flat_plan_run_task, the engine's own threads); it calls neither. */
#include "call.h"

void flat_plan_run_unit(const flat_plan *plan, int64_t i, int worker, void *workspace)
{
    float *mem = (float *)workspace + plan->scratch_floats * worker;
    float *parts = (float *)workspace + plan->scratch_floats * plan->workers;
    const flat_unit *u = &plan->units[i];
    const flat_tiling *t = flat_plan_tiling(plan, u);
    flat_scratch ws;
    flat_scratch_init(&ws, mem, &plan->p, t);
    flat_attend_unit(&plan->p, t, plan->uk, u, &ws,
                     t->splits > 1 ? parts + (u->block + u->split) * plan->split_floats : NULL);
}

void flat_plan_run_merge(const flat_plan *plan, int64_t i, void *workspace)
{
    int64_t first = plan->merge_units[i];
    const flat_unit *u = &plan->units[first];
    float *parts = (float *)workspace + plan->scratch_floats * plan->workers;
    flat_task block = {u->b, u->kv_head, u->head0, u->pos0, u->heads, u->pos1 - u->pos0, 0};
    flat_merge_splits(&plan->p, flat_plan_tiling(plan, u), plan->uk, &block,
                      parts + u->block * plan->split_floats, plan->split_floats);
}
