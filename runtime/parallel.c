#include <omp.h>
#include <stdlib.h>

#include "attend.h"
#include "error.h"
#include "parallel.h"

flat_status flat_parallel_run(const flat_problem *p, const flat_plan *plan,
                              const flat_ukernels *uk)
{
    int64_t scratch_floats = flat_scratch_floats(p, plan);
    int64_t total = scratch_floats * plan->threads;
    float *mem = NULL;
    if (total > (int64_t)(SIZE_MAX / 8) ||
        posix_memalign((void **)&mem, 64, (size_t)total * sizeof(float)) != 0)
        return flat_error(FLAT_ERROR_OUT_OF_MEMORY,
                          "workspace of %lld bytes could not be allocated",
                          (long long)total * 4);

#pragma omp parallel num_threads(plan->threads)
    {
        flat_scratch ws;
        flat_scratch_init(&ws, mem + scratch_floats * omp_get_thread_num(), p, plan);
        int64_t chunk = plan->task_chunk;
#pragma omp for schedule(dynamic, chunk)
        for (int64_t t = 0; t < plan->tasks; t++) {
            flat_task task = flat_task_at(p, plan, t);
            flat_attend_task(p, plan, uk, &task, &ws);
        }
    }
    free(mem);
    return FLAT_OK;
}
