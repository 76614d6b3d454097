#include "workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probes.h"

static int64_t q_elems(const bench_shape *s)
{
    return s->batch * s->q_heads * s->q_len * s->head_dim;
}

static int64_t kv_elems(const bench_shape *s)
{
    return s->batch * s->kv_heads * s->kv_len * s->head_dim;
}

double workload_bytes(const bench_shape *s)
{
    return (double)(2 * q_elems(s) + 2 * kv_elems(s)) * sizeof(float);
}

static float *alloc_floats(int64_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)n * sizeof(float)) != 0)
        return NULL;
    return p;
}

/* splitmix64: cheap, stateless per stream, and the same on every machine,
 * so a shape always sees the same inputs. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_uniform(float *x, int64_t n, uint64_t seed)
{
    uint64_t state = seed;
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((double)(next_random(&state) >> 11) * 0x1p-52 - 1.0);
}

/* Copies that make the K/V cycle span LLC_SPANS last-level caches. */
static const int64_t LLC_SPANS = 4;

static int64_t cold_copies(const bench_shape *s)
{
    double span = (double)LLC_SPANS * (double)probe_llc_bytes();
    double kv = shape_kv_bytes(s);
    return kv >= span ? 1 : (int64_t)ceil(span / kv);
}

static void point_at_copy(workload *w, int64_t copy)
{
    const bench_shape *s = &w->shape;
    w->kv_current = copy;
    w->k = w->k_pool + copy * w->kv_stride;
    w->v = w->v_pool + copy * w->kv_stride;
    w->tk = flat_tensor_bhsd(w->k, FLAT_F32, s->batch, s->kv_heads, s->kv_len, s->head_dim);
    w->tv = flat_tensor_bhsd(w->v, FLAT_F32, s->batch, s->kv_heads, s->kv_len, s->head_dim);
}

/* Fills copy 0 and duplicates it, so the reference check holds whichever
 * copy a call read, and every page is resident before anything is timed. */
static void fill_kv_copies(workload *w, uint64_t seed)
{
    int64_t n = kv_elems(&w->shape);
    fill_uniform(w->k_pool, n, seed + 1);
    fill_uniform(w->v_pool, n, seed + 2);
    for (int64_t c = 1; c < w->kv_copies; c++) {
        memcpy(w->k_pool + c * w->kv_stride, w->k_pool, (size_t)n * sizeof(float));
        memcpy(w->v_pool + c * w->kv_stride, w->v_pool, (size_t)n * sizeof(float));
    }
}

static int alloc_with_copies(workload *w, const bench_shape *s, uint64_t seed, int64_t copies)
{
    memset(w, 0, sizeof *w);
    w->shape = *s;
    w->kv_copies = copies;
    w->kv_stride = (kv_elems(s) + 15) / 16 * 16; /* each copy 64-byte aligned */
    w->q = alloc_floats(q_elems(s));
    w->k_pool = alloc_floats(copies * w->kv_stride);
    w->v_pool = alloc_floats(copies * w->kv_stride);
    w->out = alloc_floats(q_elems(s));
    if (!w->q || !w->k_pool || !w->v_pool || !w->out) {
        workload_free(w);
        return -1;
    }
    fill_uniform(w->q, q_elems(s), seed);
    fill_kv_copies(w, seed);
    memset(w->out, 0, (size_t)q_elems(s) * sizeof(float));
    int64_t d = s->head_dim;
    w->tq = flat_tensor_bhsd(w->q, FLAT_F32, s->batch, s->q_heads, s->q_len, d);
    w->tout = flat_tensor_bhsd(w->out, FLAT_F32, s->batch, s->q_heads, s->q_len, d);
    point_at_copy(w, 0);
    return 0;
}

int workload_alloc(workload *w, const bench_shape *s, uint64_t seed)
{
    return alloc_with_copies(w, s, seed, 1);
}

int workload_alloc_cold(workload *w, const bench_shape *s, uint64_t seed)
{
    return alloc_with_copies(w, s, seed, cold_copies(s));
}

void workload_next_kv(workload *w)
{
    if (w->kv_copies > 1)
        point_at_copy(w, (w->kv_current + 1) % w->kv_copies);
}

void workload_free(workload *w)
{
    free(w->q);
    free(w->k_pool);
    free(w->v_pool);
    free(w->out);
    w->q = w->k = w->v = w->out = w->k_pool = w->v_pool = NULL;
}

void workload_poison_output(workload *w)
{
    for (int64_t i = 0; i < q_elems(&w->shape); i++)
        w->out[i] = NAN;
}
