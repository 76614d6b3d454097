/*
 * flat-bench-engine: the engine path's benchmark lines, from the public API.
 *
 *   paged decode      decode_4k, gqa_decode_8k and batch_decode_2k through
 *                     flat_attention_paged with pages of 16 and 128 tokens
 *                     (head-major pages, vLLM's CPU layout, in scrambled order) against the
 *                     same call on contiguous K/V: ratio of speeds
 *   plan overhead     plan creation + execution (caller workspace) of
 *                     decode_4k against flat_attention; plan creation alone
 *                     on batch_decode_2k, in microseconds
 *   score rules       long16k causal with window_left 4096 (GFLOP/s over the
 *                     visible pairs) against s4k_causal; s4k (D 64) with
 *                     softcap, ALiBi, sinks and a dense mask against without
 *   element types     every shared shape with K/V in f32, f16 and bf16 (q f32)
 *                     and all-bf16 (q, K, V, out): ms, GFLOP/s, K/V GB/s at
 *                     the element size, and the ratio to f32
 *
 *   flat-bench-engine [--quick] [--threads N]
 * Medians of repeated calls; K/V of the decode shapes exceed the LLC.
 */
#include <flat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static float *filled(size_t n, unsigned seed)
{
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "flat-bench-engine: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(((i * 2654435761u + seed) >> 8) & 1023) / 1024.0f - 0.5f;
    return x;
}

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D;
    int causal;
} shape;

typedef struct {
    flat_tensor q, k, v, o;
    float *kp, *vp;
    int32_t *lens, *table;
    flat_paged_kv kv;
} bufs;

static void make_bufs(const shape *s, bufs *b)
{
    b->q = flat_tensor_bhsd(filled((size_t)(s->B * s->Hq * s->Nq * s->D), 1), FLAT_F32, s->B,
                            s->Hq, s->Nq, s->D);
    b->k = flat_tensor_bhsd(filled((size_t)(s->B * s->Hkv * s->Nk * s->D), 2), FLAT_F32, s->B,
                            s->Hkv, s->Nk, s->D);
    b->v = flat_tensor_bhsd(filled((size_t)(s->B * s->Hkv * s->Nk * s->D), 3), FLAT_F32, s->B,
                            s->Hkv, s->Nk, s->D);
    b->o = flat_tensor_bhsd(filled((size_t)(s->B * s->Hq * s->Nq * s->D), 4), FLAT_F32, s->B,
                            s->Hq, s->Nq, s->D);
    b->kp = b->vp = NULL;
    b->lens = b->table = NULL;
}

/* Head-major [pages, heads, page_size, dim] pools of the same K/V (vLLM's CPU
 * cache layout): a head's page is page_size contiguous rows. */
static void make_pages(const shape *s, bufs *b, int64_t ps)
{
    const int64_t per = (s->Nk + ps - 1) / ps, pages = s->B * per, page = ps * s->Hkv * s->D;
    free(b->kp), free(b->vp), free(b->lens), free(b->table);
    b->kp = malloc(sizeof(float) * (size_t)(pages * page));
    b->vp = malloc(sizeof(float) * (size_t)(pages * page));
    b->lens = malloc(sizeof(int32_t) * (size_t)s->B);
    b->table = malloc(sizeof(int32_t) * (size_t)pages);
    for (int64_t i = 0; i < pages; i++)
        b->table[i] = (int32_t)((i * 7919) % pages); /* scrambled (7919 is prime) */
    for (int64_t bb = 0; bb < s->B; bb++) {
        b->lens[bb] = (int32_t)s->Nk;
        for (int64_t h = 0; h < s->Hkv; h++)
            for (int64_t j = 0; j < s->Nk; j++) {
                int64_t at = b->table[bb * per + j / ps] * page + (h * ps + j % ps) * s->D;
                int64_t src = ((bb * s->Hkv + h) * s->Nk + j) * s->D;
                memcpy(b->kp + at, (float *)b->k.data + src, sizeof(float) * (size_t)s->D);
                memcpy(b->vp + at, (float *)b->v.data + src, sizeof(float) * (size_t)s->D);
            }
    }
    b->kv = (flat_paged_kv){FLAT_F32, b->kp, b->vp, pages, ps, s->Hkv, s->D, s->D,
                            page, s->D, ps * s->D, page, s->D, ps * s->D,
                            s->B, b->lens, b->table, per, NULL};
}

static void free_bufs(bufs *b)
{
    free(b->q.data), free(b->k.data), free(b->v.data), free(b->o.data);
    free(b->kp), free(b->vp), free(b->lens), free(b->table);
}

typedef enum { CALL_CONTIGUOUS, CALL_PAGED, CALL_PLAN } call_kind;

static double median_call(bufs *b, const flat_options *opt, call_kind kind, int reps)
{
    double t[64];
    void *ws = NULL;
    for (int r = 0; r <= reps; r++) { /* the first call warms up */
        double t0 = now();
        flat_status s;
        if (kind == CALL_PLAN) {
            flat_plan *plan;
            s = flat_plan_create(&b->q, &b->k, &b->v, &b->o, opt, &plan);
            if (s == FLAT_OK && !ws && posix_memalign(&ws, 64, flat_plan_workspace_size(plan) + 64))
                exit(1);
            if (s == FLAT_OK)
                s = flat_plan_execute(plan, ws), flat_plan_destroy(plan);
        } else if (kind == CALL_PAGED) {
            s = flat_attention_paged(&b->q, &b->kv, &b->o, opt);
        } else {
            s = flat_attention(&b->q, &b->k, &b->v, &b->o, opt);
        }
        if (s != FLAT_OK) {
            fprintf(stderr, "flat-bench-engine: %s\n", flat_last_error());
            exit(1);
        }
        if (r > 0)
            t[r - 1] = now() - t0;
    }
    free(ws);
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

static void paged_lines(const shape *shapes, int n, int threads, int reps)
{
    printf("\n## Paged decode against contiguous (%d threads, median of %d)\n\n", threads, reps);
    printf("| shape | contiguous ms | page 16 ms | %% of contiguous | page 128 ms | %% of contiguous |\n");
    printf("|---|--:|--:|--:|--:|--:|\n");
    for (int i = 0; i < n; i++) {
        bufs b;
        make_bufs(&shapes[i], &b);
        flat_options opt = {0};
        opt.num_threads = threads;
        double c = median_call(&b, &opt, CALL_CONTIGUOUS, reps), p[2];
        for (int k = 0; k < 2; k++) {
            make_pages(&shapes[i], &b, k ? 128 : 16);
            p[k] = median_call(&b, &opt, CALL_PAGED, reps);
        }
        printf("| %s | %.3f | %.3f | %.1f | %.3f | %.1f |\n", shapes[i].name, 1e3 * c, 1e3 * p[0],
               100 * c / p[0], 1e3 * p[1], 100 * c / p[1]);
        free_bufs(&b);
    }
}

static void plan_lines(const shape *decode, const shape *batch, int threads, int reps)
{
    bufs b;
    make_bufs(decode, &b);
    flat_options opt = {0};
    opt.num_threads = threads;
    double direct = median_call(&b, &opt, CALL_CONTIGUOUS, reps);
    double planned = median_call(&b, &opt, CALL_PLAN, reps);
    printf("\n## Plans\n\n- %s, %d threads: flat_attention %.3f ms; plan create + execute with a "
           "workspace %.3f ms (%+.1f%%)\n", decode->name, threads, 1e3 * direct, 1e3 * planned,
           100 * (planned / direct - 1));
    free_bufs(&b);
    make_bufs(batch, &b);
    enum { N = 2001 };
    static double t[N];
    for (int r = 0; r < N; r++) {
        flat_plan *plan;
        double t0 = now();
        if (flat_plan_create(&b.q, &b.k, &b.v, &b.o, &opt, &plan) != FLAT_OK)
            exit(1);
        t[r] = now() - t0;
        flat_plan_destroy(plan);
    }
    qsort(t, N, sizeof t[0], cmp_double);
    printf("- %s: plan creation alone %.2f us (median of %d; plan object only)\n", batch->name,
           1e6 * t[N / 2], N);
    free_bufs(&b);
}

/* FLOPs over visible pairs: 4 * B * Hq * D per pair. */
static double visible_flops(const shape *s, int window_left)
{
    double pairs = 0;
    for (int64_t i = 0; i < s->Nq; i++) {
        int64_t p = i + s->Nk - s->Nq, lo = window_left > 0 ? p - window_left : 0;
        int64_t hi = s->causal ? p + 1 : s->Nk;
        lo = lo < 0 ? 0 : lo;
        pairs += (double)(hi > lo ? hi - lo : 0);
    }
    return 4.0 * s->B * s->Hq * s->D * pairs;
}

static void rule_lines(int threads, int quick)
{
    const shape s4k = {"s4k", 1, 16, 16, quick ? 1024 : 4096, quick ? 1024 : 4096, 64, 0};
    const shape s4kc = {"s4k_causal", 1, 16, 16, s4k.Nq, s4k.Nk, 64, 1};
    const shape l16 = {"long16k", 1, 8, 8, quick ? 4096 : 16384, quick ? 4096 : 16384, 64, 1};
    const int reps = quick ? 1 : 3, window = quick ? 1024 : 4096;
    printf("\n## Score rules (%d threads, median of %d)\n\n", threads, reps);
    bufs b;
    make_bufs(&s4kc, &b);
    flat_options opt = {0};
    opt.num_threads = threads, opt.causal = 1;
    double tc = median_call(&b, &opt, CALL_CONTIGUOUS, reps);
    double gc = visible_flops(&s4kc, 0) / tc / 1e9;
    free_bufs(&b);
    make_bufs(&l16, &b);
    opt.window_left = window;
    double tw = median_call(&b, &opt, CALL_CONTIGUOUS, reps);
    double gw = visible_flops(&l16, window) / tw / 1e9;
    printf("- %s causal, window_left %d: %.1f ms, %.1f GFLOP/s over visible pairs = %.1f%% of "
           "%s's %.1f GFLOP/s (%.1f ms)\n", l16.name, window, 1e3 * tw, gw, 100 * gw / gc,
           s4kc.name, gc, 1e3 * tc);
    free_bufs(&b);
    make_bufs(&s4k, &b);
    float sinks[16], slopes[16];
    for (int h = 0; h < 16; h++)
        sinks[h] = 0.5f, slopes[h] = 1.0f / (float)(2 << h);
    float *mask = filled((size_t)(s4k.Nq * s4k.Nk), 9);
    flat_tensor m = flat_tensor_bhsd(mask, FLAT_F32, 1, 1, s4k.Nq, s4k.Nk);
    m.heads = 16, m.stride_head = 0; /* one mask for all heads, read per head block */
    flat_options base = {0};
    base.num_threads = threads;
    double t0 = median_call(&b, &base, CALL_CONTIGUOUS, reps);
    struct { const char *what; flat_options o; } rules[4] = {{"softcap 30", base}, {"ALiBi", base},
                                                            {"sinks", base}, {"dense mask", base}};
    rules[0].o.softcap = 30.0f, rules[1].o.alibi_slopes = slopes, rules[2].o.sinks = sinks;
    rules[3].o.mask = &m;
    printf("- %s (D 64), no rule: %.1f ms\n", s4k.name, 1e3 * t0);
    for (int i = 0; i < 4; i++) {
        double t = median_call(&b, &rules[i].o, CALL_CONTIGUOUS, reps);
        printf("- %s with %s: %.1f ms = %.3fx the time without\n", s4k.name, rules[i].what,
               1e3 * t, t / t0);
    }
    free(mask);
    free_bufs(&b);
}

/* f32 data as type t, in place (16-bit types use the first half), rounded
 * to nearest even; the values here are in [-0.5, 0.5), so f16 needs no
 * overflow or subnormal handling beyond flushing the tiniest to zero. */
static void retype(void *data, int64_t n, flat_dtype t)
{
    if (t == FLAT_F32)
        return;
    const float *f = data;
    uint16_t *h = data;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        uint32_t a = u & 0x7fffffffu, sign = (u >> 16) & 0x8000u;
        if (t == FLAT_BF16)
            h[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        else
            h[i] = a < 0x38800000u ? (uint16_t)sign
                                   : (uint16_t)(sign | ((a + 0xfffu + ((a >> 13) & 1u) - (112u << 23)) >> 13));
    }
}

/* Whether this CPU and build run a kernel table (flat_isa_detect names only
 * the best, so ask with a tiny call). */
static int runs_here(flat_isa isa)
{
    float x[64] = {0};
    flat_tensor t = flat_tensor_bhsd(x, FLAT_F32, 1, 1, 1, 16);
    flat_tensor o = flat_tensor_bhsd(x + 32, FLAT_F32, 1, 1, 1, 16);
    flat_options opt = {0};
    opt.isa = isa, opt.num_threads = 1;
    return flat_attention(&t, &t, &t, &o, &opt) == FLAT_OK;
}

typedef struct {
    char name[32];
    shape s;
} named_shape;

static int read_shapes(const char *path, named_shape *out, int max)
{
    FILE *f = fopen(path, "r");
    char line[256];
    int n = 0;
    if (!f)
        return 0;
    while (n < max && fgets(line, sizeof line, f)) {
        long long B, Hq, Hkv, Nq, Nk, D;
        int c;
        if (line[0] == '#' || sscanf(line, "%31[^,],%lld,%lld,%lld,%lld,%lld,%lld,%d", out[n].name,
                                     &B, &Hq, &Hkv, &Nq, &Nk, &D, &c) != 8)
            continue;
        out[n].s = (shape){out[n].name, B, Hq, Hkv, Nq, Nk, D, c};
        n++;
    }
    fclose(f);
    return n;
}

static double shape_flops(const shape *s)
{
    if (!s->causal || s->Nq == s->Nk)
        return 4.0 * s->B * s->Hq * s->Nq * s->Nk * s->D / (s->causal ? 2 : 1);
    return visible_flops(s, 0);
}

static void dtype_lines(int threads, int quick)
{
    named_shape shapes[32];
    int n = read_shapes(FLAT_BENCH_SHAPES, shapes, 32);
    static const struct { const char *name; flat_dtype q, kv; flat_isa isa; } kinds[5] = {
        {"f32", FLAT_F32, FLAT_F32, FLAT_ISA_AUTO}, {"kv f16", FLAT_F32, FLAT_F16, FLAT_ISA_AUTO},
        {"kv bf16", FLAT_F32, FLAT_BF16, FLAT_ISA_AUTO},
        {"all bf16", FLAT_BF16, FLAT_BF16, FLAT_ISA_AUTO},
        {"all bf16 on avx512_bf16", FLAT_BF16, FLAT_BF16, FLAT_ISA_AVX512_BF16}};
    printf("\n## Element types (AUTO, %d thread(s); decode shapes also report K/V GB/s)\n\n", threads);
    printf("| shape | f32 ms | kv f16 ms | kv bf16 ms | all bf16 ms | bf16 table ms | kv f16 vs f32 "
           "| kv bf16 vs f32 | all bf16 vs f32 | bf16 table vs f32 | f32 / kv bf16 / bf16 table "
           "GFLOP/s or GB/s |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--|\n");
    for (int i = 0; i < n; i++) {
        shape s = shapes[i].s;
        if (quick) /* the same shapes, shorter */
            s.Nq = s.Nq > 256 ? 256 : s.Nq, s.Nk = s.Nk > 1024 ? 1024 : s.Nk;
        const int decode = s.Nq <= 16, big = shape_flops(&s) > 2e11;
        if (!decode && threads == 1 && !quick)
            continue; /* prefill element types at the machine's threads only (time) */
        double t[5];
        for (int k = 0; k < 5; k++) {
            bufs b;
            make_bufs(&s, &b);
            retype(b.q.data, s.B * s.Hq * s.Nq * s.D, kinds[k].q);
            retype(b.o.data, s.B * s.Hq * s.Nq * s.D, kinds[k].q);
            retype(b.k.data, s.B * s.Hkv * s.Nk * s.D, kinds[k].kv);
            retype(b.v.data, s.B * s.Hkv * s.Nk * s.D, kinds[k].kv);
            b.q.dtype = b.o.dtype = kinds[k].q;
            b.k.dtype = b.v.dtype = kinds[k].kv;
            flat_options opt = {0};
            opt.num_threads = threads, opt.causal = s.causal, opt.isa = kinds[k].isa;
            t[k] = NAN;
            if (kinds[k].isa == FLAT_ISA_AUTO || runs_here(kinds[k].isa))
                t[k] = median_call(&b, &opt, CALL_CONTIGUOUS, quick ? 1 : big ? 1 : decode ? 11 : 3);
            free_bufs(&b);
        }
        char rate[96];
        double kvb = 2.0 * s.B * s.Hkv * s.Nk * s.D;
        if (decode)
            snprintf(rate, sizeof rate, "%.1f / %.1f / %.1f GB/s", kvb * 4 / t[0] / 1e9,
                     kvb * 2 / t[2] / 1e9, kvb * 2 / t[4] / 1e9);
        else
            snprintf(rate, sizeof rate, "%.1f / %.1f / %.1f GFLOP/s", shape_flops(&s) / t[0] / 1e9,
                     shape_flops(&s) / t[2] / 1e9, shape_flops(&s) / t[4] / 1e9);
        printf("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.2fx | %.2fx | %.2fx | %.2fx | %s |\n",
               s.name, 1e3 * t[0], 1e3 * t[1], 1e3 * t[2], 1e3 * t[3], 1e3 * t[4], t[0] / t[1],
               t[0] / t[2], t[0] / t[3], t[0] / t[4], rate);
    }
}

int main(int argc, char **argv)
{
    int quick = 0, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: flat-bench-engine [--quick] [--threads N]\n");
            return 2;
        }
    }
    const shape decode[3] = {{"decode_4k", 1, 32, 32, 1, quick ? 1024 : 4096, 128, 0},
                             {"gqa_decode_8k", 4, 32, 8, 1, quick ? 1024 : 8192, 128, 0},
                             {"batch_decode_2k", 16, 32, 8, 1, quick ? 512 : 2048, 128, 0}};
    printf("# flat-bench-engine: flat %s%s\n", flat_version(), quick ? " (quick: small shapes)" : "");
    for (int t = 1; t <= threads; t++)
        paged_lines(decode, 3, t, quick ? 3 : 21);
    plan_lines(&decode[0], &decode[2], threads, quick ? 3 : 21);
    rule_lines(threads, quick);
    for (int t = 1; t <= threads; t++)
        dtype_lines(t, quick);
    return 0;
}
