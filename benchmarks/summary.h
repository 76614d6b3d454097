/* What the summary's modules share: the results of the cases that ran
 * (summary.c) read by the report writers (summary_tables.c,
 * summary_roofline.c). */
#ifndef BENCH_SUMMARY_H
#define BENCH_SUMMARY_H

#include <stdio.h>

#include "figures.h"
#include "suite.h"

enum { CELL = 16 };

/* Median seconds per call of case `index` over its repetitions; NAN when it
 * did not run (or index < 0). */
double summary_median_seconds(int index);

/* Why the case did not run, or "". */
const char *summary_skip_reason(int index);

/* The dataflow AUTO chose ("FLAT", "FLASH"), or "-". */
const char *summary_auto_choice(int index);

/* Worst relative row error of the case over its repetitions. */
double summary_worst_error(int index);

/* The case ran or was skipped (it was not filtered out). */
int summary_touched(int index);

/* The case of (kind, shape, isa, dataflow, threads); the baseline matches any
 * isa and dataflow. -1 when not listed. */
int summary_find_case(bench_kind kind, int shape, flat_isa isa, flat_dataflow df, int threads);

/* The figures (figures.h) of case `index` at its median call; NAN rates and
 * no ceilings when it did not run. */
bench_figures summary_figures(int index);

/* Some case ran on `threads` threads, so its ceilings were measured. */
int summary_any_ran(int threads);

/* "*" for a fraction of a ceiling above 1 (remembered for the note), else "". */
const char *summary_over_mark(double frac);

/* After a table with a "*": one line on what a figure above 100% means. */
void summary_print_over_note(FILE *f);

/* The kernel table the tables show: the best one that ran. */
flat_isa summary_isa(void);

/* The summary's text (summary_tables.c) and the roofline's parts
 * (summary_roofline.c): the sweep table and the plot's data file. */
void summary_write_text(FILE *f, const bench_config *cfg, flat_isa isa);
void summary_write_gflops_dat(FILE *f, const bench_config *cfg, flat_isa isa);
void summary_print_sweep(FILE *f, const bench_config *cfg, flat_isa isa);
void summary_write_roofline_dat(FILE *f, const bench_config *cfg, flat_isa isa);

#endif
