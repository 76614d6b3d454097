/*
 * flat-bench-decode-kernels: the decode micro-kernels (qk_rows and pv) of
 * every runnable table on K/V rows that sit in L2, per cache type and row
 * count: ns per key and GB/s of K (or V) bytes, the minimum over many calls
 * (robust to a shared machine's interruptions). A decode step streams K and
 * V from DRAM, so each kernel must read its bytes from L2 well above the
 * read bandwidth (flat-bench's probe) for decode to be memory-bound; this
 * shows which kernel is not. Micro-kernel benchmark: reaches into the
 * kernel tables (kernels/ukernel.h), as bench_ukernels does.
 *
 *   flat-bench-decode-kernels [d [calls]]     defaults: d 128, 3000 calls
 *
 * 256 keys per call; quantized caches with f16 scales in groups of 32 per
 * key (the scale layout int8 caches take in flat-bench-quant), and int8 with
 * per-channel scales (one scale row for every key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convert.h"
#include "dispatch.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    const char *name;
    flat_dtype t;
    int per_channel;
} cache;

static const cache caches[] = {
    {"f32", FLAT_F32, 0},         {"bf16", FLAT_BF16, 0},       {"i8 g32", FLAT_I8, 0},
    {"i8 channel", FLAT_I8, 1},   {"fp8 g32", FLAT_F8E4M3, 0}, {"i4 g32", FLAT_I4, 0},
};

int main(int argc, char **argv)
{
    const int d = argc > 1 ? atoi(argv[1]) : 128, calls = argc > 2 ? atoi(argv[2]) : 3000;
    const int n = 256, maxm = 12;
    if (d < 32 || d % 32 || d > 576 || calls < 1) {
        fprintf(stderr, "usage: flat-bench-decode-kernels [d (32..576, a multiple of 32) [calls]]\n");
        return 2;
    }
    float *qp = aligned_alloc(64, sizeof(float) * (size_t)d * 16);
    float *s = aligned_alloc(64, sizeof(float) * (size_t)maxm * n);
    float *o = aligned_alloc(64, sizeof(float) * (size_t)maxm * d);
    uint8_t *kv = aligned_alloc(64, (size_t)n * d * 4);
    uint16_t *sc = aligned_alloc(64, sizeof(uint16_t) * (size_t)n * d);
    for (int i = 0; i < d * 16; i++)
        qp[i] = (float)(i % 7) * 0.01f;
    for (int i = 0; i < maxm * n; i++)
        s[i] = (float)(i % 5) * 0.001f;
    for (size_t i = 0; i < (size_t)n * d * 4; i++)
        kv[i] = (uint8_t)((i * 37) & 0x3f); /* small finite values in every type */
    for (int i = 0; i < n * d; i++)
        sc[i] = flat_f32_to_f16(0.01f);
    printf("flat-bench-decode-kernels: d %d, %d keys per call, minimum of %d calls\n\n", d, n, calls);
    printf("| table | cache | rows | qk_rows ns/key | qk_rows GB/s | pv ns/key | pv GB/s |\n");
    printf("|---|---|--:|--:|--:|--:|--:|\n");
    int count;
    const flat_ukernels *const *tables = flat_dispatch_tables(&count);
    static const int rows[] = {1, 4, 8};
    for (int ti = 0; ti < count; ti++) {
        const flat_ukernels *k = tables[ti];
        if (!flat_dispatch_runnable(k) || k->isa == FLAT_ISA_SCALAR)
            continue;
        for (size_t ci = 0; ci < sizeof caches / sizeof caches[0]; ci++) {
            const cache *c = &caches[ci];
            if (!(k->dtypes & FLAT_DTYPE_BIT(c->t)))
                continue;
            flat_kv_src src = flat_kv_src_plain(kv, d, c->t);
            if (flat_dtype_quantized(c->t)) {
                src.scale = sc, src.scale_t = FLAT_F16;
                src.group = c->per_channel ? 1 : 32;
                src.ld_scale = c->per_channel ? 0 : d / 32;
            }
            const double bytes = (double)flat_dtype_bytes(c->t, (int64_t)n * d);
            for (int ri = 0; ri < 3; ri++) {
                const int m = rows[ri];
                if (m > k->mr) /* avx2's panel is 6 rows */
                    continue;
                double best[2] = {1e30, 1e30};
                for (int r = 0; r < calls; r++) {
                    double t0 = now();
                    k->qk_rows(m, d, n, qp, &src, s, n);
                    double t1 = now();
                    k->pv(m, n, d, s, n, &src, o, d, NULL);
                    double t2 = now();
                    best[0] = t1 - t0 < best[0] ? t1 - t0 : best[0];
                    best[1] = t2 - t1 < best[1] ? t2 - t1 : best[1];
                }
                printf("| %s | %s | %d | %.2f | %.1f | %.2f | %.1f |\n", k->name, c->name, m,
                       best[0] / n * 1e9, bytes / best[0] / 1e9, best[1] / n * 1e9,
                       bytes / best[1] / 1e9);
            }
        }
    }
    free(sc), free(kv), free(o), free(s), free(qp);
    return 0;
}
