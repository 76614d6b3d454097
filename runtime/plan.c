/* Tile sizes and dataflow from the cache sizes.
 *
 * FLAT keeps rows x kv_len scores; it is chosen when that buffer fits the L2
 * budget with a whole task's rows, so each K panel serves several Q panels.
 * Otherwise FLASH streams key blocks of bk, whose buffer does not grow with
 * kv_len. Both then walk K and V in chunks that stay in L2. */
#include <omp.h>
#include <stdio.h>

#include "cpu.h"
#include "plan.h"

/* Keys a split-KV range holds at least: below that, merging costs more
 * than the parallelism brings. */
#define SPLIT_MIN_KEYS 512


/* Rows a task aims for: enough Q panels to amortise each K panel load. */
static int target_rows(const flat_ukernels *uk) { return (int)flat_round_up(48, uk->mr); }

static void choose_task_shape(const flat_problem *p, int rows, flat_plan *plan)
{
    int64_t group = p->q_heads / p->kv_heads;
    if (group >= rows) {
        plan->heads_per_task = rows;
        plan->bq = 1;
    } else {
        plan->heads_per_task = (int)group;
        plan->bq = (int)flat_min(p->q_len, flat_max(1, rows / group));
    }
}

static int64_t count_tasks(const flat_problem *p, const flat_plan *plan)
{
    int64_t group = p->q_heads / p->kv_heads;
    int64_t head_tasks = (group + plan->heads_per_task - 1) / plan->heads_per_task;
    int64_t q_blocks = (p->q_len + plan->bq - 1) / plan->bq;
    return p->batch * p->kv_heads * head_tasks * q_blocks;
}

void flat_plan_choose(const flat_problem *p, const flat_ukernels *uk, flat_dataflow requested,
                      int num_threads, flat_plan *plan)
{
    const flat_cpu_info *cpu = flat_cpu();
    int threads = num_threads > 0 ? num_threads : omp_get_max_threads();
    int64_t l2_budget = cpu->l2_bytes / 2; /* the other half: K/V panels streaming */
    int64_t kv_pad = flat_round_up(p->kv_len, uk->nr);
    int rows = target_rows(uk);

    /* FLAT's row buffer: rows_pad x kv_pad floats must fit the L2 budget. */
    int64_t flat_rows = l2_budget / (kv_pad * 4) / uk->mr * uk->mr;
    int64_t useful_rows = flat_min(rows, (p->q_heads / p->kv_heads) * p->q_len);
    /* FLAT only when its buffer holds the whole block of rows: with fewer
     * rows per task K and V stream through L2 more often, and FLASH with
     * L2-sized key blocks then wins (s4k: 24-row FLAT ~3% behind 48-row
     * FLASH). */
    int flat_fits = flat_rows >= useful_rows && flat_rows >= uk->mr;
    plan->dataflow = requested != FLAT_DATAFLOW_AUTO ? requested
                     : flat_fits                     ? FLAT_DATAFLOW_FLAT
                                                     : FLAT_DATAFLOW_FLASH;
    if (plan->dataflow == FLAT_DATAFLOW_FLAT && flat_fits)
        rows = (int)flat_min(rows, flat_rows);

    choose_task_shape(p, rows, plan);
    /* Small problems: halve the query block until every thread has work. */
    while (count_tasks(p, plan) < 2 * threads && plan->bq > 1) {
        plan->bq = (plan->bq + 1) / 2;
    }
    plan->rows = plan->heads_per_task * plan->bq;
    plan->rows_pad = (int)flat_round_up(plan->rows, uk->mr);
    plan->tasks = count_tasks(p, plan);
    /* Too few tasks for the threads (decode at small batch x kv heads):
     * split each task's keys into ranges of at least SPLIT_MIN_KEYS, run
     * them as FLASH (a key range is what FLASH walks anyway) and merge the
     * partial rows by their log-sum-exp. */
    plan->splits = 1;
    if (plan->tasks < threads && requested != FLAT_DATAFLOW_FLAT) {
        int64_t want = (threads + plan->tasks - 1) / plan->tasks;
        plan->splits = (int)flat_max(1, flat_min(want, p->kv_len / SPLIT_MIN_KEYS));
        if (plan->splits > 1)
            plan->dataflow = FLAT_DATAFLOW_FLASH;
    }
    plan->threads = (int)flat_min(threads, plan->tasks * plan->splits);
    /* Tasks come grouped by (batch, kv head) (flat_task_at). When those
     * groups split evenly over the threads, a thread takes a whole group at
     * once: it alone packs that K and streams that V, instead of every thread
     * packing every head (bert at 2 threads: 2x the packing, ~4% of the run).
     * Otherwise single tasks, so dynamic scheduling balances the tail. */
    int64_t pairs = p->batch * p->kv_heads;
    plan->task_chunk = pairs % plan->threads == 0 && plan->splits == 1 ? plan->tasks / pairs : 1;
    plan->k_panels = kv_pad / uk->nr;

    /* FLASH's score block: at most a quarter of L2, like the K and V chunks
     * below, split evenly over kv_len. Long blocks amortise the per-block
     * row max, rescale and pv O reload (1024 keys measured ~5% faster than
     * 256 on s4k, 2-4% on bert and s1k). */
    int64_t l2_quarter = cpu->l2_bytes / 4;
    int64_t bk_max = flat_max(uk->nr, l2_quarter / (plan->rows_pad * 4) / uk->nr * uk->nr);
    int64_t blocks = (kv_pad + bk_max - 1) / bk_max;
    plan->bk = (int)flat_round_up((kv_pad + blocks - 1) / blocks, uk->nr);
    plan->s_cols = plan->dataflow == FLAT_DATAFLOW_FLAT ? kv_pad : plan->bk;
    /* K and V chunks are re-read by every Q panel / pv row group of the task.
     * The kernels prefetch K panels and V rows ahead, so the chunks need only
     * stay in L2 (a quarter each, next to the score buffer), not in L1: long
     * chunks amortise each pv call's O load/rescale/store (pv with 96-key
     * L1 chunks measured 3-5% slower end to end than with 1024-key ones). */
    plan->qk_panels = (int)flat_max(1, l2_quarter / (p->dim * uk->nr * 4));
    plan->pv_keys = (int)flat_max(uk->nr, l2_quarter / (p->v_dim * 4) / uk->nr * uk->nr);
    /* A (batch, kv head) with one task (decode) reads its K once: packing all
     * of it first would write it out past L2 and read it back, three passes
     * over memory for one. Packing each qk chunk just before use keeps it one. */
    plan->stream_k = plan->tasks == pairs || plan->splits > 1;
    plan->k_floats = plan->stream_k ? flat_min(kv_pad, (int64_t)plan->qk_panels * uk->nr) * p->dim
                                    : kv_pad * p->dim;

    const char *why = plan->splits > 1 ? "split-KV: fewer tasks than threads"
                      : requested != FLAT_DATAFLOW_AUTO ? "requested by opt.dataflow"
                      : flat_fits ? "FLAT row buffer fits L2"
                                  : "FLAT row buffer too big for L2";
    snprintf(plan->reason, sizeof plan->reason,
             "%s (rows fitting L2/2=%lldKiB at kv_len %lld: %lld of %lld)%s", why,
             (long long)(l2_budget >> 10), (long long)p->kv_len, (long long)flat_rows,
             (long long)useful_rows, plan->stream_k ? "; K packed chunk by chunk (read once)" : "");
}
