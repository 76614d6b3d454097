/*
 * ab-threads: the median time of flat_attention (what users call) on each
 * shape of a shapes file at one thread count, from whichever libflat the
 * dynamic loader finds: benchmarks/ab_threads.sh runs it alternately on the
 * OpenMP build and the -DFLAT_OPENMP=OFF build (same binary, LD_LIBRARY_PATH)
 * to compare the two runtimes.
 *
 *   ab-threads <shapes.csv> <threads> <reps> [shape]
 * prints "<shape> <threads> <median ms>" per shape; reps timed calls after
 * one warm-up call (long shapes: at least one).
 */
#include <flat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *filled(size_t n, unsigned seed)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++)
        x[i] = (float)(((i * 2654435761u + seed) >> 8) & 1023) / 1024.0f - 0.5f;
    return x;
}

static double time_shape(long long B, long long Hq, long long Hkv, long long Nq, long long Nk,
                         long long D, int causal, int threads, int reps)
{
    float *q = filled((size_t)(B * Hq * Nq * D), 1), *k = filled((size_t)(B * Hkv * Nk * D), 2);
    float *v = filled((size_t)(B * Hkv * Nk * D), 3), *o = filled((size_t)(B * Hq * Nq * D), 4);
    if (!q || !k || !v || !o)
        return -1;
    flat_tensor tq = flat_tensor_bshd(q, FLAT_F32, B, Nq, Hq, D);
    flat_tensor tk = flat_tensor_bshd(k, FLAT_F32, B, Nk, Hkv, D);
    flat_tensor tv = flat_tensor_bshd(v, FLAT_F32, B, Nk, Hkv, D);
    flat_tensor to = flat_tensor_bshd(o, FLAT_F32, B, Nq, Hq, D);
    flat_options opt = {0};
    opt.causal = causal, opt.num_threads = threads;
    double t[256];
    reps = reps > 256 ? 256 : reps;
    for (int r = -1; r < reps; r++) {
        double t0 = now_ms();
        if (flat_attention(&tq, &tk, &tv, &to, &opt) != FLAT_OK) {
            fprintf(stderr, "ab-threads: %s\n", flat_last_error());
            exit(1);
        }
        if (r >= 0)
            t[r] = now_ms() - t0;
    }
    free(q), free(k), free(v), free(o);
    qsort(t, (size_t)reps, sizeof t[0], cmp);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ab-threads <shapes.csv> <threads> <reps> [shape]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    int threads = atoi(argv[2]), reps = atoi(argv[3]);
    char line[256], name[64];
    while (f && fgets(line, sizeof line, f)) {
        long long B, Hq, Hkv, Nq, Nk, D;
        int causal;
        if (line[0] == '#' || sscanf(line, "%63[^,],%lld,%lld,%lld,%lld,%lld,%lld,%d", name, &B, &Hq,
                                     &Hkv, &Nq, &Nk, &D, &causal) != 8)
            continue;
        if (argc > 4 && strcmp(argv[4], name) != 0)
            continue;
        /* about a second of timed calls at most, 3 at least */
        double once = time_shape(B, Hq, Hkv, Nq, Nk, D, causal, threads, 1);
        int n = once > 0 ? (int)(1000.0 / once) : reps;
        n = n < 3 ? 3 : n > reps ? reps : n;
        printf("%s %d %.4f\n", name, threads, time_shape(B, Hq, Hkv, Nq, Nk, D, causal, threads, n));
        fflush(stdout);
    }
    return f ? 0 : 1;
}
