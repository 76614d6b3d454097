/*
 * mask16: what a 16-bit mask costs against the fp32 mask of the same values
 * (the score_rules kernels widen it in registers: half the bytes), and what the
 * mask costs at all, on s4k (B 1, 16 heads, 4096 x 4096, D 64) and on a
 * decode step (B 1, 32 heads, 1 x 4096, D 128): flat_attention without a
 * mask, with an fp32, an f16 and a bf16 mask, interleaved round by round;
 * the median of each.
 *
 *   cc -O2 -Iinclude -Ikernels benchmarks/mask16.c -Lbuild -lflat -o build/mask16
 *   LD_LIBRARY_PATH=build build/mask16 [threads [rounds]]     (defaults 1, 9)
 */
#include <flat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convert.h"

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
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(((i * 2654435761u + seed) >> 8) & 1023) / 1024.0f - 0.5f;
    return x;
}

static void shape(const char *name, int B, int H, int Nq, int Nk, int D, int threads, int rounds)
{
    float *q = filled((size_t)B * H * Nq * D, 1), *k = filled((size_t)B * H * Nk * D, 2);
    float *v = filled((size_t)B * H * Nk * D, 3), *o = malloc(sizeof(float) * B * H * Nq * D);
    size_t mn = (size_t)B * H * Nq * Nk;
    float *m32 = malloc(mn * 4);
    uint16_t *m16 = malloc(mn * 2), *mb16 = malloc(mn * 2);
    for (size_t i = 0; i < mn; i++) {
        m32[i] = (i * 7919) % 10 == 0 ? -1.0f / 0.0f : (float)((int)(i % 17) - 8) / 8.0f;
        m16[i] = flat_f32_to_f16(m32[i]);
        mb16[i] = flat_f32_to_bf16(m32[i]);
    }
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, B, H, Nq, D);
    flat_tensor tk = flat_tensor_bhsd(k, FLAT_F32, B, H, Nk, D);
    flat_tensor tv = flat_tensor_bhsd(v, FLAT_F32, B, H, Nk, D);
    flat_tensor to = flat_tensor_bhsd(o, FLAT_F32, B, H, Nq, D);
    flat_tensor masks[3] = {flat_tensor_bhsd(m32, FLAT_F32, B, H, Nq, Nk),
                            flat_tensor_bhsd(m16, FLAT_F16, B, H, Nq, Nk),
                            flat_tensor_bhsd(mb16, FLAT_BF16, B, H, Nq, Nk)};
    static const char *names[4] = {"no mask", "f32 mask", "f16 mask", "bf16 mask"};
    double t[4][64];
    rounds = rounds > 64 ? 64 : rounds;
    int calls = Nq == 1 ? 50 : 1; /* a decode call is short: time 50 */
    for (int r = -1; r < rounds; r++)
        for (int c = 0; c < 4; c++) {
            flat_options opt = {0};
            opt.num_threads = threads;
            opt.mask = c ? &masks[c - 1] : NULL;
            double t0 = now_ms();
            for (int i = 0; i < calls; i++)
                if (flat_attention(&tq, &tk, &tv, &to, &opt) != FLAT_OK) {
                    fprintf(stderr, "mask16: %s\n", flat_last_error());
                    exit(1);
                }
            if (r >= 0)
                t[c][r] = (now_ms() - t0) / calls;
        }
    double med[4];
    for (int c = 0; c < 4; c++) {
        qsort(t[c], (size_t)rounds, sizeof t[c][0], cmp);
        med[c] = t[c][rounds / 2];
    }
    for (int c = 0; c < 4; c++)
        printf("%-8s %d thread(s) %-9s %9.3f ms  %.3fx no mask  %.3fx f32 mask\n", name, threads,
               names[c], med[c], med[c] / med[0], med[c] / med[1]);
    free(q), free(k), free(v), free(o), free(m32), free(m16), free(mb16);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1, rounds = argc > 2 ? atoi(argv[2]) : 9;
    shape("s4k", 1, 16, 4096, 4096, 64, threads, rounds);
    shape("decode", 1, 32, 1, 4096, 128, threads, rounds);
    return 0;
}
