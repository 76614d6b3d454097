/* Inputs and output of one shape, allocated and filled once per benchmark. */
#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <stdint.h>

#include "flat.h"
#include "shapes.h"

/* Contiguous [B, H, S, D] fp32 buffers and their flat views. */
typedef struct {
    bench_shape shape;
    float *q, *k, *v, *out;
    flat_tensor tq, tk, tv, tout;
} workload;

/*
 * Allocates q, k, v, out for `s` (64-byte aligned), fills q, k, v with
 * reproducible pseudo-random values in [-1, 1) from `seed` and zeroes out,
 * so every page is resident before anything is timed. Returns 0, or -1 when
 * memory runs out (nothing stays allocated).
 */
int workload_alloc(workload *w, const bench_shape *s, uint64_t seed);

void workload_free(workload *w);

/* Fills out with NaN, so rows a case fails to write cannot pass the
 * reference check on what an earlier case left there. */
void workload_poison_output(workload *w);

/* Bytes of q, k, v and out together. */
double workload_bytes(const bench_shape *s);

#endif
