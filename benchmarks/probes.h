/* Machine ceilings measured in the same process as the benchmarks: the FP32
 * FMA peak per ISA and thread count, and STREAM-triad memory bandwidth. */
#ifndef BENCH_PROBES_H
#define BENCH_PROBES_H

#include "flat.h"

typedef struct {
    double value;  /* median of the kept round: GFLOP/s or GB/s (1e9 bytes/s) */
    double spread; /* (max - min) / median of that round */
    int rounds;    /* rounds taken; more than one means the first were noisy */
} probe_result;

/*
 * FP32 FMA peak of `isa`'s vector unit on `threads` threads (OpenMP), in
 * GFLOP/s: independent FMA chains (peak_fma.c), each thread's rate taken over
 * its own CPU time so that other processes on the cores do not lower it.
 * Measured on first use for each (isa, threads), then cached.
 * Returns NULL when this build has no probe for the ISA.
 */
const probe_result *probe_fma_peak(flat_isa isa, int threads);

/* STREAM triad a[i] = b[i] + s*c[i] over arrays far larger than the last-level
 * cache, counted as STREAM does (3 arrays x 4 bytes per element, no
 * write-allocate traffic), on `threads` threads, in GB/s. Cached like the
 * peak; value is 0 when the arrays could not be allocated. */
const probe_result *probe_triad_bandwidth(int threads);

#endif
