#include <omp.h>
#include <stdlib.h>

#include "attend.h"
#include "error.h"
#include "parallel.h"

flat_status flat_parallel_run(const flat_problem *p, const flat_plan *plan,
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
    float *parts = mem + scratch_floats * plan->threads;

#pragma omp parallel num_threads(plan->threads)
    {
        flat_scratch ws;
        flat_scratch_init(&ws, mem + scratch_floats * omp_get_thread_num(), p, plan);
        int64_t chunk = plan->task_chunk;
#pragma omp for schedule(dynamic, chunk)
        for (int64_t i = 0; i < items; i++) {
            flat_task task = flat_task_at(p, plan, i / plan->splits);
            task.split = (int)(i % plan->splits);
            flat_attend_task(p, plan, uk, &task, &ws,
                             plan->splits > 1 ? parts + i * split_floats : NULL);
        }
        /* The implicit barrier above: every split of every task is done. */
        if (plan->splits > 1) {
#pragma omp for schedule(static)
            for (int64_t t = 0; t < plan->tasks; t++)
                flat_merge_splits(p, plan, t, parts + t * plan->splits * split_floats);
        }
    }
    free(mem);
    return FLAT_OK;
}
