/* The two dataflows over one task's block of query rows.
 *
 * Rows of a task are the query heads of one GQA group (they share K and V)
 * times a run of query positions. Every row sees a prefix [0, limit) of the
 * keys (causal and kv_lens masks are both prefixes), so masking never needs
 * a mask tensor: softmax stops at the limit and pv never reads past it. */
#include <math.h>
#include <string.h>

#include "attend.h"

#define LOG2E 1.44269504088896340736f
#define LN2 0.69314718055994530942f


/* Lays the scratch regions out from `mem` (each 64-byte aligned) and returns
 * how many floats they span. With mem == NULL it only measures, so the size
 * and the layout can never disagree. */
static int64_t scratch_layout(flat_scratch *ws, float *mem, const flat_problem *p,
                              const flat_plan *plan)
{
    int64_t rp = plan->rows_pad, r = plan->rows, at = 0;
#define CARVE(field, type, count)                                                      \
    do {                                                                               \
        ws->field = mem ? (type)(void *)(mem + at) : NULL;                             \
        at += flat_round_up((int64_t)(count) * (int64_t)sizeof(*ws->field) / 4 + 1, 16);    \
    } while (0)
    CARVE(kp, float *, plan->k_floats);
    CARVE(qp, float *, rp * p->dim);
    CARVE(s, float *, rp * plan->s_cols);
    CARVE(o, float *, r * p->v_dim);
    CARVE(m, float *, r);
    CARVE(l, float *, r);
    CARVE(alpha, float *, r);
    CARVE(ones, float *, r);
    CARVE(limit, int *, r);
    CARVE(rows, const float **, r);
    CARVE(next_rows, const float **, r);
#undef CARVE
    return at;
}

int64_t flat_scratch_floats(const flat_problem *p, const flat_plan *plan)
{
    flat_scratch unused;
    return scratch_layout(&unused, NULL, p, plan);
}

void flat_scratch_init(flat_scratch *ws, float *mem, const flat_problem *p,
                       const flat_plan *plan)
{
    scratch_layout(ws, mem, p, plan);
    ws->kp_pair = -1;
    for (int64_t i = 0; i < plan->rows; i++)
        ws->ones[i] = 1.0f;
}

flat_task flat_task_at(const flat_problem *p, const flat_plan *plan, int64_t t)
{
    int64_t group = p->q_heads / p->kv_heads;
    int64_t head_tasks = (group + plan->heads_per_task - 1) / plan->heads_per_task;
    int64_t q_blocks = (p->q_len + plan->bq - 1) / plan->bq;
    /* Consecutive tasks share a (batch, kv head, head group), so its K and V
     * stay in L2/L3 while every query block streams them; walking heads
     * first would pull all heads' K and V through L3 for every block. Within
     * a head, causal cost grows with the position, so the last (heaviest)
     * query blocks go first and dynamic scheduling balances the light tail. */
    int64_t qb = q_blocks - 1 - t % q_blocks, rest = t / q_blocks;
    flat_task task;
    task.b = rest / (p->kv_heads * head_tasks);
    task.kv_head = rest / head_tasks % p->kv_heads;
    task.head0 = task.kv_head * group + rest % head_tasks * plan->heads_per_task;
    task.heads = (int)flat_min(plan->heads_per_task, (task.kv_head + 1) * group - task.head0);
    task.pos0 = qb * plan->bq;
    task.positions = (int)flat_min(plan->bq, p->q_len - task.pos0);
    task.index = t;
    task.split = 0;
    return task;
}

/* Row r of the task is head head0 + r / positions at position pos0 + r % positions. */
static int gather_rows(const flat_problem *p, const flat_plan *plan, const flat_task *t,
                       flat_scratch *ws)
{
    int rows = t->heads * t->positions, kmax = 0;
    for (int r = 0; r < rows; r++) {
        int64_t h = t->head0 + r / t->positions, pos = t->pos0 + r % t->positions;
        ws->rows[r] = p->q.data + t->b * p->q.sb + h * p->q.sh + pos * p->q.ss;
        ws->next_rows[r] = pos >= plan->bq ? ws->rows[r] - plan->bq * p->q.ss : NULL;
        ws->limit[r] = (int)flat_visible_keys(p, t->b, pos);
        kmax = ws->limit[r] > kmax ? ws->limit[r] : kmax;
    }
    return kmax;
}

static int max_limit(const int *limit, int r0, int r1)
{
    int m = 0;
    for (int r = r0; r < r1; r++)
        m = limit[r] > m ? limit[r] : m;
    return m;
}

static int min_limit(const int *limit, int r0, int r1)
{
    int m = limit[r0];
    for (int r = r0 + 1; r < r1; r++)
        m = limit[r] < m ? limit[r] : m;
    return m;
}

static float *o_row(const flat_scratch *ws, int r)
{
    return ws->o_base + r / ws->o_run * ws->o_ld_run + r % ws->o_run * ws->o_ld_row;
}

/* pv needs one stride per row group of pv_mr. Rows are (head, position)
 * pairs; when no group straddles two heads, the output accumulates straight
 * in `out` and normalising it is one pv call per group (write_rows), not a
 * copy per row. Otherwise it accumulates in the scratch, one run of rows. */
static void map_output(const flat_problem *p, const flat_plan *plan, const flat_ukernels *uk,
                       const flat_task *t, flat_scratch *ws)
{
    ws->o_direct = plan->splits == 1 &&
                   (t->heads == 1 || t->positions == 1 || t->positions % uk->pv_mr == 0);
    if (ws->o_direct) {
        ws->o_base = p->out + t->b * p->out_sb + t->head0 * p->out_sh + t->pos0 * p->out_ss;
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

/* K is packed per thread when its tasks move to the next (batch, kv head),
 * not for all heads up front: tasks walk heads in order, so each thread packs
 * each head once, the panels are still in L2 for the first task, and the
 * workspace stays one head of K per thread (all heads at once measured ~5%
 * of a llama-2k call in page faults on the fresh mapping alone). Batches
 * whose kv_lens hide trailing keys pack only the visible ones. */
static const float *packed_keys(const flat_problem *p, const flat_ukernels *uk,
                                const flat_task *t, flat_scratch *ws)
{
    int64_t pair = t->b * p->kv_heads + t->kv_head;
    if (ws->kp_pair != pair) {
        int64_t n = p->kv_lens ? p->kv_lens[t->b] : p->kv_len;
        uk->pack_k((int)n, (int)p->dim, p->k.data + t->b * p->k.sb + t->kv_head * p->k.sh,
                   p->k.ss, ws->kp);
        ws->kp_pair = pair;
    }
    return ws->kp;
}

/* Packed panels for keys [j0, j0 + n) (j0 a multiple of nr): a slice of the
 * head's panels, or, when K streams (plan.c: one task per kv head), those
 * keys packed now into the chunk buffer, which qk then reads from L2. */
static const float *chunk_keys(const flat_problem *p, const flat_plan *plan,
                               const flat_ukernels *uk, const flat_task *t, int j0, int n,
                               flat_scratch *ws)
{
    if (!plan->stream_k)
        return packed_keys(p, uk, t, ws) + (int64_t)j0 * p->dim;
    uk->pack_k(n, (int)p->dim,
               p->k.data + t->b * p->k.sb + t->kv_head * p->k.sh + (int64_t)j0 * p->k.ss,
               p->k.ss, ws->kp);
    return ws->kp;
}

/* S[:, k0 .. k0+width) for every Q panel that has a row seeing past k0,
 * walking K in L2-sized chunks of panels so each chunk serves all Q panels. */
static void scores(const flat_problem *p, const flat_plan *plan, const flat_ukernels *uk,
                   const flat_task *t, int rows, int k0, int width, flat_scratch *ws,
                   int64_t ld_s)
{
    int n_panels = (int)((width + uk->nr - 1) / uk->nr);
    for (int c = 0; c < n_panels; c += plan->qk_panels) {
        int c_end = (int)flat_min(n_panels, c + plan->qk_panels);
        const float *kp = chunk_keys(p, plan, uk, t, k0 + c * uk->nr,
                                     (int)flat_min(width, c_end * uk->nr) - c * uk->nr, ws);
        for (int r0 = 0; r0 < rows; r0 += uk->mr) {
            int seen = max_limit(ws->limit, r0, (int)flat_min(rows, r0 + uk->mr)) - k0;
            int need = (int)flat_min(c_end, (seen + uk->nr - 1) / uk->nr); /* causal: skip masked panels */
            if (need <= c)
                continue;
            uk->qk((int)p->dim, need - c, ws->qp + (int64_t)r0 * p->dim, kp,
                   ws->s + (int64_t)r0 * ld_s + (int64_t)c * uk->nr, ld_s);
        }
    }
}

/* The next task in order (same heads, the query block below) would find its
 * Q rows cold in memory, and pack_q cannot hide that latency (it ran 4-6x
 * slower than with warm rows). The task's last pv pass asks for them a row
 * group at a time: early enough to arrive, late enough to still be cached,
 * and spread out so the requests never fill the miss queues at once (all
 * at the start of a task measured half the benefit). always_inline: GCC
 * deems a prefetch-only function const and deletes its calls. */
static inline __attribute__((always_inline)) void prefetch_rows(const flat_problem *p,
                                                                const float *const *rows,
                                                                int r0, int r1)
{
    for (int r = r0; r < r1; r++)
        if (rows[r])
            for (int64_t c = 0; c < p->dim; c += 16)
                __builtin_prefetch(rows[r] + c, 0, 2);
}

/* Part g of G of this task's slice of the next K and V (see next_keys). */
static inline __attribute__((always_inline)) void prefetch_keys(const flat_problem *p,
                                                                const flat_scratch *ws,
                                                                int g, int groups)
{
    int64_t j0 = ws->next_k_rows * g / groups, j1 = ws->next_k_rows * (g + 1) / groups;
    for (int64_t j = j0; j < j1; j++) {
        for (int64_t c = 0; c < p->dim; c += 16)
            __builtin_prefetch(ws->next_k + j * p->k.ss + c, 0, 2);
        for (int64_t c = 0; c < p->v_dim; c += 16)
            __builtin_prefetch(ws->next_v + j * p->v.ss + c, 0, 2);
    }
}

/* O += P[:, k0 .. k0+width) V, in chunks of pv_keys keys whose V rows stay in
 * L2 across the row groups (plan.c). Row groups of pv_mr share one
 * register-blocked call up to the group's smallest limit; each row then
 * finishes its own staircase tail, so no row ever multiplies a key it must
 * not see (a NaN there must not leak in). `last`: the task's last pv pass,
 * which prefetches the next task's Q rows. */
static void attend_values(const flat_problem *p, const flat_plan *plan, const flat_ukernels *uk,
                          const float *v, int rows, int k0, int width, const float *alpha,
                          flat_scratch *ws, int64_t ld_s, int last)
{
    int64_t ld_v = p->v.ss, dv = p->v_dim;
    for (int c0 = 0; c0 < width; c0 += plan->pv_keys) {
        int c1 = (int)flat_min(width, c0 + plan->pv_keys);
        for (int r0 = 0; r0 < rows; r0 += uk->pv_mr) {
            int r1 = (int)flat_min(rows, r0 + uk->pv_mr);
            int full = (int)flat_max(0, flat_min(min_limit(ws->limit, r0, r1) - k0, c1) - c0);
            const float *a = c0 > 0 ? ws->ones + r0 : alpha ? alpha + r0 : NULL;
            const float *s = ws->s + r0 * ld_s + c0;
            if (last && c0 == 0) {
                prefetch_rows(p, ws->next_rows, r0, r1);
                prefetch_keys(p, ws, r0 / uk->pv_mr, (rows + uk->pv_mr - 1) / uk->pv_mr);
            }
            uk->pv(r1 - r0, full, (int)dv, s, ld_s, v + (int64_t)(k0 + c0) * ld_v, ld_v,
                   o_row(ws, r0), ws->o_ld_row, a);
            for (int r = r0; r < r1; r++) {
                int extra = (int)flat_min(ws->limit[r] - k0, c1) - (c0 + full);
                if (extra > 0)
                    uk->pv(1, extra, (int)dv, ws->s + r * ld_s + c0 + full, ld_s,
                           v + (int64_t)(k0 + c0 + full) * ld_v, ld_v, o_row(ws, r),
                           ws->o_ld_row, ws->ones);
            }
        }
    }
}

/* A row whose block max is +-inf or NaN read an Inf or NaN input (or its dot
 * product overflowed): its softmax is undefined, so its output becomes NaN
 * (via l), while its P entries become 0 so the shared pv calls keep the
 * other rows clean. */
static void poison_row(const flat_ukernels *uk, int n, float *s, flat_scratch *ws, int r)
{
    uk->exp2_row(0, n, s, 0.0f);
    ws->l[r] = NAN;
}

/* FLAT: whole logit rows, exact softmax (true max, one exp per score), P V. */
static void flat_rows(const flat_problem *p, const flat_plan *plan, const flat_ukernels *uk,
                      const flat_task *t, const float *v, int rows, int kmax, flat_scratch *ws)
{
    int64_t ld_s = plan->s_cols;
    scores(p, plan, uk, t, rows, 0, kmax, ws, ld_s);
    for (int r = 0; r < rows; r++) {
        float *s = ws->s + r * ld_s;
        int n = ws->limit[r];
        ws->m[r] = uk->row_max(n, s);
        if (n > 0 && !isfinite(ws->m[r]))
            poison_row(uk, n, s, ws, r);
        else
            ws->l[r] = uk->exp2_row(n, n, s, ws->m[r]);
    }
    attend_values(p, plan, uk, v, rows, 0, kmax, NULL, ws, ld_s, 1);
}

/* FLASH: key blocks of bk with a running max and sum; when the max grows,
 * the partial output is rescaled by exp2(m_old - m_new) inside pv. */
static void flash_rows(const flat_problem *p, const flat_plan *plan, const flat_ukernels *uk,
                       const flat_task *t, const float *v, int rows, int kbeg, int kmax,
                       flat_scratch *ws)
{
    int64_t ld_s = plan->s_cols;
    for (int r = 0; r < rows; r++) {
        ws->m[r] = -INFINITY;
        ws->l[r] = 0.0f;
    }
    for (int k0 = kbeg; k0 < kmax; k0 += plan->bk) {
        int width = (int)flat_min(plan->bk, kmax - k0);
        scores(p, plan, uk, t, rows, k0, width, ws, ld_s);
        for (int r = 0; r < rows; r++) {
            int n = (int)flat_max(0, flat_min(ws->limit[r] - k0, width));
            float *s = ws->s + r * ld_s;
            float block_max = uk->row_max(n, s);
            ws->alpha[r] = 1.0f; /* unless a new max rescales the row below */
            if (n == 0)
                continue;
            if (!isfinite(block_max)) {
                poison_row(uk, n, s, ws, r);
                continue;
            }
            float m_new = fmaxf(ws->m[r], block_max);
            ws->alpha[r] = exp2f(ws->m[r] - m_new); /* 0 on the first block */
            ws->l[r] = ws->l[r] * ws->alpha[r] + uk->exp2_row(n, n, s, m_new);
            ws->m[r] = m_new;
        }
        attend_values(p, plan, uk, v, rows, k0, width, k0 == kbeg ? NULL : ws->alpha, ws, ld_s,
                      k0 + plan->bk >= kmax);
    }
}

/* out = O / l and lse = ln 2 * (m + log2 l); a row that saw nothing gets 0, -inf.
 * Normalising is pv with no keys and alpha = 1/l (one vector loop per row
 * group); l = 0 rows hold O = 0 from their first pv, so alpha 0 keeps them
 * 0, and a NaN l (poisoned row) gives a NaN row. Scratch rows are copied out
 * as a one-key pv with P = 1/l. */
static void write_rows(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                       flat_scratch *ws, int kmax)
{
    int rows = t->heads * t->positions;
    for (int r = 0; r < rows; r++)
        ws->alpha[r] = ws->l[r] == 0.0f ? 0.0f : 1.0f / ws->l[r];
    for (int r = 0; r < rows; r++) {
        int64_t h = t->head0 + r / t->positions, pos = t->pos0 + r % t->positions;
        float *out = p->out + t->b * p->out_sb + h * p->out_sh + pos * p->out_ss;
        if (kmax == 0)
            memset(out, 0, (size_t)p->v_dim * sizeof *out); /* O never written */
        else if (!ws->o_direct)
            uk->pv(1, 1, (int)p->v_dim, ws->alpha + r, 1, o_row(ws, r), p->v_dim, out,
                   p->v_dim, NULL);
        if (p->lse)
            p->lse[(t->b * p->q_heads + h) * p->q_len + pos] =
                ws->l[r] == 0.0f ? -INFINITY : LN2 * (ws->m[r] + log2f(ws->l[r]));
    }
    if (kmax > 0 && ws->o_direct)
        for (int r0 = 0; r0 < rows; r0 += uk->pv_mr)
            uk->pv((int)flat_min(uk->pv_mr, rows - r0), 0, (int)p->v_dim, ws->s, 1, p->v.data, 1,
                   o_row(ws, r0), ws->o_ld_row, ws->alpha + r0);
}

/* pack_k streams K from memory at DRAM speed (1-2% of a call), and the first
 * pv pass over a new head's V does too. The thread's next (batch, kv head)
 * is most likely `threads` pairs on (whole pairs per thread, plan.c), so each
 * task of the current pair prefetches its share of that pair's K and V rows,
 * spread over its last pv pass like the Q rows. */
static void next_keys(const flat_problem *p, const flat_plan *plan, const flat_task *t,
                      flat_scratch *ws)
{
    int64_t pairs = p->batch * p->kv_heads, per_pair = plan->tasks / pairs;
    int64_t next = t->b * p->kv_heads + t->kv_head + plan->threads;
    ws->next_k_rows = 0;
    if (next >= pairs || plan->splits > 1) /* splits: threads share one head */
        return;
    int64_t b = next / p->kv_heads, h = next % p->kv_heads;
    int64_t n = p->kv_lens ? p->kv_lens[b] : p->kv_len, i = t->index % per_pair;
    int64_t j0 = n * i / per_pair, j1 = n * (i + 1) / per_pair;
    ws->next_k = p->k.data + b * p->k.sb + h * p->k.sh + j0 * p->k.ss;
    ws->next_v = p->v.data + b * p->v.sb + h * p->v.sh + j0 * p->v.ss;
    ws->next_k_rows = j1 - j0;
}

/* Key range [*kbeg, *kend) of split task->split: equal shares of the
 * task's visible keys, cut at K panel boundaries. */
static void split_range(const flat_plan *plan, const flat_ukernels *uk, const flat_task *t,
                        int kmax, int *kbeg, int *kend)
{
    int64_t share = flat_round_up((kmax + plan->splits - 1) / plan->splits, uk->nr);
    *kbeg = (int)flat_min(kmax, t->split * share);
    *kend = (int)flat_min(kmax, *kbeg + share);
}

int64_t flat_split_floats(const flat_problem *p, const flat_plan *plan)
{
    return (int64_t)plan->rows * (p->v_dim + 2);
}

/* A split's rows as they stand: O unnormalised, then m and l. A split that
 * saw no key has l = 0 and is skipped by the merge (its O is never read). */
static void write_partial(const flat_problem *p, const flat_task *t, const flat_scratch *ws,
                          float *part)
{
    int rows = t->heads * t->positions;
    for (int r = 0; r < rows; r++) {
        float *row = part + (int64_t)r * (p->v_dim + 2);
        if (ws->l[r] != 0.0f)
            memcpy(row, o_row(ws, r), (size_t)p->v_dim * sizeof *row);
        row[p->v_dim] = ws->m[r];
        row[p->v_dim + 1] = ws->l[r];
    }
}

void flat_attend_task(const flat_problem *p, const flat_plan *plan, const flat_ukernels *uk,
                      const flat_task *task, flat_scratch *ws, float *part)
{
    int rows = task->heads * task->positions;
    int kmax = gather_rows(p, plan, task, ws);
    int kbeg = 0, kend = kmax;
    if (part)
        split_range(plan, uk, task, kmax, &kbeg, &kend);
    map_output(p, plan, uk, task, ws);
    next_keys(p, plan, task, ws);
    const float *v = p->v.data + task->b * p->v.sb + task->kv_head * p->v.sh;
    for (int r = 0; r < rows; r++) {
        ws->m[r] = -INFINITY;
        ws->l[r] = 0.0f;
    }
    if (kend > kbeg) {
        uk->pack_q(rows, (int)p->dim, ws->rows, p->scale * LOG2E, ws->qp);
        if (plan->dataflow == FLAT_DATAFLOW_FLAT)
            flat_rows(p, plan, uk, task, v, rows, kmax, ws);
        else
            flash_rows(p, plan, uk, task, v, rows, kbeg, kend, ws);
    }
    if (part)
        write_partial(p, task, ws, part);
    else
        write_rows(p, uk, task, ws, kmax);
}

/* out = sum_s 2^(m_s - m) O_s / sum_s 2^(m_s - m) l_s with m = max_s m_s over
 * the splits that saw keys; lse likewise. A NaN l (poisoned split) makes the
 * row NaN, as it would without splitting. */
void flat_merge_splits(const flat_problem *p, const flat_plan *plan, int64_t t,
                       const float *parts)
{
    flat_task task = flat_task_at(p, plan, t);
    int rows = task.heads * task.positions;
    int64_t stride = (int64_t)rows * (p->v_dim + 2);
    for (int r = 0; r < rows; r++) {
        int64_t h = task.head0 + r / task.positions, pos = task.pos0 + r % task.positions;
        float *out = p->out + task.b * p->out_sb + h * p->out_sh + pos * p->out_ss;
        float m = -INFINITY, l = 0.0f;
        for (int s = 0; s < plan->splits; s++) {
            const float *row = parts + s * stride + (int64_t)r * (p->v_dim + 2);
            if (row[p->v_dim + 1] != 0.0f)
                m = fmaxf(m, row[p->v_dim]);
        }
        memset(out, 0, (size_t)p->v_dim * sizeof *out);
        for (int s = 0; s < plan->splits; s++) {
            const float *row = parts + s * stride + (int64_t)r * (p->v_dim + 2);
            if (row[p->v_dim + 1] == 0.0f)
                continue;
            float w = exp2f(row[p->v_dim] - m);
            l += w * row[p->v_dim + 1];
            for (int64_t c = 0; c < p->v_dim; c++)
                out[c] += w * row[c];
        }
        if (l != 0.0f) {
            float inv = 1.0f / l;
            for (int64_t c = 0; c < p->v_dim; c++)
                out[c] *= inv;
        }
        if (p->lse)
            p->lse[(task.b * p->q_heads + h) * p->q_len + pos] =
                l == 0.0f ? -INFINITY : LN2 * (m + log2f(l));
    }
}
