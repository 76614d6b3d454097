/* The OpenMP work split: tasks over (batch, kv head, head
 * group, query block). The only file with #pragma omp. */
#ifndef FLAT_PARALLEL_H
#define FLAT_PARALLEL_H

#include "tiling.h"
#include "problem.h"
#include "ukernel.h"

/* Runs the planned call. All memory is allocated before any output is
 * written, so FLAT_ERROR_OUT_OF_MEMORY leaves out untouched. */
flat_status flat_parallel_run(const flat_problem *p, const flat_tiling *plan,
                              const flat_ukernels *uk);

#endif
