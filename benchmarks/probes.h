/* Machine ceilings measured in the same process as the benchmarks: the FP32
 * FMA peak per ISA and thread count, read-only memory bandwidth (the ceiling
 * of decode, which streams K and V and writes almost nothing) and, for
 * comparison with other reports, STREAM-triad bandwidth. */
#ifndef BENCH_PROBES_H
#define BENCH_PROBES_H

#include <stdint.h>

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

/* Read-only bandwidth in GB/s: a vectorised sum (probe_read.c) over 8x the
 * last-level cache within 1 to 2 GiB, each of `threads` threads reading its own
 * part, which it first-touched; the fastest of 9 passes after a warm-up pass
 * (STREAM's "best", since other processes on the cores only slow passes
 * down); spread over those passes. This is the bandwidth ceiling of the
 * roofline. Cached like the peak; value 0 when the array could not be had. */
const probe_result *probe_read_bandwidth(int threads);

/* Read-only bandwidth in GB/s over the read probe's buffer cut into pages of
 * page_bytes (a multiple of 256) visited in a scrambled order, each page's
 * successor prefetched while it is read, as flat's decode kernels do on a
 * paged cache: the ceiling of a paged decode, which no hardware prefetcher
 * helps across pages and which pays a TLB walk per 4 KiB page. NULL for an
 * unusable size. Measured on first use for each (page_bytes, threads). */
const probe_result *probe_paged_read_bandwidth(int64_t page_bytes, int threads);

/* Bytes the read probe sums per pass. */
int64_t probe_read_bytes(void);

/* Bytes of the CPU's last-level cache as reported: FLAT_CACHE_SIZES's third
 * size, else sysfs, else sysconf (CPUID), else 32 MiB. A claim only: buffers
 * sized from it are bounded (probes.c). */
int64_t probe_llc_bytes(void);

/* Where probe_llc_bytes's figure came from, for the summary. */
const char *probe_llc_source(void);

/* Bytes the cold-cache rotation of K/V copies spans (workload.h): 4x the LLC
 * within 64 to 256 MiB; FLAT_BENCH_COLD_MIB=N sets it (to measure that the
 * bound keeps K/V cold). */
int64_t probe_cold_span_bytes(void);

#endif
