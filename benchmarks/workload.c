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

static size_t elem_bytes(flat_dtype t) { return t == FLAT_F32 ? 4 : 2; }

double workload_bytes(const bench_shape *s)
{
    return (double)(2 * q_elems(s)) * (double)elem_bytes(s->q_dtype) +
           (double)(2 * kv_elems(s)) * (double)elem_bytes(s->kv_dtype);
}

static void *alloc_bytes(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0)
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

/* ---- 16-bit types, round to nearest even ---------------------------------- */

static uint32_t float_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static uint16_t to_bf16(float x)
{
    uint32_t u = float_bits(x);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Finite inputs of magnitude below 65520 (the inputs here are in [-1, 1)). */
static uint16_t to_f16(float x)
{
    uint32_t u = float_bits(x), a = u & 0x7fffffffu;
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if (a < 0x38800000u) /* below 2^-14: a subnormal step of 2^-24 (rint: to even) */
        return (uint16_t)(sign | (uint16_t)lrintf(fabsf(x) * 0x1p24f));
    return (uint16_t)(sign | ((a + 0xfffu + ((a >> 13) & 1u) - (112u << 23)) >> 13));
}

static float from_16(uint16_t h, flat_dtype t)
{
    if (t == FLAT_BF16)
        return bits_float((uint32_t)h << 16);
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 1023u;
    if (e == 0)
        return bits_float(sign) + (h & 0x8000u ? -1.0f : 1.0f) * (float)m * 0x1p-24f;
    if (e == 31)
        return bits_float(sign | 0x7f800000u | (m << 13));
    return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

/* x as type t at dst[0..n) (dst == x allowed for f32), and x rounded to t in
 * place, so the reference computes on exactly what the call reads. */
static void store_as(float *x, int64_t n, flat_dtype t, void *dst)
{
    if (t == FLAT_F32) {
        if (dst != x)
            memcpy(dst, x, (size_t)n * sizeof(float));
        return;
    }
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) {
        h[i] = t == FLAT_BF16 ? to_bf16(x[i]) : to_f16(x[i]);
        x[i] = from_16(h[i], t);
    }
}

/* x rounded to type t in place. */
static void round_to(float *x, int64_t n, flat_dtype t)
{
    for (int64_t i = 0; t != FLAT_F32 && i < n; i++)
        x[i] = from_16(t == FLAT_BF16 ? to_bf16(x[i]) : to_f16(x[i]), t);
}

/* ---- K/V copies: contiguous BHSD, or head-major page pools ---------------- */

static int paged(const bench_shape *s) { return s->page_size > 0; }

static int64_t pages_per_seq(const bench_shape *s)
{
    return (s->kv_len + s->page_size - 1) / s->page_size;
}

/* Elements of one copy of K (or V): the tensor, or the page pool. */
static int64_t copy_elems(const bench_shape *s)
{
    return paged(s) ? s->batch * pages_per_seq(s) * s->kv_heads * s->page_size * s->head_dim
                    : kv_elems(s);
}

/* Copies that make the K/V cycle span probe_cold_span_bytes: 4x the LLC,
 * bounded, so a misreported LLC cannot make setup fill gigabytes. */
static int64_t cold_copies(const bench_shape *s)
{
    double span = (double)probe_cold_span_bytes();
    double kv = shape_kv_bytes(s);
    return kv >= span ? 1 : (int64_t)ceil(span / kv);
}

/* Every sequence's pages, scattered over the pool in a fixed scrambled order
 * (a step coprime with the page count), as an engine's allocator leaves them. */
static void make_block_table(workload *w)
{
    const bench_shape *s = &w->shape;
    int64_t pages = s->batch * pages_per_seq(s), step = 7919;
    while (pages > 1 && (pages % step == 0 || step % pages == 0))
        step += 2;
    for (int64_t i = 0; i < pages; i++)
        w->table[i] = (int32_t)((i * step) % pages);
    for (int64_t b = 0; b < s->batch; b++)
        w->lens[b] = (int32_t)s->kv_len;
}

/* Copy 0 of one pool from the BHSD values x (already rounded to the type). */
static void scatter_pages(const workload *w, const float *x, unsigned char *pool)
{
    const bench_shape *s = &w->shape;
    int64_t per = pages_per_seq(s), ps = s->page_size, d = s->head_dim;
    size_t e = elem_bytes(s->kv_dtype);
    for (int64_t b = 0; b < s->batch; b++)
        for (int64_t h = 0; h < s->kv_heads; h++)
            for (int64_t j = 0; j < s->kv_len; j++) {
                int64_t page = w->table[b * per + j / ps];
                int64_t at = s->page_nhd ? ((page * ps + j % ps) * s->kv_heads + h) * d
                                         : (page * s->kv_heads + h) * ps * d + (j % ps) * d;
                const float *row = x + ((b * s->kv_heads + h) * s->kv_len + j) * d;
                if (s->kv_dtype == FLAT_F32) {
                    memcpy(pool + (size_t)at * e, row, (size_t)d * e);
                } else {
                    uint16_t *dst = (uint16_t *)(pool + (size_t)at * e);
                    for (int64_t c = 0; c < d; c++)
                        dst[c] = s->kv_dtype == FLAT_BF16 ? to_bf16(row[c]) : to_f16(row[c]);
                }
            }
}

static void fill_copy0(workload *w, float *x, unsigned char *pool)
{
    if (paged(&w->shape)) {
        round_to(x, kv_elems(&w->shape), w->shape.kv_dtype);
        scatter_pages(w, x, pool);
    } else
        store_as(x, kv_elems(&w->shape), w->shape.kv_dtype, pool);
}

static void point_at_copy(workload *w, int64_t copy)
{
    const bench_shape *s = &w->shape;
    unsigned char *k = w->k_pool + copy * w->kv_stride, *v = w->v_pool + copy * w->kv_stride;
    w->kv_current = copy;
    if (paged(s)) {
        w->kv.k = k;
        w->kv.v = v;
        return;
    }
    if (!w->k_master) { /* f32 BHSD: the copy is the f32 view too */
        w->k = (float *)k;
        w->v = (float *)v;
    }
    w->tk = flat_tensor_bhsd(k, s->kv_dtype, s->batch, s->kv_heads, s->kv_len, s->head_dim);
    w->tv = flat_tensor_bhsd(v, s->kv_dtype, s->batch, s->kv_heads, s->kv_len, s->head_dim);
}

static void set_paged_view(workload *w)
{
    const bench_shape *s = &w->shape;
    int64_t ps = s->page_size, d = s->head_dim, page = s->kv_heads * ps * d;
    /* HND: a head's page rows back to back; NHD: a token's heads */
    int64_t st = s->page_nhd ? s->kv_heads * d : d, sh = s->page_nhd ? d : ps * d;
    w->kv = (flat_paged_kv){.dtype = s->kv_dtype, .pages = s->batch * pages_per_seq(s),
                            .page_size = ps, .heads = s->kv_heads, .dim = d, .v_dim = d,
                            .k_stride_page = page, .k_stride_token = st, .k_stride_head = sh,
                            .v_stride_page = page, .v_stride_token = st, .v_stride_head = sh,
                            .batch = s->batch, .seq_lens = w->lens, .block_table = w->table,
                            .block_table_stride = pages_per_seq(s)};
}

/* K and V: f32 values (rounded to their type) for the reference, copy 0 in
 * the call's form, duplicated into the other copies so that the reference
 * holds whichever copy a call read, every page resident before timing. */
static int alloc_kv(workload *w, uint64_t seed)
{
    const bench_shape *s = &w->shape;
    int f32_view = s->kv_dtype == FLAT_F32 && !paged(s);
    int64_t n = kv_elems(s);
    w->kv_stride = (int64_t)((copy_elems(s) * elem_bytes(s->kv_dtype) + 63) / 64 * 64);
    w->k_pool = alloc_bytes((size_t)(w->kv_copies * w->kv_stride));
    w->v_pool = alloc_bytes((size_t)(w->kv_copies * w->kv_stride));
    if (!f32_view) {
        w->k = w->k_master = alloc_bytes((size_t)n * sizeof(float));
        w->v = w->v_master = alloc_bytes((size_t)n * sizeof(float));
    } else {
        w->k = (float *)w->k_pool;
        w->v = (float *)w->v_pool;
    }
    if (paged(s)) {
        w->lens = alloc_bytes((size_t)s->batch * sizeof(int32_t));
        w->table = alloc_bytes((size_t)(s->batch * pages_per_seq(s)) * sizeof(int32_t));
    }
    if (!w->k_pool || !w->v_pool || !w->k || !w->v || (paged(s) && (!w->lens || !w->table)))
        return -1;
    fill_uniform(w->k, n, seed + 1);
    fill_uniform(w->v, n, seed + 2);
    if (paged(s)) {
        make_block_table(w);
        set_paged_view(w);
    }
    fill_copy0(w, w->k, w->k_pool);
    fill_copy0(w, w->v, w->v_pool);
    for (int64_t c = 1; c < w->kv_copies; c++) {
        memcpy(w->k_pool + c * w->kv_stride, w->k_pool, (size_t)w->kv_stride);
        memcpy(w->v_pool + c * w->kv_stride, w->v_pool, (size_t)w->kv_stride);
    }
    return 0;
}

static int alloc_q_out(workload *w, uint64_t seed)
{
    const bench_shape *s = &w->shape;
    int64_t n = q_elems(s), d = s->head_dim;
    w->q = alloc_bytes((size_t)n * sizeof(float));
    w->out = alloc_bytes((size_t)n * sizeof(float));
    w->q_call = s->q_dtype == FLAT_F32 ? w->q : alloc_bytes((size_t)n * elem_bytes(s->q_dtype));
    w->out_call = s->q_dtype == FLAT_F32 ? w->out : alloc_bytes((size_t)n * elem_bytes(s->q_dtype));
    if (!w->q || !w->out || !w->q_call || !w->out_call)
        return -1;
    fill_uniform(w->q, n, seed);
    store_as(w->q, n, s->q_dtype, w->q_call);
    memset(w->out_call, 0, (size_t)n * elem_bytes(s->q_dtype));
    memset(w->out, 0, (size_t)n * sizeof(float));
    w->tq = flat_tensor_bhsd(w->q_call, s->q_dtype, s->batch, s->q_heads, s->q_len, d);
    w->tout = flat_tensor_bhsd(w->out_call, s->q_dtype, s->batch, s->q_heads, s->q_len, d);
    return 0;
}

static int alloc_with_copies(workload *w, const bench_shape *s, uint64_t seed, int64_t copies)
{
    memset(w, 0, sizeof *w);
    w->shape = *s;
    w->kv_copies = copies;
    if (alloc_q_out(w, seed) != 0 || alloc_kv(w, seed) != 0) {
        workload_free(w);
        return -1;
    }
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

flat_status workload_call(const workload *w, const flat_options *opt)
{
    if (paged(&w->shape))
        return flat_attention_paged(&w->tq, &w->kv, &w->tout, opt);
    return flat_attention(&w->tq, &w->tk, &w->tv, &w->tout, opt);
}

void workload_sync_output(workload *w)
{
    const bench_shape *s = &w->shape;
    if (s->q_dtype == FLAT_F32)
        return;
    const uint16_t *h = w->out_call;
    for (int64_t i = 0; i < q_elems(s); i++)
        w->out[i] = from_16(h[i], s->q_dtype);
}

void workload_free(workload *w)
{
    if (w->q_call != w->q)
        free(w->q_call);
    if (w->out_call != w->out)
        free(w->out_call);
    free(w->q);
    free(w->out);
    free(w->k_pool);
    free(w->v_pool);
    free(w->k_master);
    free(w->v_master);
    free(w->lens);
    free(w->table);
    memset(w, 0, sizeof *w);
}

void workload_poison_output(workload *w)
{
    const bench_shape *s = &w->shape;
    for (int64_t i = 0; i < q_elems(s); i++)
        w->out[i] = NAN;
    if (s->q_dtype != FLAT_F32) { /* a quiet NaN of the 16-bit type */
        uint16_t nan16 = s->q_dtype == FLAT_BF16 ? 0x7fc0u : 0x7e00u, *h = w->out_call;
        for (int64_t i = 0; i < q_elems(s); i++)
            h[i] = nan16;
    }
}
