/* The phase-0 task list of a plan: how the work is cut and in which order.
 *
 * Work comes in query blocks of bq positions of one (sequence, kv head, head
 * group). Blocks of one group share K, which the GEMM-shaped path packs
 * once per unit, so a unit is a run of consecutive blocks: as few as keep
 * the workers balanced, UNITS_PER_WORKER per worker, since every unit
 * packs its K again. With split-KV every (block, key range) is a unit.
 * Units run heaviest first (LPT: any free worker takes the next), so
 * causal triangles and ragged batches end together: the costs are the
 * visible query-key pairs times the head dims, plus K packing. A mixed
 * call's two tilings (tiling.h, flat_part) each make their units, which are
 * then sorted together: decode units fill in around the chunk's. */
#include <string.h>

#include "call.h"

/* Enough units that the last ones to start are small next to a worker's
 * share: with LPT order, max/mean load is then within a few percent. */
#define UNITS_PER_WORKER 8
/* Packing a K row costs about this many FMAs per element (load, transpose,
 * store) next to the 2 (d + dv) rows x keys FMAs of the attention itself. */
#define PACK_WEIGHT 2.0

static int64_t head_tasks(const flat_problem *p, const flat_tiling *t)
{
    int64_t group = p->q_heads / p->kv_heads;
    return (group + t->heads_per_task - 1) / t->heads_per_task;
}

/* Query blocks of sequence b under tiling t (0 outside t's part). */
static int64_t blocks_of(const flat_problem *p, const flat_tiling *t, int64_t b)
{
    return (flat_part_q_len(p, t->part, b) + t->bq - 1) / t->bq;
}

/* Ranges of blocks per group: as many as UNITS_PER_WORKER units need. */
static int64_t ranges_per_group(const flat_problem *p, const flat_tiling *t, int workers)
{
    int64_t groups = 0;
    for (int64_t b = 0; b < p->batch; b++)
        groups += blocks_of(p, t, b) > 0 ? p->kv_heads * head_tasks(p, t) : 0;
    int64_t want = (int64_t)UNITS_PER_WORKER * workers;
    return groups ? (want + groups - 1) / groups : 1;
}

int64_t flat_partition_count(const flat_problem *p, const flat_tiling *t, int workers)
{
    int64_t n = 0, ranges = ranges_per_group(p, t, workers);
    for (int64_t b = 0; b < p->batch; b++) {
        int64_t blocks = blocks_of(p, t, b);
        int64_t per_group = t->splits > 1 ? blocks * t->splits : flat_min(blocks, ranges);
        n += p->kv_heads * head_tasks(p, t) * per_group;
    }
    return n;
}

/* Visible keys summed over positions [pos0, pos1) of sequence b. */
static double visible_pairs(const flat_problem *p, int64_t b, int64_t pos0, int64_t pos1)
{
    double sum = 0;
    for (int64_t pos = pos0; pos < pos1; pos++)
        sum += (double)flat_visible_keys(p, b, pos);
    return sum;
}

static float unit_cost(const flat_problem *p, const flat_tiling *t, const flat_unit *u)
{
    double pairs = u->heads * visible_pairs(p, u->b, u->pos0, u->pos1) / t->splits;
    int64_t lo, hi;
    flat_unit_keys(p, u->b, u->pos0, u->pos1, &lo, &hi);
    double pack = t->k_in_place ? 0 : PACK_WEIGHT * (double)(hi - lo) * p->dim;
    return (float)(pairs * (double)(p->dim + p->v_dim) + pack / t->splits);
}

/* Heaviest first; ties in the order the units were made (a total order, so
 * the plan is the same on every run). */
static int before(float ca, int64_t ia, float cb, int64_t ib)
{
    return ca > cb || (ca == cb && ia < ib);
}

/* In-place heap sort of units by cost (no allocation: making a plan
 * allocates only the plan object). `order` holds each unit's creation
 * index, the tie-break. */
static void swap_units(flat_unit *u, float *c, int64_t *order, int64_t i, int64_t j)
{
    flat_unit tu = u[i];
    float tc = c[i];
    int64_t to = order[i];
    u[i] = u[j], c[i] = c[j], order[i] = order[j];
    u[j] = tu, c[j] = tc, order[j] = to;
}

static void sift_down(flat_unit *u, float *c, int64_t *order, int64_t i, int64_t n)
{
    for (;;) {
        int64_t worst = i, l = 2 * i + 1, r = l + 1;
        /* a min-heap on "before": the root is the unit that goes last */
        if (l < n && before(c[worst], order[worst], c[l], order[l]))
            worst = l;
        if (r < n && before(c[worst], order[worst], c[r], order[r]))
            worst = r;
        if (worst == i)
            return;
        swap_units(u, c, order, i, worst);
        i = worst;
    }
}

static void sort_by_cost(flat_unit *u, float *c, int64_t *order, int64_t n)
{
    int64_t i;
    for (i = 1; i < n && c[i] == c[0]; i++)
        ;
    if (i == n)
        return; /* equal costs (uniform decode batches): creation order */
    for (i = n / 2 - 1; i >= 0; i--)
        sift_down(u, c, order, i, n);
    for (i = n - 1; i > 0; i--) {
        swap_units(u, c, order, 0, i);
        sift_down(u, c, order, 0, i);
    }
}

/* Block ranges of one group: `ranges` runs of near-equal block counts. */
static int64_t fill_group(const flat_problem *p, const flat_tiling *t, flat_unit g,
                          int64_t blocks, int64_t ranges, flat_unit *out)
{
    int64_t n = 0, q_len = flat_q_len_of(p, g.b);
    if (t->splits > 1) {
        for (int64_t k = 0; k < blocks; k++)
            for (int s = 0; s < t->splits; s++) {
                out[n] = g;
                out[n].pos0 = (int32_t)(k * t->bq);
                out[n].pos1 = (int32_t)flat_min(q_len, (k + 1) * t->bq);
                out[n++].split = s;
            }
        return n;
    }
    for (int64_t r = 0; r < ranges; r++) {
        out[n] = g;
        out[n].pos0 = (int32_t)(blocks * r / ranges * t->bq);
        out[n++].pos1 = (int32_t)flat_min(q_len, blocks * (r + 1) / ranges * t->bq);
    }
    return n;
}

/* The units of one tiling (index `which` of the plan's), unsorted. */
static int64_t fill_tiling(const flat_problem *p, const flat_tiling *t, int which, int workers,
                           flat_unit *units)
{
    int64_t n = 0, ranges = ranges_per_group(p, t, workers), group = p->q_heads / p->kv_heads;
    for (int64_t b = 0; b < p->batch; b++) {
        int64_t blocks = blocks_of(p, t, b);
        if (blocks == 0)
            continue;
        for (int64_t kvh = 0; kvh < p->kv_heads; kvh++)
            for (int64_t ht = 0; ht < head_tasks(p, t); ht++) {
                flat_unit g = {(int32_t)b, (int32_t)kvh,
                               (int32_t)(kvh * group + ht * t->heads_per_task), 0, 0, 0, 0, 0,
                               which};
                g.heads = (int32_t)flat_min(t->heads_per_task, (kvh + 1) * group - g.head0);
                n += fill_group(p, t, g, blocks, flat_min(blocks, ranges), units + n);
            }
    }
    return n;
}

int64_t flat_partition_fill(const flat_problem *p, const flat_tiling *const *tilings,
                            int n_tilings, int workers, flat_unit *units, float *costs,
                            int64_t *order, int64_t *merge_units, int64_t *split_units)
{
    int64_t n = 0, merges = 0;
    for (int k = 0; k < n_tilings; k++)
        n += fill_tiling(p, tilings[k], k, workers, units + n);
    for (int64_t i = 0; i < n; i++) {
        costs[i] = unit_cost(p, tilings[units[i].tiling], &units[i]);
        order[i] = i;
    }
    /* A block's splits cost the same and were made one after another, so
     * they stay together in cost order, split 0 first: phase-1 task k merges
     * the block whose splits start at unit merge_units[k]. Their partial
     * rows are consecutive slots from `block` on (split units only). */
    sort_by_cost(units, costs, order, n);
    int64_t slots = 0;
    for (int64_t i = 0; i < n;) {
        int splits = tilings[units[i].tiling]->splits;
        for (int s = 0; s < splits; s++)
            units[i + s].block = (int32_t)(splits > 1 ? slots : -1);
        if (splits > 1)
            merge_units[merges++] = i, slots += splits;
        i += splits;
    }
    *split_units = slots;
    return merges;
}
