/* The public plan object (include/flat.h, flat_plan) and its tasks.
 *
 * A plan is a validated problem, its kernel table, its tiling (two for a
 * mixed call: decodes beside a prefill chunk, tiling.h) and the list
 * of phase-0 tasks ("units"), each a run of query blocks of one (sequence,
 * kv head, head group), or one block's split-KV key range. Units are
 * self-contained: a unit packs the K it needs into its worker's scratch and
 * nothing carries over to the next unit, so tasks may run in any order on any
 * worker and give bitwise the same result. */
#ifndef FLAT_CALL_H
#define FLAT_CALL_H

#include <stddef.h>

#include "attend.h"

/* b, kv_head, head0, heads: sequence, kv head, first query head, heads;
 * pos0, pos1: its query positions, blocks of bq from pos0; split: key range,
 * when the tiling splits keys; block: split-KV, the slot of its block's
 * first partial rows (its own: block + split; -1 when its tiling does not
 * split); tiling: 0 plan->t, 1 plan->t_decode. */
typedef flat_unit_view flat_unit;

struct flat_plan {
    flat_problem p;
    const flat_ukernels *uk;
    flat_tiling t;        /* the call's tiling; a mixed call's GEMM-shaped part */
    flat_tiling t_decode; /* a mixed call's decode part (tiling.h, flat_part) */
    int n_tilings;        /* 2 for a mixed call (units name theirs), else 1 */
    int workers;
    flat_isa isa_asked;           /* opt.isa, opt.dataflow, opt.num_threads and */
    flat_dataflow dataflow_asked; /* opt.precision as given (re-pointing must */
    int threads_asked;            /* give the same) */
    int32_t precision_asked;
    int64_t n_units;   /* phase-0 tasks */
    int64_t n_merges;  /* phase-1 tasks: split blocks, 0 without splits */
    int64_t *merge_units; /* [n_merges]: the first unit (split 0) of each split block */
    flat_unit *units;  /* [n_units], ordered by cost, heaviest first */
    float *costs;      /* [n_units]: the partitioner's cost of each (tests read it) */
    int64_t *order;    /* [n_units]: the sort's tie-break, kept with the plan */
    int64_t scratch_floats; /* one worker's scratch */
    int64_t split_floats;   /* one (block, split)'s partial rows (the larger tiling's) */
    int64_t split_units;    /* units that split: slots of split_floats in the workspace */
    size_t workspace_bytes;
    char describe[1536];
};

/* Makes a plan for a validated problem (copying the index arrays it points
 * to into the plan, so the plan stays valid whatever the caller does with
 * them). force_splits > 0 overrides the split-KV choice (tests). */
flat_status flat_plan_build(const flat_problem *p, const flat_ukernels *uk,
                            flat_dataflow requested, int threads, int force_splits,
                            flat_plan **plan);

/* The tiling unit u runs under. */
static inline const flat_tiling *flat_plan_tiling(const struct flat_plan *plan,
                                                  const flat_unit *u)
{
    return u->tiling ? &plan->t_decode : &plan->t;
}

/* The partitioner (partition.c): how many units one tiling makes for
 * `workers`; and the units of all the plan's tilings (tilings[k] for units
 * of tiling k), heaviest first, with their costs (order: scratch for the
 * sort, one entry per unit), the first unit of each split block
 * (merge_units, at most one entry per unit) and the units that split
 * (*split_units: the partial-row slots). Returns the split blocks. */
int64_t flat_partition_count(const flat_problem *p, const flat_tiling *t, int workers);
int64_t flat_partition_fill(const flat_problem *p, const flat_tiling *const *tilings,
                            int n_tilings, int workers, flat_unit *units, float *costs,
                            int64_t *order, int64_t *merge_units, int64_t *split_units);

/* Phase 0: unit i as worker `worker`. Phase 1: merge of split block i
 * (task.c: parallel.c runs them all, plan.c one for the engine). */
void flat_plan_run_unit(const flat_plan *plan, int64_t i, int worker, void *workspace);
void flat_plan_run_merge(const flat_plan *plan, int64_t i, void *workspace);

#endif
