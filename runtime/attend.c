/* One task: its scratch, its query rows and where their output goes; the
 * dataflows (dataflow.c) and key access (keys.c) do the rest. */
#include <math.h>
#include <string.h>

#include "rules.h"
#include "tile.h"


/* Batch-invariant plans whose tasks run their key ranges themselves. */
static int in_task_ranges(const flat_tiling *plan) { return plan->ranges > 1 && plan->splits == 1; }

/* Lays the scratch regions out from `mem` (each 64-byte aligned) and returns
 * how many floats they span. With mem == NULL it only measures, so the size
 * and the layout can never disagree. */
static int64_t scratch_layout(flat_scratch *ws, float *mem, const flat_problem *p,
                              const flat_tiling *plan)
{
    int64_t rp = plan->rows_pad, r = plan->rows, at = 0;
#define CARVE(field, type, count)                                                      \
    do {                                                                               \
        ws->field = mem ? (type)(void *)(mem + at) : NULL;                             \
        at += flat_round_up((int64_t)(count) * (int64_t)sizeof(*ws->field) / 4 + 1, 16);    \
    } while (0)
    CARVE(kp, float *, plan->k_floats);
    CARVE(spare, float *, plan->k_in_place ? 0 : p->dim * plan->nr);
    CARVE(qp, float *, rp * p->dim);
    CARVE(s, float *, rp * plan->s_cols);
    CARVE(o, float *, r * p->v_dim);
    CARVE(vw, float *, plan->widen_v ? (int64_t)plan->pv_keys * p->v_dim : 0);
    /* a gathered block holds at most bk keys, and no more than a sequence sees */
    const int64_t gk = flat_min(plan->bk, flat_max(flat_round_up(p->kv_visible, plan->nr), plan->nr));
    CARVE(kg, float *, plan->gather ? flat_gather_floats(p, gk, 0) : 0);
    CARVE(vg, float *, plan->gather ? flat_gather_floats(p, gk, 1) : 0);
    CARVE(m, float *, r);
    CARVE(l, float *, r);
    CARVE(alpha, float *, r);
    CARVE(bmax, float *, r);
    CARVE(ones, float *, r);
    CARVE(parts, float *, in_task_ranges(plan) ? plan->ranges * flat_split_floats(p, plan) : 0);
    CARVE(lo, int *, r);
    CARVE(limit, int *, r);
    CARVE(rows, const void **, r);
    CARVE(next_rows, const void **, r);
#undef CARVE
    return at;
}

int64_t flat_scratch_floats(const flat_problem *p, const flat_tiling *plan)
{
    flat_scratch unused;
    return scratch_layout(&unused, NULL, p, plan);
}

void flat_scratch_init(flat_scratch *ws, float *mem, const flat_problem *p,
                       const flat_tiling *plan)
{
    scratch_layout(ws, mem, p, plan);
    ws->kp_pair = -1;
    ws->kblk.n = ws->vblk.n = 0;
    for (int64_t i = 0; i < plan->rows; i++)
        ws->ones[i] = 1.0f;
}

/* Row r of the task is head head0 + r / positions at position pos0 + r % positions.
 * Returns the keys the rows see together: [*kmin, kmax). */
static int gather_rows(const flat_problem *p, const flat_tiling *plan, const flat_task *t,
                       flat_scratch *ws, int *kmin)
{
    int rows = t->heads * t->positions, kmax = 0;
    *kmin = INT32_MAX;
    for (int r = 0; r < rows; r++) {
        int64_t h = t->head0 + r / t->positions, pos = t->pos0 + r % t->positions;
        ws->rows[r] = flat_q_row(p, t->b, h, pos);
        ws->next_rows[r] = pos >= plan->bq ? flat_q_row(p, t->b, h, pos - plan->bq) : NULL;
        int64_t lo, hi;
        flat_visible_range(p, t->b, pos, &lo, &hi);
        ws->lo[r] = (int)lo;
        ws->limit[r] = (int)hi;
        if (hi > lo) {
            kmax = ws->limit[r] > kmax ? ws->limit[r] : kmax;
            *kmin = ws->lo[r] < *kmin ? ws->lo[r] : *kmin;
        }
    }
    return kmax;
}

/* pv needs one stride per row group of pv_mr. Rows are (head, position)
 * pairs; when no group straddles two heads and out is fp32, the output
 * accumulates straight in `out` and normalising it is one pv call per group
 * (write_rows), not a copy per row. Otherwise it accumulates in the scratch,
 * one run of rows, and store_row normalises and rounds it into out. */
static void map_output(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                       const flat_task *t, flat_scratch *ws)
{
    ws->o_direct = plan->splits == 1 && !in_task_ranges(plan) && p->q_dtype == FLAT_F32 &&
                   (t->heads == 1 || t->positions == 1 || t->positions % uk->pv_mr == 0);
    if (ws->o_direct) {
        ws->o_base = flat_out_row(p, t->b, t->head0, t->pos0);
        ws->o_run = t->positions;
        ws->o_ld_row = t->positions == 1 ? p->out_sh : p->out_ss;
        ws->o_ld_run = p->out_sh;
    } else {
        ws->o_base = ws->o;
        ws->o_run = t->heads * t->positions;
        ws->o_ld_row = p->v_dim;
        ws->o_ld_run = 0;
    }
}

/* out = O / l and lse = ln 2 * (m + log2 l); a row that saw nothing gets 0, -inf.
 * Normalising is pv with no keys and alpha = 1/l (one vector loop per row
 * group); l = 0 rows hold O = 0 from their first pv, so alpha 0 keeps them
 * 0, and a NaN l (poisoned row) gives a NaN row. Scratch rows go out
 * through store_row with scale 1/l, rounded once to out's type. */
static void write_rows(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                       flat_scratch *ws, int kmax)
{
    int rows = t->heads * t->positions;
    float row_lse;
    for (int r = 0; r < rows; r++) {
        int64_t h = t->head0 + r / t->positions, pos = t->pos0 + r % t->positions;
        void *out = flat_out_row(p, t->b, h, pos);
        float *lse = flat_lse_at(p, t->b, h, pos);
        flat_finish_row(p, h, ws->m[r], ws->l[r], &ws->alpha[r], &row_lse);
        if (kmax == 0) /* O never written */
            memset(out, 0, (size_t)(p->v_dim * flat_dtype_size(p->q_dtype)));
        else if (!ws->o_direct)
            uk->store_row((int)p->v_dim, flat_o_row(ws, r), ws->alpha[r], p->q_dtype, out);
        if (lse)
            *lse = row_lse;
    }
    /* n = 0 keys: O *= alpha only. V is not read, but must be a real pointer
     * (the kernel forms row addresses from it; NULL + offset is undefined). */
    if (kmax > 0 && ws->o_direct) {
        const flat_kv_src none = flat_kv_src_plain(ws->s, 1, FLAT_F32);
        for (int r0 = 0; r0 < rows; r0 += uk->pv_mr)
            uk->pv((int)flat_min(uk->pv_mr, rows - r0), 0, (int)p->v_dim, ws->s, 1, &none,
                   flat_o_row(ws, r0), ws->o_ld_row, ws->alpha + r0);
    }
}

static void reset_rows(flat_scratch *ws, int rows)
{
    for (int r = 0; r < rows; r++) {
        ws->m[r] = -INFINITY;
        ws->l[r] = 0.0f;
    }
}

/* Keys [kbeg, kmax) range by range (split_keys each, from key 0), each
 * range's rows left as a partial, then merged as phase 1 merges split-KV
 * units: the bits of a split plan, without its units. */
static void attend_ranges(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                          const flat_task *task, flat_scratch *ws, int kbeg, int kmax)
{
    int rows = task->heads * task->positions;
    int64_t stride = flat_split_floats(p, plan);
    flat_tiling merged = *plan;
    merged.splits = plan->ranges;
    uk->pack_q(rows, (int)p->dim, ws->rows, p->q_dtype, p->scale * FLAT_LOG2E, ws->qp);
    for (int c = 0; c < plan->ranges; c++) {
        flat_task range = *task;
        int b, e;
        range.split = c;
        flat_split_range(plan, uk, &range, kbeg, kmax, &b, &e);
        reset_rows(ws, rows);
        if (e > b)
            flat_rows_flash(p, plan, uk, task, rows, b, e, ws);
        flat_write_partial(p, task, ws, ws->parts + c * stride);
    }
    flat_merge_splits(p, &merged, uk, task, ws->parts, stride);
}

void flat_attend_task(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                      const flat_task *task, flat_scratch *ws, float *part)
{
    int rows = task->heads * task->positions, kmin;
    int kmax = gather_rows(p, plan, task, ws, &kmin);
    /* Blocks start at a K panel boundary: keys left of every row's window
     * are skipped whole, like causal blocks above the diagonal. Batch-
     * invariant plans align them to the fixed block grid instead. */
    int kbeg = kmax > 0 ? kmin / plan->k_align * plan->k_align : 0, kend = kmax;
    if (part)
        flat_split_range(plan, uk, task, kbeg, kmax, &kbeg, &kend);
    map_output(p, plan, uk, task, ws);
    if (!part && in_task_ranges(plan)) {
        attend_ranges(p, plan, uk, task, ws, kbeg, kmax);
        return;
    }
    reset_rows(ws, rows);
    if (kend > kbeg) {
        uk->pack_q(rows, (int)p->dim, ws->rows, p->q_dtype, p->scale * FLAT_LOG2E, ws->qp);
        if (plan->dataflow == FLAT_DATAFLOW_FLAT)
            flat_rows_flat(p, plan, uk, task, rows, kbeg, kmax, ws);
        else
            flat_rows_flash(p, plan, uk, task, rows, kbeg, kend, ws);
    }
    if (part)
        flat_write_partial(p, task, ws, part);
    else
        write_rows(p, uk, task, ws, kmax);
}


void flat_attend_unit(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                      const flat_unit_view *u, flat_scratch *ws, float *part)
{
    int64_t lo, hi;
    flat_unit_keys(p, u->b, u->pos0, u->pos1, &lo, &hi);
    ws->k_lo = lo / plan->k_align * plan->k_align; /* where the unit's first block starts */
    ws->k_hi = hi;
    /* Last block first: the block below is the next, and gather_rows
     * prefetches its Q rows during this one's last pv pass. */
    int64_t last = u->pos0 + (u->pos1 - 1 - u->pos0) / plan->bq * plan->bq;
    for (int64_t pos = last; pos >= u->pos0; pos -= plan->bq) {
        flat_task task = {u->b, u->kv_head, u->head0, pos, u->heads,
                          (int)flat_min(plan->bq, u->pos1 - pos), u->split};
        flat_attend_task(p, plan, uk, &task, ws, part);
    }
}
