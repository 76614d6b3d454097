/* The benchmark shape set (benchmarks/shapes.csv) and what each shape costs. */
#ifndef BENCH_SHAPES_H
#define BENCH_SHAPES_H

#include <stddef.h>
#include <stdint.h>

#include "flat.h"

/* One row of shapes.csv. Dv = D (the shared set has no separate value dim). */
typedef struct {
    char name[48];
    int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
    int causal;
    /* Element types (FLAT_F32 = 0, so a zeroed shape is f32, as every row of
     * shapes.csv is): K and V, whose bytes the figures count, and q and out.
     * The suite's dtype variants of the decode shapes set them. */
    flat_dtype kv_dtype, q_dtype;
    /* > 0: K/V live in head-major pages of this many tokens (vLLM's CPU
     * layout, pages in scrambled order) and calls go through
     * flat_attention_paged; 0: contiguous K/V, flat_attention. */
    int64_t page_size;
    /* With page_size: token-major pages ([page, token, head, dim], vLLM's
     * NHD) instead of head-major ones ([page, head, token, dim], HND). */
    int page_nhd;
} bench_shape;

/*
 * Reads `path`: lines "name,batch,q_heads,kv_heads,q_len,kv_len,head_dim,causal";
 * blank lines and lines starting with '#' are skipped. On success returns the
 * number of shapes and sets *shapes (malloc'd; the caller frees). On failure
 * returns -1 with "path:line: why" in err.
 */
int shapes_load(const char *path, bench_shape **shapes, char *err, size_t err_len);

/* Query-key pairs of one (batch, query head) that the mask leaves visible, as
 * the shape set's header counts them: Nq*Nk without a mask; causal with
 * Nq == Nk, half of that (the FlashAttention papers' convention); causal with
 * Nq < Nk, row i sees Nk - Nq + 1 + i keys (bottom-right alignment, flat.h);
 * causal with Nq > Nk, the same clipped to [0, Nk]. */
double shape_visible_pairs(const bench_shape *s);

/* FLOPs of one call: 4*B*Hq*D per visible pair (two GEMMs of 2*D each), so
 * rates compare across papers. Every FLOP figure of the suite uses this. */
double shape_flops(const bench_shape *s);

/* Bytes of one K or V element (4 for f32, 2 for f16 and bf16). */
int shape_kv_elem_bytes(const bench_shape *s);

/* Bytes of K and V a call must read at least once, each kv head's once:
 * B*Hkv*Nk*(D+Dv)*element size. */
double shape_kv_bytes(const bench_shape *s);

/* Query rows per head up to this make a shape decode-like. */
enum { SHAPE_DECODE_MAX_Q_LEN = 16 };

/* Decode-like: a few query positions per head (a decode step, or the check of
 * a speculative draft), so the call streams K and V about once and is judged
 * by the K/V bytes it reads per second against the read bandwidth. */
int shape_is_decode_like(const bench_shape *s);

#endif
