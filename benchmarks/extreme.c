/*
 * flat-bench-extreme: the cost of extreme inputs against ordinary ones of
 * the same shape (issue 14's "no call slower than 2x"): subnormal Q/K/V,
 * subnormal V, logits near the fp32 overflow, all-equal keys, and 2^20 keys
 * of which each row sees one (against the same shape with every key visible
 * and against a 1-key call). Median of --reps calls, AUTO, through the
 * public API. Correctness of the same inputs: tests/test_extreme.c.
 *
 *   flat-bench-extreme [--threads N] [--reps R] [--quick]
 */
#include <flat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { ORDINARY, SUBNORMAL_QKV, SUBNORMAL_V, HUGE, EQUAL_KEYS, NKINDS } kind;
static const char *names[] = {"ordinary", "subnormal q, k, v", "subnormal v",
                              "logits near 1e38", "all keys equal"};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *alloc_floats(size_t n)
{
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "flat-bench-extreme: out of memory\n");
        exit(1);
    }
    return x;
}

/* role 0 q, 1 k, 2 v; values as tests/test_extreme.c makes them */
static void fill(float *x, size_t n, int64_t d, kind kd, int role)
{
    uint32_t s = 2463534242u + (uint32_t)role * 7919u;
    const float big = sqrtf(1e38f / (float)d);
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        float u = 0.5f + (float)(s >> 8) / 33554432.0f, sign = s & 1 ? -1.0f : 1.0f;
        float f = sign * u;
        if (role == 2)
            f = (kd == SUBNORMAL_QKV || kd == SUBNORMAL_V) ? u * 2e-39f : u;
        else if (kd == SUBNORMAL_QKV)
            f = f * 2e-39f;
        else if (kd == HUGE)
            f = f * big;
        else if (kd == EQUAL_KEYS && role == 1)
            f = 0.25f + 0.01f * (float)(i % (size_t)d);
        x[i] = f;
    }
}

static double median_ms(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                        const flat_tensor *o, const flat_options *opt, int reps)
{
    double t[101];
    reps = reps > 100 ? 100 : reps;
    for (int r = 0; r <= reps; r++) { /* the first call warms up */
        double t0 = now();
        if (flat_attention(q, k, v, o, opt) != FLAT_OK) {
            fprintf(stderr, "flat-bench-extreme: %s\n", flat_last_error());
            exit(1);
        }
        if (r > 0)
            t[r - 1] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], by_value);
    return 1e3 * t[reps / 2];
}

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D;
    int causal;
} shape;

static void kinds_line(const shape *s, int threads, int reps)
{
    const size_t nq = (size_t)(s->B * s->Hq * s->Nq * s->D), nk = (size_t)(s->B * s->Hkv * s->Nk * s->D);
    float *q = alloc_floats(nq), *k = alloc_floats(nk), *v = alloc_floats(nk), *o = alloc_floats(nq);
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, s->B, s->Hq, s->Nq, s->D);
    flat_tensor tk = flat_tensor_bhsd(k, FLAT_F32, s->B, s->Hkv, s->Nk, s->D);
    flat_tensor tv = flat_tensor_bhsd(v, FLAT_F32, s->B, s->Hkv, s->Nk, s->D);
    flat_tensor to = flat_tensor_bhsd(o, FLAT_F32, s->B, s->Hq, s->Nq, s->D);
    double base = 0;
    for (kind kd = ORDINARY; kd < NKINDS; kd++) {
        fill(q, nq, s->D, kd, 0), fill(k, nk, s->D, kd, 1), fill(v, nk, s->D, kd, 2);
        flat_options opt = {0};
        opt.causal = s->causal, opt.num_threads = threads;
        if (kd == HUGE)
            opt.scale = 1.0f;
        double ms = median_ms(&tq, &tk, &tv, &to, &opt, reps);
        if (kd == ORDINARY)
            base = ms;
        printf("| %s | %s | %d | %.3f | %.2fx | %s |\n", s->name, names[kd], threads, ms,
               ms / base, ms <= 2 * base ? "yes" : "NO");
    }
    free(q), free(k), free(v), free(o);
}

/* 2^20 keys (2^18 quick), kv_lens = 1: against all keys visible and a 1-key call. */
static void one_visible_line(int threads, int reps, int quick)
{
    const int64_t Nk = quick ? (1 << 18) : (1 << 20), D = 64, Hq = 8, Nq = 4;
    float *q = alloc_floats((size_t)(Hq * Nq * D)), *o = alloc_floats((size_t)(Hq * Nq * D));
    float *k = alloc_floats((size_t)(Nk * D)), *v = alloc_floats((size_t)(Nk * D));
    fill(q, (size_t)(Hq * Nq * D), D, ORDINARY, 0);
    fill(k, (size_t)(Nk * D), D, ORDINARY, 1), fill(v, (size_t)(Nk * D), D, ORDINARY, 2);
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, 1, Hq, Nq, D);
    flat_tensor to = flat_tensor_bhsd(o, FLAT_F32, 1, Hq, Nq, D);
    flat_tensor tk = flat_tensor_bhsd(k, FLAT_F32, 1, 1, Nk, D);
    flat_tensor tv = flat_tensor_bhsd(v, FLAT_F32, 1, 1, Nk, D);
    flat_tensor tk1 = flat_tensor_bhsd(k, FLAT_F32, 1, 1, 1, D);
    flat_tensor tv1 = flat_tensor_bhsd(v, FLAT_F32, 1, 1, 1, D);
    int32_t one = 1;
    flat_options opt = {0};
    opt.num_threads = threads;
    double all = median_ms(&tq, &tk, &tv, &to, &opt, reps > 9 ? 9 : reps);
    double short_call = median_ms(&tq, &tk1, &tv1, &to, &opt, reps);
    opt.kv_lens = &one;
    double few = median_ms(&tq, &tk, &tv, &to, &opt, reps);
    char shape_name[64];
    snprintf(shape_name, sizeof shape_name, "MQA 8 heads x 4 rows, %lld keys", (long long)Nk);
    printf("| %s | every key visible | %d | %.3f | 1.00x | yes |\n", shape_name, threads, all);
    printf("| %s | 1 visible key (kv_lens = 1) | %d | %.3f | %.4fx | %s |\n", shape_name, threads,
           few, few / all, few <= 2 * all ? "yes" : "NO");
    printf("| the same rows, 1 key | k.seq = 1 | %d | %.3f | (1-visible-of-%lld / this: %.2fx) | "
           "- |\n", threads, short_call, (long long)Nk, few / short_call);
    free(q), free(o), free(k), free(v);
}

int main(int argc, char **argv)
{
    int threads = 1, reps = 21, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1, reps = 5;
        else {
            fprintf(stderr, "usage: flat-bench-extreme [--threads N] [--reps R] [--quick]\n");
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    printf("# flat-bench-extreme: %s, %s, median of %d calls\n\n", flat_version(),
           flat_isa_name(flat_isa_detect()), reps);
    printf("| shape | inputs | threads | ms | vs ordinary | <= 2x |\n|---|---|--:|--:|--:|---|\n");
    const shape prefill = {"prefill 1x8x512x512 d64 causal", 1, 8, 8, 512, 512, 64, 1};
    const shape decode = {"decode 1x32/8 heads x 1 row, 4096 keys d128", 1, 32, 8, 1, 4096, 128, 0};
    for (int t = 1; t <= threads; t++) {
        kinds_line(&prefill, t, reps);
        kinds_line(&decode, t, reps);
        one_visible_line(t, reps, quick);
    }
    return 0;
}
