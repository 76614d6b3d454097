/*
 * What an engine that runs plans inside its own graph needs (include/flat.h,
 * "Plans"), each done the way such an engine does it:
 *   - one-phase plans (FLAT_FLAG_ONE_PHASE): a graph op run by the engine's
 *     own pthreads, thread ith of nth taking every nth task of a shuffled
 *     list, no barrier anywhere: bitwise equal to flat_plan_execute and to
 *     flat_attention, within 1e-5 of the reference; the same call without
 *     the flag splits keys (it would need a second op);
 *   - worker counts: num_threads past the CPUs is clamped, and a plan's
 *     workers never exceed its tasks.
 * Re-pointing (test_repoint.c), 16-bit masks (test_mask16.c) and the
 * workspace bound (test_bound.c) have suites of their own.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "reference.h"
#include "testutil.h"

static ecase cases[] = { /* quick mode: shorter decode caches (main) */
    {"decode (splits without the flag)", 1, 8, 1, 1, 6000, 128, 0},
    {"spec decode, causal", 1, 8, 2, 8, 3000, 64, 1},
    {"GQA prefill, causal", 2, 8, 2, 130, 300, 64, 1},
    {"batch decode", 5, 4, 2, 1, 900, 64, 0},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* ---- one-phase plans ------------------------------------------------------ */

static void test_one_phase_on_engine_threads(void **state)
{
    (void)state;
    tu_rng rng = {22};
    int split_seen = 0;
    for (int ci = 0; ci < NCASES; ci++) {
        const ecase *c = &cases[ci];
        eproblem e;
        make(&e, c, 100 + (uint64_t)ci);
        for (int nth = 1; nth <= 4; nth++) {
            flat_options two = e.opt, one = e.opt;
            two.num_threads = one.num_threads = nth;
            one.flags = FLAT_FLAG_ONE_PHASE;
            flat_plan *split = NULL, *plan = NULL;
            assert_int_equal(flat_plan_create(&e.q.t, &e.k.t, &e.v.t, &e.o.t, &two, &split), FLAT_OK);
            assert_int_equal(flat_plan_create(&e.q.t, &e.k.t, &e.v.t, &e.o.t, &one, &plan), FLAT_OK);
            split_seen += flat_plan_tasks(split, 1) > 0;
            assert_int_equal(flat_plan_tasks(plan, 1), 0);
            /* the reference result: flat_attention with the same options */
            assert_int_equal(flat_attention(&e.q.t, &e.k.t, &e.v.t, &e.o.t, &one), FLAT_OK);
            double err = worst_error(&e, c);
            float *want_lse, *want = copy_out(&e, c, &want_lse);
            void *ws = workspace_for(plan);
            for (int rep = 0; rep < 3; rep++) {
                tu_tensor_poison(&e.o);
                run_graph_op(plan, ws, nth, &rng);
                if (!same_out(&e, want, want_lse, c))
                    fail_msg("%s, %d engine threads: differs from flat_attention (%s)", c->name,
                             nth, flat_plan_describe(plan));
            }
            tu_tensor_poison(&e.o);
            assert_int_equal(flat_plan_execute(plan, ws), FLAT_OK);
            assert_true(same_out(&e, want, want_lse, c));
            printf("  %-34s %d threads: %lld tasks, one phase (without the flag: %lld + %lld), "
                   "error %.2g: bitwise\n", c->name, nth, (long long)flat_plan_tasks(plan, 0),
                   (long long)flat_plan_tasks(split, 0), (long long)flat_plan_tasks(split, 1), err);
            if (!(err <= 1e-5))
                fail_msg("%s: error %.3g > 1e-5", c->name, err);
            free(ws);
            free(want);
            free(want_lse);
            flat_plan_destroy(plan);
            flat_plan_destroy(split);
        }
        unmake(&e);
    }
    assert_true(split_seen > 0); /* the flag made a difference somewhere */
}

/* ---- worker counts ---------------------------------------------------------- */

static int cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

static void test_workers_clamped(void **state)
{
    (void)state;
    for (int ci = 0; ci < NCASES; ci++) {
        eproblem e;
        make(&e, &cases[ci], 7);
        int asked[3] = {64, cpus(), 1};
        flat_plan *plan[3];
        for (int i = 0; i < 3; i++) {
            flat_options o = e.opt;
            o.num_threads = asked[i];
            assert_int_equal(flat_plan_create(&e.q.t, &e.k.t, &e.v.t, &e.o.t, &o, &plan[i]), FLAT_OK);
            int w = flat_plan_workers(plan[i]);
            assert_true(w >= 1 && w <= cpus() && w <= asked[i]);
            assert_true(w <= flat_plan_tasks(plan[i], 0));
        }
        /* 64 on this machine plans exactly as the CPU count does */
        assert_int_equal(flat_plan_workers(plan[0]), flat_plan_workers(plan[1]));
        assert_int_equal(flat_plan_workspace_size(plan[0]), flat_plan_workspace_size(plan[1]));
        printf("  %-34s num_threads 64 on %d CPUs: %d workers, %zu workspace bytes\n",
               cases[ci].name, cpus(), flat_plan_workers(plan[0]),
               flat_plan_workspace_size(plan[0]));
        for (int i = 0; i < 3; i++)
            flat_plan_destroy(plan[i]);
        unmake(&e);
    }
}

int main(void)
{
    if (tu_quick()) /* still several 512-key chunks, so the split plans still split */
        cases[0].Nk = 2000, cases[1].Nk = 1200;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_phase_on_engine_threads),
        cmocka_unit_test(test_workers_clamped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
