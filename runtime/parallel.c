/* Runs a plan's tasks: with OpenMP (the default build) or, built with
 * -DFLAT_OPENMP=OFF, on flat's own pthread pool (pool.c). The only file with
 * #pragma omp and the only caller of the OpenMP runtime. */
#include "cpu.h"
#include "fork.h"
#include "parallel.h"

/* On the calling thread, outside any pool: a one-worker plan, or (OpenMP) a
 * process forked after threaded calls, where OpenMP would hang (fork.h). */
static void run_serial(const flat_plan *plan, void *workspace)
{
    for (int64_t i = 0; i < plan->n_units; i++)
        flat_plan_run_unit(plan, i, 0, workspace);
    for (int64_t i = 0; i < plan->n_merges; i++)
        flat_plan_run_merge(plan, i, workspace);
}

#if FLAT_OPENMP
#include <omp.h>

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

int flat_parallel_default_threads(void) { return omp_get_max_threads(); }

#else /* the pool */
#include <sched.h>
#include <stdatomic.h>

#include "pool.h"

/* One execution: the next unit and merge to take, and the barrier count. */
typedef struct {
    const flat_plan *plan;
    void *workspace;
    atomic_llong next_unit, next_merge;
    atomic_int arrived;
} execution;

/* Spins, then yields: every participant has a thread of its own, so the
 * wait is the slowest one's last unit (the machine may be shared, so it
 * gives the CPU away rather than burn it). */
static void wait_for_all(atomic_int *arrived, int workers)
{
    atomic_fetch_add_explicit(arrived, 1, memory_order_acq_rel);
    for (int i = 0; atomic_load_explicit(arrived, memory_order_acquire) < workers; i++)
        if (i >= 4096)
            sched_yield();
}

/* A participant's share: units as they come (heaviest first: LPT, as
 * OpenMP's dynamic schedule), then, after all units, merges. */
static void run_share(void *ctx, int worker, int workers)
{
    execution *e = ctx;
    const flat_plan *plan = e->plan;
    for (int64_t i; (i = atomic_fetch_add_explicit(&e->next_unit, 1, memory_order_relaxed)) <
                    plan->n_units;)
        flat_plan_run_unit(plan, i, worker, e->workspace);
    if (plan->n_merges == 0)
        return;
    wait_for_all(&e->arrived, workers);
    for (int64_t i; (i = atomic_fetch_add_explicit(&e->next_merge, 1, memory_order_relaxed)) <
                    plan->n_merges;)
        flat_plan_run_merge(plan, i, e->workspace);
}

static void run_threaded(const flat_plan *plan, void *workspace)
{
    execution e = {plan, workspace, 0, 0, 0};
    flat_pool_run(plan->workers, run_share, &e);
}

int flat_parallel_default_threads(void) { return flat_cpu_count(); }
#endif

int flat_parallel_threads(int num_threads)
{
    int asked = num_threads > 0 ? num_threads : flat_parallel_default_threads();
    int cpus = flat_cpu_count();
    return asked < cpus ? asked : cpus;
}

void flat_parallel_execute(const flat_plan *plan, void *workspace)
{
    if (plan->workers == 1 || flat_fork_threads_lost())
        run_serial(plan, workspace);
    else
        run_threaded(plan, workspace);
}
