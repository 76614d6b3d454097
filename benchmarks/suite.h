/* What the suite's C modules share with each other (not with the shim). */
#ifndef BENCH_SUITE_H
#define BENCH_SUITE_H

#include <stdio.h>

#include "bench.h"
#include "refcheck.h"

/* The configuration bench_cases_build was given. */
const bench_config *suite_config(void);

/* Seconds of timed work so far: the cases' timed loops, not their setup
 * (what --flat_time_budget counts). */
double suite_elapsed(void);

/* One finished repetition of case `index`; the summary reports the median
 * over repetitions. label: AUTO's choice or "". */
void summary_record(int index, double seconds_per_call, const char *label,
                    const ref_check *check);

/* The GFLOP/s of the last finished case (in table order) of the same
 * implementation, ISA, thread count and kind of shape (decode or not); 0 if
 * none yet. The latest rather than the best: it also reflects how busy the
 * machine is now, and a time guard had better err on the short side. */
double summary_recent_rate(const bench_case *c);

/* Case `index` did not run; why says so. */
void summary_skip(int index, const char *why);

/* Case `index` failed (flat_attention returned an error); it counts against
 * the exit status like a wrong output. */
void summary_fail(int index, const char *why);

/* Appends the micro-kernel results (bench_ukernels.c) to a summary. */
void ukernel_summary_print(FILE *f);

/* A relative row error above this marks a result as wrong in the summary:
 * flat.h promises 1e-5, the baseline's fp32 sgemm and expf stay near it.
 * The bf16-product table (avx512_bf16) rounds Q, K, P and V to bf16: its
 * bound is its own (test_dtypes: 1e-2 rows on O(1) logits; 2e-2 here, where
 * the shapes' logits are larger). */
#define SUMMARY_MAX_ERROR 1e-4
/* Rows written as f16 or bf16 carry that rounding (flat.h: within 1e-3 and
 * 8e-3); the dtype variants' bounds, with the same margin as above. */
#define SUMMARY_MAX_ERROR_F16_OUT 2e-3
#define SUMMARY_MAX_ERROR_BF16_OUT 1.6e-2
#define SUMMARY_MAX_ERROR_BF16_PRODUCTS 2e-2

/* The bound case `index` is held to. */
double summary_error_bound(int index);

#endif
