/* Execution of a plan: phase-0 units over the workers, then the split-KV
 * merges, on OpenMP or (-DFLAT_OPENMP=OFF) flat's pool. The only file with
 * #pragma omp. */
#ifndef FLAT_PARALLEL_H
#define FLAT_PARALLEL_H

#include "call.h"

/* Runs every task of the plan in `workspace` (flat_plan_workspace_size). */
void flat_parallel_execute(const flat_plan *plan, void *workspace);

/* Threads a call with num_threads = 0 asks for: OpenMP's default
 * (omp_get_max_threads: OMP_NUM_THREADS, else the CPUs), or, without
 * OpenMP, the CPUs this thread may run on. */
int flat_parallel_default_threads(void);

/* The workers a plan made with opt.num_threads = num_threads is sized for
 * at most: num_threads (0: the default above), clamped to the CPUs this
 * thread may run on (more workers than CPUs only time-slice, and each
 * needs its own scratch). */
int flat_parallel_threads(int num_threads);

#endif
