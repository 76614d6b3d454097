/* Thread-count curve over the public API (device run): median ms per call,
 * K/V rotated through copies spanning >= 1.5 GiB (out of a 300 MiB L3), and a
 * read-bandwidth probe at the same thread count (OpenMP sum over 2 GiB). */
#include <flat.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

static double read_bw(int threads)
{
    size_t n = (size_t)2 << 30 >> 2; /* 2 GiB of floats */
    static float *x; if (!x) { x = aligned_alloc(64, n * 4);
#pragma omp parallel for
        for (size_t i = 0; i < n; i++) x[i] = (float)(i & 7); }
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now(), s = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : s)
        for (size_t i = 0; i < n; i += 4096) {
            float acc[32] = {0};
            for (size_t j = 0; j < 4096; j += 32)
                for (int l = 0; l < 32; l++) acc[l] += x[i + j + l];
            for (int l = 0; l < 32; l++) s += acc[l];
        }
        double t = now() - t0; if (s == 1) puts("");
        best = fmax(best, n * 4.0 / t / 1e9);
    }
    return best;
}

typedef struct { const char *name; int B, Hq, Hkv, Nq, Nk, D, causal; } shape;

static void fill(void *p, size_t n, flat_dtype t) {
    if (t == FLAT_I8) { for (size_t i = 0; i < n; i++) ((int8_t *)p)[i] = (int8_t)((int)((i * 2654435761u >> 8) % 255) - 127); return; }
    for (size_t i = 0; i < n; i++) { float v = (float)((i * 2654435761u >> 8) & 1023) / 1024.0f - 0.5f;
        if (t == FLAT_F32) ((float *)p)[i] = v; else { uint32_t u; memcpy(&u, &v, 4); ((uint16_t *)p)[i] = (uint16_t)(u >> 16); } }
}
/* i8 caches also under FLAT_PRECISION_INT8 (int8 products, avx512_vnni) */
static int int8_products;
static const char *kname(flat_dtype t)
{
    return t == FLAT_F32 ? "f32" : t == FLAT_BF16 ? "bf16" : int8_products ? "i8p" : "i8g32";
}

static void run(const shape *s, flat_dtype kt, int threads, double bw)
{
    /* i8: codes, then one f16 scale per 32 values (K's and V's), in each copy */
    size_t esz = kt == FLAT_F32 ? 4 : kt == FLAT_BF16 ? 2 : 1;
    size_t kvn = (size_t)s->B * s->Hkv * s->Nk * s->D, codes = kvn * esz * 2;
    size_t sn = kt == FLAT_I8 ? kvn / 32 : 0, kvbytes = codes + sn * 2 * 2;
    int copies = (int)((1536ull << 20) / kvbytes) + 1; if (copies < 2) copies = 2; if (s->Nq > 64) copies = 1;
    size_t qn = (size_t)s->B * s->Hq * s->Nq * s->D;
    float *q = malloc(qn * 4), *o = malloc(qn * 4); fill(q, qn, FLAT_F32);
    char *kv = malloc(kvbytes * copies);
    for (int c = 0; c < copies; c++) { fill(kv + c * kvbytes, kvn * 2, kt);
        for (size_t i = 0; i < 2 * sn; i++) ((uint16_t *)(kv + c * kvbytes + codes))[i] = 0x2400; }
    flat_options opt = {0}; opt.causal = s->causal; opt.num_threads = threads;
    opt.precision = int8_products ? FLAT_PRECISION_INT8 : FLAT_PRECISION_AUTO;
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, s->B, s->Hq, s->Nq, s->D), to = flat_tensor_bhsd(o, FLAT_F32, s->B, s->Hq, s->Nq, s->D);
    int reps = s->Nq > 64 ? 5 : 21; double t[64];
    for (int r = -2; r < reps; r++) {
        char *base = kv + (size_t)((r + 2) % copies) * kvbytes;
        flat_tensor tk = flat_tensor_bhsd(base, kt, s->B, s->Hkv, s->Nk, s->D), tv = flat_tensor_bhsd(base + codes / 2, kt, s->B, s->Hkv, s->Nk, s->D);
        flat_kv_quant kq = {0};
        if (kt == FLAT_I8) {
            kq.k_scale = flat_tensor_bhsd(base + codes, FLAT_F16, s->B, s->Hkv, s->Nk, s->D / 32);
            kq.v_scale = flat_tensor_bhsd(base + codes + sn * 2, FLAT_F16, s->B, s->Hkv, s->Nk, s->D / 32);
            kq.k_group = kq.v_group = 32; opt.kv_quant = &kq;
        }
        double t0 = now();
        if (flat_attention(&tq, &tk, &tv, &to, &opt) != FLAT_OK) { printf("error %s\n", flat_last_error()); exit(1); }
        if (r >= 0) t[r] = now() - t0;
    }
    qsort(t, reps, sizeof *t, cmpd); double ms = t[reps / 2] * 1e3;
    double pairs = (double)s->Nq * s->Nk; if (s->causal && s->Nq == s->Nk) pairs /= 2;
    double gflops = 4.0 * s->B * s->Hq * pairs * s->D / (ms * 1e6);
    double gbs = kvbytes / (ms * 1e6);
    printf("| %-16s | %-4s | %2d | %9.3f | %8.1f | %7.1f | %6.1f | %5.0f%% |\n", s->name, kname(kt), threads, ms, gflops, gbs, bw, 100 * gbs / bw);
    free(q); free(o); free(kv);
}

int main(void)
{
    const shape decode[] = {{"decode_4k", 1, 32, 32, 1, 4096, 128, 0}, {"gqa_decode_8k", 4, 32, 8, 1, 8192, 128, 0},
                            {"batch_decode_2k", 16, 32, 8, 1, 2048, 128, 0}, {"spec_decode_4k", 1, 32, 8, 8, 4096, 128, 1}};
    const shape prefill[] = {{"s4k", 1, 16, 16, 4096, 4096, 64, 0}, {"llama_2k_causal", 1, 32, 32, 2048, 2048, 128, 1}};
    const int th[] = {1, 2, 4, 8, 12, 16};
    printf("flat %s, isa %s, omp max threads %d\n\n| shape | K/V | threads | ms | GFLOP/s | K/V GB/s | read probe GB/s | %% of probe |\n|---|---|--:|--:|--:|--:|--:|--:|\n", flat_version(), flat_isa_name(flat_isa_detect()), omp_get_max_threads());
    for (int i = 0; i < 6; i++) {
        double bw = read_bw(th[i]);
        for (int s = 0; s < 4; s++) { run(&decode[s], FLAT_F32, th[i], bw); run(&decode[s], FLAT_BF16, th[i], bw); run(&decode[s], FLAT_I8, th[i], bw);
            int8_products = 1; run(&decode[s], FLAT_I8, th[i], bw); int8_products = 0; }
        for (int s = 0; s < 2; s++) run(&prefill[s], FLAT_F32, th[i], bw);
        fflush(stdout);
    }
    return 0;
}
