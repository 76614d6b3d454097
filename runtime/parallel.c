#include <omp.h>

#include "fork.h"
#include "parallel.h"

/* On the calling thread, outside OpenMP: a one-worker plan, or a process
 * forked after threaded calls, where OpenMP would hang (runtime/fork.h). */
static void run_serial(const flat_plan *plan, void *workspace)
{
    for (int64_t i = 0; i < plan->n_units; i++)
        flat_plan_run_unit(plan, i, 0, workspace);
    for (int64_t i = 0; i < plan->n_merges; i++)
        flat_plan_run_merge(plan, i, workspace);
}

/* Units come heaviest first (partition.c), so dynamic scheduling is LPT. */
static void run_threaded(const flat_plan *plan, void *workspace)
{
    flat_fork_watch();
#pragma omp parallel num_threads(plan->workers)
    {
        const int worker = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < plan->n_units; i++)
            flat_plan_run_unit(plan, i, worker, workspace);
        /* The implicit barrier above: every split of every block is done. */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < plan->n_merges; i++)
            flat_plan_run_merge(plan, i, workspace);
    }
}

void flat_parallel_execute(const flat_plan *plan, void *workspace)
{
    if (plan->workers == 1 || flat_fork_threads_lost())
        run_serial(plan, workspace);
    else
        run_threaded(plan, workspace);
}
