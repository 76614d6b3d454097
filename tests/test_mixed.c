/*
 * Mixed calls against their parts (issue 21, points 5a and 6): a server step
 * of decodes and prefill chunks as one ragged flat_attention_paged call, and
 * the same step as two calls, the decodes alone and the chunks alone, over
 * the same pools. Under AUTO each sequence takes its kind's path, planned as
 * the call of only its kind would plan it (runtime/tiling.h, flat_part), so
 * a row of the mixed call is bitwise the part call's wherever the two agree
 * on splitting keys (split-KV counts the whole call's tasks), and always with
 * FLAT_FLAG_BATCH_INVARIANT; where they do not agree, within the fp32 bound.
 * Every kernel table, 1 and 2 threads, f32 and bf16 pools, pages of 16 and
 * 7 in both layouts, kinds interleaved (a 0-query sequence among them), the
 * planner's splits and forced ones; every mixed call also against the double
 * reference, its plan naming both paths, and every plan's workspace within
 * flat_plan_workspace_bound.
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

#include "call.h"
#include "convert.h"
#include "dispatch.h"
#include "parallel.h"
#include "reference.h"
#include "testutil.h"

#define ROW_TOL 1e-5
#define BF16_ROW_TOL 1e-2 /* tables with bf16 products (flat.h) */
enum { MAX_SEQ = 8, NHD = 0, HND = 1 };

static const flat_ukernels *tables[8];
static int ntables;
static long bitwise_rows, bounded_rows, mixed_calls;

typedef struct {
    int B;
    int64_t Hq, Hkv, D;
    int32_t seq[MAX_SEQ], count[MAX_SEQ]; /* tokens in the cache, queries */
} mcase;

/* A step's data: K/V as f32 holding exactly the pool's values, the pools,
 * and q with every sequence's queries in order ([1, Hq, nq, D]). */
typedef struct {
    const mcase *c;
    flat_dtype t;
    int64_t ps, per_seq, pages, maxseq, nq;
    float *k, *v, *q;
    void *kpool, *vpool;
    int32_t *table, offsets[MAX_SEQ + 1];
    int layout;
    double *ref; /* [Hq][nq][D], the double reference of every row */
} world;

static int is_decode(const mcase *c, int b)
{
    int64_t rows = c->count[b] * (c->Hq / c->Hkv);
    return rows > 0 && rows <= FLAT_DECODE_MAX_ROWS;
}

static float *kv_row(const world *w, float *x, int b, int64_t h, int64_t s)
{
    return x + ((b * w->c->Hkv + h) * w->maxseq + s) * w->c->D;
}

static void make_world(const mcase *c, flat_dtype t, world *w)
{
    memset(w, 0, sizeof *w);
    w->c = c, w->t = t;
    tu_rng rng = {(uint64_t)(7 + t)};
    for (int b = 0; b < c->B; b++)
        w->maxseq = flat_max(w->maxseq, c->seq[b]);
    size_t kv_n = (size_t)(c->B * c->Hkv * w->maxseq * c->D);
    w->k = malloc(sizeof(float) * kv_n), w->v = malloc(sizeof(float) * kv_n);
    for (size_t i = 0; i < kv_n; i++) { /* rounded to what the pool holds */
        float x[2] = {tu_uniform(&rng, -1, 1), tu_uniform(&rng, -1, 1)};
        char buf[8];
        for (int j = 0; j < 2; j++)
            flat_store_elem(buf, 0, x[j], t), x[j] = flat_load_elem(buf, 0, t);
        w->k[i] = x[0], w->v[i] = x[1];
    }
    for (int b = 0; b < c->B; b++)
        w->offsets[b + 1] = w->offsets[b] + c->count[b];
    w->nq = w->offsets[c->B];
    w->q = malloc(sizeof(float) * (size_t)(c->Hq * w->nq * c->D));
    for (int64_t i = 0; i < c->Hq * w->nq * c->D; i++)
        w->q[i] = tu_uniform(&rng, -1, 1);
}

/* Pools of ps-token pages, pages shuffled, spare ones NaN. */
static void make_pools(world *w, int64_t ps, int layout)
{
    const mcase *c = w->c;
    free(w->kpool), free(w->vpool), free(w->table);
    w->ps = ps, w->layout = layout, w->per_seq = (w->maxseq + ps - 1) / ps;
    w->pages = c->B * w->per_seq + 1;
    if (w->pages % 3 == 0)
        w->pages++; /* the shuffle steps by 3: keep it a permutation */
    const int64_t page = ps * c->Hkv * c->D, es = flat_dtype_size(w->t);
    w->kpool = malloc((size_t)(w->pages * page * es));
    w->vpool = malloc((size_t)(w->pages * page * es));
    for (int64_t i = 0; i < w->pages * page; i++)
        flat_store_elem(w->kpool, i, NAN, w->t), flat_store_elem(w->vpool, i, NAN, w->t);
    w->table = malloc(sizeof(int32_t) * (size_t)(c->B * w->per_seq));
    const int64_t st = layout == NHD ? c->Hkv * c->D : c->D, sh = layout == NHD ? c->D : ps * c->D;
    for (int b = 0, next = 0; b < c->B; b++)
        for (int64_t i = 0; i < w->per_seq; i++) {
            int32_t pg = (int32_t)((next++ * 3 + 1) % w->pages);
            w->table[b * w->per_seq + i] = pg;
            for (int64_t h = 0; h < c->Hkv; h++)
                for (int64_t s = 0; s < ps && i * ps + s < c->seq[b]; s++)
                    for (int64_t d = 0; d < c->D; d++) {
                        int64_t at = pg * page + s * st + h * sh + d;
                        flat_store_elem(w->kpool, at, kv_row(w, w->k, b, h, i * ps + s)[d], w->t);
                        flat_store_elem(w->vpool, at, kv_row(w, w->v, b, h, i * ps + s)[d], w->t);
                    }
        }
}

/* The reference of every row: sequence b's queries against its own keys. */
static void make_reference(world *w)
{
    const mcase *c = w->c;
    flat_options opt = {0};
    opt.causal = 1;
    w->ref = malloc(sizeof(double) * (size_t)(c->Hq * w->nq * c->D));
    for (int b = 0; b < c->B; b++) {
        const int64_t sk = w->maxseq * c->D;
        flat_tensor q = {w->q + w->offsets[b] * c->D, FLAT_F32, 1, c->Hq, c->count[b], c->D,
                         c->Hq * w->nq * c->D, w->nq * c->D, c->D};
        flat_tensor k = {kv_row(w, w->k, b, 0, 0), FLAT_F32, 1, c->Hkv, c->seq[b], c->D,
                         c->Hkv * sk, sk, c->D};
        flat_tensor v = k;
        v.data = kv_row(w, w->v, b, 0, 0);
        double lse;
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->count[b]; i++)
                ref_attention_row(&q, &k, &v, &opt, 0, h, i,
                                  w->ref + (h * w->nq + w->offsets[b] + i) * c->D, &lse);
    }
}

static void free_world(world *w)
{
    free(w->k), free(w->v), free(w->q), free(w->kpool), free(w->vpool), free(w->table);
    free(w->ref);
}

/* Splits of a plan's tilings: [0] the GEMM-shaped sequences', [1] the decodes'. */
typedef struct {
    int splits[2];
    int mixed;
} plan_seen;

/* One call of the sequences `use` (a bit each) as a ragged paged call, its
 * rows written to the step's rows of `out` ([Hq][nq][D]); force > 0 forces
 * that split count (the planner's test hook). */
static plan_seen call(const world *w, unsigned use, const flat_options *opt, int force, float *out)
{
    const mcase *c = w->c;
    int32_t seq[MAX_SEQ], offsets[MAX_SEQ + 1] = {0}, *table = malloc(sizeof(int32_t) * (size_t)(c->B * w->per_seq));
    int n = 0, from[MAX_SEQ];
    for (int b = 0; b < c->B; b++)
        if (use >> b & 1) {
            seq[n] = c->seq[b], from[n] = b;
            memcpy(table + n * w->per_seq, w->table + b * w->per_seq, sizeof(int32_t) * (size_t)w->per_seq);
            offsets[n + 1] = offsets[n] + c->count[b];
            n++;
        }
    int64_t rows = offsets[n] ? offsets[n] : 1, D = c->D;
    float *q = malloc(sizeof(float) * (size_t)(c->Hq * rows * D)), *o = malloc(sizeof(float) * (size_t)(c->Hq * rows * D));
    for (int i = 0; i < n; i++)
        for (int64_t h = 0; h < c->Hq; h++)
            memcpy(q + (h * rows + offsets[i]) * D, w->q + (h * w->nq + w->offsets[from[i]]) * D,
                   sizeof(float) * (size_t)(c->count[from[i]] * D));
    const int64_t page = w->ps * c->Hkv * D, st = w->layout == NHD ? c->Hkv * D : D,
                  sh = w->layout == NHD ? D : w->ps * D;
    flat_paged_kv kv = {w->t, w->kpool, w->vpool, w->pages, w->ps, c->Hkv, D, D, page, st, sh,
                        page, st, sh, n, seq, table, w->per_seq, offsets};
    flat_tensor qt = flat_tensor_bhsd(q, FLAT_F32, 1, c->Hq, rows, D);
    flat_tensor ot = flat_tensor_bhsd(o, FLAT_F32, 1, c->Hq, rows, D);
    flat_plan *plan = NULL;
    flat_status s;
    if (force > 0) {
        flat_problem p;
        const flat_ukernels *uk = NULL;
        if ((s = flat_validate_paged(&qt, &kv, &ot, opt, &p)) == FLAT_OK &&
            (uk = flat_dispatch_select(opt->isa, &s)) != NULL)
            s = flat_plan_build(&p, uk, opt->dataflow, flat_parallel_threads(opt->num_threads),
                                force, &plan);
    } else {
        s = flat_plan_create_paged(&qt, &kv, &ot, opt, &plan);
    }
    if (s == FLAT_OK)
        s = flat_plan_execute(plan, NULL);
    if (s != FLAT_OK)
        fail_msg("call of sequences %#x: %s: %s", use, flat_status_string(s), flat_last_error());
    int64_t most_q = 0, most_kv = 0;
    for (int i = 0; i < n; i++)
        most_q = flat_max(most_q, c->count[from[i]]), most_kv = flat_max(most_kv, seq[i]);
    size_t bound = flat_plan_workspace_bound(n, c->Hq, c->Hkv, most_q, most_kv, D, D, opt);
    if (flat_plan_workspace_size(plan) > bound)
        fail_msg("call of sequences %#x: workspace %zu over flat_plan_workspace_bound %zu (%s)",
                 use, flat_plan_workspace_size(plan), bound, flat_plan_describe(plan));
    plan_seen seen = {{plan->t.splits, plan->t.splits}, plan->n_tilings > 1};
    if (seen.mixed)
        seen.splits[1] = plan->t_decode.splits;
    if (seen.mixed && !strstr(flat_plan_describe(plan), "dataflow=FLAT+DECODE") &&
        !strstr(flat_plan_describe(plan), "dataflow=FLASH+DECODE"))
        fail_msg("a mixed plan does not name both paths: %s", flat_plan_describe(plan));
    flat_plan_destroy(plan);
    for (int i = 0; i < n; i++)
        for (int64_t h = 0; h < c->Hq; h++)
            memcpy(out + (h * w->nq + w->offsets[from[i]]) * D, o + (h * rows + offsets[i]) * D,
                   sizeof(float) * (size_t)(c->count[from[i]] * D));
    free(q), free(o), free(table);
    return seen;
}

static double row_distance(const float *a, const float *b, int64_t D)
{
    double err = 0, norm = 0;
    for (int64_t x = 0; x < D; x++)
        err += ((double)a[x] - b[x]) * ((double)a[x] - b[x]), norm += (double)b[x] * b[x];
    return norm > 0 ? sqrt(err / norm) : sqrt(err);
}

static double ref_distance(const float *a, const double *r, int64_t D)
{
    double err = 0, norm = 0;
    for (int64_t x = 0; x < D; x++)
        err += (a[x] - r[x]) * (a[x] - r[x]), norm += r[x] * r[x];
    return norm > 0 ? sqrt(err / norm) : sqrt(err);
}

/* The mixed call and its two parts; every row compared. */
static void mixed_against_parts(const world *w, const flat_ukernels *uk, int threads,
                                uint64_t flags, int force)
{
    const mcase *c = w->c;
    unsigned decodes = 0, chunks = 0;
    for (int b = 0; b < c->B; b++)
        if (c->count[b] > 0)
            *(is_decode(c, b) ? &decodes : &chunks) |= 1u << b;
    const size_t n = (size_t)(c->Hq * w->nq * c->D);
    float *mixed = malloc(sizeof(float) * n), *parts = malloc(sizeof(float) * n);
    flat_options opt = {0};
    opt.causal = 1, opt.isa = uk->isa, opt.num_threads = threads, opt.flags = flags;
    plan_seen m = call(w, decodes | chunks, &opt, force, mixed);
    plan_seen d = call(w, decodes, &opt, force, parts);
    plan_seen g = call(w, chunks, &opt, force, parts);
    if (!m.mixed || d.mixed || g.mixed)
        fail_msg("%s: the step planned as mixed %d, its parts as mixed %d and %d", uk->name,
                 m.mixed, d.mixed, g.mixed);
    const int bf16 = uk->compute != FLAT_F32;
    const double tol = bf16 ? BF16_ROW_TOL : ROW_TOL;
    for (int b = 0; b < c->B; b++) {
        const plan_seen *part = is_decode(c, b) ? &d : &g;
        const int kind = is_decode(c, b);
        const int bitwise = (flags & FLAT_FLAG_BATCH_INVARIANT) || m.splits[kind] == part->splits[0];
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->count[b]; i++) {
                int64_t at = (h * w->nq + w->offsets[b] + i) * c->D;
                char what[200];
                snprintf(what, sizeof what, "%s threads %d flags %llu force %d %s pages %lld %s: "
                         "sequence %d (%s), head %lld, query %lld", uk->name, threads,
                         (unsigned long long)flags, force, w->t == FLAT_F32 ? "f32" : "bf16",
                         (long long)w->ps, w->layout == NHD ? "NHD" : "HND", b,
                         kind ? "decode" : "chunk", (long long)h, (long long)i);
                if (bitwise && memcmp(mixed + at, parts + at, sizeof(float) * (size_t)c->D) != 0)
                    fail_msg("%s: not bitwise the part's row (splits %d and %d)", what,
                             m.splits[kind], part->splits[0]);
                if (!bitwise && !(row_distance(mixed + at, parts + at, c->D) <= tol))
                    fail_msg("%s: %g from the part's row", what,
                             row_distance(mixed + at, parts + at, c->D));
                if (!(ref_distance(mixed + at, w->ref + at, c->D) <= tol))
                    fail_msg("%s: %g from the reference", what,
                             ref_distance(mixed + at, w->ref + at, c->D));
                bitwise ? bitwise_rows++ : bounded_rows++;
            }
    }
    mixed_calls++;
    free(mixed), free(parts);
}

/* A step of 3 decodes (4, 32 = FLAT_DECODE_MAX_ROWS and 8 rows per kv head)
 * and 2 chunks, interleaved, and a sequence without queries. */
static const mcase step = {6, 8, 2, 64, {700, 300, 1500, 64, 33, 517}, {1, 40, 8, 0, 2, 17}};

static void test_step(void **state)
{
    (void)state;
    static const flat_dtype types[2] = {FLAT_F32, FLAT_BF16};
    static const int64_t sizes[2] = {16, 7};
    for (int ti = 0; ti < 2; ti++) {
        world w;
        make_world(&step, types[ti], &w);
        make_reference(&w);
        for (int si = 0; si < 2; si++)
            for (int layout = NHD; layout <= HND; layout++) {
                if (tu_quick() && (si > 0 || layout != ti)) /* qemu: one of each per type */
                    continue;
                make_pools(&w, sizes[si], layout);
                for (int k = 0; k < ntables; k++)
                    for (int threads = 1; threads <= 2; threads++)
                        for (int inv = 0; inv < 2; inv++)
                            mixed_against_parts(&w, tables[k], threads,
                                                inv ? FLAT_FLAG_BATCH_INVARIANT : 0, 0);
            }
        free_world(&w);
    }
}

/* Split-KV in a mixed call: by the planner (few tasks: one kv head, a
 * decode and a chunk of 5 queries x 8 heads; the decode's keys too few to
 * split), and forced (every block of both tilings in 3 ranges, merged by
 * phase-1 tasks of both). */
static void test_splits(void **state)
{
    (void)state;
    static const mcase few = {2, 8, 1, 64, {600, 2000}, {1, 5}};
    world w;
    make_world(&few, FLAT_F32, &w);
    make_reference(&w);
    make_pools(&w, 16, HND);
    for (int k = 0; k < ntables; k++)
        for (int threads = 1; threads <= 2; threads++)
            for (int force = 0; force <= 3; force += 3) {
                mixed_against_parts(&w, tables[k], threads, 0, force);
                mixed_against_parts(&w, tables[k], threads, FLAT_FLAG_BATCH_INVARIANT, force);
            }
    free_world(&w);
}

static void test_summary(void **state)
{
    (void)state;
    printf("  mixed: %ld calls against their parts: %ld rows bitwise, %ld within the bound "
           "(the calls split keys differently)\n", mixed_calls, bitwise_rows, bounded_rows);
    assert_true(mixed_calls > 0 && bitwise_rows > 0);
}

int main(void)
{
    ntables = tu_runnable_tables("test_mixed", tables, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_summary),
    };
    if (tu_check_required_isas("test_mixed"))
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
