/*
 * flat_plan_workspace_bound: the workspace an engine reserves at graph-build
 * time, from the shapes alone, must hold every real plan of at most those
 * shapes. Over a few thousand random problems (batch, GQA, query rows from
 * decode to prefill, kv_lens, paged and ragged batches, every kernel table,
 * every dataflow, thread counts 0..16, with and without FLAT_FLAG_ONE_PHASE and FLAT_FLAG_BATCH_INVARIANT
 * and 16-bit masks) each plan's flat_plan_workspace_size is <= the bound of
 * its maxima, and the shared shapes' bounds are printed with their plans'
 * sizes (how loose the bound is). Plans here are never executed: tensors are
 * views at fake addresses, which planning never dereferences.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ukernel.h"

static flat_tensor fake(uintptr_t *at, flat_dtype t, int64_t b, int64_t h, int64_t s, int64_t d)
{
    flat_tensor x = flat_tensor_bhsd((void *)*at, t, b, h, s, d);
    *at += (uintptr_t)(b * h * s * d * 4 + 4096);
    return x;
}

typedef struct {
    int64_t B, Hq, Hkv, Nq, Nk, D, Dv;
} sizes;

static int64_t pick(tu_rng *r, const int64_t *from, int n) { return from[tu_next(r) % (uint64_t)n]; }

/* A random plan of at most s's sizes with options o; its workspace size, or
 * -1 if the planner refused it (e.g. a dtype the table lacks). */
static int64_t plan_size(const sizes *s, flat_options o, int paged, int mask16, tu_rng *r)
{
    uintptr_t at = (uintptr_t)1 << 36;
    int64_t nq = 1 + (int64_t)(tu_next(r) % (uint64_t)s->Nq);
    int32_t lens[16], offsets[17], table[16 * 320];
    flat_plan *plan = NULL;
    flat_status st;
    for (int64_t b = 0; b < s->B; b++)
        lens[b] = (int32_t)(tu_next(r) % (uint64_t)(s->Nk + 1));
    if (!paged) {
        /* an int8 cache a third of the time (int8 products on avx512_vnni:
         * its decode blocks are longer, tiling.c), not under the batch-
         * invariant flag, which refuses int8 products */
        const flat_dtype kt =
            tu_next(r) % 3 == 0 && !(o.flags & FLAT_FLAG_BATCH_INVARIANT) ? FLAT_I8 : FLAT_F32;
        flat_tensor q = fake(&at, FLAT_F32, s->B, s->Hq, nq, s->D);
        flat_tensor out = fake(&at, FLAT_F32, s->B, s->Hq, nq, s->Dv);
        flat_tensor k = fake(&at, kt, s->B, s->Hkv, s->Nk, s->D);
        flat_tensor v = fake(&at, kt, s->B, s->Hkv, s->Nk, s->Dv);
        flat_tensor mask = fake(&at, FLAT_F16, s->B, s->Hq, nq, s->Nk);
        flat_kv_quant kq = {0};
        kq.k_scale = fake(&at, FLAT_F16, s->B, s->Hkv, s->Nk, s->D / 16);
        kq.v_scale = fake(&at, FLAT_F16, s->B, s->Hkv, s->Nk, s->Dv / 16);
        kq.k_group = kq.v_group = 16;
        if (kt == FLAT_I8)
            o.kv_quant = &kq, o.precision = FLAT_PRECISION_INT8;
        if (mask16)
            o.mask = &mask;
        if (tu_next(r) % 2)
            o.kv_lens = lens;
        st = flat_plan_create(&q, &k, &v, &out, &o, &plan);
    } else {
        const int64_t ps = 64, per = (s->Nk + ps - 1) / ps;
        for (int64_t i = 0; i < s->B * per; i++)
            table[i] = (int32_t)i;
        flat_paged_kv kv = {FLAT_F32, (void *)at, (void *)(at + ((uintptr_t)1 << 34)), s->B * per,
                            ps, s->Hkv, s->D, s->Dv, ps * s->Hkv * s->D, s->Hkv * s->D, s->D,
                            ps * s->Hkv * s->Dv, s->Hkv * s->Dv, s->Dv, s->B, lens, table, per, NULL};
        at += (uintptr_t)1 << 35; /* past both pools */
        int64_t rows = nq < s->Nk ? nq : s->Nk, qb = s->B, qs = rows, longest = 0;
        if (tu_next(r) % 2) { /* ragged: every sequence's rows in one batch row */
            offsets[0] = 0;
            for (int64_t b = 0; b < s->B; b++)
                offsets[b + 1] = offsets[b] + (lens[b] < rows ? lens[b] : (int32_t)rows);
            kv.q_offsets = offsets;
            qb = 1, qs = offsets[s->B] + 1;
        } else {
            for (int64_t b = 0; b < s->B; b++)
                lens[b] = lens[b] < rows ? (int32_t)rows : lens[b];
        }
        for (int64_t b = 0; b < s->B; b++)
            longest = lens[b] > longest ? lens[b] : longest;
        flat_tensor q = fake(&at, FLAT_F32, qb, s->Hq, qs, s->D);
        flat_tensor out = fake(&at, FLAT_F32, qb, s->Hq, qs, s->Dv);
        flat_tensor mask = fake(&at, FLAT_F16, qb, s->Hq, qs, longest > 0 ? longest : 1);
        if (mask16 && longest > 0)
            o.mask = &mask;
        st = flat_plan_create_paged(&q, &kv, &out, &o, &plan);
    }
    if (st != FLAT_OK)
        fail_msg("plan refused: %s", flat_last_error());
    int64_t bytes = (int64_t)flat_plan_workspace_size(plan);
    flat_plan_destroy(plan);
    return bytes;
}

static void test_bound_holds(void **state)
{
    (void)state;
    const flat_ukernels *tables[8];
    int nt = tu_runnable_tables("test_bound", tables, 8);
    static const int64_t batches[] = {1, 2, 3, 8, 16}, heads[][2] = {{8, 8}, {32, 8}, {16, 1}, {12, 12}, {64, 8}};
    static const int64_t q_lens[] = {1, 2, 8, 33, 200, 1024}, kv_lens[] = {1, 50, 700, 4096, 20000};
    static const int64_t dims[][2] = {{64, 64}, {128, 128}, {80, 80}, {192, 128}};
    static const int threads[] = {0, 1, 2, 3, 16};
    tu_rng r = {2026};
    int n = tu_quick() ? 600 : 3000;
    double tightest = 1e30, loosest = 0;
    for (int i = 0; i < n; i++) {
        int64_t hi = (int64_t)(tu_next(&r) % 5), di = (int64_t)(tu_next(&r) % 4);
        sizes s = {pick(&r, batches, 5), heads[hi][0], heads[hi][1], pick(&r, q_lens, 6),
                   pick(&r, kv_lens, 5), dims[di][0], dims[di][1]};
        flat_options o = {0};
        o.isa = tables[tu_next(&r) % (uint64_t)nt]->isa;
        o.dataflow = (flat_dataflow)(tu_next(&r) % 4);
        o.num_threads = threads[tu_next(&r) % 5];
        o.causal = (int)(tu_next(&r) % 2);
        o.flags = (tu_next(&r) % 3 == 0 ? FLAT_FLAG_ONE_PHASE : 0) |
                  (tu_next(&r) % 3 == 0 ? FLAT_FLAG_BATCH_INVARIANT : 0);
        int paged = tu_next(&r) % 3 == 0, mask16 = tu_next(&r) % 4 == 0;
        int64_t got = plan_size(&s, o, paged, mask16, &r);
        size_t bound = flat_plan_workspace_bound(s.B, s.Hq, s.Hkv, s.Nq, s.Nk, s.D, s.Dv, &o);
        if (got > (int64_t)bound)
            fail_msg("B %lld Hq %lld Hkv %lld Nq <= %lld Nk <= %lld D %lld/%lld isa %d dataflow %d "
                     "threads %d flags %llu paged %d: workspace %lld > bound %zu",
                     (long long)s.B, (long long)s.Hq, (long long)s.Hkv, (long long)s.Nq,
                     (long long)s.Nk, (long long)s.D, (long long)s.Dv, (int)o.isa, (int)o.dataflow,
                     o.num_threads, (unsigned long long)o.flags, paged, (long long)got, bound);
        if (got > 0) {
            double ratio = (double)bound / (double)got;
            tightest = ratio < tightest ? ratio : tightest;
            loosest = ratio > loosest ? ratio : loosest;
        }
    }
    printf("  %d random plans within their bound (bound / plan size: %.2fx to %.2fx)\n", n,
           tightest, loosest);
}

/* The shared shapes, default options, 2 threads: the plan and its bound. */
static void test_bound_shared_shapes(void **state)
{
    (void)state;
    static const struct { const char *name; int64_t B, Hq, Hkv, Nq, Nk, D; } shapes[] = {
        {"bert", 8, 12, 12, 512, 512, 64},       {"s4k", 1, 16, 16, 4096, 4096, 64},
        {"gqa_prefill_4k", 1, 32, 8, 4096, 4096, 128}, {"decode_4k", 1, 32, 32, 1, 4096, 128},
        {"gqa_decode_8k", 4, 32, 8, 1, 8192, 128}, {"long16k", 1, 8, 8, 16384, 16384, 64},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        uintptr_t at = (uintptr_t)1 << 36;
        flat_tensor q = fake(&at, FLAT_F32, shapes[i].B, shapes[i].Hq, shapes[i].Nq, shapes[i].D);
        flat_tensor k = fake(&at, FLAT_F32, shapes[i].B, shapes[i].Hkv, shapes[i].Nk, shapes[i].D);
        flat_tensor v = fake(&at, FLAT_F32, shapes[i].B, shapes[i].Hkv, shapes[i].Nk, shapes[i].D);
        flat_tensor o = fake(&at, FLAT_F32, shapes[i].B, shapes[i].Hq, shapes[i].Nq, shapes[i].D);
        flat_options opt = {0};
        opt.num_threads = 2;
        flat_plan *plan;
        assert_int_equal(flat_plan_create(&q, &k, &v, &o, &opt, &plan), FLAT_OK);
        size_t bound = flat_plan_workspace_bound(shapes[i].B, shapes[i].Hq, shapes[i].Hkv,
                                                 shapes[i].Nq, shapes[i].Nk, shapes[i].D,
                                                 shapes[i].D, &opt);
        printf("  %-16s plan %8zu bytes, bound %8zu (%.2fx)\n", shapes[i].name,
               flat_plan_workspace_size(plan), bound,
               (double)bound / (double)flat_plan_workspace_size(plan));
        assert_true(flat_plan_workspace_size(plan) <= bound);
        flat_plan_destroy(plan);
    }
}

static void test_bound_refuses(void **state)
{
    (void)state;
    flat_options bad = {0};
    assert_int_equal(flat_plan_workspace_bound(0, 8, 8, 1, 10, 64, 64, NULL), 0);
    assert_int_equal(flat_plan_workspace_bound(1, 8, 3, 1, 10, 64, 64, NULL), 0);
    assert_int_equal(flat_plan_workspace_bound(1, 8, 8, 1, 10, 0, 64, NULL), 0);
    bad.flags = 1u << 30;
    assert_int_equal(flat_plan_workspace_bound(1, 8, 8, 1, 10, 64, 64, &bad), 0);
    assert_non_null(strstr(flat_last_error(), "opt.flags"));
    bad.flags = 0, bad.isa = (flat_isa)99;
    assert_int_equal(flat_plan_workspace_bound(1, 8, 8, 1, 10, 64, 64, &bad), 0);
    assert_true(flat_plan_workspace_bound(1, 8, 8, 1, 10, 64, 64, NULL) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_holds),
        cmocka_unit_test(test_bound_shared_shapes),
        cmocka_unit_test(test_bound_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
