/*
 * flat-bench-quant: decode on quantized K/V caches beside f32 and bf16, in
 * one process and interleaved (each repetition times every cache type once,
 * so drift from other load hits all alike), medians over the repetitions.
 *
 *   flat-bench-quant [--only decode|prefill|quantize] [reps] [threads...]
 *                                          defaults: every table, 15 reps, threads 1 and 2
 *
 * For decode_4k, gqa_decode_8k and batch_decode_2k (benchmarks/shapes.csv),
 * decode_4k at D 256 and one kv head of D 576 for 16 query heads (MLA-like):
 * ms per call, GB/s counting every byte the call must read (K and V codes,
 * their scales, q) and write (out), that as a % of the read bandwidth probe
 * (probes.c, same threads, same process), and the speed-up over the bf16
 * cache. Caches: f32, bf16, i8 (groups of 32, f16 scales), fp8 e4m3 (one f32
 * scale per tensor), i4 (keys per channel, values in groups of 32, f16
 * scales), and the i8 and i4 caches again under FLAT_PRECISION_INT8 (int8
 * products, avx512_vnni; nan where the CPU lacks AVX512_VNNI). Then chunked prefill (512 queries, causal, against 4096 cached
 * keys) on i8/fp8/i4 against bf16 K/V, and flat_quantize's throughput.
 * Values are random: speed does not depend on them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flat.h"
#include "probes.h"

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D;
    int causal;
} qshape;

enum { C_F32, C_BF16, C_I8, C_F8, C_I4, C_I8P, C_I4P, NCACHE };
static const char *cache_name[NCACHE] = {"f32", "bf16", "i8 g32 f16-scale", "fp8 per-tensor",
                                         "i4 k-chan v-g32", "i8 g32, int8 products",
                                         "i4 k-chan v-g32, int8 products"};

typedef struct {
    void *k, *v, *ks, *vs;
    flat_tensor tk, tv;
    flat_kv_quant kq;
    int quant;
    int32_t precision; /* C_I8P: FLAT_PRECISION_INT8 (the same i8 cache) */
    double bytes; /* K/V codes + scales */
} cache;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fill_bytes(void *p, size_t n, uint64_t seed)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (uint8_t)(seed >> 56);
    }
}

/* Random f32 in [-1, 1) or bf16 of such. */
static void fill_float(void *p, int64_t n, flat_dtype t, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        float x = (float)((double)(seed >> 11) / 9007199254740992.0 * 2 - 1);
        if (t == FLAT_F32) {
            ((float *)p)[i] = x;
        } else {
            uint32_t u;
            memcpy(&u, &x, 4);
            ((uint16_t *)p)[i] = (uint16_t)(u >> 16);
        }
    }
}

/* f16 scales of about 1/64 (bits of 0x2400). */
static void *f16_scales(int64_t n)
{
    uint16_t *s = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++)
        s[i] = 0x2400;
    return s;
}

static void make_cache(cache *c, int kind, const qshape *s)
{
    memset(c, 0, sizeof *c);
    if (kind == C_I8P || kind == C_I4P) {
        make_cache(c, kind == C_I8P ? C_I8 : C_I4, s);
        c->precision = FLAT_PRECISION_INT8;
        return;
    }
    const int64_t elems = s->B * s->Hkv * s->Nk * s->D, rows = s->B * s->Hkv * s->Nk;
    static const flat_dtype types[NCACHE] = {FLAT_F32, FLAT_BF16, FLAT_I8, FLAT_F8E4M3, FLAT_I4};
    const flat_dtype t = types[kind];
    const int64_t bytes = kind == C_F32 ? elems * 4 : kind == C_BF16 ? elems * 2
                          : kind == C_I4 ? elems / 2 : elems;
    c->k = malloc((size_t)bytes), c->v = malloc((size_t)bytes);
    if (kind <= C_BF16) {
        fill_float(c->k, elems, t, 1), fill_float(c->v, elems, t, 2);
    } else {
        fill_bytes(c->k, (size_t)bytes, 1), fill_bytes(c->v, (size_t)bytes, 2);
        if (t == FLAT_F8E4M3) /* no NaN codes */
            for (int64_t i = 0; i < bytes; i++) {
                ((uint8_t *)c->k)[i] &= 0xf7, ((uint8_t *)c->v)[i] &= 0xf7;
            }
    }
    c->tk = flat_tensor_bhsd(c->k, t, s->B, s->Hkv, s->Nk, s->D);
    c->tv = flat_tensor_bhsd(c->v, t, s->B, s->Hkv, s->Nk, s->D);
    c->bytes = 2.0 * (double)bytes;
    if (kind == C_I8) {
        c->ks = f16_scales(rows * (s->D / 32)), c->vs = f16_scales(rows * (s->D / 32));
        c->kq.k_scale = flat_tensor_bhsd(c->ks, FLAT_F16, s->B, s->Hkv, s->Nk, s->D / 32);
        c->kq.v_scale = flat_tensor_bhsd(c->vs, FLAT_F16, s->B, s->Hkv, s->Nk, s->D / 32);
        c->kq.k_group = c->kq.v_group = 32;
        c->bytes += 2.0 * 2 * (double)(rows * (s->D / 32));
    } else if (kind == C_F8) {
        static float one = 0.01f;
        c->kq.k_scale = flat_tensor_bhsd(&one, FLAT_F32, s->B, s->Hkv, s->Nk, 1);
        c->kq.k_scale.stride_batch = c->kq.k_scale.stride_head = c->kq.k_scale.stride_seq = 0;
        c->kq.v_scale = c->kq.k_scale;
        c->kq.k_group = c->kq.v_group = (int32_t)s->D;
    } else if (kind == C_I4) {
        c->ks = f16_scales(s->B * s->Hkv * s->D), c->vs = f16_scales(rows * (s->D / 32));
        c->kq.k_scale = flat_tensor_bhsd(c->ks, FLAT_F16, s->B, s->Hkv, s->Nk, s->D);
        c->kq.k_scale.stride_seq = 0, c->kq.k_scale.stride_head = s->D;
        c->kq.k_scale.stride_batch = s->Hkv * s->D;
        c->kq.v_scale = flat_tensor_bhsd(c->vs, FLAT_F16, s->B, s->Hkv, s->Nk, s->D / 32);
        c->kq.k_group = 1, c->kq.v_group = 32;
        c->bytes += 2.0 * (double)(s->B * s->Hkv * s->D) + 2.0 * (double)(rows * (s->D / 32));
    }
    c->quant = kind >= C_I8;
}

static void free_cache(cache *c)
{
    free(c->k), free(c->v), free(c->ks), free(c->vs);
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

/* Times every cache type `reps` times, interleaved; ms[k] = the median. */
static void time_caches(const qshape *s, cache *caches, const int *kinds, int nk, int threads,
                        int reps, double *ms, double *spread)
{
    const int64_t qn = s->B * s->Hq * s->Nq * s->D;
    float *q = malloc((size_t)qn * 4), *o = malloc((size_t)qn * 4);
    fill_float(q, qn, FLAT_F32, 3);
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, s->B, s->Hq, s->Nq, s->D);
    flat_tensor to = flat_tensor_bhsd(o, FLAT_F32, s->B, s->Hq, s->Nq, s->D);
    double *t = malloc(sizeof(double) * (size_t)(reps * nk));
    for (int r = -2; r < reps; r++) /* two warm-up rounds */
        for (int i = 0; i < nk; i++) {
            cache *c = &caches[kinds[i]];
            flat_options opt = {0};
            opt.num_threads = threads;
            opt.causal = s->causal;
            opt.kv_quant = c->quant ? &c->kq : NULL;
            opt.precision = c->precision;
            double t0 = now();
            flat_status st = flat_attention(&tq, &c->tk, &c->tv, &to, &opt);
            double dt = now() - t0;
            if (st == FLAT_ERROR_UNSUPPORTED && c->precision == FLAT_PRECISION_INT8) {
                dt = NAN; /* no AVX512_VNNI here: the row reads nan */
            } else if (st != FLAT_OK) {
                fprintf(stderr, "%s %s: %s\n", s->name, cache_name[kinds[i]], flat_last_error());
                exit(1);
            }
            if (r >= 0)
                t[i * reps + r] = dt * 1e3;
        }
    for (int i = 0; i < nk; i++) {
        double *x = t + i * reps;
        ms[i] = median(x, reps);
        spread[i] = (x[reps - 1 - reps / 10] - x[reps / 10]) / ms[i]; /* 10-90% */
    }
    free(t), free(q), free(o);
}

static void decode_table(int reps, const int *threads, int nthreads)
{
    /* the shared decode shapes, then large head dims (issue 21: decode at D
     * 256, and one kv head of 576 dims for 16 query heads, like DeepSeek's
     * absorbed MLA, here with V of 576 dims too) */
    const qshape shapes[5] = {{"decode_4k", 1, 32, 32, 1, 4096, 128, 0},
                              {"gqa_decode_8k", 4, 32, 8, 1, 8192, 128, 0},
                              {"batch_decode_2k", 16, 32, 8, 1, 2048, 128, 0},
                              {"decode_4k_d256", 1, 16, 16, 1, 4096, 256, 0},
                              {"mla_decode_8k_d576", 1, 16, 1, 1, 8192, 576, 0}};
    const int kinds[NCACHE] = {C_F32, C_BF16, C_I8, C_F8, C_I4, C_I8P, C_I4P};
    printf("| shape | threads | cache | ms | GB/s | %% of read BW | x bf16 | spread |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int si = 0; si < 5; si++) {
        const qshape *s = &shapes[si];
        cache caches[NCACHE];
        for (int k = 0; k < NCACHE; k++)
            make_cache(&caches[k], k, s);
        const double io = 2.0 * 4 * (double)(s->B * s->Hq * s->Nq * s->D); /* q in, out */
        for (int ti = 0; ti < nthreads; ti++) {
            const probe_result *bw = probe_read_bandwidth(threads[ti]);
            double ms[NCACHE], spread[NCACHE];
            time_caches(s, caches, kinds, NCACHE, threads[ti], reps, ms, spread);
            for (int k = 0; k < NCACHE; k++) {
                double gbs = (caches[k].bytes + io) / (ms[k] * 1e-3) / 1e9;
                printf("| %s | %d | %s | %.3f | %.1f | %.0f%% | %.2f | %.0f%% |\n", s->name,
                       threads[ti], cache_name[k], ms[k], gbs, 100 * gbs / bw->value,
                       ms[C_BF16] / ms[k], 100 * spread[k]);
            }
            printf("| (read BW probe) | %d | | | %.1f | | | %.0f%% |\n", threads[ti], bw->value,
                   100 * bw->spread);
        }
        for (int k = 0; k < NCACHE; k++)
            free_cache(&caches[k]);
        fflush(stdout);
    }
}

/* Chunked prefill: 512 new queries against a 4096-key cache, causal. */
static void prefill_table(int reps, const int *threads, int nthreads)
{
    const qshape s = {"prefill_chunk_512_of_4k", 1, 32, 8, 512, 4096, 128, 1};
    const int kinds[4] = {C_BF16, C_I8, C_F8, C_I4};
    cache caches[NCACHE];
    for (int k = 0; k < 4; k++)
        make_cache(&caches[kinds[k]], kinds[k], &s);
    printf("\n| prefill shape | threads | cache | ms | %% of bf16 K/V speed | spread |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int ti = 0; ti < nthreads; ti++) {
        double ms[4], spread[4];
        time_caches(&s, caches, kinds, 4, threads[ti], reps, ms, spread);
        for (int k = 0; k < 4; k++)
            printf("| %s | %d | %s | %.2f | %.0f%% | %.0f%% |\n", s.name, threads[ti],
                   cache_name[kinds[k]], ms[k], 100 * ms[0] / ms[k], 100 * spread[k]);
    }
    for (int k = 0; k < 4; k++)
        free_cache(&caches[kinds[k]]);
}

/* flat_quantize over [1, 8, 4096, 128] rows: GB/s of source read plus codes
 * and scales written. */
static void quantize_table(int reps)
{
    const int64_t H = 8, S = 4096, D = 128, n = H * S * D;
    printf("\n| flat_quantize | src | dst | group | scales | ms | GB/s (read + written) |\n");
    printf("|---|---|---|---|---|---|---|\n");
    const flat_dtype srcs[2] = {FLAT_F32, FLAT_BF16};
    const flat_dtype dsts[3] = {FLAT_I8, FLAT_F8E4M3, FLAT_I4};
    void *src = malloc((size_t)n * 4), *dst = malloc((size_t)n), *sc = malloc((size_t)n / 32 * 4);
    for (int si = 0; si < 2; si++) {
        fill_float(src, n, srcs[si], 5);
        for (int di = 0; di < 3; di++) {
            flat_tensor ts = flat_tensor_bhsd(src, srcs[si], 1, H, S, D);
            flat_tensor td = flat_tensor_bhsd(dst, dsts[di], 1, H, S, D);
            flat_tensor tc = flat_tensor_bhsd(sc, FLAT_F16, 1, H, S, D / 32);
            double *t = malloc(sizeof(double) * (size_t)reps);
            for (int r = -1; r < reps; r++) {
                double t0 = now();
                if (flat_quantize(&ts, &td, &tc, 32, 0) != FLAT_OK) {
                    fprintf(stderr, "flat_quantize: %s\n", flat_last_error());
                    exit(1);
                }
                if (r >= 0)
                    t[r] = (now() - t0) * 1e3;
            }
            double ms = median(t, reps);
            double bytes = (double)n * (srcs[si] == FLAT_F32 ? 4 : 2) +
                           (double)n * (dsts[di] == FLAT_I4 ? 0.5 : 1) + (double)(n / 32) * 2;
            printf("| [1,8,4096,128] | %s | %s | 32 | f16 | %.2f | %.2f |\n",
                   srcs[si] == FLAT_F32 ? "f32" : "bf16",
                   dsts[di] == FLAT_I8 ? "i8" : dsts[di] == FLAT_I4 ? "i4" : "fp8", ms,
                   bytes / (ms * 1e-3) / 1e9);
            free(t);
        }
    }
    free(src), free(dst), free(sc);
}

int main(int argc, char **argv)
{
    const char *only = NULL; /* --only decode|prefill|quantize: one table */
    if (argc > 2 && !strcmp(argv[1], "--only")) {
        only = argv[2];
        argc -= 2, argv += 2;
    }
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    int threads[8] = {1, 2}, nthreads = 2;
    if (argc > 2) {
        nthreads = 0;
        for (int i = 2; i < argc && nthreads < 8; i++)
            threads[nthreads++] = atoi(argv[i]);
    }
    if (reps < 3)
        reps = 3;
    printf("flat-bench-quant: %d interleaved repetitions, medians; spread = 10-90%% range / "
           "median; isa %s\n\n", reps, flat_isa_name(flat_isa_detect()));
    if (!only || !strcmp(only, "decode"))
        decode_table(reps, threads, nthreads);
    if (!only || !strcmp(only, "prefill"))
        prefill_table(reps < 7 ? reps : 7, threads, nthreads);
    if (!only || !strcmp(only, "quantize"))
        quantize_table(reps < 7 ? reps : 7);
    return 0;
}
