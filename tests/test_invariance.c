/*
 * FLAT_FLAG_BATCH_INVARIANT, as a property: every query row's output and lse
 * bits equal those of the same row computed alone (a decode step: q_len 1,
 * one sequence, one thread, contiguous K/V), whatever call it comes in.
 *
 * A "world" holds sequences with their own K/V (f32, f16 or bf16 cache, or a
 * quantized one: int8 codes with per-token groups of 32 and f16 scales,
 * fp8 e4m3 without scales, int4 with f32 scales per token) and a
 * query per position; only the last `tail` positions of each are queried.
 * Random calls then take random subsets of the sequences in random order,
 * each with a chunk of consecutive positions ending anywhere in its tail
 * (1 query: a decode step; more: a prefill chunk; the sequence's length in
 * the call is the chunk's end, so a causal row sees the same keys), through
 *   - flat_attention_paged with q_offsets (ragged), page sizes 1..256, token-
 *     or head-major pages at shuffled pool positions,
 *   - flat_attention with kv_lens (chunks of one length),
 * on 1..8 threads, with any opt.dataflow, run by OpenMP or as a plan whose
 * tasks run on the calling thread in shuffled order. Every kernel table the
 * host runs, every score rule (causal, window, softcap, sinks, ALiBi, a mask
 * whose entries are a function of the row and key only), and a world with
 * D = Dv = 256 and 2300 keys, where a row's keys span several fixed split
 * ranges (tiling.h) and fixed key blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "dispatch.h"
#include "problem.h"
#include "quantutil.h"
#include "testutil.h"

#define MAX_SEQ 4

static const flat_ukernels *tables[8];
static int ntables;
static long rows_compared, calls_made;

enum { RULE_CAUSAL, RULE_WINDOW, RULE_SOFTCAP, RULE_SINKS, RULE_ALIBI, RULE_MASK, NRULES };
static const char *rule_names[NRULES] = {"causal", "window", "softcap", "sinks", "alibi", "mask"};

typedef struct {
    int64_t S, Hq, Hkv, D, Dv, lmax;
    int64_t len[MAX_SEQ], tail[MAX_SEQ];
    flat_dtype t;
    int rule;
    const flat_ukernels *uk;
    void *k, *v;        /* [S][Hkv][lmax][D or Dv] in type t */
    void *ks, *vs;      /* quantized t: their scales, [S][Hkv][lmax][D or Dv / group] of
                           type st (NULL: F8E4M3 without scales) */
    flat_dtype st;
    int64_t group;
    float *q;           /* [S][Hq][lmax][D] */
    float *ref, *ref_lse; /* [S][Hq][lmax][Dv], [S][Hq][lmax]: each row alone */
    float sinks[16], slopes[16];
} world;

static uint64_t mix(uint64_t x)
{
    tu_rng r = {x};
    return tu_next(&r);
}

/* The mask entry of (sequence, head, position, key): the row's own input. */
static float mask_value(int64_t s, int64_t h, int64_t pos, int64_t j)
{
    uint64_t z = mix(((uint64_t)s << 48) ^ ((uint64_t)h << 40) ^ ((uint64_t)pos << 20) ^ (uint64_t)j);
    if (z % 7 == 0)
        return -INFINITY;
    return (float)((double)(z >> 11) * (1.0 / 9007199254740992.0) * 4.0 - 2.0);
}

static void base_options(const world *w, flat_options *o)
{
    memset(o, 0, sizeof *o);
    o->causal = 1;
    o->isa = w->uk->isa;
    o->flags = FLAT_FLAG_BATCH_INVARIANT;
    o->scale = 0.3f;
    if (w->rule == RULE_WINDOW)
        o->window_left = 37;
    if (w->rule == RULE_SOFTCAP)
        o->softcap = 2.5f;
    if (w->rule == RULE_SINKS)
        o->sinks = w->sinks;
    if (w->rule == RULE_ALIBI)
        o->alibi_slopes = w->slopes;
}

/* A mask tensor [qb, Hq, qs, kv] for the rows `row_of` names (seq, pos). */
static float *make_mask(const world *w, int64_t qb, int64_t qs, int64_t kv, const int64_t *seq_of,
                        const int64_t *pos_of, flat_tensor *m)
{
    float *data = malloc(sizeof(float) * (size_t)(qb * w->Hq * qs * kv));
    for (int64_t b = 0; b < qb; b++)
        for (int64_t h = 0; h < w->Hq; h++)
            for (int64_t i = 0; i < qs; i++)
                for (int64_t j = 0; j < kv; j++) {
                    int64_t row = b * qs + i;
                    data[((b * w->Hq + h) * qs + i) * kv + j] =
                        seq_of[row] < 0 ? NAN : mask_value(seq_of[row], h, pos_of[row], j);
                }
    *m = flat_tensor_bhsd(data, FLAT_F32, qb, w->Hq, qs, kv);
    return data;
}

static const void *kv_row(const world *w, const void *base, int64_t dim, int64_t s, int64_t h,
                          int64_t pos)
{
    return flat_elem_ptr(base, ((s * w->Hkv + h) * w->lmax + pos) * dim, w->t);
}

/* Bytes of n elements of K/V, and the scale groups of a row. */
static size_t kv_bytes(const world *w, int64_t n) { return (size_t)flat_dtype_bytes(w->t, n); }
static int64_t groups(const world *w, int64_t dim) { return w->group ? dim / w->group : 0; }

static void *scale_row(const world *w, void *base, int64_t dim, int64_t s, int64_t h, int64_t pos)
{
    return (char *)base + ((s * w->Hkv + h) * w->lmax + pos) * groups(w, dim) * flat_dtype_size(w->st);
}

/* opt.kv_quant over scale tensors laid out like K and V with dims D / group
 * and Dv / group (batch b, heads Hkv, seq n, strides sb, sh, ss per group
 * count); NULL for a float cache or scale-free fp8. */
static const flat_kv_quant *kv_quant(const world *w, flat_kv_quant *kq, void *ks, void *vs,
                                     int64_t b, int64_t n, int64_t sb_rows, int64_t sh_rows,
                                     int64_t ss_rows)
{
    if (!w->ks)
        return NULL;
    memset(kq, 0, sizeof *kq);
    int64_t gk = groups(w, w->D), gv = groups(w, w->Dv);
    kq->k_scale = (flat_tensor){ks, w->st, b, w->Hkv, n, gk, sb_rows * gk, sh_rows * gk, ss_rows * gk};
    kq->v_scale = (flat_tensor){vs, w->st, b, w->Hkv, n, gv, sb_rows * gv, sh_rows * gv, ss_rows * gv};
    kq->k_group = kq->v_group = (int32_t)w->group;
    return kq;
}

/* Row (s, pos) of every head alone: one decode step on one thread. */
static void compute_alone(world *w, int64_t s, int64_t pos)
{
    flat_options o;
    base_options(w, &o);
    o.num_threads = 1;
    float lse[16], out[16 * 256];
    o.lse = lse;
    flat_tensor q = {w->q + (s * w->Hq * w->lmax + pos) * w->D, FLAT_F32, 1, w->Hq, 1, w->D,
                     0, w->lmax * w->D, w->D};
    flat_tensor k = {(void *)kv_row(w, w->k, w->D, s, 0, 0), w->t, 1, w->Hkv, pos + 1, w->D, 0,
                     w->lmax * w->D, w->D};
    flat_tensor v = {(void *)kv_row(w, w->v, w->Dv, s, 0, 0), w->t, 1, w->Hkv, pos + 1, w->Dv, 0,
                     w->lmax * w->Dv, w->Dv};
    flat_tensor out_t = flat_tensor_bhsd(out, FLAT_F32, 1, w->Hq, 1, w->Dv);
    flat_kv_quant kq;
    o.kv_quant = w->ks ? kv_quant(w, &kq, scale_row(w, w->ks, w->D, s, 0, 0),
                                  scale_row(w, w->vs, w->Dv, s, 0, 0), 1, pos + 1, 0, w->lmax, 1)
                       : NULL;
    flat_tensor m;
    float *mask = NULL;
    if (w->rule == RULE_MASK) {
        mask = make_mask(w, 1, 1, pos + 1, &s, &pos, &m);
        o.mask = &m;
    }
    assert_int_equal(flat_attention(&q, &k, &v, &out_t, &o), FLAT_OK);
    free(mask);
    for (int64_t h = 0; h < w->Hq; h++) {
        memcpy(w->ref + ((s * w->Hq + h) * w->lmax + pos) * w->Dv, out + h * w->Dv,
               sizeof(float) * (size_t)w->Dv);
        w->ref_lse[(s * w->Hq + h) * w->lmax + pos] = lse[h];
    }
}

/* Random codes over each type's range and scales that keep values within a
 * few units; F8E4M3 without scales (scale 1); int8 with f16, int4 with f32. */
static void world_quantized(world *w, tu_rng *r)
{
    for (int64_t i = 0; i < w->S * w->Hkv * w->lmax * w->D; i++)
        qu_set_code(w->k, w->t, i, qu_random_code(r, w->t));
    for (int64_t i = 0; i < w->S * w->Hkv * w->lmax * w->Dv; i++)
        qu_set_code(w->v, w->t, i, qu_random_code(r, w->t));
    w->ks = w->vs = NULL;
    if (w->t == FLAT_F8E4M3)
        return;
    w->group = 32;
    w->st = w->t == FLAT_I8 ? FLAT_F16 : FLAT_F32;
    int64_t rows = w->S * w->Hkv * w->lmax, nk = rows * groups(w, w->D), nv = rows * groups(w, w->Dv);
    w->ks = malloc((size_t)(nk * 4));
    w->vs = malloc((size_t)(nv * 4));
    for (int64_t i = 0; i < nk; i++)
        qu_set_scale(w->ks, w->st, i, qu_random_scale(r, w->t));
    for (int64_t i = 0; i < nv; i++)
        qu_set_scale(w->vs, w->st, i, qu_random_scale(r, w->t));
}

static void world_make(world *w, tu_rng *r)
{
    w->k = malloc(kv_bytes(w, w->S * w->Hkv * w->lmax * w->D));
    w->v = malloc(kv_bytes(w, w->S * w->Hkv * w->lmax * w->Dv));
    w->q = malloc(sizeof(float) * (size_t)(w->S * w->Hq * w->lmax * w->D));
    w->ref = malloc(sizeof(float) * (size_t)(w->S * w->Hq * w->lmax * w->Dv));
    w->ref_lse = malloc(sizeof(float) * (size_t)(w->S * w->Hq * w->lmax));
    w->ks = w->vs = NULL;
    if (flat_dtype_quantized(w->t)) {
        world_quantized(w, r);
    } else {
        for (int64_t i = 0; i < w->S * w->Hkv * w->lmax * w->D; i++)
            flat_store_elem(w->k, i, tu_uniform(r, -1, 1), w->t);
        for (int64_t i = 0; i < w->S * w->Hkv * w->lmax * w->Dv; i++)
            flat_store_elem(w->v, i, tu_uniform(r, -1, 1), w->t);
    }
    for (int64_t i = 0; i < w->S * w->Hq * w->lmax * w->D; i++)
        w->q[i] = tu_uniform(r, -1, 1);
    for (int h = 0; h < 16; h++) {
        w->sinks[h] = tu_uniform(r, -1, 3);
        w->slopes[h] = tu_uniform(r, 0.001f, 0.05f);
    }
    for (int64_t s = 0; s < w->S; s++)
        for (int64_t pos = w->len[s] - w->tail[s]; pos < w->len[s]; pos++)
            compute_alone(w, s, pos);
}

static void world_free(world *w)
{
    free(w->k), free(w->v), free(w->q), free(w->ref), free(w->ref_lse), free(w->ks), free(w->vs);
}

/* One call's composition: sequences, their chunks [p0, p1). */
typedef struct {
    int n;
    int64_t seq[MAX_SEQ], p0[MAX_SEQ], p1[MAX_SEQ];
} batch;

static void pick_batch(const world *w, tu_rng *r, int same_len, batch *c)
{
    int order[MAX_SEQ];
    for (int i = 0; i < w->S; i++)
        order[i] = i;
    for (int i = (int)w->S - 1; i > 0; i--) {
        int j = (int)(tu_next(r) % (uint64_t)(i + 1)), x = order[i];
        order[i] = order[j], order[j] = x;
    }
    c->n = 1 + (int)(tu_next(r) % (uint64_t)w->S);
    int64_t common = INT64_MAX;
    for (int i = 0; i < c->n; i++)
        common = flat_min(common, w->tail[order[i]]);
    static const int64_t lens[] = {1, 1, 2, 3, 5, 8, 13, 24};
    int64_t n_same = flat_min(common, lens[tu_next(r) % 8]);
    for (int i = 0; i < c->n; i++) {
        int64_t s = order[i], tail = w->tail[s];
        int64_t n = same_len ? n_same : flat_min(tail, lens[tu_next(r) % 8]);
        c->seq[i] = s;
        c->p1[i] = w->len[s] - (int64_t)(tu_next(r) % (uint64_t)(tail - n + 1));
        c->p0[i] = c->p1[i] - n;
    }
}

/* Plan, then its tasks on this thread in a shuffled order, as any worker. */
static flat_status run_shuffled(flat_plan *plan, tu_rng *r)
{
    void *ws = NULL;
    size_t bytes = flat_plan_workspace_size(plan);
    assert_int_equal(posix_memalign(&ws, 64, bytes ? bytes : 64), 0);
    for (int phase = 0; phase < 2; phase++) {
        int64_t n = flat_plan_tasks(plan, phase);
        int64_t *ids = malloc(sizeof(int64_t) * (size_t)(n + 1));
        for (int64_t i = 0; i < n; i++)
            ids[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(tu_next(r) % (uint64_t)(i + 1)), x = ids[i];
            ids[i] = ids[j], ids[j] = x;
        }
        for (int64_t i = 0; i < n; i++) {
            int worker = (int)(tu_next(r) % (uint64_t)flat_plan_workers(plan));
            assert_int_equal(flat_plan_run_task(plan, phase, ids[i], worker, ws), FLAT_OK);
        }
        free(ids);
    }
    free(ws);
    flat_plan_destroy(plan);
    return FLAT_OK;
}

static void check_row(const world *w, const float *out, float lse, int64_t s, int64_t h,
                      int64_t pos, const char *how)
{
    const float *ref = w->ref + ((s * w->Hq + h) * w->lmax + pos) * w->Dv;
    float ref_lse = w->ref_lse[(s * w->Hq + h) * w->lmax + pos];
    int same = tu_bits(lse) == tu_bits(ref_lse);
    for (int64_t c = 0; c < w->Dv && same; c++)
        same = tu_bits(out[c]) == tu_bits(ref[c]);
    if (!same) {
        int64_t c = 0;
        while (c < w->Dv - 1 && tu_bits(out[c]) == tu_bits(ref[c]))
            c++;
        print_error("%s %s dtype %d rule %s: seq %lld head %lld pos %lld (len %lld): "
                    "out[%lld] %.9g vs alone %.9g, lse %.9g vs %.9g\n",
                    w->uk->name, how, (int)w->t, rule_names[w->rule], (long long)s, (long long)h,
                    (long long)pos, (long long)w->len[s], (long long)c, (double)out[c],
                    (double)ref[c], (double)lse, (double)ref_lse);
        fail();
    }
    rows_compared++;
}

/* Common call settings: threads 1..8, any dataflow, OpenMP or shuffled tasks. */
static void call_options(const world *w, tu_rng *r, flat_options *o, int *shuffled)
{
    base_options(w, o);
    o->num_threads = 1 + (int)(tu_next(r) % 8);
    o->dataflow = (flat_dataflow)(tu_next(r) % 4);
    *shuffled = (int)(tu_next(r) % 2);
}

static void ragged_paged_call(const world *w, tu_rng *r)
{
    static const int64_t sizes[] = {1, 2, 3, 7, 16, 33, 64, 256};
    int64_t ps = sizes[tu_next(r) % 8];
    int head_major = (int)(tu_next(r) % 2);
    batch c;
    pick_batch(w, r, 0, &c);
    int32_t offsets[MAX_SEQ + 1] = {0}, seq_lens[MAX_SEQ];
    int64_t per_seq = 1, used = 0, longest = 0;
    for (int i = 0; i < c.n; i++) {
        offsets[i + 1] = offsets[i] + (int32_t)(c.p1[i] - c.p0[i]);
        seq_lens[i] = (int32_t)c.p1[i];
        per_seq = flat_max(per_seq, (c.p1[i] + ps - 1) / ps);
        used += (c.p1[i] + ps - 1) / ps;
        longest = flat_max(longest, c.p1[i]);
    }
    int64_t nq = offsets[c.n] + 1; /* one row no sequence owns */
    int64_t pages = used + 2, page_k = ps * w->Hkv * w->D,
            page_v = ps * w->Hkv * w->Dv;
    while (pages % 3 == 0)
        pages++; /* the shuffle below steps by 3: keep it a permutation */
    void *kpool = calloc(kv_bytes(w, pages * page_k), 1), *vpool = calloc(kv_bytes(w, pages * page_v), 1);
    /* scale pools [page, head, token, group], laid out like the K/V pools */
    const int64_t gk = groups(w, w->D), gv = groups(w, w->Dv), ssz = flat_dtype_size(w->st);
    const int64_t s_sh = head_major ? ps : 1, s_st = head_major ? 1 : w->Hkv; /* in scale rows */
    char *kspool = w->ks ? calloc((size_t)(pages * ps * w->Hkv * gk), (size_t)ssz) : NULL;
    char *vspool = w->ks ? calloc((size_t)(pages * ps * w->Hkv * gv), (size_t)ssz) : NULL;
    int32_t *table = malloc(sizeof(int32_t) * (size_t)(c.n * per_seq));
    int64_t stk = head_major ? w->D : w->Hkv * w->D, shk = head_major ? ps * w->D : w->D;
    int64_t stv = head_major ? w->Dv : w->Hkv * w->Dv, shv = head_major ? ps * w->Dv : w->Dv;
    int64_t next = 0;
    for (int i = 0; i < c.n; i++)
        for (int64_t pg_i = 0; pg_i < per_seq; pg_i++) {
            if (pg_i * ps >= c.p1[i]) {
                table[i * per_seq + pg_i] = -1;
                continue;
            }
            int32_t pg = (int32_t)((next++ * 3 + 1) % pages);
            table[i * per_seq + pg_i] = pg;
            for (int64_t h = 0; h < w->Hkv; h++)
                for (int64_t tk = 0; tk < ps && pg_i * ps + tk < c.p1[i]; tk++) {
                    int64_t pos = pg_i * ps + tk;
                    memcpy((void *)flat_elem_ptr(kpool, pg * page_k + tk * stk + h * shk, w->t),
                           kv_row(w, w->k, w->D, c.seq[i], h, pos), kv_bytes(w, w->D));
                    memcpy((void *)flat_elem_ptr(vpool, pg * page_v + tk * stv + h * shv, w->t),
                           kv_row(w, w->v, w->Dv, c.seq[i], h, pos), kv_bytes(w, w->Dv));
                    if (!w->ks)
                        continue;
                    int64_t srow = pg * ps * w->Hkv + tk * s_st + h * s_sh;
                    memcpy(kspool + srow * gk * ssz, scale_row(w, w->ks, w->D, c.seq[i], h, pos),
                           (size_t)(gk * ssz));
                    memcpy(vspool + srow * gv * ssz, scale_row(w, w->vs, w->Dv, c.seq[i], h, pos),
                           (size_t)(gv * ssz));
                }
        }
    float *q = malloc(sizeof(float) * (size_t)(w->Hq * nq * w->D));
    float *out = malloc(sizeof(float) * (size_t)(w->Hq * nq * w->Dv));
    float *lse = malloc(sizeof(float) * (size_t)(w->Hq * nq));
    int64_t seq_of[128], pos_of[128];
    for (int64_t i = 0; i < nq; i++)
        seq_of[i] = -1, pos_of[i] = 0;
    for (int i = 0; i < c.n; i++)
        for (int64_t pos = c.p0[i]; pos < c.p1[i]; pos++) {
            int64_t row = offsets[i] + pos - c.p0[i];
            seq_of[row] = c.seq[i], pos_of[row] = pos;
            for (int64_t h = 0; h < w->Hq; h++)
                memcpy(q + (h * nq + row) * w->D, w->q + ((c.seq[i] * w->Hq + h) * w->lmax + pos) * w->D,
                       sizeof(float) * (size_t)w->D);
        }
    flat_paged_kv kv = {w->t, kpool, vpool, pages, ps, w->Hkv, w->D, w->Dv,
                        ps * w->Hkv * w->D, stk, shk, ps * w->Hkv * w->Dv, stv, shv,
                        c.n, seq_lens, table, per_seq, offsets};
    flat_tensor qt = flat_tensor_bhsd(q, FLAT_F32, 1, w->Hq, nq, w->D);
    flat_tensor ot = flat_tensor_bhsd(out, FLAT_F32, 1, w->Hq, nq, w->Dv);
    flat_options o;
    int shuffled;
    call_options(w, r, &o, &shuffled);
    o.lse = lse;
    flat_kv_quant kq;
    o.kv_quant = kv_quant(w, &kq, kspool, vspool, pages, ps, ps * w->Hkv, s_sh, s_st);
    flat_tensor m;
    float *mask = NULL;
    if (w->rule == RULE_MASK) {
        mask = make_mask(w, 1, nq, longest, seq_of, pos_of, &m);
        o.mask = &m;
    }
    flat_status st;
    if (shuffled) {
        flat_plan *plan;
        st = flat_plan_create_paged(&qt, &kv, &ot, &o, &plan);
        if (st == FLAT_OK)
            st = run_shuffled(plan, r);
    } else {
        st = flat_attention_paged(&qt, &kv, &ot, &o);
    }
    assert_int_equal(st, FLAT_OK);
    calls_made++;
    char how[96];
    snprintf(how, sizeof how, "paged ps %lld %s threads %d dataflow %d%s", (long long)ps,
             head_major ? "HND" : "NHD", o.num_threads, (int)o.dataflow,
             shuffled ? " shuffled tasks" : "");
    for (int64_t row = 0; row < nq - 1; row++)
        for (int64_t h = 0; h < w->Hq; h++)
            check_row(w, out + (h * nq + row) * w->Dv, lse[h * nq + row], seq_of[row], h,
                      pos_of[row], how);
    free(mask), free(q), free(out), free(lse), free(kpool), free(vpool), free(table);
    free(kspool), free(vspool);
}

static void contiguous_call(const world *w, tu_rng *r)
{
    batch c;
    pick_batch(w, r, 1, &c);
    int64_t n = c.p1[0] - c.p0[0], B = c.n, kmax = 0;
    int32_t kv_lens[MAX_SEQ];
    for (int i = 0; i < c.n; i++) {
        kv_lens[i] = (int32_t)c.p1[i];
        kmax = flat_max(kmax, c.p1[i]);
    }
    void *k = malloc(kv_bytes(w, B * w->Hkv * kmax * w->D));
    void *v = malloc(kv_bytes(w, B * w->Hkv * kmax * w->Dv));
    const int64_t gk = groups(w, w->D), gv = groups(w, w->Dv), ssz = flat_dtype_size(w->st);
    char *ks = w->ks ? malloc((size_t)(B * w->Hkv * kmax * gk * ssz)) : NULL;
    char *vs = w->ks ? malloc((size_t)(B * w->Hkv * kmax * gv * ssz)) : NULL;
    for (int i = 0; i < c.n; i++)
        for (int64_t h = 0; h < w->Hkv; h++) {
            memcpy((void *)flat_elem_ptr(k, ((i * w->Hkv + h) * kmax) * w->D, w->t),
                   kv_row(w, w->k, w->D, c.seq[i], h, 0), kv_bytes(w, c.p1[i] * w->D));
            memcpy((void *)flat_elem_ptr(v, ((i * w->Hkv + h) * kmax) * w->Dv, w->t),
                   kv_row(w, w->v, w->Dv, c.seq[i], h, 0), kv_bytes(w, c.p1[i] * w->Dv));
            if (!w->ks)
                continue;
            int64_t srow = (i * w->Hkv + h) * kmax;
            memcpy(ks + srow * gk * ssz, scale_row(w, w->ks, w->D, c.seq[i], h, 0),
                   (size_t)(c.p1[i] * gk * ssz));
            memcpy(vs + srow * gv * ssz, scale_row(w, w->vs, w->Dv, c.seq[i], h, 0),
                   (size_t)(c.p1[i] * gv * ssz));
        }
    float *q = malloc(sizeof(float) * (size_t)(B * w->Hq * n * w->D));
    float *out = malloc(sizeof(float) * (size_t)(B * w->Hq * n * w->Dv));
    float *lse = malloc(sizeof(float) * (size_t)(B * w->Hq * n));
    int64_t seq_of[128], pos_of[128];
    for (int i = 0; i < c.n; i++)
        for (int64_t j = 0; j < n; j++) {
            seq_of[i * n + j] = c.seq[i], pos_of[i * n + j] = c.p0[i] + j;
            for (int64_t h = 0; h < w->Hq; h++)
                memcpy(q + ((i * w->Hq + h) * n + j) * w->D,
                       w->q + ((c.seq[i] * w->Hq + h) * w->lmax + c.p0[i] + j) * w->D,
                       sizeof(float) * (size_t)w->D);
        }
    flat_tensor qt = flat_tensor_bhsd(q, FLAT_F32, B, w->Hq, n, w->D);
    flat_tensor kt = flat_tensor_bhsd(k, w->t, B, w->Hkv, kmax, w->D);
    flat_tensor vt = flat_tensor_bhsd(v, w->t, B, w->Hkv, kmax, w->Dv);
    flat_tensor ot = flat_tensor_bhsd(out, FLAT_F32, B, w->Hq, n, w->Dv);
    flat_options o;
    int shuffled;
    call_options(w, r, &o, &shuffled);
    o.lse = lse;
    o.kv_lens = kv_lens;
    flat_kv_quant kq;
    o.kv_quant = kv_quant(w, &kq, ks, vs, B, kmax, w->Hkv * kmax, kmax, 1);
    flat_tensor m;
    float *mask = NULL;
    if (w->rule == RULE_MASK) {
        mask = make_mask(w, B, n, kmax, seq_of, pos_of, &m);
        o.mask = &m;
    }
    flat_status st;
    if (shuffled) {
        flat_plan *plan;
        st = flat_plan_create(&qt, &kt, &vt, &ot, &o, &plan);
        if (st == FLAT_OK)
            st = run_shuffled(plan, r);
    } else {
        st = flat_attention(&qt, &kt, &vt, &ot, &o);
    }
    assert_int_equal(st, FLAT_OK);
    calls_made++;
    char how[96];
    snprintf(how, sizeof how, "contiguous B %lld q_len %lld threads %d dataflow %d%s",
             (long long)B, (long long)n, o.num_threads, (int)o.dataflow,
             shuffled ? " shuffled tasks" : "");
    for (int i = 0; i < c.n; i++)
        for (int64_t h = 0; h < w->Hq; h++)
            for (int64_t j = 0; j < n; j++)
                check_row(w, out + ((i * w->Hq + h) * n + j) * w->Dv, lse[(i * w->Hq + h) * n + j],
                          c.seq[i], h, c.p0[i] + j, how);
    free(mask), free(q), free(out), free(lse), free(k), free(v), free(ks), free(vs);
}

static void run_world(world *w, tu_rng *r, int calls)
{
    world_make(w, r);
    for (int i = 0; i < calls; i++) {
        if (tu_next(r) % 3 == 0)
            contiguous_call(w, r);
        else
            ragged_paged_call(w, r);
    }
    world_free(w);
}

static const flat_dtype dtypes[] = {FLAT_F32, FLAT_F16, FLAT_BF16, FLAT_I8, FLAT_F8E4M3, FLAT_I4};
#define NDTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

/* The cache types a table runs batch-invariant calls on: those it takes
 * (ukernel.h's dtypes: every table takes all today) but int8 products
 * (avx512_vnni on I8), which the flag refuses: test_int8_products_refused. */
static int takes(const flat_ukernels *uk, flat_dtype t)
{
    return (uk->dtypes & FLAT_DTYPE_BIT(t)) != 0 && tu_products(uk, t) != 2;
}

/* Short and medium sequences (several fixed key blocks at D + Dv = 96: 1024
 * keys each), GQA 2, every table, cache type and rule. */
static void test_rows_alone(void **state)
{
    (void)state;
    tu_rng r = {22};
    int calls = tu_quick() ? 2 : 5;
    for (int ti = 0; ti < ntables; ti++)
        for (int di = 0; di < NDTYPES; di++)
            for (int rule = 0; rule < NRULES && takes(tables[ti], dtypes[di]); rule++) {
                world w = {.S = 3, .Hq = 4, .Hkv = 2, .D = 64, .Dv = 32, .t = dtypes[di],
                           .rule = rule, .uk = tables[ti]};
                w.len[0] = 1 + (int64_t)(tu_next(&r) % 40);
                w.len[1] = 100 + (int64_t)(tu_next(&r) % 400);
                w.len[2] = tu_quick() ? 1100 : 1000 + (int64_t)(tu_next(&r) % 1200);
                w.lmax = 0;
                for (int s = 0; s < 3; s++) {
                    w.tail[s] = flat_min(w.len[s], 24);
                    w.lmax = flat_max(w.lmax, w.len[s]);
                }
                run_world(&w, &r, calls);
            }
    printf("test_invariance: %ld calls, %ld rows bitwise equal to the row alone\n", calls_made,
           rows_compared);
}

/* Long rows: D = Dv = 256 makes the key block 256 and the split range 2048
 * keys, so a row of over 2048 keys merges two ranges: as split-KV units (few
 * tasks per thread, e.g. a row alone) or inside its task (enough tasks). */
static void test_split_ranges(void **state)
{
    (void)state;
    tu_rng r = {2022};
    long before = rows_compared;
    for (int ti = 0; ti < ntables; ti++)
        for (int di = 0; di < NDTYPES; di++) {
            if (!takes(tables[ti], dtypes[di]))
                continue;
            int rule = (int)(tu_next(&r) % NRULES);
            world w = {.S = 3, .Hq = 4, .Hkv = 2, .D = 256, .Dv = 256, .t = dtypes[di],
                       .rule = rule, .uk = tables[ti]};
            w.len[0] = 2300, w.len[1] = 2040 + (int64_t)(tu_next(&r) % 250);
            w.len[2] = 1 + (int64_t)(tu_next(&r) % 300);
            for (int s = 0; s < 3; s++)
                w.tail[s] = flat_min(w.len[s], 10);
            w.lmax = 2300;
            run_world(&w, &r, tu_quick() ? 2 : 4);
        }
    printf("test_invariance: split ranges: %ld rows bitwise equal to the row alone\n",
           rows_compared - before);
}

/* int8 products (their u8 P scale is per chunk of keys) with the flag: an
 * error naming both, out untouched; by opt.isa and by FLAT_PRECISION_INT8. */
static void test_int8_products_refused(void **state)
{
    (void)state;
    int8_t k[64], v[64];
    float q[64] = {0}, out[64], ks = 0.01f, vs = 0.02f;
    for (int i = 0; i < 64; i++)
        k[i] = (int8_t)(i - 32), v[i] = (int8_t)(31 - i);
    flat_tensor qt = flat_tensor_bhsd(q, FLAT_F32, 1, 1, 1, 64);
    flat_tensor ot = flat_tensor_bhsd(out, FLAT_F32, 1, 1, 1, 64);
    flat_kv_quant kq = {0};
    kq.k_scale = flat_tensor_bhsd(&ks, FLAT_F32, 1, 1, 1, 1);
    kq.v_scale = flat_tensor_bhsd(&vs, FLAT_F32, 1, 1, 1, 1);
    kq.k_group = kq.v_group = 64;
    int ran = 0;
    for (int ti = 0; ti < ntables; ti++)
        for (int how = 0; how < 4; how++) {
            /* i8 then i4 codes (the same bytes: 64 int8 or 128 int4 values) */
            const flat_dtype t = how < 2 ? FLAT_I8 : FLAT_I4;
            if (tu_products(tables[ti], t) != 2)
                continue;
            flat_tensor kt = flat_tensor_bhsd(k, t, 1, 1, 1, 64);
            flat_tensor vt = flat_tensor_bhsd(v, t, 1, 1, 1, 64);
            flat_options o = {0};
            o.flags = FLAT_FLAG_BATCH_INVARIANT;
            o.kv_quant = &kq;
            if (how % 2 == 0)
                o.isa = tables[ti]->isa;
            else
                o.precision = FLAT_PRECISION_INT8;
            memset(out, 0x5a, sizeof out);
            assert_int_equal(flat_attention(&qt, &kt, &vt, &ot, &o), FLAT_ERROR_UNSUPPORTED);
            assert_non_null(strstr(flat_last_error(), "FLAT_FLAG_BATCH_INVARIANT"));
            assert_int_equal(tu_bits(out[0]), 0x5a5a5a5au);
            o.flags = 0; /* the same call without the flag runs */
            assert_int_equal(flat_attention(&qt, &kt, &vt, &ot, &o), FLAT_OK);
            ran++;
        }
    printf("test_invariance: int8 products refused with the flag in %d calls\n", ran);
}

/* Bits no FLAT_FLAG_* defines are an error naming opt.flags, out untouched. */
static void test_unknown_flags(void **state)
{
    (void)state;
    flat_options o = {0};
    o.flags = FLAT_FLAG_BATCH_INVARIANT | 4;
    float q[64] = {0}, k[64] = {0}, v[64] = {0}, out[64];
    memset(out, 0x5a, sizeof out);
    flat_tensor qt = flat_tensor_bhsd(q, FLAT_F32, 1, 1, 1, 64);
    flat_tensor kt = flat_tensor_bhsd(k, FLAT_F32, 1, 1, 1, 64);
    flat_tensor vt = flat_tensor_bhsd(v, FLAT_F32, 1, 1, 1, 64);
    flat_tensor ot = flat_tensor_bhsd(out, FLAT_F32, 1, 1, 1, 64);
    assert_int_equal(flat_attention(&qt, &kt, &vt, &ot, &o), FLAT_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(flat_last_error(), "opt.flags"));
    assert_int_equal(tu_bits(out[0]), 0x5a5a5a5au);
}

int main(void)
{
    ntables = tu_runnable_tables("test_invariance", tables, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_flags),
        cmocka_unit_test(test_int8_products_refused),
        cmocka_unit_test(test_rows_alone),
        cmocka_unit_test(test_split_ranges),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed || tu_check_required_isas("test_invariance");
}
