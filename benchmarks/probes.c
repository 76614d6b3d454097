#include "probes.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Per-ISA chain kernels from peak_fma.c: run `iters` steps, return FLOPs. */
typedef double (*fma_chain_fn)(int64_t iters);
double peak_fma_chains_baseline(int64_t iters);
double peak_fma_chains_avx2(int64_t iters);
double peak_fma_chains_avx512(int64_t iters);
double peak_fma_chains_neon(int64_t iters);

enum {
    RUNS_PER_ROUND = 7,
    MAX_ROUNDS = 4,
    CACHE_SLOTS = 64,
};
static const double STABLE_SPREAD = 0.05; /* a round within 5% is trusted */
static const double PROBE_RUN_SECONDS = 0.025;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One probe run: returns a rate (GFLOP/s or GB/s). */
typedef double (*probe_run_fn)(void *ctx, int threads);

/* Median of RUNS_PER_ROUND runs; another round while the spread says another
 * process took the CPU, keeping the quietest round. */
static probe_result measure(probe_run_fn run, void *ctx, int threads)
{
    probe_result best = {0, 1e9, 0};
    for (int round = 1; round <= MAX_ROUNDS; round++) {
        double rates[RUNS_PER_ROUND];
        for (int i = 0; i < RUNS_PER_ROUND; i++)
            rates[i] = run(ctx, threads);
        qsort(rates, RUNS_PER_ROUND, sizeof rates[0], compare_doubles);
        double median = rates[RUNS_PER_ROUND / 2];
        double spread = (rates[RUNS_PER_ROUND - 1] - rates[0]) / median;
        if (spread < best.spread)
            best = (probe_result){median, spread, round};
        best.rounds = round;
        if (spread <= STABLE_SPREAD)
            break;
    }
    return best;
}

/* ---- FMA peak ---------------------------------------------------------- */

typedef struct {
    fma_chain_fn chains;
    int64_t iters; /* per thread per run */
} fma_probe;

static double thread_cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Each thread's rate over its own CPU time, summed: a thread another process
 * preempts for a while does not lower the measured ceiling of the hardware
 * (the cores are shared during development). The chains never block, so CPU
 * time equals wall time on a quiet machine. */
static double fma_run(void *ctx, int threads)
{
    const fma_probe *p = ctx;
    double rate = 0;
#pragma omp parallel num_threads(threads) reduction(+ : rate)
    {
        double t0 = thread_cpu_seconds();
        double flops = p->chains(p->iters);
        rate += flops / (thread_cpu_seconds() - t0) * 1e-9;
    }
    return rate;
}

/* Grows the step count until a run lasts PROBE_RUN_SECONDS; on the way the
 * vector units power up and the clock settles, so this is also the warm-up. */
static int64_t calibrate_fma(fma_chain_fn chains, int threads)
{
    fma_probe p = {chains, 1 << 12};
    for (;;) {
        double t0 = now_seconds();
        fma_run(&p, threads);
        double t = now_seconds() - t0;
        if (t >= PROBE_RUN_SECONDS / 4)
            return (int64_t)((double)p.iters * PROBE_RUN_SECONDS / t) + 1;
        p.iters *= 2;
    }
}

static fma_chain_fn chains_for(flat_isa isa)
{
    switch (isa) {
    case FLAT_ISA_SCALAR: return peak_fma_chains_baseline;
#if defined(PEAK_HAVE_AVX2)
    case FLAT_ISA_AVX2: return peak_fma_chains_avx2;
#endif
#if defined(PEAK_HAVE_AVX512)
    case FLAT_ISA_AVX512: return peak_fma_chains_avx512;
#endif
#if defined(PEAK_HAVE_NEON)
    case FLAT_ISA_NEON: return peak_fma_chains_neon;
#endif
    default: return NULL;
    }
}

/* ---- STREAM triad ------------------------------------------------------ */

typedef struct {
    float *a, *b, *c;
    int64_t n;
} triad_arrays;

static double triad_run(void *ctx, int threads)
{
    triad_arrays *t = ctx;
    float *restrict a = t->a;
    const float *restrict b = t->b, *restrict c = t->c;
    const float s = 3.0f;
    double t0 = now_seconds();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < t->n; i++)
        a[i] = b[i] + s * c[i];
    return 3.0 * sizeof(float) * (double)t->n / (now_seconds() - t0) * 1e-9;
}

/* Each array is 4x the last-level cache (at least 64 MiB), so the triad
 * streams from DRAM; first touch uses the triad's own schedule so every
 * thread's pages sit where that thread reads them. */
static int triad_alloc(triad_arrays *t, int threads)
{
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    int64_t bytes = 4 * (l3 > 0 ? (int64_t)l3 : 0);
    if (bytes < (64 << 20))
        bytes = 64 << 20;
    t->n = bytes / (int64_t)sizeof(float);
    t->a = malloc((size_t)bytes);
    t->b = malloc((size_t)bytes);
    t->c = malloc((size_t)bytes);
    if (!t->a || !t->b || !t->c)
        return -1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < t->n; i++) {
        t->a[i] = 0.0f;
        t->b[i] = 1.0f;
        t->c[i] = 2.0f;
    }
    return 0;
}

static void triad_free(triad_arrays *t)
{
    free(t->a);
    free(t->b);
    free(t->c);
}

/* ---- cache of results, one slot per (kind, isa, threads) ---------------- */

typedef struct {
    int used, kind, isa, threads;
    probe_result result;
} cache_slot;

enum { KIND_FMA, KIND_TRIAD };
static cache_slot cache[CACHE_SLOTS];

static cache_slot *cache_find(int kind, int isa, int threads, int *found)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_slot *s = &cache[i];
        if (!s->used || (s->kind == kind && s->isa == isa && s->threads == threads)) {
            *found = s->used;
            *s = (cache_slot){1, kind, isa, threads, s->result};
            return s;
        }
    }
    *found = 0;
    return NULL;
}

const probe_result *probe_fma_peak(flat_isa isa, int threads)
{
    fma_chain_fn chains = chains_for(isa);
    int found;
    cache_slot *slot = chains ? cache_find(KIND_FMA, isa, threads, &found) : NULL;
    if (!slot)
        return NULL;
    if (!found) {
        fma_probe p = {chains, calibrate_fma(chains, threads)};
        slot->result = measure(fma_run, &p, threads);
    }
    return &slot->result;
}

const probe_result *probe_triad_bandwidth(int threads)
{
    int found;
    cache_slot *slot = cache_find(KIND_TRIAD, 0, threads, &found);
    if (!slot)
        return NULL;
    if (!found) {
        triad_arrays t;
        if (triad_alloc(&t, threads) == 0) {
            triad_run(&t, threads); /* warm-up: page tables, prefetchers */
            slot->result = measure(triad_run, &t, threads);
        }
        triad_free(&t);
    }
    return &slot->result;
}
