/* Split-KV: a task's keys in ranges run in parallel, each leaving its
 * unnormalised rows with their running max and sum, merged by log-sum-exp. */
#include <math.h>
#include <string.h>

#include "rules.h"
#include "tile.h"

/* Equal shares of the task's visible keys, cut at K panel boundaries; or,
 * batch-invariant, the keys of range [s*split_keys, (s+1)*split_keys) that
 * the task sees (k0 is then on the block grid, and so is every cut). */
void flat_split_range(const flat_tiling *plan, const flat_ukernels *uk, const flat_task *t,
                      int k0, int kmax, int *kbeg, int *kend)
{
    if (plan->split_keys > 0) {
        int64_t from = (int64_t)t->split * plan->split_keys;
        *kbeg = (int)flat_min(kmax, flat_max(k0, from));
        *kend = (int)flat_min(kmax, from + plan->split_keys);
        return;
    }
    int64_t share = flat_round_up((kmax - k0 + plan->splits - 1) / plan->splits, uk->nr);
    *kbeg = (int)flat_min(kmax, k0 + t->split * share);
    *kend = (int)flat_min(kmax, *kbeg + share);
}

int64_t flat_split_floats(const flat_problem *p, const flat_tiling *plan)
{
    return (int64_t)plan->rows * (p->v_dim + 2);
}

/* O unnormalised, then m and l. A split that saw no key has l = 0 and is
 * skipped by the merge (its O is never read). */
void flat_write_partial(const flat_problem *p, const flat_task *t, const flat_scratch *ws,
                        float *part)
{
    int rows = t->heads * t->positions;
    for (int r = 0; r < rows; r++) {
        float *row = part + (int64_t)r * (p->v_dim + 2);
        if (ws->l[r] != 0.0f)
            memcpy(row, flat_o_row(ws, r), (size_t)p->v_dim * sizeof *row);
        row[p->v_dim] = ws->m[r];
        row[p->v_dim + 1] = ws->l[r];
    }
}

/* out = sum_s 2^(m_s - m) O_s / sum_s 2^(m_s - m) l_s with m = max_s m_s over
 * the splits that saw keys; lse likewise. A NaN l (poisoned split) makes the
 * row NaN, as it would without splitting. */
void flat_merge_splits(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                       const flat_task *t, float *parts, int64_t stride)
{
    const flat_task task = *t;
    int rows = task.heads * task.positions; /* a short last block uses fewer than stride holds */
    for (int r = 0; r < rows; r++) {
        int64_t h = task.head0 + r / task.positions, pos = task.pos0 + r % task.positions;
        float *sum = parts + (int64_t)r * (p->v_dim + 2); /* split 0's row, read first */
        float m = -INFINITY, l = 0.0f;
        for (int s = 0; s < plan->splits; s++) {
            const float *row = parts + s * stride + (int64_t)r * (p->v_dim + 2);
            if (row[p->v_dim + 1] != 0.0f)
                m = fmaxf(m, row[p->v_dim]);
        }
        /* The first split that saw keys sets the sum (w O exactly, as one
         * unsplit range would leave it: a row inside one range gets the same
         * bits split or not), later ones add to it in split order. */
        int first = 1;
        for (int s = 0; s < plan->splits; s++) {
            const float *row = parts + s * stride + (int64_t)r * (p->v_dim + 2);
            if (row[p->v_dim + 1] == 0.0f)
                continue;
            float w = exp2f(row[p->v_dim] - m);
            l += w * row[p->v_dim + 1];
            for (int64_t c = 0; c < p->v_dim; c++)
                sum[c] = first ? w * row[c] : sum[c] + w * row[c];
            first = 0;
        }
        if (first) /* no split saw a key: O was never written */
            memset(sum, 0, (size_t)p->v_dim * sizeof *sum);
        float factor, row_lse, *lse = flat_lse_at(p, task.b, h, pos);
        flat_finish_row(p, h, m, l, &factor, &row_lse); /* the sink joins here, once */
        uk->store_row((int)p->v_dim, sum, factor, p->q_dtype, flat_out_row(p, task.b, h, pos));
        if (lse)
            *lse = row_lse;
    }
}
