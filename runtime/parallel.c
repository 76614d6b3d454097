#include <omp.h>
#include <stdlib.h>

#include "attend.h"
#include "error.h"
#include "fork.h"
#include "parallel.h"

/* One call's work: `items` = tasks x key splits, each thread's scratch at
 * mem + thread * scratch_floats, split-KV partial results at parts. */
typedef struct {
    const flat_problem *p;
    const flat_tiling *plan;
    const flat_ukernels *uk;
    float *mem, *parts;
    int64_t scratch_floats, split_floats, items;
} flat_call_work;

static void run_item(const flat_call_work *r, flat_scratch *ws, int64_t i)
{
    const flat_tiling *plan = r->plan;
    flat_task task = flat_task_at(r->p, plan, i / plan->splits);
    task.split = (int)(i % plan->splits);
    flat_attend_task(r->p, plan, r->uk, &task, ws,
                     plan->splits > 1 ? r->parts + i * r->split_floats : NULL);
}

static void merge_task(const flat_call_work *r, int64_t t)
{
    flat_merge_splits(r->p, r->plan, r->uk, t, r->parts + t * r->plan->splits * r->split_floats);
}

/* On the calling thread, outside OpenMP: a one-thread plan, or a process
 * forked after threaded calls, where OpenMP would hang (runtime/fork.h). */
static void run_serial(const flat_call_work *r)
{
    flat_scratch ws;
    flat_scratch_init(&ws, r->mem, r->p, r->plan);
    for (int64_t i = 0; i < r->items; i++)
        run_item(r, &ws, i);
    for (int64_t t = 0; r->plan->splits > 1 && t < r->plan->tasks; t++)
        merge_task(r, t);
}

static void run_threaded(const flat_call_work *r)
{
    flat_fork_watch();
#pragma omp parallel num_threads(r->plan->threads)
    {
        flat_scratch ws;
        flat_scratch_init(&ws, r->mem + r->scratch_floats * omp_get_thread_num(), r->p,
                          r->plan);
        int64_t chunk = r->plan->task_chunk;
#pragma omp for schedule(dynamic, chunk)
        for (int64_t i = 0; i < r->items; i++)
            run_item(r, &ws, i);
        /* The implicit barrier above: every split of every task is done. */
        if (r->plan->splits > 1) {
#pragma omp for schedule(static)
            for (int64_t t = 0; t < r->plan->tasks; t++)
                merge_task(r, t);
        }
    }
}

flat_status flat_parallel_run(const flat_problem *p, const flat_tiling *plan,
                              const flat_ukernels *uk)
{
    int64_t scratch_floats = flat_scratch_floats(p, plan);
    int64_t split_floats = plan->splits > 1 ? flat_split_floats(p, plan) : 0;
    int64_t items = plan->tasks * plan->splits;
    int64_t total = scratch_floats * plan->threads + split_floats * items;
    float *mem = NULL;
    if (total > (int64_t)(SIZE_MAX / 8) ||
        posix_memalign((void **)&mem, 64, (size_t)total * sizeof(float)) != 0)
        return flat_error(FLAT_ERROR_OUT_OF_MEMORY,
                          "workspace of %lld bytes could not be allocated",
                          (long long)total * 4);
    flat_call_work run = {p, plan, uk, mem, mem + scratch_floats * plan->threads,
                    scratch_floats, split_floats, items};
    if (plan->threads == 1 || flat_fork_threads_lost())
        run_serial(&run);
    else
        run_threaded(&run);
    free(mem);
    return FLAT_OK;
}
