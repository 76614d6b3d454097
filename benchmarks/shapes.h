/* The benchmark shape set (benchmarks/shapes.csv) and what each shape costs. */
#ifndef BENCH_SHAPES_H
#define BENCH_SHAPES_H

#include <stddef.h>
#include <stdint.h>

/* One row of shapes.csv. Dv = D (the shared set has no separate value dim). */
typedef struct {
    char name[48];
    int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
    int causal;
} bench_shape;

/*
 * Reads `path`: lines "name,batch,q_heads,kv_heads,q_len,kv_len,head_dim,causal";
 * blank lines and lines starting with '#' are skipped. On success returns the
 * number of shapes and sets *shapes (malloc'd; the caller frees). On failure
 * returns -1 with "path:line: why" in err.
 */
int shapes_load(const char *path, bench_shape **shapes, char *err, size_t err_len);

/* FLOPs of one call: 4*B*Hq*Nq*Nk*D (two GEMMs), halved when causal -- the
 * FlashAttention papers' convention, so rates compare across papers. */
double shape_flops(const bench_shape *s);

/* Bytes of K and V a call must read at least once: B*Hkv*Nk*(D+Dv)*4. */
double shape_kv_bytes(const bench_shape *s);

/* Decode step: one query position per head, so the call streams K and V
 * once and is bound by memory bandwidth, not by FMAs. */
int shape_is_decode(const bench_shape *s);

#endif
