/*
 * flat_attention_paged against flat_attention on the same data laid out
 * contiguously, bitwise: page sizes 1, 7, 16, 64 and 256; pool pages in
 * shuffled order with unused pages full of NaN; vLLM's [pages, page_size,
 * heads, dim] and the head-major [pages, heads, page_size, dim] layouts; K/V
 * pools in f32, f16 and bf16; ragged q through q_offsets mixing 0, 1, 7 and
 * 500 queries; causal; every kernel table. The contiguous call sees the
 * same problem: K/V [B, Hkv, max seq_len, D] with kv_lens = seq_lens and, for
 * ragged q, queries right-aligned in a [B, Hq, max count, D] tensor (a
 * sequence's queries are its last tokens either way). A ragged call that
 * mixes decodes with longer query runs takes each kind's own path (tiling.h,
 * flat_part; test_mixed.c holds it bitwise to its parts), so against the
 * padded contiguous call it is held to the fp32 bound. Then every validation
 * rule of flat_paged_kv: the status, the message naming the field, and out
 * untouched.
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
#include "reference.h"
#include "testutil.h"
#include "tiling.h"

static const flat_ukernels *tables[8];
static int ntables;
static long compared;

enum { NHD = 0, HND = 1 }; /* vLLM's token-major pages, head-major pages */

typedef struct {
    int64_t B, Hq, Hkv, D;
    int32_t seq[4], count[4]; /* per sequence: tokens in the cache, queries */
    int ragged, causal;
} scase;

typedef struct {
    void *kpool, *vpool;
    int32_t *table;
    flat_paged_kv kv;
} pools;

/* Pools of `ps`-token pages holding the contiguous k/v (already in type t),
 * each sequence's pages at shuffled pool positions, spare pages NaN. */
static void build_pools(const scase *c, const tu_tensor *k, const tu_tensor *v, flat_dtype t,
                        int64_t ps, int layout, pools *pl)
{
    int64_t per_seq = 0, used = 0;
    for (int b = 0; b < c->B; b++) {
        per_seq = flat_max(per_seq, (c->seq[b] + ps - 1) / ps);
        used += (c->seq[b] + ps - 1) / ps;
    }
    per_seq += 1; /* a spare entry per sequence, left at -1 */
    int64_t pages = used + 3;
    if (pages % 5 == 0)
        pages++; /* the shuffle below steps by 5: keep it a permutation */
    const int64_t size = flat_dtype_size(t), page = ps * c->Hkv * c->D;
    pl->kpool = malloc((size_t)(pages * page * size));
    pl->vpool = malloc((size_t)(pages * page * size));
    for (int64_t i = 0; i < pages * page; i++) {
        flat_store_elem(pl->kpool, i, NAN, t);
        flat_store_elem(pl->vpool, i, NAN, t);
    }
    pl->table = malloc(sizeof(int32_t) * (size_t)(c->B * per_seq));
    for (int64_t i = 0; i < c->B * per_seq; i++)
        pl->table[i] = -1;
    int64_t st = layout == NHD ? c->Hkv * c->D : c->D, sh = layout == NHD ? c->D : ps * c->D;
    int64_t next = 0;
    for (int b = 0; b < c->B; b++)
        for (int64_t i = 0; i < (c->seq[b] + ps - 1) / ps; i++) {
            int32_t pg = (int32_t)((next++ * 5 + 2) % pages); /* 5 and pages coprime */
            pl->table[b * per_seq + i] = pg;
            for (int64_t h = 0; h < c->Hkv; h++)
                for (int64_t s = 0; s < ps && i * ps + s < c->seq[b]; s++)
                    for (int64_t d = 0; d < c->D; d++) {
                        int64_t at = pg * page + s * st + h * sh + d;
                        flat_store_elem(pl->kpool, at, tu_tensor_get(k, b, h, i * ps + s, d), t);
                        flat_store_elem(pl->vpool, at, tu_tensor_get(v, b, h, i * ps + s, d), t);
                    }
        }
    pl->kv = (flat_paged_kv){t, pl->kpool, pl->vpool, pages, ps, c->Hkv, c->D, c->D,
                             page, st, sh, page, st, sh, c->B, c->seq, pl->table, per_seq, NULL};
}

static void free_pools(pools *pl)
{
    free(pl->kpool);
    free(pl->vpool);
    free(pl->table);
}

/* Ragged q rows from the padded q: sequence b's queries are the last
 * count[b] positions of its padded rows. */
static void ragged_q(const scase *c, const tu_tensor *qpad, int64_t maxq, tu_tensor *q,
                     int32_t *offsets)
{
    offsets[0] = 0;
    for (int b = 0; b < c->B; b++)
        offsets[b + 1] = offsets[b] + c->count[b];
    tu_tensor_alloc(q, TU_BSHD, 1, c->Hq, offsets[c->B] ? offsets[c->B] : 1, c->D);
    for (int b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->count[b]; i++)
                memcpy(ref_row(&q->t, 0, h, offsets[b] + i),
                       ref_row(&qpad->t, b, h, maxq - c->count[b] + i), sizeof(float) * (size_t)c->D);
}

/* Relative 2-norm distance of two rows of D elements of type t. */
static double row_distance(const void *a, const void *b, int64_t D, flat_dtype t)
{
    double err = 0, norm = 0;
    for (int64_t x = 0; x < D; x++) {
        double u = flat_load_elem(a, x, t), w = flat_load_elem(b, x, t);
        err += (u - w) * (u - w), norm += u * u;
    }
    return norm > 0 ? sqrt(err / norm) : sqrt(err);
}

/* Whether a ragged case has sequences on both sides of the decode path's
 * FLAT_DECODE_MAX_ROWS rows per kv head (runtime/tiling.h). */
static int mixes_kinds(const scase *c)
{
    int decode = 0, longer = 0;
    for (int b = 0; b < c->B; b++) {
        int64_t rows = c->count[b] * (c->Hq / c->Hkv);
        decode |= rows > 0 && rows <= FLAT_DECODE_MAX_ROWS;
        longer |= rows > FLAT_DECODE_MAX_ROWS;
    }
    return c->ragged && decode && longer;
}

/* tol 0: bitwise (fp32-product tables); else the relative row distance
 * allowed: the fp32 bound where a mixed ragged call takes other paths than
 * the padded call, 1e-2 (their bound) for bf16-product tables, whose key
 * pairs change with the page boundaries. */
static void compare_rows(const scase *c, const tu_tensor *want, int64_t maxq, const tu_tensor *got,
                         const int32_t *offsets, const char *what, double tol)
{
    const int bitwise = tol == 0;
    for (int b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->count[b]; i++) {
                int64_t wi = maxq - c->count[b] + i;
                const void *w = flat_elem_ptr(want->buf, b * want->t.stride_batch + h * want->t.stride_head + wi * want->t.stride_seq, want->t.dtype);
                const void *g = offsets
                    ? flat_elem_ptr(got->buf, h * got->t.stride_head + (offsets[b] + i) * got->t.stride_seq, got->t.dtype)
                    : flat_elem_ptr(got->buf, b * got->t.stride_batch + h * got->t.stride_head + wi * got->t.stride_seq, got->t.dtype);
                if (bitwise ? memcmp(w, g, (size_t)(c->D * flat_dtype_size(got->t.dtype))) != 0
                            : !(row_distance(w, g, c->D, got->t.dtype) <= tol))
                    fail_msg("%s: row (%d, %lld, %lld) is not %s %g of flat_attention's", what, b,
                             (long long)h, (long long)i, bitwise ? "bitwise" : "within", tol);
            }
}

static void run_case(const scase *c, flat_dtype kvt, int64_t ps, int layout, int threads)
{
    int64_t maxseq = 1, maxq = 1;
    for (int b = 0; b < c->B; b++) {
        maxseq = flat_max(maxseq, c->seq[b]);
        maxq = flat_max(maxq, c->count[b]);
    }
    tu_rng rng = {(uint64_t)(ps * 31 + layout + maxseq)};
    tu_tensor q, k, v, o, tk, tv, po, rq;
    tu_tensor_alloc(&q, TU_BSHD, c->B, c->Hq, maxq, c->D);
    tu_tensor_alloc(&k, TU_BHSD, c->B, c->Hkv, maxseq, c->D);
    tu_tensor_alloc(&v, TU_BHSD, c->B, c->Hkv, maxseq, c->D);
    tu_tensor_alloc(&o, TU_BSHD, c->B, c->Hq, maxq, c->D);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    tu_tensor_typed(&k, kvt, &tk);
    tu_tensor_typed(&v, kvt, &tv);
    pools pl;
    build_pools(c, &tk, &tv, kvt, ps, layout, &pl);
    int32_t offsets[5];
    const tu_tensor *qp = &q;
    if (c->ragged) {
        ragged_q(c, &q, maxq, &rq, offsets);
        pl.kv.q_offsets = offsets;
        qp = &rq;
    }
    tu_tensor_alloc(&po, TU_BSHD, qp->t.batch, c->Hq, qp->t.seq, c->D);
    char what[160];
    for (int ti = 0; ti < ntables; ti++) {
        flat_options opt = {0};
        opt.causal = c->causal, opt.isa = tables[ti]->isa, opt.num_threads = threads;
        opt.kv_lens = c->seq;
        flat_status s1 = flat_attention(&q.t, &tk.t, &tv.t, &o.t, &opt);
        opt.kv_lens = NULL;
        tu_tensor_poison(&po);
        flat_status s2 = flat_attention_paged(&qp->t, &pl.kv, &po.t, &opt);
        snprintf(what, sizeof what, "[%s page %lld %s kv %d%s%s threads %d]", tables[ti]->name,
                 (long long)ps, layout == NHD ? "NHD" : "HND", (int)kvt, c->ragged ? " ragged" : "",
                 c->causal ? " causal" : "", threads);
        if (s1 != s2)
            fail_msg("%s: contiguous %s, paged %s (%s)", what, flat_status_string(s1),
                     flat_status_string(s2), flat_last_error());
        if (s1 != FLAT_OK)
            continue; /* a table without this K/V type: both refused it */
        if (tu_tensor_padding_changed(&po) >= 0)
            fail_msg("%s: out padding written", what);
        compare_rows(c, &o, maxq, &po, c->ragged ? offsets : NULL, what,
                     tables[ti]->compute != FLAT_F32 ? 1e-2 : mixes_kinds(c) ? 1e-5 : 0);
        compared++;
    }
    free_pools(&pl);
    tu_tensor *all[7] = {&q, &k, &v, &o, &tk, &tv, &po};
    for (int i = 0; i < 7; i++)
        tu_tensor_free(all[i]);
    if (c->ragged)
        tu_tensor_free(&rq);
}

static void test_page_sizes_and_layouts(void **state)
{
    (void)state;
    static const int64_t sizes[] = {1, 7, 16, 64, 256};
    const scase decode = {3, 8, 2, 64, {700, 5, 333, 0}, {1, 1, 1, 0}, 0, 0};
    const scase chunk = {2, 4, 2, 64, {300, 129, 0, 0}, {9, 9, 0, 0}, 0, 1};
    for (int si = 0; si < 5; si++)
        for (int layout = NHD; layout <= HND; layout++) {
            run_case(&decode, FLAT_F32, sizes[si], layout, 1 + si % 2);
            run_case(&chunk, FLAT_F32, sizes[si], layout, 2 - si % 2);
        }
}

/* Without q_offsets a sequence may hold fewer tokens than q.seq, none at all
 * (an empty slot of a fixed batch) included, as flat_attention's kv_lens. */
static void test_short_and_empty_slots(void **state)
{
    (void)state;
    const scase fixed = {3, 4, 2, 64, {0, 300, 5, 0}, {9, 9, 9, 0}, 0, 0};
    const scase fixed_causal = {3, 4, 2, 64, {5, 0, 129, 0}, {9, 9, 9, 0}, 0, 1};
    for (int layout = NHD; layout <= HND; layout++) {
        run_case(&fixed, FLAT_F32, 16, layout, 2);
        run_case(&fixed_causal, FLAT_BF16, 1, layout, 1);
    }
}

static void test_dtypes(void **state)
{
    (void)state;
    const scase decode = {2, 8, 2, 128, {1000, 77, 0, 0}, {1, 1, 0, 0}, 0, 0};
    for (int t = FLAT_F16; t <= FLAT_BF16; t++)
        for (int layout = NHD; layout <= HND; layout++)
            run_case(&decode, (flat_dtype)t, 16, layout, 2);
}

static void test_ragged_mix(void **state)
{
    (void)state;
    const scase mix = {4, 4, 2, 64, {50, 800, 40, 600}, {0, 1, 7, 500}, 1, 1};
    run_case(&mix, FLAT_F32, 16, NHD, 2);
    run_case(&mix, FLAT_BF16, 7, HND, 1);
    const scase decode = {4, 8, 1, 64, {90, 3000, 1, 257}, {1, 1, 1, 1}, 1, 0};
    run_case(&decode, FLAT_F32, 64, HND, 2);
}

/* ---- validation ------------------------------------------------------------ */

typedef struct {
    tu_tensor q, k, v, o;
    pools pl;
    float lse[64];
} vfix;

static const scase vcase = {2, 4, 2, 32, {40, 17, 0, 0}, {3, 3, 0, 0}, 0, 0};

static void vfix_make(vfix *f)
{
    tu_rng rng = {5};
    tu_tensor_alloc(&f->q, TU_BHSD, 2, 4, 3, 32);
    tu_tensor_alloc(&f->k, TU_BHSD, 2, 2, 40, 32);
    tu_tensor_alloc(&f->v, TU_BHSD, 2, 2, 40, 32);
    tu_tensor_alloc(&f->o, TU_BHSD, 2, 4, 3, 32);
    tu_tensor_fill(&f->q, &rng, 1.0f);
    tu_tensor_fill(&f->k, &rng, 1.0f);
    tu_tensor_fill(&f->v, &rng, 1.0f);
    build_pools(&vcase, &f->k, &f->v, FLAT_F32, 16, NHD, &f->pl);
}

static void vfix_free(vfix *f)
{
    free_pools(&f->pl);
    tu_tensor_free(&f->q);
    tu_tensor_free(&f->k);
    tu_tensor_free(&f->v);
    tu_tensor_free(&f->o);
}

/* One rejected call: status, the message naming `field`, out untouched. */
static void expect_reject(vfix *f, flat_paged_kv kv, const flat_tensor *q, const flat_tensor *o,
                          const flat_options *opt, const char *field)
{
    tu_tensor_poison(&f->o);
    flat_status s = flat_attention_paged(q, &kv, o, opt);
    if (s != FLAT_ERROR_INVALID_ARGUMENT)
        fail_msg("%s: status %s, want FLAT_ERROR_INVALID_ARGUMENT", field, flat_status_string(s));
    if (!strstr(flat_last_error(), field))
        fail_msg("message \"%s\" does not name %s", flat_last_error(), field);
    for (size_t i = 0; i < f->o.n; i++)
        if (tu_bits(f->o.buf[i]) != TU_POISON_BITS)
            fail_msg("%s: a rejected call wrote out", field);
    printf("  %-22s -> %s\n", field, flat_last_error());
}

static void test_validation(void **state)
{
    (void)state;
    vfix f;
    vfix_make(&f);
    const flat_paged_kv ok = f.pl.kv;
    const flat_options none = {0};
    assert_int_equal(flat_attention_paged(&f.q.t, &ok, &f.o.t, &none), FLAT_OK);
    flat_paged_kv kv;
    int32_t lens[2], table[64], offsets[3];
#define CASE(mutate, field)                                                                     \
    do {                                                                                        \
        kv = ok;                                                                                \
        memcpy(lens, ok.seq_lens, sizeof lens);                                                 \
        memcpy(table, ok.block_table, sizeof(int32_t) * (size_t)(ok.batch * ok.block_table_stride)); \
        kv.seq_lens = lens, kv.block_table = table;                                             \
        flat_tensor q = f.q.t, o = f.o.t;                                                       \
        flat_options opt = none;                                                                \
        (void)q, (void)o, (void)opt;                                                            \
        mutate;                                                                                 \
        expect_reject(&f, kv, &q, &o, &opt, field);                                             \
    } while (0)
    CASE(kv.k = NULL, "kv.k");
    CASE(kv.v = NULL, "kv.v");
    CASE(kv.seq_lens = NULL, "kv.seq_lens");
    CASE(kv.block_table = NULL, "kv.block_table");
    CASE(kv.dtype = (flat_dtype)9, "kv.dtype");
    CASE(kv.page_size = 0, "kv.page_size");
    CASE(kv.pages = 0, "kv.pages");
    CASE(kv.heads = 3, "kv.heads");
    CASE(kv.dim = 16, "kv.dim");
    CASE(kv.v_dim = 16, "kv.v_dim");
    CASE(kv.batch = 3, "kv.batch");
    CASE(kv.block_table_stride = 0, "kv.block_table_stride");
    CASE(kv.k_stride_token = -1, "kv.k_stride_token");
    CASE(kv.v_stride_head = -5, "kv.v_stride_head");
    CASE(table[0] = (int32_t)ok.pages, "kv.block_table[0][0]");
    CASE(table[1] = -1, "kv.block_table[0][1]");
    CASE(lens[1] = (int32_t)(ok.block_table_stride * ok.page_size + 1), "kv.seq_lens[1]");
    CASE(lens[0] = -1, "kv.seq_lens[0]");
    CASE((lens[1] = 1, offsets[0] = 0, offsets[1] = 1, offsets[2] = 3, kv.q_offsets = offsets,
          q.batch = 1, o.batch = 1), "kv.seq_lens[1]"); /* ragged: 2 queries, 1 token */
    CASE((offsets[0] = 0, offsets[1] = 2, offsets[2] = 1, kv.q_offsets = offsets, q.batch = 1,
          o.batch = 1), "kv.q_offsets[2]");
    CASE((offsets[0] = 0, offsets[1] = 2, offsets[2] = 7, kv.q_offsets = offsets, q.batch = 1,
          o.batch = 1), "kv.q_offsets[2]");
    CASE((offsets[0] = -1, offsets[1] = 2, offsets[2] = 3, kv.q_offsets = offsets, q.batch = 1,
          o.batch = 1), "kv.q_offsets[0]");
    CASE((offsets[0] = 0, offsets[1] = 1, offsets[2] = 2, kv.q_offsets = offsets), "q.batch");
    CASE(q.dim = 16, "q.dim");
    CASE(o.heads = 2, "out.heads");
    CASE(opt.kv_lens = lens, "opt.kv_lens");
    CASE(opt.lse = (float *)f.pl.kpool, "opt.lse");
    CASE(o.data = f.pl.vpool, "out");
    CASE(opt.reserved[0] = 1, "opt.reserved[0]");
    CASE(opt.window_left = -2, "opt.window_left");
#undef CASE
    assert_int_equal(flat_attention_paged(NULL, &ok, &f.o.t, &none), FLAT_ERROR_INVALID_ARGUMENT);
    assert_int_equal(flat_attention_paged(&f.q.t, NULL, &f.o.t, &none), FLAT_ERROR_INVALID_ARGUMENT);
    vfix_free(&f);
}

/* A ragged step in which no sequence has a query (q_offsets all equal; the
 * planner once divided by the zero-row query blocks): OK, out untouched. */
static void test_no_queries(void **state)
{
    (void)state;
    vfix f;
    vfix_make(&f);
    int32_t offsets[3] = {0, 0, 0};
    flat_paged_kv kv = f.pl.kv;
    kv.q_offsets = offsets;
    flat_tensor q = f.q.t, o = f.o.t;
    q.batch = o.batch = 1;
    for (int ti = 0; ti < ntables; ti++)
        for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE; df++) {
            flat_options opt = {0};
            opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df, opt.num_threads = 2;
            tu_tensor_poison(&f.o);
            flat_status s = flat_attention_paged(&q, &kv, &o, &opt);
            if (s != FLAT_OK)
                fail_msg("%s dataflow %d: status %s: %s", tables[ti]->name, df,
                         flat_status_string(s), flat_last_error());
            for (size_t i = 0; i < f.o.n; i++)
                if (tu_bits(f.o.buf[i]) != TU_POISON_BITS)
                    fail_msg("%s dataflow %d: out written with no query", tables[ti]->name, df);
        }
    vfix_free(&f);
}

static void test_summary(void **state)
{
    (void)state;
    printf("  paged: %ld calls bitwise equal to the contiguous call\n", compared);
    assert_true(compared > 0);
}

int main(void)
{
    ntables = tu_runnable_tables("test_paged", tables, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_sizes_and_layouts),
        cmocka_unit_test(test_short_and_empty_slots),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_ragged_mix),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_no_queries),
        cmocka_unit_test(test_summary),
    };
    if (tu_check_required_isas("test_paged"))
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
