#include "probes.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

/* Per-ISA chain kernels from peak_fma.c: run `iters` steps, return FLOPs. */
typedef double (*fma_chain_fn)(int64_t iters);
double peak_fma_chains_baseline(int64_t iters);
double peak_fma_chains_avx2(int64_t iters);
double peak_fma_chains_avx512(int64_t iters);
double peak_fma_chains_neon(int64_t iters);
double peak_fma_chains_avx512_bf16(int64_t iters);
double peak_fma_chains_amx_bf16(int64_t iters);
double peak_fma_chains_avx512_vnni(int64_t iters);

/* probe_read.c: the sum of a[0..n) and b[0..n), vectorised. */
double probe_read_sum(const float *a, const float *b, int64_t n);
double probe_read_pages(const float *x, const int64_t *order, int64_t pages, int64_t floats,
                        int64_t ahead);

enum {
    RUNS_PER_ROUND = 7,
    MAX_ROUNDS = 4,
    READ_PASSES = 9,
    CACHE_SLOTS = 64,
    MAX_CACHE_INDEX = 8,
};
static const double STABLE_SPREAD = 0.05; /* a round within 5% is trusted */
static const double PROBE_RUN_SECONDS = 0.025;
static const int64_t MIB = 1 << 20;
static const int64_t READ_PROBE_MIN_BYTES = (int64_t)1 << 30;
/* Bounds on every buffer sized from the LLC: a reported LLC is a claim (a VM
 * may pass the host's 508 MiB through CPUID), and buffers sized from a false
 * one cost tens of seconds of page faults. 256 MiB is 4x the largest L3 one
 * core reads from on current x86 parts (a 64 MiB V-cache CCD; larger
 * per-package figures are split among CCXs). */
static const int64_t LLC_BOUND = 256 * ((int64_t)1 << 20);
static const int64_t READ_PROBE_MAX_BYTES = (int64_t)2 << 30;
static const int64_t TRIAD_ARRAY_MIN = 64 * ((int64_t)1 << 20);
static const int64_t TRIAD_ARRAY_MAX = 256 * ((int64_t)1 << 20);
static const int64_t COLD_SPAN_MIN = 64 * ((int64_t)1 << 20);
static const int64_t COLD_SPAN_MAX = 256 * ((int64_t)1 << 20);

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

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

/* The median of n rates (sorted in place) and their spread. */
static probe_result summarise(double *rates, int n, int round)
{
    qsort(rates, (size_t)n, sizeof rates[0], compare_doubles);
    double median = rates[n / 2];
    return (probe_result){median, (rates[n - 1] - rates[0]) / median, round};
}

/* Median of RUNS_PER_ROUND runs; another round while the spread says another
 * process took the CPU, keeping the quietest round. */
static probe_result measure(probe_run_fn run, void *ctx, int threads)
{
    probe_result best = {0, 1e9, 0};
    for (int round = 1; round <= MAX_ROUNDS; round++) {
        double rates[RUNS_PER_ROUND];
        for (int i = 0; i < RUNS_PER_ROUND; i++)
            rates[i] = run(ctx, threads);
        probe_result r = summarise(rates, RUNS_PER_ROUND, round);
        if (r.spread < best.spread)
            best = r;
        best.rounds = round;
        if (r.spread <= STABLE_SPREAD)
            break;
    }
    return best;
}

/* The fastest of `runs` runs (at most READ_PASSES), as STREAM reports: on
 * shared cores another process can only slow a memory pass down, so the
 * fastest pass is the closest to what the memory system delivers. */
static probe_result measure_best(probe_run_fn run, void *ctx, int threads, int runs)
{
    double rates[READ_PASSES];
    for (int i = 0; i < runs; i++)
        rates[i] = run(ctx, threads);
    probe_result r = summarise(rates, runs, 1);
    r.value = rates[runs - 1];
    return r;
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
#if defined(PEAK_HAVE_AVX512_BF16)
    case FLAT_ISA_AVX512_BF16: return peak_fma_chains_avx512_bf16; /* vdpbf16ps */
#endif
#if defined(PEAK_HAVE_NEON)
    case FLAT_ISA_NEON: return peak_fma_chains_neon;
#endif
#if defined(PEAK_HAVE_AMX_BF16)
    case FLAT_ISA_AMX_BF16: return peak_fma_chains_amx_bf16; /* tdpbf16ps */
#endif
#if defined(PEAK_HAVE_AVX512_VNNI)
    case FLAT_ISA_AVX512_VNNI: return peak_fma_chains_avx512_vnni; /* fp32 FMA (prefill) */
#endif
    default: return NULL;
    }
}

/* ---- last-level cache size -------------------------------------------- */

/* "32768K" -> bytes; 0 when unreadable. */
static int64_t sysfs_cache_size(int index, int *level)
{
    char path[96], text[32] = "";
    long long size = 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", index);
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "%d", level) != 1)
        *level = 0;
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
    f = fopen(path, "r");
    char unit = 0;
    if (f && fscanf(f, "%31s", text) == 1 && sscanf(text, "%lld%c", &size, &unit) >= 1)
        size *= unit == 'K' ? 1024 : unit == 'M' ? MIB : 1;
    if (f)
        fclose(f);
    return size;
}

/* The third size of FLAT_CACHE_SIZES ("L1D,L2,L3", as the library reads
 * it), or 0: forces a claim, e.g. a VM's 508 MiB with no sysfs entries. */
static int64_t forced_llc_bytes(void)
{
    const char *env = getenv("FLAT_CACHE_SIZES");
    const char *last = env ? strrchr(env, ',') : NULL;
    if (!last)
        return -1;
    char *end;
    long long v = strtoll(last + 1, &end, 10);
    int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20
                : *end == 'G' || *end == 'g'                                 ? 30
                                                                             : 0;
    return end == last + 1 || v < 0 || v > (1ll << 40) >> shift ? -1 : (int64_t)v << shift;
}

static const char *llc_source = "default";

/* FLAT_CACHE_SIZES, then sysfs: under a hypervisor glibc's sysconf can
 * report the host's L3 (384 MiB on this project's VMs, where the guest sees
 * 32 MiB); then sysconf. Every buffer sized from the result is bounded
 * (LLC_BOUND), so a false claim costs no more than a large true one. */
int64_t probe_llc_bytes(void)
{
    int64_t forced = forced_llc_bytes();
    if (forced >= 0) {
        llc_source = "FLAT_CACHE_SIZES";
        return forced > 0 ? forced : 32 * MIB;
    }
    int64_t best = 0;
    int best_level = 0;
    for (int i = 0; i < MAX_CACHE_INDEX; i++) {
        int level;
        int64_t size = sysfs_cache_size(i, &level);
        if (size > 0 && level >= best_level) {
            best = size;
            best_level = level;
        }
    }
    long l3 = best > 0 ? 0 : sysconf(_SC_LEVEL3_CACHE_SIZE);
    llc_source = best > 0 ? "sysfs" : l3 > 0 ? "CPUID via sysconf, no sysfs entries" : "default";
    if (best == 0)
        best = l3 > 0 ? l3 : 32 * MIB;
    return best;
}

const char *probe_llc_source(void)
{
    probe_llc_bytes();
    return llc_source;
}

/* The LLC as the buffers below see it. */
static int64_t llc_for_buffers(void) { return clamp64(probe_llc_bytes(), 0, LLC_BOUND); }

int64_t probe_cold_span_bytes(void)
{
    const char *env = getenv("FLAT_BENCH_COLD_MIB"); /* to measure the rotation itself */
    long long mib = env ? atoll(env) : 0;
    if (mib > 0)
        return (int64_t)mib * MIB;
    return clamp64(4 * llc_for_buffers(), COLD_SPAN_MIN, COLD_SPAN_MAX);
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

/* Each array is 4x the last-level cache (64 to 256 MiB), so the triad
 * streams from DRAM; first touch uses the triad's own schedule so every
 * thread's pages sit where that thread reads them. */
static int triad_alloc(triad_arrays *t, int threads)
{
    int64_t bytes = clamp64(4 * llc_for_buffers(), TRIAD_ARRAY_MIN, TRIAD_ARRAY_MAX);
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

/* ---- read-only sum ---------------------------------------------------- */

typedef struct {
    float *x;
    int64_t n;
} read_array;

static volatile double read_sink; /* keeps the sums from being optimised away */

/* Thread t's part of n elements, cut at 64-byte boundaries. */
static void thread_part(int64_t n, int t, int threads, int64_t *lo, int64_t *hi)
{
    *lo = n / threads * t / 16 * 16;
    *hi = t == threads - 1 ? n : n / threads * (t + 1) / 16 * 16;
}

/* One pass: every thread sums its own part, its two halves side by side
 * (probe_read.c says why); the pass ends with the slowest thread. */
static double read_run(void *ctx, int threads)
{
    const read_array *r = ctx;
    double sum = 0, t0 = now_seconds();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
        int64_t lo, hi;
        thread_part(r->n, omp_get_thread_num(), threads, &lo, &hi);
        int64_t half = (hi - lo) / 2;
        sum += probe_read_sum(r->x + lo, r->x + lo + half, half);
    }
    double t = now_seconds() - t0;
    read_sink = sum;
    return sizeof(float) * (double)r->n / t * 1e-9;
}

/* 8x the LLC within 1 to 2 GiB, so nothing of one pass is left in cache for
 * the next. */
int64_t probe_read_bytes(void)
{
    return clamp64(8 * llc_for_buffers(), READ_PROBE_MIN_BYTES, READ_PROBE_MAX_BYTES);
}

/* Each thread first-touches the part it will read, so its pages sit on its
 * own memory node. */
static int read_alloc(read_array *r, int threads)
{
    int64_t bytes = probe_read_bytes();
    r->n = bytes / (int64_t)sizeof(float);
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)bytes) != 0)
        return -1;
    r->x = p;
#pragma omp parallel num_threads(threads)
    {
        int64_t lo, hi;
        thread_part(r->n, omp_get_thread_num(), threads, &lo, &hi);
        for (int64_t i = lo; i < hi; i++)
            r->x[i] = 1.0f;
    }
    return 0;
}

/* ---- read-only sum over shuffled pages --------------------------------- */

typedef struct {
    read_array a;
    int64_t *order; /* each thread's pages, scrambled within its part */
    int64_t floats; /* per page */
} paged_array;

/* Thread t's pages [lo, hi) of the buffer, visited lo + (i * step) % count:
 * a step coprime with the count, as benchmarks/workload.c scrambles a
 * paged pool's block table. */
static void scramble_part(int64_t *order, int64_t lo, int64_t hi)
{
    int64_t count = hi - lo, step = 7919;
    while (count > 1 && (count % step == 0 || step % count == 0))
        step += 2;
    for (int64_t i = 0; i < count; i++)
        order[lo + i] = lo + (i * step) % count;
}

static double paged_run(void *ctx, int threads)
{
    const paged_array *r = ctx;
    const int64_t pages = r->a.n / r->floats;
    /* the kernels' distance: about 8 KiB ahead, at least the next page */
    const int64_t ahead = (8192 / 4 + r->floats - 1) / r->floats;
    double sum = 0, t0 = now_seconds();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
        int64_t lo, hi;
        thread_part(pages, omp_get_thread_num(), threads, &lo, &hi);
        sum += probe_read_pages(r->a.x, r->order + lo, hi - lo, r->floats, ahead);
    }
    double t = now_seconds() - t0;
    read_sink = sum;
    return sizeof(float) * (double)(pages * r->floats) / t * 1e-9;
}

/* ---- cache of results, one slot per (kind, isa, threads) ---------------- */

typedef struct {
    int used, kind, isa, threads;
    probe_result result;
} cache_slot;

enum { KIND_FMA, KIND_TRIAD, KIND_READ };
static cache_slot cache[CACHE_SLOTS];

static cache_slot *cache_find(int kind, flat_isa isa, int threads, int *found)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_slot *s = &cache[i];
        if (!s->used || (s->kind == kind && s->isa == (int)isa && s->threads == threads)) {
            *found = s->used;
            *s = (cache_slot){1, kind, (int)isa, threads, s->result};
            return s;
        }
    }
    *found = 0;
    return NULL;
}

/* A probe measured afresh for (isa, threads). */
typedef probe_result (*probe_fresh_fn)(flat_isa isa, int threads);

/* The result of (kind, isa, threads), measured by `fresh` on first use only. */
static const probe_result *cached(int kind, flat_isa isa, int threads, probe_fresh_fn fresh)
{
    int found;
    cache_slot *slot = cache_find(kind, isa, threads, &found);
    if (slot && !found)
        slot->result = fresh(isa, threads);
    return slot ? &slot->result : NULL;
}

static probe_result fresh_fma_peak(flat_isa isa, int threads)
{
    fma_chain_fn chains = chains_for(isa);
    fma_probe p = {chains, calibrate_fma(chains, threads)};
    return measure(fma_run, &p, threads);
}

static probe_result fresh_triad(flat_isa isa, int threads)
{
    (void)isa;
    triad_arrays t;
    probe_result r = {0, 0, 0};
    if (triad_alloc(&t, threads) == 0) {
        triad_run(&t, threads); /* warm-up: page tables, prefetchers */
        r = measure(triad_run, &t, threads);
    }
    triad_free(&t);
    return r;
}

static probe_result fresh_read(flat_isa isa, int threads)
{
    (void)isa;
    read_array a = {NULL, 0};
    probe_result r = {0, 0, 0};
    if (read_alloc(&a, threads) == 0) {
        read_run(&a, threads); /* warm-up: page tables, prefetchers, clocks */
        r = measure_best(read_run, &a, threads, READ_PASSES);
    }
    free(a.x);
    return r;
}

/* Whether a call on `isa` runs here: through the public API, which also
 * asks the OS for the tile state once (AMX: the probe's first tile
 * instruction would otherwise be SIGILL). */
static int isa_runs(flat_isa isa)
{
    float q = 0, k = 0, v = 0, o = 0;
    flat_tensor tq = flat_tensor_bhsd(&q, FLAT_F32, 1, 1, 1, 1), tk = flat_tensor_bhsd(&k, FLAT_F32, 1, 1, 1, 1),
                tv = flat_tensor_bhsd(&v, FLAT_F32, 1, 1, 1, 1), to = flat_tensor_bhsd(&o, FLAT_F32, 1, 1, 1, 1);
    flat_options opt = {.isa = isa, .num_threads = 1};
    return flat_attention(&tq, &tk, &tv, &to, &opt) == FLAT_OK;
}

const probe_result *probe_fma_peak(flat_isa isa, int threads)
{
    if (isa == FLAT_ISA_AMX_BF16 && !isa_runs(isa))
        return NULL;
    return chains_for(isa) ? cached(KIND_FMA, isa, threads, fresh_fma_peak) : NULL;
}

const probe_result *probe_triad_bandwidth(int threads)
{
    return cached(KIND_TRIAD, FLAT_ISA_AUTO, threads, fresh_triad);
}

const probe_result *probe_read_bandwidth(int threads)
{
    return cached(KIND_READ, FLAT_ISA_AUTO, threads, fresh_read);
}

const probe_result *probe_paged_read_bandwidth(int64_t page_bytes, int threads)
{
    static probe_result last;
    static int64_t last_bytes;
    static int last_threads;
    if (page_bytes < 256 || page_bytes % 256)
        return NULL;
    if (last_bytes == page_bytes && last_threads == threads)
        return &last;
    paged_array p = {{NULL, 0}, NULL, page_bytes / (int64_t)sizeof(float)};
    if (read_alloc(&p.a, threads) != 0)
        return NULL;
    const int64_t pages = p.a.n / p.floats;
    p.order = malloc(sizeof(int64_t) * (size_t)pages);
    if (!p.order) {
        free(p.a.x);
        return NULL;
    }
    for (int t = 0; t < threads; t++) {
        int64_t lo, hi;
        thread_part(pages, t, threads, &lo, &hi);
        scramble_part(p.order, lo, hi);
    }
    paged_run(&p, threads); /* warm-up */
    last = measure_best(paged_run, &p, threads, READ_PASSES);
    last_bytes = page_bytes, last_threads = threads;
    free(p.order);
    free(p.a.x);
    return &last;
}
