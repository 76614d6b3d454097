/*
 * flat-bench-rules: what each score rule costs on s4k (B 1, 16 heads,
 * 4096 x 4096, D 64, not causal), through flat_attention: the plain call,
 * softcap 30, ALiBi, and an additive mask of [q_len, kv_len] broadcast over
 * the heads (stride_head 0, as a padding or document mask is) in f32 and f16,
 * and optionally a mask of its own per head. The variants run interleaved,
 * round by round, so drift on a shared machine hits them alike; each line
 * is the median of the rounds and its ratio to the plain call's median.
 *
 *   flat-bench-rules [threads [rounds [isa [per-head]]]]   (defaults 1, 7, auto, 0)
 * isa: a kernel table's name (flat_isa_name: scalar, avx2, avx512,
 * avx512_bf16, ...) or auto; per-head 1 adds the per-head mask (1 GiB).
 * Or, against a built library:
 *   cc -O2 -Iinclude benchmarks/rules.c -Lbuild -lflat -o build/rules
 *   LD_LIBRARY_PATH=build build/rules 2 7 avx2
 */
#include <flat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { B = 1, H = 16, NQ = 4096, NK = 4096, D = 64, MAX_ROUNDS = 64 };

static double now_ms(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *alloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "flat-bench-rules: out of memory\n");
        exit(1);
    }
    return p;
}

static float *filled(size_t n, unsigned seed)
{
    float *x = alloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(((i * 2654435761u + seed) >> 8) & 1023) / 1024.0f - 0.5f;
    return x;
}

/* A mask value: 0 mostly, some small biases, a tenth of the keys -inf. */
static float mask_value(size_t i)
{
    return (i * 7919) % 10 == 0 ? -1.0f / 0.0f : (float)((int)(i % 17) - 8) / 8.0f;
}

/* Exact for these values (multiples of 1/8 up to 1, and -inf). */
static uint16_t to_f16(float x)
{
    if (x == -1.0f / 0.0f)
        return 0xfc00u;
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t a = u & 0x7fffffffu, sign = (u >> 16) & 0x8000u;
    return a == 0 ? (uint16_t)sign : (uint16_t)(sign | ((a - (112u << 23)) >> 13));
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1, rounds = argc > 2 ? atoi(argv[2]) : 7;
    const char *isa_name = argc > 3 ? argv[3] : "auto";
    int per_head = argc > 4 ? atoi(argv[4]) : 0;
    flat_isa isa = FLAT_ISA_AUTO;
    for (int i = FLAT_ISA_AUTO + 1; i <= FLAT_ISA_AVX512_VNNI; i++)
        if (flat_isa_name((flat_isa)i) && !strcmp(flat_isa_name((flat_isa)i), isa_name))
            isa = (flat_isa)i;
    if (isa == FLAT_ISA_AUTO && strcmp(isa_name, "auto")) {
        fprintf(stderr, "flat-bench-rules: unknown isa '%s'\n", isa_name);
        return 2;
    }
    rounds = rounds < 1 ? 1 : rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds;
    float *q = filled((size_t)B * H * NQ * D, 1), *k = filled((size_t)B * H * NK * D, 2);
    float *v = filled((size_t)B * H * NK * D, 3), *o = alloc(sizeof(float) * B * H * NQ * D);
    size_t mn = (size_t)NQ * NK, hn = per_head ? (size_t)H * mn : 0;
    float *m32 = alloc(mn * 4), *mh = per_head ? alloc(hn * 4) : NULL;
    uint16_t *m16 = alloc(mn * 2);
    for (size_t i = 0; i < mn; i++)
        m32[i] = mask_value(i), m16[i] = to_f16(m32[i]);
    for (size_t i = 0; i < hn; i++)
        mh[i] = mask_value(i);
    float slopes[H];
    for (int h = 0; h < H; h++)
        slopes[h] = 1.0f / (float)(2 << h);
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, B, H, NQ, D);
    flat_tensor tk = flat_tensor_bhsd(k, FLAT_F32, B, H, NK, D);
    flat_tensor tv = flat_tensor_bhsd(v, FLAT_F32, B, H, NK, D);
    flat_tensor to = flat_tensor_bhsd(o, FLAT_F32, B, H, NQ, D);
    flat_tensor b32 = flat_tensor_bhsd(m32, FLAT_F32, B, 1, NQ, NK);
    flat_tensor b16 = flat_tensor_bhsd(m16, FLAT_F16, B, 1, NQ, NK);
    flat_tensor hm = flat_tensor_bhsd(mh ? mh : m32, FLAT_F32, B, H, NQ, NK);
    b32.heads = b16.heads = H, b32.stride_head = b16.stride_head = 0;

    enum { N = 6 };
    static const char *names[N] = {"plain",         "softcap 30",    "ALiBi",
                                   "mask f32 bcast", "mask f16 bcast", "mask f32 per head"};
    flat_options opts[N];
    for (int c = 0; c < N; c++) {
        memset(&opts[c], 0, sizeof opts[c]);
        opts[c].num_threads = threads, opts[c].isa = isa;
    }
    opts[1].softcap = 30.0f, opts[2].alibi_slopes = slopes;
    opts[3].mask = &b32, opts[4].mask = &b16, opts[5].mask = &hm;
    const int n = per_head ? N : N - 1;
    static double t[N][MAX_ROUNDS], cpu[N][MAX_ROUNDS];
    for (int r = -1; r < rounds; r++) /* round -1 warms up */
        for (int c = 0; c < n; c++) {
            double t0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
            if (flat_attention(&tq, &tk, &tv, &to, &opts[c]) != FLAT_OK) {
                fprintf(stderr, "flat-bench-rules: %s\n", flat_last_error());
                return 1;
            }
            if (r >= 0) {
                t[c][r] = now_ms(CLOCK_MONOTONIC) - t0;
                cpu[c][r] = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
            }
        }
    /* CPU time: the process's, all threads (OpenMP's spinning included); on
     * a shared machine it drifts less than the wall clock, which counts the
     * time others held the cores. */
    printf("s4k (B %d, H %d, %d x %d, D %d), %d thread(s), isa %s, median of %d interleaved "
           "rounds\n  %-18s %9s %12s %28s %9s\n", B, H, NQ, NK, D, threads, isa_name, rounds, "",
           "wall ms",
           "vs plain", "(min, max)", "cpu ms  vs plain");
    double med[N], cmed[N];
    for (int c = 0; c < n; c++) {
        qsort(t[c], (size_t)rounds, sizeof t[c][0], cmp);
        qsort(cpu[c], (size_t)rounds, sizeof cpu[c][0], cmp);
        med[c] = t[c][rounds / 2], cmed[c] = cpu[c][rounds / 2];
        printf("  %-18s %9.1f ms  %.3fx  (min %7.1f, max %7.1f)  %9.1f  %.3fx\n", names[c],
               med[c], med[c] / med[0], t[c][0], t[c][rounds - 1], cmed[c], cmed[c] / cmed[0]);
    }
    free(q), free(k), free(v), free(o), free(m32), free(m16), free(mh);
    return 0;
}
