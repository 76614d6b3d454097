/*
 * flat-bench-quantize: flat_quantize's throughput, through the public call,
 * on one thread (the call is single-threaded).
 *
 *   flat-bench-quantize [reps] [isa...]     defaults: 21 reps, the AUTO table
 *
 * Rows of 128 (a [1, 8, 1024, 128] tensor: 1M values, 4 MB of f32, the size
 * of a 1024-token prefill chunk of one layer's K), groups of 32 and of 128
 * with computed f16 scales, f32 and bf16 sources, I8, F8E4M3 and I4 codes.
 * GB/s counts the source bytes read (what the call consumes); codes and
 * scales written are a quarter to an eighth of that on top. With isa names
 * (scalar, avx2, avx512, ...) each repetition times every case under each
 * table in turn (FLAT_ISA, which AUTO calls read on every call), so drift
 * from other load hits all alike; medians over the repetitions. Times are
 * the thread's CPU time (robust to a shared machine) and wall time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flat.h"

/* The calling thread's CPU time: the call is single-threaded, and on a
 * shared machine wall time also counts the time other processes held the
 * core (both are printed). */
static double now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

/* Values of a K cache row: uniform in [-4, 4) with an outlier channel. */
static void fill(void *p, int64_t n, flat_dtype t)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float x = (float)((double)(s >> 40) / (double)(1ull << 24) * 8.0 - 4.0);
        if (i % 128 == 5)
            x *= 16.0f;
        if (t == FLAT_F32) {
            ((float *)p)[i] = x;
        } else {
            uint32_t u;
            memcpy(&u, &x, 4);
            ((uint16_t *)p)[i] = (uint16_t)(u >> 16); /* bf16, truncated: any value will do */
        }
    }
}

enum { H = 8, S = 1024, D = 128, NCASE = 12, MAXISA = 8 };

typedef struct {
    flat_dtype src, dst;
    int group;
} qcase;

static const char *type_name(flat_dtype t)
{
    static const char *n[] = {"f32", "f16", "bf16", "i8", "f8e4m3", "i4"};
    return n[t];
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 21;
    if (reps < 3)
        reps = 3;
    const char *isas[MAXISA] = {"auto"};
    int nisa = 1;
    if (argc > 2)
        for (nisa = 0; nisa + 2 < argc && nisa < MAXISA; nisa++)
            isas[nisa] = argv[nisa + 2];
    qcase cases[NCASE];
    int nc = 0;
    const flat_dtype srcs[2] = {FLAT_F32, FLAT_BF16}, dsts[3] = {FLAT_I8, FLAT_F8E4M3, FLAT_I4};
    for (int g = 0; g < 2; g++)
        for (int si = 0; si < 2; si++)
            for (int di = 0; di < 3; di++)
                cases[nc++] = (qcase){srcs[si], dsts[di], g ? 128 : 32};
    const int64_t n = (int64_t)H * S * D;
    void *src[2] = {malloc((size_t)n * 4), malloc((size_t)n * 2)};
    void *dst = malloc((size_t)n), *sc = malloc((size_t)n / 32 * 2);
    fill(src[0], n, FLAT_F32), fill(src[1], n, FLAT_BF16);
    double *t = malloc(sizeof(double) * (size_t)(reps * NCASE * nisa));
    double *w = malloc(sizeof(double) * (size_t)(reps * NCASE * nisa));
    for (int r = -1; r < reps; r++)
        for (int c = 0; c < NCASE; c++)
            for (int i = 0; i < nisa; i++) {
                setenv("FLAT_ISA", isas[i], 1);
                const qcase *q = &cases[c];
                flat_tensor ts = flat_tensor_bhsd(src[q->src == FLAT_BF16], q->src, 1, H, S, D);
                flat_tensor td = flat_tensor_bhsd(dst, q->dst, 1, H, S, D);
                flat_tensor tc = flat_tensor_bhsd(sc, FLAT_F16, 1, H, S, D / q->group);
                double t0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
                if (flat_quantize(&ts, &td, &tc, q->group, 0) != FLAT_OK) {
                    fprintf(stderr, "flat_quantize (FLAT_ISA=%s): %s\n", isas[i],
                            flat_last_error());
                    return 1;
                }
                if (r >= 0) {
                    t[(c * nisa + i) * reps + r] = now(CLOCK_THREAD_CPUTIME_ID) - t0;
                    w[(c * nisa + i) * reps + r] = now(CLOCK_MONOTONIC) - w0;
                }
            }
    printf("flat-bench-quantize: [1,%d,%d,%d] rows of %d, computed f16 scales, 1 thread, "
           "median of %d interleaved repetitions; GB/s of source bytes read\n\n",
           H, S, D, D, reps);
    printf("| src | dst | group |");
    for (int i = 0; i < nisa; i++)
        printf(" %s cpu ms | %s GB/s (cpu) | GB/s (wall) |", isas[i], isas[i]);
    printf("\n|---|---|---|");
    for (int i = 0; i < nisa; i++)
        printf("---|---|---|");
    printf("\n");
    for (int c = 0; c < NCASE; c++) {
        printf("| %s | %s | %d |", type_name(cases[c].src), type_name(cases[c].dst),
               cases[c].group);
        const double bytes = (double)n * (cases[c].src == FLAT_F32 ? 4 : 2);
        for (int i = 0; i < nisa; i++) {
            double sec = median(t + (c * nisa + i) * reps, reps);
            double wall = median(w + (c * nisa + i) * reps, reps);
            printf(" %.3f | %.2f | %.2f |", sec * 1e3, bytes / sec / 1e9, bytes / wall / 1e9);
        }
        printf("\n");
    }
    free(t), free(w), free(src[0]), free(src[1]), free(dst), free(sc);
    return 0;
}
