/* The planner: dataflow, tile sizes and thread count for one call. */
#ifndef FLAT_TILING_H
#define FLAT_TILING_H

#include "problem.h"
#include "ukernel.h"

/* Which sequences of a call a tiling covers. A call under AUTO whose
 * sequences are of both kinds (a server step: decodes beside a prefill
 * chunk) gets one tiling per kind, each the one a call of only those
 * sequences would get (split-KV aside: tiling.c), so every sequence takes
 * its own path and the call costs what its parts cost apart. */
typedef enum {
    FLAT_PART_ALL = 0,    /* every sequence: one tiling for the call */
    FLAT_PART_DECODE = 1, /* sequences of 1..FLAT_DECODE_MAX_ROWS rows per kv head */
    FLAT_PART_GEMM = 2    /* sequences of more rows per kv head */
} flat_part;

typedef struct {
    flat_dataflow dataflow; /* FLAT or FLASH, never AUTO */
    int part;               /* flat_part: the sequences this tiling covers */
    int heads_per_task;     /* query heads of one GQA group stacked in a task */
    int bq;                 /* query positions per task */
    int rows;               /* heads_per_task * bq: Q rows a task holds */
    int rows_pad;           /* rows rounded up to mr */
    int bk;                 /* FLASH: keys per block (multiple of nr) */
    int nr;                 /* the kernel table's K panel width */
    int qk_panels;          /* K panels per qk call, sized so they stay in L1 */
    int pv_keys;            /* keys per pv call, sized so V rows stay in L1 */
    int gather;             /* the decode path on pages of under FLAT_GATHER_PAGE
                               tokens: each key block's K and V rows are copied
                               (as stored) into one run, so each kernel is called
                               once per block instead of once per page */
    int widen_v;            /* GEMM-shaped path, quantized V, fp32 products: each
                               pv chunk is widened once for all row groups */
    int64_t s_cols;         /* columns of the score buffer */
    int64_t k_panels;       /* K panels per (batch, kv head): ceil(kv_len / nr) */
    int64_t k_floats;       /* packed K a thread holds: one (batch, kv head), or one
                               qk chunk when stream_k */
    int stream_k;           /* each (batch, kv head) has a single task: pack K
                               chunk by chunk just before qk reads it */
    int k_in_place;         /* the decode path: no packing, qk_rows reads K rows
                               where they lie (dataflow is then FLASH) */
    int along;              /* the decode path with more rows than the dot kernels
                               take: the first Q panel's qk_rows fetches the block's
                               V rows and its first pv call the next block's K rows
                               (flat_kv_src.along), so each phase streams one
                               matrix while it computes on the other from L2 */
    int64_t tasks;          /* query blocks (of bq positions, per head group) */
    int splits;             /* key ranges per task (split-KV, > 1 only when tasks
                               alone cannot occupy the threads); merged by lse */
    int threads;
    /* FLAT_FLAG_BATCH_INVARIANT (tiling.c, invariant_grid): blocks start at
     * multiples of k_align counted from key 0 (bk then; nr otherwise, where
     * blocks start at the task's first visible panel), split s covers keys
     * [s*split_keys, (s+1)*split_keys) (0: equal shares of the task's keys),
     * and qk_rows always gets whole mr-row panels (its summation order is
     * then qk's: kernels/ukernel.h). */
    int invariant;
    int k_align;
    int64_t split_keys;
    int ranges;             /* split_keys ranges over the visible keys: with
                               splits == 1 a task runs them one after another
                               and merges them itself (attend.c) */
    const char *why;        /* why this dataflow (a static string) */
    char sizes[200];        /* the figures it was chosen by */
    char reason[448];       /* why, with what split-KV and K packing added */
} flat_tiling;

/* Query rows per kv head (GQA group x q_len) up to which AUTO takes the
 * decode path. Measured (Zen 5, 1 thread, B 1, 32/8 heads, kv_len 4096,
 * D 128, causal; median of 21, DECODE vs the GEMM-shaped FLASH): 16 rows
 * 3.27 vs 5.07 ms, 32 rows 5.01 vs 6.19 ms, 64 rows 10.06 vs 9.64 ms, 128
 * rows 16.2 vs 14.6 ms: the GEMM path's K packing pays off from ~64 rows. */
#define FLAT_DECODE_MAX_ROWS 32

/* Batch-invariant key grid: keys per block, the nr multiple nearest
 * 2^17 / (D + Dv) within [256, 1024] (a K+V block of 512 KiB in f32, so a
 * decode block stays in L2 next to the scores), and blocks per split range. */
#define FLAT_INVARIANT_BLOCK_BYTES (1 << 17)
#define FLAT_INVARIANT_SPLIT_BLOCKS 8

/* One tiling for the whole call (FLAT_PART_ALL), whatever its sequences. */
void flat_tiling_choose(const flat_problem *p, const flat_ukernels *uk, flat_dataflow requested,
                      int num_threads, flat_tiling *plan);

/* The call's tilings: one (FLAT_PART_ALL), or, under AUTO with sequences of
 * both kinds, two: parts[0] FLAT_PART_GEMM, parts[1] FLAT_PART_DECODE, each
 * as a call of only its sequences would get it, except that split-KV counts
 * the tasks of both parts and both get the call's threads. Returns how many. */
int flat_tiling_choose_parts(const flat_problem *p, const flat_ukernels *uk,
                             flat_dataflow requested, int num_threads, flat_tiling parts[2]);

/* Query positions of sequence b that a tiling of `part` covers: all or none. */
static inline int64_t flat_part_q_len(const flat_problem *p, int part, int64_t b)
{
    int64_t n = flat_q_len_of(p, b), rows = n * (p->q_heads / p->kv_heads);
    if (part == FLAT_PART_DECODE)
        return rows <= FLAT_DECODE_MAX_ROWS ? n : 0;
    if (part == FLAT_PART_GEMM)
        return rows > FLAT_DECODE_MAX_ROWS ? n : 0;
    return n;
}

/* Sets the split-KV count (>= 1) and what follows from it (threads, task
 * chunks, dataflow). flat_tiling_choose calls it with its own choice; tests
 * call it again to force any count on a valid plan. */
void flat_tiling_set_splits(flat_tiling *plan, int splits, int threads);

/* Sizes the packed-K buffer: whole (sequence, kv head) when a unit runs
 * several blocks over it, one qk chunk when every unit is a single block or
 * K is split (stream_k), none on the decode path. */
void flat_tiling_size_k(const flat_problem *p, const flat_ukernels *uk, flat_tiling *plan,
                        int one_block_units);

/* For flat_plan_workspace_bound: a tiling whose scratch (flat_scratch_floats)
 * is at least that of any plan for problems of at most p's q_len and
 * kv_visible, with its heads and dims: the most rows (and rows_pad) a task
 * may hold, s_cols with rows_pad x s_cols >= any score buffer, and the most
 * packed K. Not a tiling to run. */
void flat_tiling_bound(const flat_problem *p, const flat_ukernels *uk, flat_dataflow requested,
                       flat_tiling *worst);

/* Decode on pages of under FLAT_GATHER_PAGE tokens or FLAT_GATHER_PAGE_BYTES
 * of K per head (int8 pages of 16 at 128 dims: 2 KiB): whether this call's key
 * blocks are gathered into one run each (plan->gather: keys.c), the bytes
 * of a gathered K (values: V) row and of its scale row, and the scratch
 * floats of a block of bk such rows. Pages of 16-31 tokens of a GQA cache
 * under 4 bytes an element were gathered too until the kernels prefetched
 * the runs that follow their call (ukernel.h, flat_kv_src.next); since, runs
 * beat the copy there (flat-bench --page 16, bf16, 1 thread, Zen 5,
 * alternating: gqa_decode_8k 15.7-18.0 -> 10.4-16.0 ms, batch_decode_2k
 * 14.3-19.7 -> 11.0-16.2), while under 16 tokens the copy still wins (pages
 * of 4, decode_4k bf16: 5.8-8.9 gathered, 19.7-21.1 ms as runs). */
#define FLAT_GATHER_PAGE 16
/* int8 g32 pages of 16 tokens, gqa_decode_8k-like (8 sequences), 1 thread,
 * paged / contiguous under FLAT_PRECISION_INT8: 0.31-0.44 as runs, 0.34-0.37
 * gathered row by row, 0.46-0.48 gathered a run at a time (one memcpy per
 * run where the pool's rows lie back to back); fp32 products 0.48-0.50 ->
 * 0.52-0.54. Random 2 KiB pieces read ~40% of the sequential bandwidth here
 * (Zen 5 VM, 4 KiB pages), so that is near the machine's ceiling. */
#define FLAT_GATHER_PAGE_BYTES 4096
int flat_gather_pays(const flat_problem *p);
int64_t flat_gather_row_bytes(const flat_problem *p, int values, int64_t *scale_bytes);
int64_t flat_gather_floats(const flat_problem *p, int64_t bk, int values);

#endif
