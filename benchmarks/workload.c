#include "workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int workload_alloc(workload *w, const bench_shape *s, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    w->shape = *s;
    w->q = alloc_floats(q_elems(s));
    w->k = alloc_floats(kv_elems(s));
    w->v = alloc_floats(kv_elems(s));
    w->out = alloc_floats(q_elems(s));
    if (!w->q || !w->k || !w->v || !w->out) {
        workload_free(w);
        return -1;
    }
    fill_uniform(w->q, q_elems(s), seed);
    fill_uniform(w->k, kv_elems(s), seed + 1);
    fill_uniform(w->v, kv_elems(s), seed + 2);
    memset(w->out, 0, (size_t)q_elems(s) * sizeof(float));
    int64_t d = s->head_dim;
    w->tq = flat_tensor_bhsd(w->q, FLAT_F32, s->batch, s->q_heads, s->q_len, d);
    w->tk = flat_tensor_bhsd(w->k, FLAT_F32, s->batch, s->kv_heads, s->kv_len, d);
    w->tv = flat_tensor_bhsd(w->v, FLAT_F32, s->batch, s->kv_heads, s->kv_len, d);
    w->tout = flat_tensor_bhsd(w->out, FLAT_F32, s->batch, s->q_heads, s->q_len, d);
    return 0;
}

void workload_free(workload *w)
{
    free(w->q);
    free(w->k);
    free(w->v);
    free(w->out);
    w->q = w->k = w->v = w->out = NULL;
}

void workload_poison_output(workload *w)
{
    for (int64_t i = 0; i < q_elems(&w->shape); i++)
        w->out[i] = NAN;
}
