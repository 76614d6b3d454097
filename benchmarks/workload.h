/* Inputs and output of one shape, allocated and filled once per benchmark. */
#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <stdint.h>

#include "flat.h"
#include "shapes.h"

/* One shape's inputs and output. q, k, v and out are [B, H, S, D] f32 values:
 * those the call reads (rounded to the shape's types) and, after
 * workload_sync_output, what it wrote; the reference and the unfused
 * baseline read them. The call's own buffers are typed as the shape says:
 * q_call/out_call (== q/out for f32), and kv_copies identical copies of K and
 * V in k_pool/v_pool, kv_stride bytes apart, contiguous BHSD (tk, tv) or
 * head-major page pools (kv, for shapes with a page size). For f32
 * contiguous K/V, k and v point at the current copy itself. */
typedef struct {
    bench_shape shape;
    float *q, *k, *v, *out;
    void *q_call, *out_call;
    flat_tensor tq, tk, tv, tout;
    flat_paged_kv kv;
    unsigned char *k_pool, *v_pool;
    float *k_master, *v_master; /* k and v when the copies are not f32 BHSD */
    int32_t *lens, *table;      /* the paged view's seq_lens and block table */
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
 * them (workload_next_kv before each call) spans 4x the last-level cache
 * (64 to 256 MiB: probe_cold_span_bytes): a
 * call then finds nothing of its K and V in cache from the previous call, as
 * a decode step would not after the rest of a model's layer. A shape whose K
 * and V already span that much gets one copy.
 */
int workload_alloc_cold(workload *w, const bench_shape *s, uint64_t seed);

/* Points the call's K/V (and k, v for f32 BHSD) at the next copy (nothing to
 * do with one copy). */
void workload_next_kv(workload *w);

/* One call on the current copy: flat_attention, or flat_attention_paged for
 * a paged shape. */
flat_status workload_call(const workload *w, const flat_options *opt);

/* Converts out_call into out (nothing to do for f32), before a check. */
void workload_sync_output(workload *w);

void workload_free(workload *w);

/* Fills out with NaN, so rows a case fails to write cannot pass the
 * reference check on what an earlier case left there. */
void workload_poison_output(workload *w);

/* Bytes of q, k, v and out together, at their types. */
double workload_bytes(const bench_shape *s);

#endif
