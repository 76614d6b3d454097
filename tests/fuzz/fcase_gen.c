/* Decoding a case from a byte source: sizes, layouts, values, options. The
 * mistakes a caller can make are injected afterwards (fcase_bad.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "fcase_int.h"

unsigned fc_byte(fc_source *s)
{
    if (!s->bytes) { /* splitmix64 */
        uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return (unsigned)((z ^ (z >> 31)) & 0xff);
    }
    return s->at < s->size ? s->bytes[s->at++] : 0;
}

unsigned fc_pick(fc_source *s, unsigned n) { return n ? fc_byte(s) % n : 0; }

/* Values: a private RNG seeded from the source (cheap, and every value
 * stays in a range where the documented bound applies). */
float fc_value(uint64_t *st, float lo, float hi)
{
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 11) * (1.0 / 9007199254740992.0));
}

static const int64_t key_counts[] = {1, 2, 3, 5, 8, 13, 16, 17, 31, 33, 40, 64, 65, 100, 129, 257};
static const int64_t dims[] = {1, 2, 3, 4, 7, 8, 15, 16, 17, 24, 32, 33, 48, 64, 65, 80, 128};

/* Strides of a [b, h, s, d] view in one of five layouts; all even when
 * `even` (an I4 cache's, whose dim is even too). */
static void layout(fc_source *src, flat_tensor *t, int input, int even)
{
    const int64_t h = t->heads, s = t->seq, d = t->dim;
    unsigned kind = fc_pick(src, input ? 5 : 3);
    int64_t pad = fc_pick(src, 4);
    pad += even ? pad & 1 : 0;
    switch (kind) {
    case 0: /* BHSD */
        t->stride_seq = d, t->stride_head = s * d, t->stride_batch = h * s * d;
        break;
    case 1: /* BSHD */
        t->stride_head = d, t->stride_seq = h * d, t->stride_batch = s * h * d;
        break;
    case 2: /* padded rows, heads and batches */
        t->stride_seq = d + pad, t->stride_head = s * (d + pad) + pad,
        t->stride_batch = h * t->stride_head + (even ? 4 : 3);
        break;
    case 3: /* every batch the same memory (inputs only) */
        t->stride_seq = d + pad, t->stride_head = s * (d + pad), t->stride_batch = 0;
        break;
    default: /* one row for all positions (inputs only) */
        t->stride_seq = 0, t->stride_head = d + pad, t->stride_batch = h * (d + pad);
        break;
    }
}

static int64_t extent_of(const flat_tensor *t)
{
    return (t->batch - 1) * t->stride_batch + (t->heads - 1) * t->stride_head +
           (t->seq - 1) * t->stride_seq + t->dim;
}

static void shape(fc_tensor *x, flat_dtype dt, int64_t b, int64_t h, int64_t s, int64_t d)
{
    memset(x, 0, sizeof *x);
    x->t.dtype = dt, x->t.batch = b, x->t.heads = h, x->t.seq = s, x->t.dim = d;
}

/* The arena: regions for q, k, v, out, lse, mask and the pools, each 64-byte
 * aligned, with a region's worth of slack at the end so that an out placed
 * over an input (an error the call must reject) stays inside it. */
typedef struct {
    size_t at, largest;
} arena_plan;

static size_t reserve(arena_plan *a, size_t bytes)
{
    size_t off = a->at;
    a->at += (bytes + 64 + 63) & ~(size_t)63;
    a->largest = bytes > a->largest ? bytes : a->largest;
    return off;
}

static void fill(fc_tensor *x, uint64_t *st, float lo, float hi, int sign_per_column)
{
    const flat_tensor *t = &x->t;
    for (int64_t b = 0; b < t->batch; b++)
        for (int64_t h = 0; h < t->heads; h++)
            for (int64_t s = 0; s < t->seq; s++)
                for (int64_t d = 0; d < t->dim; d++) {
                    int64_t off = b * t->stride_batch + h * t->stride_head + s * t->stride_seq + d;
                    float f = fc_value(st, lo, hi);
                    if (sign_per_column && (d & 1))
                        f = -f;
                    flat_store_elem(t->data, off, f, t->dtype);
                    ((float *)x->ref.data)[off] = flat_load_elem(t->data, off, t->dtype);
                }
}

/* Places x at arena offset `at` with its shadow at `shadow`. */
static void place(fc_case *c, fc_tensor *x, size_t at, float *shadow)
{
    x->t.data = c->arena + at;
    x->ref = x->t;
    x->ref.dtype = FLAT_F32;
    x->ref.data = shadow;
}

static void options(fc_source *src, fc_case *c, int64_t B, int64_t Hq, int64_t Nk)
{
    flat_options *o = &c->opt;
    static const float scales[] = {0.0f, 0.0f, 0.125f, 0.3f, 1.0f};
    o->scale = scales[fc_pick(src, 5)];
    o->causal = (int)fc_pick(src, 2);
    o->num_threads = (int)fc_pick(src, 3);
    o->dataflow = (flat_dataflow)fc_pick(src, 4);
    static const flat_isa isas[] = {FLAT_ISA_AUTO,   FLAT_ISA_AVX512_VNNI, FLAT_ISA_SCALAR,
                                    FLAT_ISA_AVX2,   FLAT_ISA_AVX512,      FLAT_ISA_NEON,
                                    FLAT_ISA_AVX512_BF16};
    o->isa = isas[fc_pick(src, 7)];
    if (fc_pick(src, 3) == 0 && c->entry != 1 && c->entry != 3) {
        for (int64_t b = 0; b < B; b++)
            c->kv_lens[b] = (int32_t)fc_pick(src, (unsigned)Nk + 1);
        o->kv_lens = c->kv_lens;
    }
    if (fc_pick(src, 3) == 0)
        o->window_left = (int32_t)fc_pick(src, 20), o->window_right = (int32_t)fc_pick(src, 4);
    static const float caps[] = {0.0f, 0.0f, 0.0f, 1.0f, 5.0f, 30.0f};
    o->softcap = caps[fc_pick(src, 6)];
    uint64_t st = fc_byte(src) * 977u + 1;
    /* from st, not a byte of its own: the kept corpus inputs read as before */
    o->flags = st % 5 == 0 ? FLAT_FLAG_BATCH_INVARIANT : 0;
    if (fc_pick(src, 4) == 0) {
        for (int64_t h = 0; h < Hq; h++)
            c->sinks[h] = fc_value(&st, -4.0f, 4.0f);
        o->sinks = c->sinks;
    }
    if (fc_pick(src, 4) == 0) {
        for (int64_t h = 0; h < Hq; h++)
            c->alibi[h] = fc_value(&st, 0.0f, 0.5f);
        o->alibi_slopes = c->alibi;
    }
    if (fc_pick(src, 4) == 0)
        o->lse = (float *)(uintptr_t)1; /* placed with the arena */
    c->popt = fc_pick(src, 16) == 0 && !o->lse ? NULL : o;
    if (!c->popt)
        memset(o, 0, sizeof *o);
}

/* Pages for each sequence, shuffled through the pool; spare pages hold NaN. */
static void paged_tables(fc_source *src, fc_case *c, int64_t B, int64_t *Nq_io, int64_t *pages)
{
    flat_paged_kv *kv = &c->kv;
    kv->page_size = 1 + fc_pick(src, 9);
    kv->block_table_stride = 1 + fc_pick(src, 16);
    int64_t cap = kv->block_table_stride * kv->page_size;
    int ragged = fc_pick(src, 2);
    if (*Nq_io > cap) /* every sequence holds at least its queries */
        *Nq_io = cap;
    const int64_t Nq = *Nq_io;
    int64_t next_q = 0;
    c->q_offsets[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t len = fc_pick(src, (unsigned)(cap < 255 ? cap + 1 : 256));
        int64_t queries = ragged ? fc_pick(src, 4) : Nq;
        if (queries > len)
            len = queries > cap ? cap : queries;
        if (queries > len)
            queries = len;
        c->seq_lens[b] = (int32_t)len;
        next_q += ragged ? queries : 0;
        c->q_offsets[b + 1] = (int32_t)next_q;
    }
    kv->q_offsets = ragged ? c->q_offsets : NULL;
    *pages = B * kv->block_table_stride + fc_pick(src, 3);
    /* a permutation of the pool's pages; unused entries -1 */
    int64_t n = *pages;
    int32_t perm[FC_MAX_B * 16 + 2];
    for (int64_t i = 0; i < n; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = fc_pick(src, (unsigned)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int64_t b = 0, used = 0; b < B; b++)
        for (int64_t i = 0; i < kv->block_table_stride; i++)
            c->block_table[b * kv->block_table_stride + i] =
                i * kv->page_size < c->seq_lens[b] ? perm[used++] : -1;
    kv->batch = B, kv->pages = n;
    kv->seq_lens = c->seq_lens, kv->block_table = c->block_table;
}

/* Pool strides, vLLM's [pages, page, heads, dim] or HND; padded sometimes. */
static void pool_strides(fc_source *src, int64_t P, int64_t H, int64_t D, int64_t *page,
                         int64_t *token, int64_t *head, int even)
{
    int64_t row = D + fc_pick(src, 3);
    row += even ? row & 1 : 0;
    if (fc_pick(src, 2))
        *head = row, *token = H * row, *page = P * H * row;
    else
        *token = row, *head = P * row, *page = H * P * row;
}

static void fill_pool(const void *pool, float *ref, flat_dtype dt, int64_t n_pages,
                      int64_t P, int64_t H, int64_t D, int64_t sp, int64_t st, int64_t sh,
                      uint64_t *rng, float lo, float hi)
{
    for (int64_t p = 0; p < n_pages; p++)
        for (int64_t t = 0; t < P; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t d = 0; d < D; d++) {
                    int64_t off = p * sp + t * st + h * sh + d;
                    float f = fc_value(rng, lo, hi);
                    if (d & 1)
                        f = -f;
                    flat_store_elem((void *)pool, off, f, dt);
                    ref[off] = flat_load_elem(pool, off, dt);
                }
}

int fc_generate(fc_source *src, fc_case *c)
{
    memset(c, 0, sizeof *c);
    c->entry = (int)fc_pick(src, 4);
    c->plan_ws = (int)fc_pick(src, 2);
    const int paged = c->entry == 1 || c->entry == 3;
    const int64_t B = 1 + fc_pick(src, FC_MAX_B), Hkv = 1 + fc_pick(src, 3);
    const int64_t Hq = Hkv * (1 + fc_pick(src, 4));
    int64_t Nq = 1 + fc_pick(src, 9);
    const int64_t Nk = key_counts[fc_pick(src, 16)];
    int64_t D = dims[fc_pick(src, 17)];
    int64_t Dv = fc_pick(src, 2) ? D : dims[fc_pick(src, 17)];
    const flat_dtype qt = (flat_dtype)fc_pick(src, 3);
    const flat_dtype kt = fc_quant_choose(src, c, fc_byte(src), &D, &Dv);
    options(src, c, B, Hq, Nk);
    int64_t pages = 0;
    if (paged) {
        paged_tables(src, c, B, &Nq, &pages);
        if (c->kv.q_offsets)
            Nq = c->q_offsets[B] + fc_pick(src, 2); /* a spare row no sequence owns */
        if (Nq < 1)
            Nq = 1;
    } else if (!c->opt.causal && fc_pick(src, 8) == 0) {
        Nq = Nk; /* self-attention: q may alias k */
    }
    const int64_t qB = paged && c->kv.q_offsets ? 1 : B;
    shape(&c->q, qt, qB, Hq, Nq, D);
    shape(&c->out, qt, qB, Hq, Nq, Dv);
    layout(src, &c->q.t, 1, 0);
    layout(src, &c->out.t, 0, 0);
    unsigned alias = fc_pick(src, 6); /* 1: v aliases k, 2: q aliases k */
    if (paged || (alias == 2 && (Hq != Hkv || Nq != Nk || qt != kt)))
        alias = 0;
    if (!paged) {
        shape(&c->k, kt, B, Hkv, Nk, D);
        shape(&c->v, kt, B, Hkv, Nk, alias == 1 ? D : Dv);
        if (alias == 1)
            shape(&c->out, qt, qB, Hq, Nq, D), layout(src, &c->out.t, 0, 0);
        layout(src, &c->k.t, 1, c->quant.even);
        c->v.t.stride_batch = c->k.t.stride_batch, c->v.t.stride_head = c->k.t.stride_head,
        c->v.t.stride_seq = c->k.t.stride_seq;
        /* (K's strides may make V's longer rows overlap: fine for inputs, but
         * a code shared by rows of different scales has no one value) */
        if ((alias == 0 && fc_pick(src, 2)) || (c->quant.on && alias != 1))
            layout(src, &c->v.t, 1, c->quant.even);
        if (alias == 1) { /* V is K: its scales too */
            fc_quant *qz = &c->quant;
            qz->gran[1] = qz->gran[0], qz->group[1] = qz->group[0];
            qz->st[1] = qz->st[0], qz->pad[1] = qz->pad[0];
        }
        fc_quant_shape(c, &c->k.t, &c->v.t);
        if (alias == 2)
            c->q.t = c->k.t, c->q.t.dtype = qt;
    }
    int want_mask = fc_pick(src, 5) == 0;
    int64_t mask_keys = Nk;
    if (paged)
        for (int64_t b = 0, m = 0; b < B; b++)
            mask_keys = m = c->seq_lens[b] > m ? c->seq_lens[b] : m;
    if (want_mask && mask_keys > 0) {
        shape(&c->mask, FLAT_F32, qB, Hq, Nq, mask_keys);
        unsigned bc = fc_pick(src, 3); /* broadcast over batch / heads */
        c->mask.t.stride_seq = mask_keys + fc_pick(src, 3);
        c->mask.t.stride_head = bc == 1 ? 0 : Nq * c->mask.t.stride_seq;
        c->mask.t.stride_batch = bc == 2 ? 0 : Hq * Nq * c->mask.t.stride_seq;
    }

    /* sizes, then one arena and one shadow allocation */
    fc_tensor *ts[5] = {&c->q, &c->k, &c->v, &c->out, &c->mask};
    for (int i = 0; i < 5; i++)
        ts[i]->extent = ts[i]->t.batch ? extent_of(&ts[i]->t) : 0;
    int64_t kps = 0, kpt = 0, kph = 0, vps = 0, vpt = 0, vph = 0, kpool = 0, vpool = 0;
    if (paged) {
        pool_strides(src, c->kv.page_size, Hkv, D, &kps, &kpt, &kph, c->quant.even);
        pool_strides(src, c->kv.page_size, Hkv, Dv, &vps, &vpt, &vph, c->quant.even);
        /* the pools viewed [page, head, token, dim], as their scales are */
        const flat_tensor kp = {NULL, kt, pages, Hkv, c->kv.page_size, D, kps, kph, kpt};
        const flat_tensor vp = {NULL, kt, pages, Hkv, c->kv.page_size, Dv, vps, vph, vpt};
        fc_quant_shape(c, &kp, &vp);
        kpool = pages * kps, vpool = pages * vps;
    }
    arena_plan ap = {0, 0};
    size_t at[5], at_lse, at_kp = 0, at_vp = 0, at_sc[2] = {0, 0};
    for (int i = 0; i < 5; i++)
        at[i] = reserve(&ap, (size_t)ts[i]->extent * (size_t)flat_dtype_size(ts[i]->t.dtype));
    at_lse = reserve(&ap, (size_t)(qB * Hq * Nq) * 4);
    if (paged) {
        at_kp = reserve(&ap, (size_t)kpool * (size_t)flat_dtype_size(kt));
        at_vp = reserve(&ap, (size_t)vpool * (size_t)flat_dtype_size(kt));
    }
    if (c->quant.on)
        for (int i = 0; i < 2; i++)
            at_sc[i] = reserve(&ap, (size_t)c->quant.sc[i].extent *
                                        (size_t)flat_dtype_size(c->quant.st[i]));
    c->arena_bytes = ap.at + ap.largest + 64;
    if (c->arena_bytes > (16u << 20))
        return 1;
    c->arena = aligned_alloc(64, (c->arena_bytes + 63) & ~(size_t)63);
    c->before = malloc(c->arena_bytes);
    c->writable = calloc(c->arena_bytes, 1);
    int64_t shadow_total = 0;
    for (int i = 0; i < 5; i++)
        shadow_total += ts[i]->extent;
    c->shadows = malloc(sizeof(float) * (size_t)(shadow_total + kpool + vpool + 1));
    memset(c->arena, 0xff, c->arena_bytes); /* poison: 0xff.. is NaN in every type */
    float *sh = c->shadows;
    for (int i = 0; i < 5; i++) {
        place(c, ts[i], at[i], sh);
        sh += ts[i]->extent;
    }
    if (alias == 1)
        c->v.t.data = c->k.t.data, c->v.ref.data = c->k.ref.data;
    if (c->quant.on)
        for (int i = 0; i < 2; i++)
            c->quant.sc[i].t.data = c->arena + at_sc[alias == 1 ? 0 : i];
    const flat_tensor *ksc = c->quant.pass ? &c->quant.sc[0].t : NULL,
                      *vsc = c->quant.pass ? &c->quant.sc[1].t : NULL;
    if (alias == 2)
        c->q.t.data = c->k.t.data, c->q.ref.data = c->k.ref.data;

    uint64_t rng = ((uint64_t)fc_byte(src) << 8 | fc_byte(src)) + 12345;
    fill(&c->q, &rng, -1.0f, 1.0f, 0);
    if (!paged && c->quant.on) {
        if (alias == 1)
            fc_quant_fill(&c->k.t, c->k.ref.data, ksc, c->quant.group[0], &rng, 0.5f, 1.5f, 1);
        else
            fc_quant_fill(&c->k.t, c->k.ref.data, ksc, c->quant.group[0], &rng, -1.0f, 1.0f, 0);
        if (alias != 1)
            fc_quant_fill(&c->v.t, c->v.ref.data, vsc, c->quant.group[1], &rng, 0.5f, 1.5f, 1);
    } else if (!paged) {
        if (alias == 1) /* K is V too: values that do not cancel in P V */
            fill(&c->k, &rng, 0.5f, 1.5f, 1);
        else
            fill(&c->k, &rng, -1.0f, 1.0f, 0);
        if (alias != 1)
            fill(&c->v, &rng, 0.5f, 1.5f, 1); /* no cancellation: rows are O(1) */
    }
    if (c->mask.extent)
        fill(&c->mask, &rng, -3.0f, 3.0f, 0);
    if (c->mask.extent && fc_pick(src, 2)) /* some -inf entries */
        for (int64_t e = 0; e < c->mask.extent; e += 1 + fc_pick(src, 7))
            ((float *)c->mask.t.data)[e] = -INFINITY;
    if (c->mask.extent)
        c->opt.mask = &c->mask.t;
    if (c->opt.lse)
        c->opt.lse = (float *)(c->arena + at_lse);
    c->lse = c->opt.lse;
    c->pq = &c->q.t, c->pk = &c->k.t, c->pv = &c->v.t, c->pout = &c->out.t;
    if (paged) {
        flat_paged_kv *kv = &c->kv;
        kv->dtype = kt, kv->heads = Hkv, kv->dim = D, kv->v_dim = Dv;
        kv->k = c->arena + at_kp, kv->v = c->arena + at_vp;
        kv->k_stride_page = kps, kv->k_stride_token = kpt, kv->k_stride_head = kph;
        kv->v_stride_page = vps, kv->v_stride_token = vpt, kv->v_stride_head = vph;
        c->kpool_ref = sh, c->vpool_ref = sh + kpool;
        if (c->quant.on) { /* the pools viewed [page, head, token, dim], as their scales */
            flat_tensor kp = {(void *)kv->k, kt, pages, Hkv, kv->page_size, D, kps, kph, kpt};
            flat_tensor vp = {(void *)kv->v, kt, pages, Hkv, kv->page_size, Dv, vps, vph, vpt};
            fc_quant_fill(&kp, c->kpool_ref, ksc, c->quant.group[0], &rng, -1.0f, 1.0f, 1);
            fc_quant_fill(&vp, c->vpool_ref, vsc, c->quant.group[1], &rng, 0.5f, 1.5f, 1);
        } else {
            fill_pool(kv->k, c->kpool_ref, kt, pages, kv->page_size, Hkv, D, kps, kpt, kph, &rng,
                      -1.0f, 1.0f);
            fill_pool(kv->v, c->vpool_ref, kt, pages, kv->page_size, Hkv, Dv, vps, vpt, vph,
                      &rng, 0.5f, 1.5f);
        }
        c->pkv = kv;
    }
    fc_quant_finish(c);
    return 0;
}

void fc_release(fc_case *c)
{
    free(c->arena);
    free(c->before);
    free(c->writable);
    free(c->shadows);
}
