/* One task of attention: a block of query rows against all its keys, in the
 * FLAT or the FLASH dataflow (the decode path is FLASH with K read in place),
 * written only against kernels/ukernel.h. */
#ifndef FLAT_ATTEND_H
#define FLAT_ATTEND_H

#include "tiling.h"
#include "problem.h"
#include "ukernel.h"

/* Rows of keys [k0, k0 + n) of K or V held in the scratch as one run
 * (gathered from small pages, or V widened to fp32); n 0: none. */
typedef struct {
    flat_kv_src src;
    int64_t k0, n;
} flat_block;

static inline int flat_block_holds(const flat_block *b, int64_t j0, int64_t n)
{
    return b->n > 0 && j0 >= b->k0 && j0 + n <= b->k0 + b->n;
}

/* Per-thread scratch, carved from one allocation (see flat_workspace_floats). */
typedef struct {
    float *kp;     /* packed K of one (batch, kv head): k_floats */
    float *spare;  /* one K panel: a page piece that starts inside a panel */
    int64_t kp_pair; /* which: b * kv_heads + kv_head, or -1 */
    float *qp;     /* packed Q panels: rows_pad x dim */
    float *s;      /* scores / probabilities: rows_pad x s_cols */
    float *o;      /* unnormalised output rows: rows x v_dim */
    float *vw;     /* a quantized V chunk widened to fp32: pv_keys x v_dim
                      (plan->widen_v) */
    float *kg, *vg; /* decode on small pages: a key block's K and V rows (codes
                       and scales) gathered into one run (plan->gather) */
    flat_block kblk, vblk; /* keys whose K (V) rows are in kg (vg, vw), if any */
    /* Where row r of the current task accumulates its unnormalised output:
     * o_base + (r / o_run) * o_ld_run + (r % o_run) * o_ld_row (see o_row). */
    float *o_base;
    int64_t o_ld_row, o_ld_run;
    int o_run;
    int o_direct;  /* o_base is the task's rows of `out` itself */
    float *m, *l;  /* running max (base-2 units) and sum per row */
    float *alpha;  /* per-row rescale factors of the current key block */
    float *bmax;   /* per-row max of the current block, when the score rules
                      computed it on their pass (rules.h) */
    float *ones;   /* rows ones: pv's "accumulate" */
    float *parts;  /* a task's key ranges' partial rows, when it merges them
                      itself (tiling.h: ranges > 1, splits == 1) */
    int *lo, *limit; /* keys visible to each row: the interval [lo, limit) */
    int64_t k_base;  /* the first key packed at kp (a multiple of nr) */
    int64_t k_lo, k_hi; /* keys the current unit reads: what packed_keys packs */
    const void **rows; /* Q row pointers for pack_q */
    const void **next_rows;  /* the same rows one query block lower (the next
                                block of the unit), or NULL; prefetched during pv */
} flat_scratch;

/* Floats one thread's scratch needs (pointer and int arrays included). */
int64_t flat_scratch_floats(const flat_problem *p, const flat_tiling *plan);

/* Lays out a scratch over `mem` (flat_scratch_floats floats, 64-byte aligned). */
void flat_scratch_init(flat_scratch *ws, float *mem, const flat_problem *p,
                       const flat_tiling *plan);

/* One query block: its coordinates. */
typedef struct {
    int64_t b, kv_head, head0, pos0; /* sequence, kv head, first query head and position */
    int heads, positions;
    int split;                       /* which key range, when plan->splits > 1 */
} flat_task;

/* A unit's coordinates as flat_attend_unit reads them (call.h's flat_unit). */
typedef struct {
    int32_t b, kv_head, head0, heads;
    int32_t pos0, pos1;
    int32_t split, block;
    int32_t tiling; /* which of the plan's tilings (call.h) it runs under */
} flat_unit_view;

/* Floats of one split's partial rows: rows x (v_dim + 2), (O, m, l) per row. */
int64_t flat_split_floats(const flat_problem *p, const flat_tiling *plan);

/* Runs a unit's blocks (positions [pos0, pos1) in blocks of bq), packing
 * K afresh for it: nothing of a previous unit is reused. */
void flat_attend_unit(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                      const flat_unit_view *u, flat_scratch *ws, float *part);

/* Computes the task's output rows (and lse), packing the task's K into the
 * thread's scratch first unless it holds that (batch, kv head) already.
 * With plan->splits > 1 it covers only key range task->split and writes its
 * unnormalised rows to `part` (flat_split_floats floats) instead of out. */
void flat_attend_task(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                      const flat_task *task, flat_scratch *ws, float *part);

/* Merges the plan->splits partial results of block t (split s's rows at
 * parts + s * stride floats) into out and lse, weighting each by
 * 2^(m_split - m); the first split's rows are overwritten with the merged,
 * unnormalised rows. */
void flat_merge_splits(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                       const flat_task *t, float *parts, int64_t stride);

#endif
