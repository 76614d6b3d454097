/* Element types the benchmarks pass to flat, as one table: their names on
 * command lines ("f32", "bf16", ...), where flat takes them (q/out, k/v) and
 * whether a type comes with a granularity ("i8:head" once flat has quantized
 * caches: a new type is a row here, with its granularities, and every
 * parser and label follows). */
#ifndef BENCH_DTYPES_H
#define BENCH_DTYPES_H

#include <stddef.h>

#include "flat.h"

typedef struct {
    const char *name;        /* as written: "f32", "f16", "bf16" */
    flat_dtype dtype;
    int bits;                /* bits per element */
    int for_q;               /* flat takes it for q and out */
    int for_kv;              /* flat takes it for k and v */
    const char *const *granularities; /* NULL-terminated names ("head", "token",
                                         "group64"); NULL: none, none allowed */
} bench_dtype;

/* Types for one call: q and out share one, k and v another. */
typedef struct {
    const bench_dtype *q, *kv;
    int kv_granularity; /* index into kv->granularities; -1 for none */
} bench_types;

/* The f32/f32 pair. */
bench_types bench_types_f32(void);

/* The row of `dtype` (every flat_dtype has one). */
const bench_dtype *bench_dtype_of(flat_dtype dtype);

/* Parses a --dtype spec into *t (starting from f32/f32):
 *   "TYPE"                   q/out and k/v both TYPE
 *   "q=TYPE,kv=TYPE[:GRAN]"  each part optional, in any order
 * Returns 0, or -1 with a message naming the bad part and the choices. */
int bench_types_parse(const char *spec, bench_types *t, char *err, size_t err_len);

/* "f32", "kv_bf16", "q_bf16_kv_f16", "bf16" (both the same, not f32): the
 * name suffix of a variant of a shape. */
void bench_types_label(const bench_types *t, char *buf, size_t len);

/* "q/out TYPE, k/v TYPE[:GRAN]" for reports. */
void bench_types_describe(const bench_types *t, char *buf, size_t len);

/* The accepted type names, "f32, f16, bf16", for usage texts. */
void bench_dtype_names(char *buf, size_t len);

#endif
