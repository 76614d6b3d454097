/* The steps one task runs over its block of query rows, shared by the files
 * that implement them: attend.c (a task's rows and output), keys.c (where the
 * key rows are and the scores against them), dataflow.c (FLAT and FLASH
 * softmax and P V) and merge.c (split-KV partial rows and their merge). */
#ifndef FLAT_TILE_H
#define FLAT_TILE_H

#include "attend.h"

#define FLAT_LOG2E 1.44269504088896340736f
#define FLAT_LN2 0.69314718055994530942f

/* A run of `count` key (or value) rows, as the kernels take them (src: the
 * first row, its row stride, type and scales): the unit in which K and V
 * are walked. A contiguous tensor is one run per (batch, kv head). */
typedef struct {
    flat_kv_src src;
    int64_t count;
} flat_run;

/* The run of task t's K (V) rows that starts at key j. */
flat_run flat_key_run(const flat_problem *p, const flat_task *t, int64_t j);
flat_run flat_value_run(const flat_problem *p, const flat_task *t, int64_t j);

/* A decode loop's walk over the runs of keys [j0, j0 + n) of K (values:
 * V): the current run (run[0], from key j0 + at[0]) and the FLAT_WALK_AHEAD
 * after it, chained through flat_kv_src.next for the kernels' prefetch
 * (ukernel.h: the kernels' distances, 16-32 keys, span two 16-token pages;
 * 8 KiB ahead at any row size, four runs, measured no faster),
 * each page's run computed once; for a table whose kernels do not prefetch
 * that chain, the walk asks for each next run itself as it moves. run[0]
 * is clipped to the range. */
#define FLAT_WALK_AHEAD 2
typedef struct {
    const flat_problem *p;
    const flat_task *t;
    int values, ask;
    int64_t j0, n;
    flat_run run[FLAT_WALK_AHEAD + 1];
    int64_t at[FLAT_WALK_AHEAD + 1];
} flat_run_walk;

void flat_walk_start(flat_run_walk *w, const flat_problem *p, const flat_ukernels *uk,
                     const flat_task *t, int values, int64_t j0, int64_t n);
/* Moves to the next run; returns 0 past the range. */
int flat_walk_next(flat_run_walk *w);

/* Decode on small pages (tiling.h: plan->gather): keys [k0, k0 + n) of K
 * and V gathered into ws->kblk and ws->vblk. */
void flat_gather_block(const flat_problem *p, const flat_task *t, int64_t k0, int64_t n,
                       flat_scratch *ws);

/* Asks for rows [0, rows) of run r (dim elements each) ahead of use: a paged
 * cache's next page, which no hardware prefetcher predicts, for a table
 * whose kernels do not prefetch the chain of runs they are handed
 * (flat_ukernels.prefetch_next), and for the gathers. always_inline: GCC
 * deems a prefetch-only function const and deletes its calls. */
static inline __attribute__((always_inline)) void
flat_prefetch_run(const flat_problem *p, flat_run r, int64_t rows, int64_t dim)
{
    const int64_t bytes = flat_dtype_bytes(p->kv_dtype, dim);
    for (int64_t i = 0; i < rows; i++) {
        /* every line the row touches, from the one it starts in (a row
         * off a line's start spans one more line than its bytes fill) */
        const uintptr_t row = (uintptr_t)flat_elem_ptr(r.src.data, i * r.src.ld, p->kv_dtype);
        for (uintptr_t a = row & ~(uintptr_t)63; a < row + (uintptr_t)bytes; a += 64)
            __builtin_prefetch((const void *)a, 0, 1); /* to L2 */
    }
}

/* S[:, k0 .. k0+width) of every Q panel that has a row seeing past k0: from
 * the packed K panels (GEMM-shaped path) or from K rows in place (decode). */
void flat_scores(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                 const flat_task *t, int rows, int k0, int width, flat_scratch *ws,
                 int64_t ld_s);

/* The two dataflows over keys [kbeg, kend) of the task's rows. */
void flat_rows_flat(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                    const flat_task *t, int rows, int kbeg, int kend, flat_scratch *ws);
void flat_rows_flash(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                     const flat_task *t, int rows, int kbeg, int kend, flat_scratch *ws);

/* Key range [*kbeg, *kend) of split t->split of keys [k0, kmax) (merge.c). */
void flat_split_range(const flat_tiling *plan, const flat_ukernels *uk, const flat_task *t,
                      int k0, int kmax, int *kbeg, int *kend);
/* A split's rows as they stand, into `part` (flat_split_floats floats). */
void flat_write_partial(const flat_problem *p, const flat_task *t, const flat_scratch *ws,
                        float *part);

static inline int flat_max_limit(const int *limit, int r0, int r1)
{
    int m = 0;
    for (int r = r0; r < r1; r++)
        m = limit[r] > m ? limit[r] : m;
    return m;
}

static inline int flat_max_lo(const int *lo, int r0, int r1)
{
    int m = lo[r0];
    for (int r = r0 + 1; r < r1; r++)
        m = lo[r] > m ? lo[r] : m;
    return m;
}

static inline int flat_min_limit(const int *limit, int r0, int r1)
{
    int m = limit[r0];
    for (int r = r0 + 1; r < r1; r++)
        m = limit[r] < m ? limit[r] : m;
    return m;
}

/* Where row r of the task accumulates its unnormalised output. */
static inline float *flat_o_row(const flat_scratch *ws, int r)
{
    return ws->o_base + r / ws->o_run * ws->o_ld_run + r % ws->o_run * ws->o_ld_row;
}

#endif
