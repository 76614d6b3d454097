/*
 * The inner loop of the read-bandwidth probe (probes.c): a sum over two float
 * arrays read side by side, so the only traffic is reads, as in a decode step
 * that streams K and V and writes one row per head. Two streams rather than
 * one because a core with a single sequential stream keeps too few cache-line
 * requests in flight and reports ~15% below what its memory delivers to a
 * kernel that reads K and V together.
 *
 * Plain C, no intrinsics: benchmarks/CMakeLists.txt compiles this file at -O3,
 * where the compiler turns the LANES independent accumulators into vector
 * registers (one add chain per register, so adds never wait on each other).
 * On x86-64 the function is cloned for AVX-512 and AVX2 and picked at load
 * time (GNU ifunc): the binary still runs on any x86-64, and on a wide-vector
 * CPU the probe issues loads as wide as the decode kernels do.
 */
#include <stdint.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define READ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef READ_CLONES
#define READ_CLONES
#endif

/* 4 AVX-512 or 8 AVX2 registers: enough adds in flight to outrun DRAM. */
enum { LANES = 64 };

double probe_read_sum(const float *a, const float *b, int64_t n);
double probe_read_pages(const float *x, const int64_t *order, int64_t pages, int64_t floats,
                        int64_t ahead);

/* The sum of a[0..n) and b[0..n). */
READ_CLONES double probe_read_sum(const float *a, const float *b, int64_t n)
{
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += a[i + j] + b[i + j];
    double sum = 0;
    for (; i < n; i++)
        sum += (double)a[i] + b[i];
    for (int j = 0; j < LANES; j++)
        sum += acc[j];
    return sum;
}

/* The sum of `pages` pages of `floats` floats (a multiple of LANES), page i
 * at x + order[i] * floats, each line of page i + ahead asked for (into L2)
 * while the same line of page i is summed: the prefetch flat's decode
 * kernels give a paged cache's next runs (kernels/ukernel.h), spread over
 * the reads, since no hardware prefetcher predicts the next page. */
READ_CLONES double probe_read_pages(const float *x, const int64_t *order, int64_t pages,
                                    int64_t floats, int64_t ahead)
{
    float acc[LANES] = {0};
    for (int64_t c = 0; c < pages; c++) {
        const float *a = x + order[c] * floats;
        const float *next = x + order[c + ahead < pages ? c + ahead : c] * floats;
        for (int64_t i = 0; i < floats; i += LANES) {
            for (int l = 0; l < LANES; l += 16)
                __builtin_prefetch(next + i + l, 0, 1);
            for (int j = 0; j < LANES; j++)
                acc[j] += a[i + j];
        }
    }
    double sum = 0;
    for (int j = 0; j < LANES; j++)
        sum += acc[j];
    return sum;
}
