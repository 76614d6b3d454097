/*
 * flat-bench-invariance: what FLAT_FLAG_BATCH_INVARIANT costs, per shape of
 * shapes.csv, at 1 and 2 threads (or --threads N only).
 *
 * Calls with and without the flag alternate (A B B A, so drift and a noisy
 * neighbour hit both alike), each on cold K/V for decode-like shapes
 * (workload_alloc_cold); the line gives the median time of each and their
 * ratio, and the median of the per-pair ratios, which a neighbour's burst
 * disturbs less than either median alone.
 *
 *   flat-bench-invariance [--quick] [--threads N] [--pairs N] [--shapes FILE]
 */
#include <flat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shapes.h"
#include "workload.h"

enum { MAX_PAIRS = 200 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static double timed_call(workload *w, const flat_options *opt)
{
    workload_next_kv(w);
    double t0 = now();
    flat_status s = flat_attention(&w->tq, &w->tk, &w->tv, &w->tout, opt);
    double t = now() - t0;
    if (s != FLAT_OK) {
        fprintf(stderr, "flat-bench-invariance: %s\n", flat_last_error());
        exit(1);
    }
    return t;
}

/* Pairs so that a shape takes about `budget` seconds (at least 3 pairs). */
static int pairs_for(double one_call, double budget, int max_pairs)
{
    int n = (int)(budget / (2 * one_call));
    return n < 3 ? 3 : n > max_pairs ? max_pairs : n;
}

static void shape_line(workload *w, int threads, int max_pairs, double budget)
{
    flat_options base = {.causal = w->shape.causal, .num_threads = threads};
    flat_options inv = base;
    inv.flags = FLAT_FLAG_BATCH_INVARIANT;
    double a[MAX_PAIRS], b[MAX_PAIRS], ratio[MAX_PAIRS];
    double warm = timed_call(w, &base) + timed_call(w, &inv); /* warm-up, sizing */
    int n = pairs_for(warm / 2, budget, max_pairs);
    for (int i = 0; i < n; i++) {
        if (i % 2 == 0) {
            a[i] = timed_call(w, &base);
            b[i] = timed_call(w, &inv);
        } else {
            b[i] = timed_call(w, &inv);
            a[i] = timed_call(w, &base);
        }
        ratio[i] = b[i] / a[i];
    }
    double ma = median(a, n), mb = median(b, n), mr = median(ratio, n);
    printf("| %s | %d | %.3f | %.3f | %.3fx | %.3fx | %d |\n", w->shape.name, threads, 1e3 * ma,
           1e3 * mb, mb / ma, mr, n);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *path = FLAT_BENCH_SHAPES;
    int quick = 0, only_threads = 0, max_pairs = 15;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            only_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pairs") && i + 1 < argc)
            max_pairs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "usage: flat-bench-invariance [--quick] [--threads N] [--pairs N] "
                            "[--shapes FILE]\n");
            return 2;
        }
    }
    if (max_pairs < 3 || max_pairs > MAX_PAIRS || only_threads < 0) {
        fprintf(stderr, "flat-bench-invariance: --pairs in [3, %d], --threads >= 0\n", MAX_PAIRS);
        return 2;
    }
    bench_shape *shapes;
    char err[256];
    int n = shapes_load(path, &shapes, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "flat-bench-invariance: %s\n", err);
        return 1;
    }
    double budget = quick ? 0.5 : 8.0; /* seconds of calls per shape and thread count */
    printf("## Batch invariance (FLAT_FLAG_BATCH_INVARIANT against without, AUTO, interleaved "
           "pairs)\n\n| shape | threads | ms without | ms with | with / without (medians) | "
           "median of pair ratios | pairs |\n|---|--:|--:|--:|--:|--:|--:|\n");
    for (int i = 0; i < n; i++) {
        workload w;
        if (workload_alloc_cold(&w, &shapes[i], 0x5eed) != 0) {
            fprintf(stderr, "flat-bench-invariance: %s: out of memory\n", shapes[i].name);
            return 1;
        }
        for (int t = 1; t <= 2; t++)
            if (!only_threads || only_threads == t)
                shape_line(&w, t, quick ? 3 : max_pairs, budget);
        if (only_threads > 2)
            shape_line(&w, only_threads, quick ? 3 : max_pairs, budget);
        workload_free(&w);
    }
    free(shapes);
    return 0;
}
