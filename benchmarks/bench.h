/*
 * The benchmark suite's C side. bench_main.cc (C++) only registers the cases
 * listed here with Google Benchmark and drives the timing loop; everything
 * else -- which cases exist, how each one runs, its counters, the summary --
 * is C, like the library.
 *
 * A case is one (shape, implementation, ISA, dataflow, threads), named
 *   flat/<shape>/<isa>/<FLAT|FLASH|AUTO>/t<threads>
 *   flat/qsweep_q<N>/<isa>/AUTO/t<threads>  (the q_len sweep: best table, AUTO)
 *   flat/<shape>+<variant>/<isa>/AUTO/t<threads>  (a decode-like shape with
 *       other element types, e.g. +kv_bf16, +bf16, or paged K/V, +paged16)
 *   openblas/<shape>/t<threads>            (the unfused baseline)
 *   ukernel/<isa>/<qk|exp2_row|pv>[/d<D>]  (one micro-kernel, one thread)
 * so --benchmark_filter selects by any part (Google Benchmark appends
 * /manual_time: the bodies time each call themselves).
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>

#include "flat.h"
#include "shapes.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { BENCH_MAX_THREAD_COUNTS = 8 };

/* The suite's own flags (Google Benchmark's are parsed by it). */
typedef struct {
    const char *shapes_path;  /* --flat_shapes=PATH, env FLAT_BENCH_SHAPES, or the
                                 benchmarks/shapes.csv compiled in */
    const char *qsweep_path;  /* --flat_qsweep=PATH: the q_len sweep's shapes, or
                                 "none"; default benchmarks/qsweep.csv compiled in */
    const char *summary_dir;  /* --flat_summary_dir=DIR: write summary.md,
                                 gflops.dat and roofline.dat there; NULL: stdout only */
    int threads[BENCH_MAX_THREAD_COUNTS]; /* --flat_threads=1,2 */
    int n_threads;
    double time_budget;       /* --flat_time_budget=SECONDS: cases starting after
                                 this many seconds of timed work (setup not
                                 counted) are skipped; 0 = none */
    double max_call_seconds;  /* --flat_max_call_seconds=S: skip a non-primary case
                                 when the rate of the previous shape on the same ISA
                                 and thread count predicts a call longer than S */
    double memory_budget_gib; /* --flat_memory_budget=GIB for the baseline's score
                                 matrices (default 8) */
    int variants;             /* --flat_variants=1|0: the dtype and paged variants
                                 of the decode-like shapes (default 1) */
} bench_config;

/* Fills cfg from defaults and removes the --flat_* flags it recognises from
 * argv. Returns 0, or -1 after printing what was wrong. */
int bench_config_parse(int *argc, char **argv, bench_config *cfg);

/* Prints the suite's flags (appended to --help). */
void bench_config_usage(void);

typedef enum { BENCH_FLAT, BENCH_UNFUSED } bench_kind;

typedef struct {
    char name[96];
    bench_kind kind;
    int shape;              /* index into the loaded shape set */
    flat_isa isa;           /* FLAT: the kernel table; UNFUSED: the CPU's best,
                               whose peak the baseline is measured against */
    flat_dataflow dataflow; /* FLAT only */
    int threads;
    int primary;            /* the best table or the baseline: the summary table's
                               cases, exempt from --flat_max_call_seconds */
} bench_case;

/* Loads the shapes and the sweep and lists every case: each runnable kernel
 * table (best first) x shape x {FLAT, FLASH, AUTO} x thread count, the
 * baseline per shape x thread count right after the best table's cases of
 * that shape, and the sweep's points (best table, AUTO) x thread count after
 * the best table's shapes. Returns the number of cases, or -1 after printing
 * why. */
int bench_cases_build(const bench_config *cfg);
int bench_case_count(void);
const bench_case *bench_case_get(int index);

/* The shape set's shapes come first (each decode-like one followed by its
 * dtype and paged variants), then the sweep's points. */
int bench_shape_count(void);
int bench_shape_is_variant(int index);
const bench_shape *bench_shape_get(int index);
int bench_shape_in_sweep(int index);

/* One case being run: its workload, options and results. */
typedef struct bench_run bench_run;

/* Prepares case `index` (inputs, one warm-up call for short shapes). Returns
 * NULL when the case must be skipped, with the reason in `why`. */
bench_run *bench_open(int index, char *why, size_t why_len);

/* Runs the case once; returns the seconds it took, or -1 on failure with the
 * message in bench_error(). */
double bench_iterate(bench_run *r);
const char *bench_error(const bench_run *r);

typedef struct {
    const char *name;
    double value;
} bench_counter;

/* After the timed loop: checks the output against the double-precision
 * reference, records the median call for the summary and fills `out` with
 * the counters of one call lasting seconds_per_call (Google Benchmark's mean,
 * so the JSON stays self-consistent). Returns how many. */
int bench_finish(bench_run *r, double seconds_per_call, bench_counter *out, int max);

/* "AUTO->FLAT" / "AUTO->FLASH" for AUTO cases, "" otherwise. */
const char *bench_label(const bench_run *r);

void bench_close(bench_run *r);

/* A family of cases as the shim sees it: the attention cases above, or the
 * micro-kernel cases of bench_ukernels.c. `run` is the family's own state. */
typedef struct {
    int (*count)(void);
    const char *(*name)(int index);
    void *(*open)(int index, char *why, size_t why_len);
    double (*iterate)(void *run);
    const char *(*error)(const void *run);
    int (*finish)(void *run, double seconds_per_call, bench_counter *out, int max);
    const char *(*label)(const void *run);
    void (*close)(void *run);
} bench_family;

extern const bench_family bench_attention_family;
extern const bench_family bench_ukernel_family;

/* Prints the summary table of every case that ran (and writes the files of
 * --flat_summary_dir). Returns how many cases failed: an error from
 * flat_attention, or an output off the double-precision reference. */
int bench_summary_print(const bench_config *cfg);

#ifdef __cplusplus
}
#endif

#endif
