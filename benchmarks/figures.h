/* What one timed call means against this machine's ceilings: the figures
 * every report of the suite prints (JSON counters, summary tables, the
 * roofline plot, flat-bench), computed in one place so they never disagree. */
#ifndef BENCH_FIGURES_H
#define BENCH_FIGURES_H

#include "flat.h"
#include "shapes.h"

typedef struct {
    double gflops;         /* shape_flops / seconds */
    double kv_gbs;         /* bytes of K and V (each read once) per second */
    double flops_per_byte; /* shape_flops / shape_kv_bytes: arithmetic intensity */
    double peak_gflops;    /* FP32 FMA peak of the ISA on the threads; 0 if no probe */
    double read_gbs;       /* read-only bandwidth on the threads (probes.h); 0 if none */
    double roof_gflops;    /* attainable: min(peak, FLOP/B x read bandwidth); 0 if unknown */
} bench_figures;

/*
 * The figures of a call of shape s on `threads` threads of kernel table isa
 * that took `seconds` (NAN: only the ceilings). Measures a probe that has not
 * run yet in this process, so call it once before timing anything.
 */
bench_figures figures_of(const bench_shape *s, flat_isa isa, int threads, double seconds);

/* Fractions of the ceilings, NAN where a ceiling is unknown. */
double figures_peak_frac(const bench_figures *f); /* gflops / peak */
double figures_roof_frac(const bench_figures *f); /* gflops / attainable */
double figures_bw_frac(const bench_figures *f);   /* kv_gbs / read bandwidth */

#endif
