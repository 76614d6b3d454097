/*
 * Re-pointable plans (flat_plan_repoint, flat_plan_repoint_paged), the way an
 * engine uses them: the plan is made once, when the graph is built, against
 * the first tensors; every step points it at the tensors of that step (new
 * q, k, v, out, lse; paged: new pools and a new block table) and runs it on
 * the engine's threads. Each step must equal a fresh flat_attention on that
 * step's tensors, bit for bit. Every change the plan cannot take is refused
 * with FLAT_ERROR_INVALID_ARGUMENT naming it, and the plan then still runs
 * the tensors it had.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "reference.h"
#include "testutil.h"

static const ecase shape = {"GQA chunk", 2, 8, 2, 9, 700, 64, 1};

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* Expects a refusal naming `name`. */
static void refused(flat_status s, const char *name)
{
    assert_int_equal(s, FLAT_ERROR_INVALID_ARGUMENT);
    if (!strstr(flat_last_error(), name))
        fail_msg("refusal \"%s\" does not name %s", flat_last_error(), name);
    printf("    refused: %s\n", flat_last_error());
}

static void test_repoint_steps(void **state)
{
    (void)state;
    tu_rng rng = {5};
    eproblem step[3];
    for (int i = 0; i < 3; i++)
        make(&step[i], &shape, 40 + (uint64_t)i);
    flat_options opt = step[0].opt;
    opt.num_threads = 2, opt.flags = FLAT_FLAG_ONE_PHASE;
    flat_plan *plan = NULL;
    assert_int_equal(flat_plan_create(&step[0].q.t, &step[0].k.t, &step[0].v.t, &step[0].o.t, &opt,
                                      &plan),
                     FLAT_OK);
    void *ws = workspace_for(plan);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++) {
            eproblem *e = &step[i];
            flat_options o = opt;
            o.lse = e->lse;
            assert_int_equal(flat_attention(&e->q.t, &e->k.t, &e->v.t, &e->o.t, &o), FLAT_OK);
            float *want_lse, *want = copy_out(e, &shape, &want_lse);
            tu_tensor_poison(&e->o);
            double t0 = now_us();
            assert_int_equal(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &o), FLAT_OK);
            double t1 = now_us();
            run_graph_op(plan, ws, 2, &rng);
            assert_true(same_out(e, want, want_lse, &shape));
            if (round == 0)
                printf("  step %d: re-pointed in %.1f us, run on 2 engine threads: bitwise equal "
                       "to flat_attention\n", i, t1 - t0);
            free(want);
            free(want_lse);
        }
    /* Refusals: each names what differs; the plan keeps step 2's tensors. */
    eproblem *e = &step[1];
    flat_options o = opt;
    o.lse = e->lse;
    flat_tensor bhsd = flat_tensor_bhsd(e->q.t.data, FLAT_F32, shape.B, shape.Hq, shape.Nq, shape.D);
    refused(flat_plan_repoint(plan, &bhsd, &e->k.t, &e->v.t, &e->o.t, &o), "q.stride");
    flat_tensor shorter = e->q.t, shorter_o = e->o.t;
    shorter.seq = shorter_o.seq = shape.Nq - 1;
    refused(flat_plan_repoint(plan, &shorter, &e->k.t, &e->v.t, &shorter_o, &o), "query length");
    flat_options bad = o;
    bad.lse = NULL;
    refused(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &bad), "opt.lse");
    bad = o, bad.causal = 0;
    refused(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &bad), "opt.causal");
    bad = o, bad.num_threads = 1;
    refused(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &bad), "opt.num_threads");
    int32_t lens[2] = {700, 650};
    bad = o, bad.kv_lens = lens;
    refused(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &bad), "opt.kv_lens");
    bad = o, bad.flags = 0;
    refused(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &bad), "opt.flags");
    bad = o, bad.scale = 0.5f;
    refused(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &bad), "opt.scale");
    refused(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->q.t, &o), "overlaps");
    refused(flat_plan_repoint(NULL, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &o), "plan");
    refused(flat_plan_repoint_paged(plan, &e->q.t, NULL, &e->o.t, &o), "not paged");
    /* unchanged: it still writes step 2's out, and step 1's stays poisoned */
    float *want_lse, *want = copy_out(&step[2], &shape, &want_lse);
    tu_tensor_poison(&step[2].o);
    tu_tensor_poison(&step[1].o);
    assert_int_equal(flat_plan_execute(plan, ws), FLAT_OK);
    assert_true(same_out(&step[2], want, want_lse, &shape));
    for (size_t i = 0; i < step[1].o.n; i++)
        assert_int_equal(tu_bits(step[1].o.buf[i]), TU_POISON_BITS);
    free(want);
    free(want_lse);
    /* kv_lens: the same values are accepted (the tiling follows them) */
    flat_plan_destroy(plan);
    o.kv_lens = lens, o.lse = step[0].lse;
    assert_int_equal(flat_plan_create(&step[0].q.t, &step[0].k.t, &step[0].v.t, &step[0].o.t, &o,
                                      &plan),
                     FLAT_OK);
    int32_t same[2] = {700, 650}, other[2] = {700, 651};
    o.kv_lens = same, o.lse = e->lse;
    assert_int_equal(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &o), FLAT_OK);
    o.kv_lens = other;
    refused(flat_plan_repoint(plan, &e->q.t, &e->k.t, &e->v.t, &e->o.t, &o), "opt.kv_lens[1]");
    free(ws);
    flat_plan_destroy(plan);
    for (int i = 0; i < 3; i++)
        unmake(&step[i]);
}

/* ---- paged: new pools and a new block table each step -------------------- */

typedef struct {
    float *kpool, *vpool;
    int32_t *table;
    int32_t lens[2];
    flat_paged_kv kv;
} pages;

/* step's K/V in pages of 16 tokens (vLLM layout), in an order of its own,
 * from a pool of `spare` extra pages. */
static void paginate(pages *pg, const eproblem *e, int64_t spare, uint64_t seed)
{
    const int64_t ps = 16, per = (shape.Nk + ps - 1) / ps, n = shape.B * per + spare;
    const int64_t page = ps * shape.Hkv * shape.D;
    pg->kpool = calloc((size_t)(n * page), sizeof(float));
    pg->vpool = calloc((size_t)(n * page), sizeof(float));
    pg->table = malloc(sizeof(int32_t) * (size_t)(shape.B * per));
    tu_rng rng = {seed};
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_next(&rng) % (uint64_t)(i + 1));
        int32_t x = perm[i];
        perm[i] = perm[j], perm[j] = x;
    }
    memcpy(pg->table, perm, sizeof(int32_t) * (size_t)(shape.B * per));
    free(perm);
    for (int64_t b = 0; b < shape.B; b++)
        for (int64_t j = 0; j < shape.Nk; j++)
            for (int64_t h = 0; h < shape.Hkv; h++) {
                int64_t at = pg->table[b * per + j / ps] * page + (j % ps) * shape.Hkv * shape.D +
                             h * shape.D;
                memcpy(pg->kpool + at, ref_row(&e->k.t, b, h, j), sizeof(float) * (size_t)shape.D);
                memcpy(pg->vpool + at, ref_row(&e->v.t, b, h, j), sizeof(float) * (size_t)shape.D);
            }
    pg->lens[0] = (int32_t)shape.Nk, pg->lens[1] = (int32_t)shape.Nk - 40;
    int64_t st = shape.Hkv * shape.D;
    pg->kv = (flat_paged_kv){FLAT_F32, pg->kpool, pg->vpool, n, ps, shape.Hkv, shape.D, shape.D,
                             page, st, shape.D, page, st, shape.D, shape.B, pg->lens, pg->table,
                             per, NULL};
}

static void unpaginate(pages *pg)
{
    free(pg->kpool);
    free(pg->vpool);
    free(pg->table);
}

static void test_repoint_paged(void **state)
{
    (void)state;
    tu_rng rng = {6};
    eproblem step[2];
    pages pg[2];
    for (int i = 0; i < 2; i++) {
        make(&step[i], &shape, 60 + (uint64_t)i);
        paginate(&pg[i], &step[i], 3 + 5 * i, 70 + (uint64_t)i);
    }
    flat_options opt = step[0].opt;
    opt.num_threads = 2, opt.flags = FLAT_FLAG_ONE_PHASE;
    flat_plan *plan = NULL;
    assert_int_equal(flat_plan_create_paged(&step[0].q.t, &pg[0].kv, &step[0].o.t, &opt, &plan),
                     FLAT_OK);
    void *ws = workspace_for(plan);
    for (int i = 1; i >= 0; i--) { /* step 1 first: the plan's own tensors come back last */
        flat_options o = opt;
        o.lse = step[i].lse;
        assert_int_equal(flat_attention_paged(&step[i].q.t, &pg[i].kv, &step[i].o.t, &o), FLAT_OK);
        float *want_lse, *want = copy_out(&step[i], &shape, &want_lse);
        tu_tensor_poison(&step[i].o);
        assert_int_equal(flat_plan_repoint_paged(plan, &step[i].q.t, &pg[i].kv, &step[i].o.t, &o),
                         FLAT_OK);
        run_graph_op(plan, ws, 2, &rng);
        assert_true(same_out(&step[i], want, want_lse, &shape));
        printf("  paged step %d: new pools (%lld pages) and block table: bitwise equal\n", i,
               (long long)pg[i].kv.pages);
        free(want);
        free(want_lse);
    }
    flat_options o = opt;
    o.lse = step[1].lse;
    flat_paged_kv kv = pg[1].kv;
    kv.seq_lens = (int32_t[2]){(int32_t)shape.Nk, (int32_t)shape.Nk - 41};
    refused(flat_plan_repoint_paged(plan, &step[1].q.t, &kv, &step[1].o.t, &o), "kv.seq_lens[1]");
    kv = pg[1].kv, kv.k_stride_head = 0;
    refused(flat_plan_repoint_paged(plan, &step[1].q.t, &kv, &step[1].o.t, &o), "kv.k_stride_head");
    kv = pg[1].kv, kv.block_table = (int32_t[2 * 44]){[5] = 999};
    refused(flat_plan_repoint_paged(plan, &step[1].q.t, &kv, &step[1].o.t, &o), "block_table");
    refused(flat_plan_repoint(plan, &step[1].q.t, &step[1].k.t, &step[1].v.t, &step[1].o.t, &o),
            "paged");
    free(ws);
    flat_plan_destroy(plan);
    for (int i = 0; i < 2; i++) {
        unpaginate(&pg[i]);
        unmake(&step[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repoint_steps),
        cmocka_unit_test(test_repoint_paged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
