/* Inputs and output of one shape, allocated and filled once per benchmark. */
#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <stdint.h>

#include "flat.h"
#include "shapes.h"

/* Contiguous [B, H, S, D] fp32 buffers and their flat views. k and v point
 * at the current one of kv_copies identical copies (workload_alloc_cold). */
typedef struct {
    bench_shape shape;
    float *q, *k, *v, *out;
    flat_tensor tq, tk, tv, tout;
    float *k_pool, *v_pool; /* kv_copies copies, kv_stride floats apart */
    int64_t kv_copies, kv_stride, kv_current;
} workload;

/*
 * Allocates q, k, v, out for `s` (64-byte aligned), fills q, k, v with
 * reproducible pseudo-random values in [-1, 1) from `seed` and zeroes out,
 * so every page is resident before anything is timed. Returns 0, or -1 when
 * memory runs out (nothing stays allocated).
 */
int workload_alloc(workload *w, const bench_shape *s, uint64_t seed);

/*
 * workload_alloc with enough identical copies of K and V that cycling through
 * them (workload_next_kv before each call) spans 4x the last-level cache: a
 * call then finds nothing of its K and V in cache from the previous call, as
 * a decode step would not after the rest of a model's layer. A shape whose K
 * and V already span that much gets one copy.
 */
int workload_alloc_cold(workload *w, const bench_shape *s, uint64_t seed);

/* Points k, v, tk and tv at the next copy (nothing to do with one copy). */
void workload_next_kv(workload *w);

void workload_free(workload *w);

/* Fills out with NaN, so rows a case fails to write cannot pass the
 * reference check on what an earlier case left there. */
void workload_poison_output(workload *w);

/* Bytes of q, k, v and out together. */
double workload_bytes(const bench_shape *s);

#endif
