/* A double-precision check of a computed output on a subset of its rows, so
 * every benchmark result also says whether the answer was right. */
#ifndef BENCH_REFCHECK_H
#define BENCH_REFCHECK_H

#include <stdint.h>

#include "workload.h"

typedef struct {
    double max_abs;     /* max |out - ref| over the checked rows */
    double max_row_rel; /* max over checked rows of ||out - ref||_2 / ||ref||_2 */
    int64_t rows_checked;
    int64_t rows_total; /* B * Hq * Nq */
} ref_check;

/*
 * Recomputes rows of w->out in double precision (scale 1/sqrt(D), causal
 * bottom-right aligned, as flat.h defines) and compares. Checks every row when
 * there are at most max_rows of them; otherwise max_rows rows spread evenly
 * over (batch, head, position), first and last included, because a full
 * double-precision reference of a long shape costs more than the benchmark.
 */
ref_check ref_check_rows(const workload *w, int64_t max_rows);

#endif
