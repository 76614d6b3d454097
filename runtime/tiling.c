/* Tile sizes, dataflow, split-KV and thread count for one call.
 *
 * Three ways through a call, each the same task loop (attend.c):
 *   - decode: few query rows per kv head (decode, speculative verification).
 *     All rows of a kv head form one task, qk_rows reads K where it lies and
 *     pv reads V in place, so each K/V byte crosses the memory bus once; the
 *     call is bound by those bytes, not by FLOPs.
 *   - FLAT keeps rows x kv_len scores; it is chosen when that buffer fits the
 *     L2 budget with a whole task's rows, so each K panel serves several Q
 *     panels.
 *   - otherwise FLASH streams key blocks of bk, whose buffer does not grow
 *     with kv_len.
 * Sizes follow the visible keys (max kv_lens), never the cache's capacity.
 * The choice is per sequence: under AUTO a call with sequences of both kinds
 * (decodes beside a prefill chunk) gets a tiling for each kind, sized as a
 * call of only those sequences would be, so a decode row is not pushed onto
 * the GEMM-shaped path (and K packing) by a chunk in the same call. */
#include <stdio.h>
#include <string.h>

#include "cpu.h"
#include "parallel.h"
#include "tiling.h"

/* A split-KV range streams at least this many bytes of K and V: a split's
 * fixed cost (Q packing, its partial rows, their merge) is a few microseconds
 * at most, under a tenth of the 10 us such a range takes at DRAM speed. */
#define SPLIT_MIN_BYTES (256 << 10)
/* Tasks per thread below which split-KV cuts keys: with fewer, the last task
 * to start decides the call's end (3 tasks on 2 threads idle a third). */
#define TASKS_PER_THREAD 4
#define FLAT_STR_(x) #x
#define FLAT_STR(x) FLAT_STR_(x)

/* Rows a task aims for: enough Q panels to amortise each K panel load. */
static int target_rows(const flat_ukernels *uk) { return (int)flat_round_up(48, uk->mr); }

static void choose_task_shape(const flat_problem *p, int rows, flat_tiling *plan)
{
    int64_t group = p->q_heads / p->kv_heads;
    if (group >= rows) {
        plan->heads_per_task = rows;
        plan->bq = 1;
    } else {
        plan->heads_per_task = (int)group;
        /* at least 1: a ragged call whose sequences all have 0 queries has
         * q_len 0 and no tasks */
        plan->bq = (int)flat_max(1, flat_min(p->q_len, rows / group));
    }
}

/* Query blocks: per sequence, kv head and head group, its rows in bq. */
static int64_t count_tasks(const flat_problem *p, const flat_tiling *plan)
{
    int64_t group = p->q_heads / p->kv_heads, q_blocks = 0;
    int64_t head_tasks = (group + plan->heads_per_task - 1) / plan->heads_per_task;
    for (int64_t b = 0; b < p->batch; b++)
        q_blocks += (flat_part_q_len(p, plan->part, b) + plan->bq - 1) / plan->bq;
    return p->kv_heads * head_tasks * q_blocks;
}

/* The split count that gives every thread TASKS_PER_THREAD items, limited so
 * that each range still streams SPLIT_MIN_BYTES and holds a K panel. */
static int choose_splits(const flat_problem *p, const flat_ukernels *uk, int64_t tasks,
                         int threads)
{
    if (tasks == 0 || tasks >= (int64_t)TASKS_PER_THREAD * threads || p->kv_visible == 0)
        return 1;
    int64_t want = (TASKS_PER_THREAD * threads + tasks - 1) / tasks;
    int64_t bytes = p->kv_visible * (p->dim + p->v_dim) * (int64_t)sizeof(float);
    int64_t most = flat_min(bytes / SPLIT_MIN_BYTES, p->kv_visible / uk->nr);
    return (int)flat_max(1, flat_min(want, most));
}

/* The most keys a sequence of the part sees (kv_visible for the whole call). */
static int64_t part_kv_visible(const flat_problem *p, int part)
{
    if (part == FLAT_PART_ALL)
        return p->kv_visible;
    int64_t most = 0;
    for (int64_t b = 0; b < p->batch; b++)
        if (flat_part_q_len(p, part, b) > 0)
            most = flat_max(most, flat_kv_len_of(p, b));
    return most;
}

/* The call as a call of only the part's sequences would be: its longest
 * query run and its most visible keys (what the tiling is sized by). */
static flat_problem part_problem(const flat_problem *p, int part)
{
    flat_problem sub = *p;
    if (part != FLAT_PART_ALL) {
        sub.q_len = 0;
        for (int64_t b = 0; b < p->batch; b++)
            sub.q_len = flat_max(sub.q_len, flat_part_q_len(p, part, b));
        sub.kv_visible = part_kv_visible(p, part);
    }
    return sub;
}

void flat_tiling_size_k(const flat_problem *p, const flat_ukernels *uk, flat_tiling *plan,
                        int one_block_units)
{
    int64_t kv_pad = flat_round_up(part_kv_visible(p, plan->part), uk->nr);
    plan->k_panels = kv_pad / uk->nr;
    plan->stream_k = !plan->k_in_place && (one_block_units || plan->splits > 1);
    plan->k_floats = plan->k_in_place ? 0
                     : plan->stream_k ? flat_min(kv_pad, (int64_t)plan->qk_panels * uk->nr) * p->dim
                                      : kv_pad * p->dim;
}

void flat_tiling_set_splits(flat_tiling *plan, int splits, int threads)
{
    plan->splits = splits < 1 ? 1 : splits;
    if (plan->splits > 1 && plan->dataflow == FLAT_DATAFLOW_FLAT) {
        plan->dataflow = FLAT_DATAFLOW_FLASH; /* a key range is what FLASH walks */
        plan->s_cols = plan->bk;
    }
    plan->threads = (int)flat_max(1, flat_min(threads, plan->tasks * plan->splits));
}

/* Decode's key block: its K and V (sized as fp32) within half of L2. A
 * quarter (256 keys at D 128 with 1 MiB of L2) cost decode 5-15% in block
 * overheads: flat-bench, 1 thread, Zen 4, alternating: gqa_decode_8k bf16
 * 9.7-11.4 -> 8.9-9.4 ms, decode_4k bf16 3.56-3.62 -> 3.35-3.38, f32
 * gqa_decode_8k / batch_decode_2k 16.9 / 17.0 -> 15.6 / 15.7 (the whole of
 * L2 gained 1-2% more, and doubles the gather scratch). */
static int64_t decode_kv_block(const flat_problem *p, const flat_ukernels *uk, int64_t l2_bytes)
{
    return l2_bytes / 2 / ((p->dim + p->v_dim) * 4) / uk->nr * uk->nr;
}

/* Int8 products (compute FLAT_I8) on an int8 or int4 cache read about a
 * byte an element or less, where decode_kv_block sizes for 4, and pay per
 * block for Q's rounding to int8 and pv's prefetch ramp: 4x the keys per
 * block took 12-18% off their decode (1 thread, Zen 4, min of alternating
 * runs: decode_4k i8 2.2-2.3 -> 1.9-2.0 ms, i4 1.37-1.53 -> 1.15-1.22,
 * gqa_decode_8k i8 7.0-7.4 -> 6.0-6.5; 8x no better). Not for gathered
 * small pages, whose scratch holds a block as floats. */
#define FLAT_INT8_DECODE_BLOCKS 4

static int64_t decode_block_factor(const flat_problem *p, const flat_ukernels *uk, int gather)
{
    const int int8 = uk->compute == FLAT_I8 && (p->kv_dtype == FLAT_I8 || p->kv_dtype == FLAT_I4);
    return int8 && !gather ? FLAT_INT8_DECODE_BLOCKS : 1;
}

/* FLAT_FLAG_BATCH_INVARIANT: a key grid that depends on the table and head
 * dims only (tiling.h), FLASH (FLAT's exact softmax is another reduction
 * order), and splits at every split_keys keys whatever the threads: a row's
 * cuts then follow its own keys. The merge adds the ranges in order; a row
 * inside one range gets the same bits split or not (merge.c). */
static void invariant_grid(const flat_problem *p, const flat_ukernels *uk, flat_tiling *plan)
{
    int64_t keys = FLAT_INVARIANT_BLOCK_BYTES / (p->dim + p->v_dim);
    keys = flat_max(256, flat_min(1024, keys));
    plan->invariant = 1;
    plan->bk = (int)flat_round_up(keys, uk->nr);
    plan->k_align = plan->bk;
    plan->split_keys = (int64_t)plan->bk * FLAT_INVARIANT_SPLIT_BLOCKS;
    if (plan->dataflow == FLAT_DATAFLOW_FLAT)
        plan->dataflow = FLAT_DATAFLOW_FLASH;
    plan->s_cols = plan->bk;
    if (plan->k_in_place)
        plan->pv_keys = plan->bk;
}

/* Keys per FLASH block: the score block (rows_pad x bk) takes at most a
 * quarter of L2, split evenly over the visible keys. Long blocks amortise
 * the per-block row max, rescale and pv O reload (1024 keys measured ~5%
 * faster than 256 on s4k, 2-4% on bert and s1k). */
static int flash_block(const flat_ukernels *uk, const flat_tiling *plan, int64_t l2_quarter,
                       int64_t kv_pad)
{
    int64_t bk_max = flat_max(uk->nr, l2_quarter / (plan->rows_pad * 4) / uk->nr * uk->nr);
    int64_t blocks = flat_max(1, (kv_pad + bk_max - 1) / bk_max); /* kv_pad 0: no key seen */
    return (int)flat_max(uk->nr, flat_round_up((kv_pad + blocks - 1) / blocks, uk->nr));
}

/* Small pages (keys.c gathers): see tiling.h. */
int64_t flat_gather_row_bytes(const flat_problem *p, int values, int64_t *scale_bytes)
{
    const flat_scales *sc = values ? &p->v_scales : &p->k_scales;
    const int64_t dim = values ? p->v_dim : p->dim;
    *scale_bytes = sc->data ? dim / sc->group * flat_dtype_size(sc->t) : 0;
    return flat_dtype_bytes(p->kv_dtype, dim);
}

int flat_gather_pays(const flat_problem *p)
{
    int64_t scale_bytes;
    const int64_t page_bytes = p->paged ? p->pages.page_size * flat_gather_row_bytes(p, 0, &scale_bytes) : 0;
    if (!p->paged || (p->pages.page_size >= FLAT_GATHER_PAGE && page_bytes >= FLAT_GATHER_PAGE_BYTES))
        return 0;
    for (int values = 0; values < 2; values++) {
        const flat_scales *sc = values ? &p->v_scales : &p->k_scales;
        /* scales broadcast over a page's tokens (ss 0) select other kernel
         * arithmetic (ukernel.h: a scale per column) than per-token ones:
         * such pools keep their runs; so do rows whose scales would make
         * them wider than an fp32 row (what flat_plan_workspace_bound has
         * room for) */
        if (sc->data && sc->ss == 0)
            return 0;
        int64_t sb, rb = flat_gather_row_bytes(p, values, &sb);
        if (rb + sb > 4 * (values ? p->v_dim : p->dim))
            return 0;
    }
    return 1;
}

int64_t flat_gather_floats(const flat_problem *p, int64_t bk, int values)
{
    int64_t dim = values ? p->v_dim : p->dim;
    /* 4 bytes per element: the rows' codes and scales (flat_gather_pays),
     * and the scale rows' alignment (keys.c) */
    return bk * dim + 16;
}

/* Rows per kv head past which decode fetches K and V crosswise (plan->along).
 * There compute per key outweighs its bytes: an MLA-like decode (16 query
 * heads on one kv head of 576 dims, 8k keys, fp32) read V only in pv's first
 * row group, ~20 GB/s demanded there and none while qk computed; crosswise
 * it took 15-20% less time (1 and 2 threads, f32 and bf16 K/V, Zen 5). At 4
 * rows or fewer (memory-bound GQA and MHA decode) it measured no better. */
#define FLAT_ALONG_MIN_ROWS 4

static void plan_decode(const flat_problem *p, const flat_ukernels *uk, int64_t l2_bytes,
                        flat_tiling *plan)
{
    int64_t l2_quarter = l2_bytes / 4;
    plan->dataflow = FLAT_DATAFLOW_FLASH;
    plan->k_in_place = 1;
    plan->heads_per_task = (int)(p->q_heads / p->kv_heads);
    plan->bq = (int)flat_max(1, p->q_len); /* q_len 0: no tasks (see above) */
    plan->rows = plan->heads_per_task * plan->bq;
    plan->rows_pad = (int)flat_round_up(plan->rows, uk->mr);
    plan->tasks = count_tasks(p, plan);
    /* Each Q panel past the first re-reads the key block, and pv's row groups
     * and column passes re-read the value block: both must stay in L2 next to
     * the scores. */
    plan->gather = flat_gather_pays(p);
    int64_t kv_block = decode_kv_block(p, uk, l2_bytes) * decode_block_factor(p, uk, plan->gather);
    plan->bk = (int)flat_max(uk->nr, flat_min(flash_block(uk, plan, l2_quarter,
                                                          flat_round_up(p->kv_visible, uk->nr)),
                                              kv_block));
    plan->s_cols = plan->bk;
    plan->qk_panels = 1;
    plan->pv_keys = plan->bk;
    plan->along = plan->rows > FLAT_ALONG_MIN_ROWS && uk->prefetch_next;
}

/* Everything but split-KV for the sequences of plan->part (p: the call as
 * part_problem sees it): dataflow, task shape, key blocks, the invariant
 * grid, and why (plan->why, plan->sizes). */
static void choose_shape(const flat_problem *p, const flat_ukernels *uk,
                                flat_dataflow requested, int threads, flat_tiling *plan)
{
    const flat_cpu_info *cpu = flat_cpu();
    int64_t l2_budget = cpu->l2_bytes / 2; /* the other half: K/V panels streaming */
    int64_t kv_pad = flat_round_up(p->kv_visible, uk->nr);
    int64_t rows_per_kv_head = (p->q_heads / p->kv_heads) * p->q_len;

    /* FLAT's row buffer: rows_pad x kv_pad floats must fit the L2 budget. */
    int64_t flat_rows = l2_budget / (flat_max(kv_pad, uk->nr) * 4) / uk->mr * uk->mr;
    int64_t useful_rows = flat_min(target_rows(uk), rows_per_kv_head);
    /* FLAT only when its buffer holds the whole block of rows: with fewer
     * rows per task K and V stream through L2 more often, and FLASH with
     * L2-sized key blocks then wins (s4k: 24-row FLAT ~3% behind 48-row
     * FLASH). */
    int flat_fits = flat_rows >= useful_rows && flat_rows >= uk->mr;
    int decode = requested == FLAT_DATAFLOW_DECODE ||
                 (requested == FLAT_DATAFLOW_AUTO && rows_per_kv_head <= FLAT_DECODE_MAX_ROWS);
    const char *why;
    if (decode) {
        plan_decode(p, uk, cpu->l2_bytes, plan);
        why = requested == FLAT_DATAFLOW_DECODE ? "decode path requested by opt.dataflow"
                                                : "decode path: <= FLAT_DECODE_MAX_ROWS (" FLAT_STR(FLAT_DECODE_MAX_ROWS) ") rows per kv head";
    } else {
        int rows = target_rows(uk);
        plan->dataflow = requested != FLAT_DATAFLOW_AUTO ? requested
                         : flat_fits                     ? FLAT_DATAFLOW_FLAT
                                                         : FLAT_DATAFLOW_FLASH;
        if (plan->dataflow == FLAT_DATAFLOW_FLAT && flat_fits)
            rows = (int)flat_min(rows, flat_rows);
        choose_task_shape(p, rows, plan);
        /* Halve the query block until the partitioner can balance the
         * threads (partition.c: units of whole blocks, several per thread). */
        while (count_tasks(p, plan) < 8 * threads && plan->bq > 1)
            plan->bq = (plan->bq + 1) / 2;
        plan->rows = plan->heads_per_task * plan->bq;
        plan->rows_pad = (int)flat_round_up(plan->rows, uk->mr);
        plan->tasks = count_tasks(p, plan);
        int64_t l2_quarter = cpu->l2_bytes / 4;
        plan->bk = flash_block(uk, plan, l2_quarter, kv_pad);
        plan->s_cols = plan->dataflow == FLAT_DATAFLOW_FLAT ? flat_max(kv_pad, uk->nr) : plan->bk;
        /* K and V chunks are re-read by every Q panel / pv row group of the
         * task. The kernels prefetch K panels and V rows ahead, so the chunks
         * need only stay in L2 (a quarter each, next to the score buffer), not
         * in L1: long chunks amortise each pv call's O load/rescale/store (pv
         * with 96-key L1 chunks measured 3-5% slower end to end than with
         * 1024-key ones). */
        plan->qk_panels = (int)flat_max(1, l2_quarter / (p->dim * uk->nr * 4));
        plan->pv_keys = (int)flat_max(uk->nr, l2_quarter / (p->v_dim * 4) / uk->nr * uk->nr);
        /* A quantized V chunk is widened once (into a chunk-sized fp32 copy
         * in L2) for all the row groups, which would each convert every
         * code again: pv was the whole difference between int8 and bf16
         * prefill (+34% in pv). bf16-product tables take quantized V
         * through their fp32 pv and keep doing so (ukernel.h, widen_rows). */
        plan->widen_v = flat_dtype_quantized(p->kv_dtype) && uk->compute == FLAT_F32 &&
                        plan->rows > uk->pv_mr;
        why = requested != FLAT_DATAFLOW_AUTO ? "requested by opt.dataflow"
              : flat_fits                     ? "FLAT row buffer fits L2"
                                              : "FLAT row buffer too big for L2";
    }
    plan->k_align = uk->nr;
    if (p->batch_invariant)
        invariant_grid(p, uk, plan);
    if (plan->invariant)
        plan->ranges =
            (int)flat_max(1, (p->kv_visible + plan->split_keys - 1) / plan->split_keys);
    plan->why = why;
    snprintf(plan->sizes, sizeof plan->sizes,
             "(%lld rows per kv head; FLAT rows fitting L2/2=%lldKiB at %lld visible keys: "
             "%lld of %lld)",
             (long long)rows_per_kv_head, (long long)(l2_budget >> 10),
             (long long)p->kv_visible, (long long)flat_rows, (long long)useful_rows);
}

/* Split-KV and what follows from it; call_tasks: the tasks of the whole call
 * (both parts of a mixed call), which decide whether keys are cut. */
static void choose_splits_for(const flat_problem *p, const flat_ukernels *uk,
                              flat_dataflow requested, int threads, int64_t call_tasks,
                              flat_tiling *plan)
{
    /* FLAT cannot split (its softmax needs whole rows); a one-phase plan has
     * no merges, so it does not split either. Batch-invariant: the ranges as
     * split-KV units when the tasks alone cannot occupy the threads, else
     * (and always in a one-phase plan) inside each task, with the same bits. */
    const int one_phase = (p->flags & FLAT_FLAG_ONE_PHASE) != 0;
    int splits = plan->invariant
                     ? (one_phase || call_tasks >= (int64_t)TASKS_PER_THREAD * threads
                            ? 1
                            : plan->ranges)
                 : (plan->dataflow == FLAT_DATAFLOW_FLAT && requested == FLAT_DATAFLOW_FLAT) ||
                         one_phase
                     ? 1
                     : choose_splits(p, uk, call_tasks, threads);
    flat_dataflow before_split = plan->dataflow;
    flat_tiling_set_splits(plan, splits, threads);
    flat_tiling_size_k(p, uk, plan, plan->tasks == p->batch * p->kv_heads);
    /* Split-KV turns a FLAT choice into FLASH: the reason is then the split,
     * not the row buffer (which names the other dataflow). */
    snprintf(plan->reason, sizeof plan->reason, "%s %s%s%s",
             before_split != plan->dataflow
                 ? "split-KV (too few tasks per thread) needs key ranges, which FLASH walks; "
                   "FLAT's row buffer would fit L2"
                 : plan->why,
             plan->sizes,
             plan->invariant ? "; batch-invariant: fixed key grid and split ranges"
             : plan->splits > 1 && before_split == plan->dataflow
                 ? "; split-KV: too few tasks per thread"
                 : "",
             plan->stream_k ? "; K packed chunk by chunk (read once)" : "");
}

static int resolve_threads(int num_threads)
{
    return num_threads > 0 ? num_threads : flat_parallel_default_threads();
}

static void choose_part(const flat_problem *p, const flat_ukernels *uk, flat_dataflow requested,
                        int threads, int part, flat_tiling *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->nr = uk->nr;
    plan->part = part;
    flat_problem sub = part_problem(p, part);
    choose_shape(&sub, uk, requested, threads, plan);
}

void flat_tiling_choose(const flat_problem *p, const flat_ukernels *uk, flat_dataflow requested,
                        int num_threads, flat_tiling *plan)
{
    int threads = resolve_threads(num_threads);
    choose_part(p, uk, requested, threads, FLAT_PART_ALL, plan);
    choose_splits_for(p, uk, requested, threads, plan->tasks, plan);
}

/* AUTO, and sequences with queries on both sides of FLAT_DECODE_MAX_ROWS. */
static int mixed_call(const flat_problem *p, flat_dataflow requested)
{
    int decode = 0, gemm = 0;
    if (requested != FLAT_DATAFLOW_AUTO)
        return 0;
    for (int64_t b = 0; b < p->batch && !(decode && gemm); b++) {
        decode |= flat_part_q_len(p, FLAT_PART_DECODE, b) > 0;
        gemm |= flat_part_q_len(p, FLAT_PART_GEMM, b) > 0;
    }
    return decode && gemm;
}

int flat_tiling_choose_parts(const flat_problem *p, const flat_ukernels *uk,
                             flat_dataflow requested, int num_threads, flat_tiling parts[2])
{
    if (!mixed_call(p, requested)) {
        flat_tiling_choose(p, uk, requested, num_threads, &parts[0]);
        return 1;
    }
    int threads = resolve_threads(num_threads);
    choose_part(p, uk, requested, threads, FLAT_PART_GEMM, &parts[0]);
    choose_part(p, uk, requested, threads, FLAT_PART_DECODE, &parts[1]);
    int64_t call_tasks = parts[0].tasks + parts[1].tasks, units = 0;
    for (int i = 0; i < 2; i++) {
        flat_problem sub = part_problem(p, parts[i].part);
        choose_splits_for(&sub, uk, requested, threads, call_tasks, &parts[i]);
        units += parts[i].tasks * parts[i].splits;
    }
    /* Both parts' tasks share the call's threads. */
    parts[0].threads = parts[1].threads = (int)flat_max(1, flat_min(threads, units));
    return 2;
}

void flat_tiling_bound(const flat_problem *p, const flat_ukernels *uk, flat_dataflow requested,
                       flat_tiling *worst)
{
    const flat_cpu_info *cpu = flat_cpu();
    int64_t group = p->q_heads / p->kv_heads;
    int64_t kv_cols = flat_max(flat_round_up(p->kv_visible, uk->nr), uk->nr);
    /* Which paths a call of at most these sizes may take: AUTO takes the
     * decode path up to FLAT_DECODE_MAX_ROWS rows per kv head, which then
     * holds all of them; the GEMM-shaped paths hold at most target_rows. */
    int gemm = requested == FLAT_DATAFLOW_FLAT || requested == FLAT_DATAFLOW_FLASH ||
               (requested == FLAT_DATAFLOW_AUTO && group * p->q_len > FLAT_DECODE_MAX_ROWS);
    int64_t decode_rows = requested == FLAT_DATAFLOW_DECODE ? group * p->q_len
                          : requested == FLAT_DATAFLOW_AUTO
                              ? flat_min(group * p->q_len, FLAT_DECODE_MAX_ROWS)
                              : 0;
    int64_t rows = flat_max(gemm ? target_rows(uk) : 0, flat_max(decode_rows, 1));
    int64_t rows_pad = flat_round_up(rows, uk->mr);
    /* Scores: FLAT keeps rows_pad x kv_cols, within the L2 budget unless
     * requested; FLASH blocks of bk keys, where rows_pad x bk stays within a
     * quarter of L2 or one K panel per row; decode blocks of bk keys whose K
     * and V fit a quarter of L2 (plan_decode). Every bk <= kv_cols. */
    int64_t whole = rows_pad * kv_cols, s_floats = 0;
    if (gemm) {
        int64_t flat_s = requested == FLAT_DATAFLOW_FLAT ? whole
                                                         : flat_min(whole, cpu->l2_bytes / 2 / 4);
        int64_t flash_s = flat_min(whole, flat_max(rows_pad * uk->nr, cpu->l2_bytes / 4 / 4));
        s_floats = flat_max(flat_s, flash_s);
    }
    int64_t decode_bk = 0;
    if (decode_rows > 0) {
        int64_t kv_block = decode_kv_block(p, uk, cpu->l2_bytes);
        decode_bk = flat_min(kv_cols, flat_max(uk->nr, kv_block));
        /* the cache type and the precision's table are not known here:
         * int8 products' longer blocks (not gathered) for the scores */
        s_floats = flat_max(s_floats, rows_pad * flat_min(kv_cols, flat_max(uk->nr, kv_block * FLAT_INT8_DECODE_BLOCKS)));
    }
    memset(worst, 0, sizeof *worst);
    worst->nr = uk->nr;
    worst->rows = (int)rows;
    worst->rows_pad = (int)rows_pad;
    worst->s_cols = (s_floats + rows_pad - 1) / rows_pad;
    worst->k_in_place = !gemm; /* no packed K, no spare panel */
    worst->k_floats = gemm ? kv_cols * p->dim : 0;
    worst->widen_v = gemm; /* the dtype is not known here: a quantized V's chunk */
    worst->gather = decode_bk > 0; /* nor whether pages are small: the blocks gathered */
    worst->bk = (int)decode_bk;
    worst->pv_keys = (int)flat_max(uk->nr, cpu->l2_bytes / 4 / (p->v_dim * 4) / uk->nr * uk->nr);
    worst->splits = 1;
    if (p->batch_invariant) { /* fixed-grid blocks, and key ranges merged inside a task */
        flat_tiling grid = *worst;
        invariant_grid(p, uk, &grid);
        worst->s_cols = flat_max(worst->s_cols, grid.s_cols);
        if (worst->gather)
            worst->bk = (int)flat_max(worst->bk, flat_min(grid.bk, kv_cols));
        worst->ranges = (int)flat_max(1, (p->kv_visible + grid.split_keys - 1) / grid.split_keys);
    }
}
