/* The OpenMP execution of a plan: phase-0 units over the workers, then the
 * split-KV merges. The only file with #pragma omp. */
#ifndef FLAT_PARALLEL_H
#define FLAT_PARALLEL_H

#include "call.h"

/* Runs every task of the plan in `workspace` (flat_plan_workspace_size). */
void flat_parallel_execute(const flat_plan *plan, void *workspace);

#endif
