/*
 * Plans and the task interface (include/flat.h, flat_plan_*):
 *   - making a plan allocates the plan object and nothing else; executing
 *     with a caller workspace, through OpenMP or task by task, allocates
 *     nothing (an interposed malloc counts every allocation of the process);
 *   - every plan shape (prefill, causal, GQA, decode with split-KV, paged)
 *     run from a plain pthread pool of 1, 2, 3 and 8 workers, tasks in a
 *     random order, is bitwise equal to flat_plan_execute;
 *   - the partitioner's max/mean load over 16, 64 and 256 simulated workers,
 *     from the plan's own task costs, is <= 1.05 for every shared shape that
 *     has at least 4 tasks per worker;
 *   - the task interface's argument checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "reference.h"
#include "testutil.h"

/* ---- allocation counting ------------------------------------------------ */

static atomic_long allocations;
static atomic_int counting;

static void count_one(void)
{
    if (atomic_load(&counting))
        atomic_fetch_add(&allocations, 1);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_OWNS_MALLOC 1
#endif
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_OWNS_MALLOC 1
#endif
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#endif

#if defined(SANITIZER_OWNS_MALLOC)
/* ASan and TSan own malloc; their hook sees every allocation (declared here: the
 * sanitizer headers are not always installed, the runtime always has it). */
int __sanitizer_install_malloc_and_free_hooks(void (*on_malloc)(const volatile void *, size_t),
                                              void (*on_free)(const volatile void *));
static void on_malloc(const volatile void *p, size_t n) { (void)p, (void)n, count_one(); }
static void on_free(const volatile void *p) { (void)p; }
static void install_counter(void) { __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free); }
#else
/* glibc's own entry points behind interposed ones: this executable's
 * definitions win over libc's for every caller in the process (libflat,
 * libgomp included). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
void *malloc(size_t n) { count_one(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count_one(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count_one(); return __libc_realloc(p, n); }
void *aligned_alloc(size_t a, size_t n) { count_one(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n)
{
    count_one();
    *out = __libc_memalign(a, n);
    return *out ? 0 : 12; /* ENOMEM */
}
static void install_counter(void) {}
#endif

static long count_during_start(void)
{
    atomic_store(&allocations, 0);
    atomic_store(&counting, 1);
    return 0;
}

static long count_during_stop(void)
{
    atomic_store(&counting, 0);
    return atomic_load(&allocations);
}

/* ---- the problems ---------------------------------------------------------- */

typedef struct {
    const char *name;
    int64_t B, Hq, Hkv, Nq, Nk, D;
    int causal, kvlens, paged;
} pcase;

static const pcase cases[] = {
    {"prefill", 1, 4, 4, 200, 200, 64, 0, 0, 0},
    {"causal GQA", 2, 8, 2, 130, 300, 64, 1, 0, 0},
    {"decode split-KV", 1, 8, 1, 1, 5000, 128, 0, 1, 0},
    {"paged decode", 3, 8, 2, 1, 700, 64, 0, 0, 1},
    {"paged causal chunk", 2, 4, 2, 9, 333, 64, 1, 0, 1},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

typedef struct {
    tu_tensor q, k, v, o;
    int32_t lens[8];
    /* paged copies of k and v: pages of 16 tokens in shuffled order, HND */
    float *kpool, *vpool;
    int32_t *table;
    flat_paged_kv kv;
    flat_options opt;
} problem;

static void make_pages(problem *pr, const pcase *c)
{
    const int64_t ps = 16, per_seq = (c->Nk + ps - 1) / ps, pages = c->B * per_seq;
    const int64_t page = c->Hkv * ps * c->D;
    pr->kpool = calloc((size_t)(pages * page), sizeof(float));
    pr->vpool = calloc((size_t)(pages * page), sizeof(float));
    pr->table = malloc(sizeof(int32_t) * (size_t)pages);
    for (int64_t i = 0; i < pages; i++)
        pr->table[i] = (int32_t)((i * 7 + 3) % pages); /* a permutation: gcd(7, pages) = 1 here */
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hkv; h++)
            for (int64_t j = 0; j < c->Nk; j++) {
                int64_t pg = pr->table[b * per_seq + j / ps];
                float *kd = pr->kpool + pg * page + h * ps * c->D + (j % ps) * c->D;
                float *vd = pr->vpool + pg * page + h * ps * c->D + (j % ps) * c->D;
                memcpy(kd, ref_row(&pr->k.t, b, h, j), sizeof(float) * (size_t)c->D);
                memcpy(vd, ref_row(&pr->v.t, b, h, j), sizeof(float) * (size_t)c->D);
            }
    for (int64_t b = 0; b < c->B; b++)
        pr->lens[b] = (int32_t)(c->Nk - 37 * b);
    pr->kv = (flat_paged_kv){FLAT_F32, pr->kpool, pr->vpool, pages, ps, c->Hkv, c->D, c->D,
                             c->Hkv * ps * c->D, c->D, ps * c->D, c->Hkv * ps * c->D, c->D,
                             ps * c->D, c->B, pr->lens, pr->table, per_seq, NULL};
}

static void make_problem(problem *pr, const pcase *c)
{
    tu_rng rng = {(uint64_t)(c->Nk + 11 * c->Nq)};
    memset(pr, 0, sizeof *pr);
    tu_tensor_alloc(&pr->q, TU_BSHD, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_alloc(&pr->k, TU_BHSD, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&pr->v, TU_BHSD, c->B, c->Hkv, c->Nk, c->D);
    tu_tensor_alloc(&pr->o, TU_BSHD, c->B, c->Hq, c->Nq, c->D);
    tu_tensor_fill(&pr->q, &rng, 1.0f);
    tu_tensor_fill(&pr->k, &rng, 1.0f);
    tu_tensor_fill(&pr->v, &rng, 1.0f);
    pr->opt.causal = c->causal;
    if (c->kvlens) {
        for (int64_t b = 0; b < c->B; b++)
            pr->lens[b] = (int32_t)(c->Nk - 100 * b);
        pr->opt.kv_lens = pr->lens;
    }
    if (c->paged)
        make_pages(pr, c);
}

static void free_problem(problem *pr)
{
    tu_tensor_free(&pr->q);
    tu_tensor_free(&pr->k);
    tu_tensor_free(&pr->v);
    tu_tensor_free(&pr->o);
    free(pr->kpool);
    free(pr->vpool);
    free(pr->table);
}

static flat_plan *plan_for(problem *pr, const pcase *c, int workers)
{
    flat_options opt = pr->opt;
    opt.num_threads = workers;
    flat_plan *plan = NULL;
    flat_status s = c->paged ? flat_plan_create_paged(&pr->q.t, &pr->kv, &pr->o.t, &opt, &plan)
                             : flat_plan_create(&pr->q.t, &pr->k.t, &pr->v.t, &pr->o.t, &opt, &plan);
    if (s != FLAT_OK)
        fail_msg("%s: plan: %s: %s", c->name, flat_status_string(s), flat_last_error());
    return plan;
}

/* ---- a plain pthread pool running a plan's tasks in a shuffled order ------- */

typedef struct {
    const flat_plan *plan;
    void *workspace;
    int64_t *order; /* tasks of the current phase, shuffled */
    int64_t n;
    atomic_long next;
    int phase;
    pthread_barrier_t phase_done;
} pool;

typedef struct {
    pool *pl;
    int worker;
} pool_worker;

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    pool *pl = w->pl;
    for (int phase = 0; phase < 2; phase++) {
        for (;;) {
            int64_t i = atomic_fetch_add(&pl->next, 1);
            if (i >= pl->n)
                break;
            flat_status s = flat_plan_run_task(pl->plan, pl->phase, pl->order[i], w->worker,
                                               pl->workspace);
            if (s != FLAT_OK)
                fprintf(stderr, "run_task: %s\n", flat_last_error());
        }
        pthread_barrier_wait(&pl->phase_done); /* the caller's barrier between phases */
        pthread_barrier_wait(&pl->phase_done); /* the main thread set up phase 1 */
    }
    return NULL;
}

static void shuffle(int64_t *a, int64_t n, tu_rng *rng)
{
    for (int64_t i = 0; i < n; i++)
        a[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_next(rng) % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j], a[j] = t;
    }
}

static void run_on_pool(const flat_plan *plan, void *workspace, int threads, tu_rng *rng)
{
    pool pl = {plan, workspace, NULL, 0, 0, 0, {{0}}};
    int64_t most = flat_plan_tasks(plan, 0) > flat_plan_tasks(plan, 1) ? flat_plan_tasks(plan, 0)
                                                                        : flat_plan_tasks(plan, 1);
    pl.order = malloc(sizeof(int64_t) * (size_t)(most + 1));
    pthread_barrier_init(&pl.phase_done, NULL, (unsigned)threads + 1);
    pthread_t tid[8];
    pool_worker w[8];
    pl.n = flat_plan_tasks(plan, 0);
    shuffle(pl.order, pl.n, rng);
    for (int i = 0; i < threads; i++) {
        w[i] = (pool_worker){&pl, i % flat_plan_workers(plan)};
        pthread_create(&tid[i], NULL, worker_main, &w[i]);
    }
    pthread_barrier_wait(&pl.phase_done);
    pl.phase = 1;
    pl.n = flat_plan_tasks(plan, 1);
    shuffle(pl.order, pl.n, rng);
    atomic_store(&pl.next, 0);
    pthread_barrier_wait(&pl.phase_done);
    pthread_barrier_wait(&pl.phase_done);
    pthread_barrier_wait(&pl.phase_done);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&pl.phase_done);
    free(pl.order);
}

static void *alloc_workspace(const flat_plan *plan)
{
    void *ws = NULL;
    assert_int_equal(posix_memalign(&ws, 64, flat_plan_workspace_size(plan) + 64), 0);
    return ws;
}

/* Each pool size is the plan's worker count (one task at a time per worker). */
static void test_task_interface_bitwise(void **state)
{
    (void)state;
    static const int pools[] = {1, 2, 3, 8};
    tu_rng rng = {99};
    for (int ci = 0; ci < NCASES; ci++)
        for (int pi = 0; pi < 4; pi++) {
            problem pr;
            make_problem(&pr, &cases[ci]);
            flat_plan *plan = plan_for(&pr, &cases[ci], pools[pi]);
            int workers = flat_plan_workers(plan);
            assert_true(workers >= 1 && workers <= pools[pi]);
            void *ws = alloc_workspace(plan);
            assert_int_equal(flat_plan_execute(plan, ws), FLAT_OK);
            size_t bytes = pr.o.n * sizeof(float);
            float *want = malloc(bytes);
            memcpy(want, pr.o.buf, bytes);
            for (int rep = 0; rep < 2; rep++) {
                tu_tensor_poison(&pr.o);
                run_on_pool(plan, ws, workers, &rng);
                if (memcmp(want, pr.o.buf, bytes) != 0)
                    fail_msg("%s: %d workers (plan %s): tasks in random order differ from "
                             "flat_plan_execute", cases[ci].name, workers, flat_plan_describe(plan));
            }
            printf("  %-20s pool %d: %lld + %lld tasks, %d workers: bitwise equal\n",
                   cases[ci].name, pools[pi], (long long)flat_plan_tasks(plan, 0),
                   (long long)flat_plan_tasks(plan, 1), workers);
            free(want);
            free(ws);
            flat_plan_destroy(plan);
            free_problem(&pr);
        }
}

/* Plan: the plan object only. Execute with a workspace and run_task: none. */
static void test_no_allocation(void **state)
{
    (void)state;
    for (int ci = 0; ci < NCASES; ci++) {
        problem pr;
        make_problem(&pr, &cases[ci]);
        flat_plan *warm = plan_for(&pr, &cases[ci], 2);
        void *ws = alloc_workspace(warm);
        assert_int_equal(flat_plan_execute(warm, ws), FLAT_OK); /* OpenMP's pool starts here */
        count_during_start();
        flat_plan *plan = plan_for(&pr, &cases[ci], 2);
        long made = count_during_stop();
        count_during_start();
#if !defined(UNDER_TSAN)
        for (int rep = 0; rep < 3; rep++)
            assert_int_equal(flat_plan_execute(plan, ws), FLAT_OK);
#else
        /* Under TSan, libomp's race-detection tool (Archer) allocates for every
         * parallel region, so only the task loop is counted here; the plain
         * and ASan builds count flat_plan_execute too. */
        assert_int_equal(flat_plan_execute(plan, ws), FLAT_OK);
        count_during_stop();
        count_during_start();
#endif
        for (int phase = 0; phase < 2; phase++)
            for (int64_t t = 0; t < flat_plan_tasks(plan, phase); t++)
                assert_int_equal(flat_plan_run_task(plan, phase, t, 0, ws), FLAT_OK);
        long ran = count_during_stop();
        printf("  %-20s plan: %ld allocation(s); executing with a workspace: %ld\n",
               cases[ci].name, made, ran);
        assert_int_equal(made, 1);
        assert_int_equal(ran, 0);
        free(ws);
        flat_plan_destroy(plan);
        flat_plan_destroy(warm);
        free_problem(&pr);
    }
}

/* ---- the partitioner's balance ----------------------------------------------- */

/* Greedy list scheduling in the plan's order (what dynamic scheduling
 * does): each task to the worker that frees first; max over mean load. */
static double simulated_imbalance(const flat_plan *plan, int workers)
{
    double *load = calloc((size_t)workers, sizeof(double)), total = 0, most = 0;
    for (int64_t i = 0; i < plan->n_units; i++) {
        int w = 0;
        for (int k = 1; k < workers; k++)
            w = load[k] < load[w] ? k : w;
        load[w] += plan->costs[i];
        total += plan->costs[i];
    }
    for (int k = 0; k < workers; k++)
        most = load[k] > most ? load[k] : most;
    free(load);
    return most / (total / workers);
}

/* A view at a fake address: planning never dereferences tensor data, and
 * each view gets its own range so validation sees no overlap. */
static flat_tensor fake_view(uintptr_t *at, int64_t b, int64_t h, int64_t s, int64_t d)
{
    flat_tensor t = flat_tensor_bhsd((void *)*at, FLAT_F32, b, h, s, d);
    *at += (uintptr_t)(b * h * s * d * 4 + 4096);
    return t;
}

static void test_partition_balance(void **state)
{
    (void)state;
    FILE *f = fopen(FLAT_SHAPES_CSV, "r");
    assert_non_null(f);
    char line[256];
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64];
        long long B, Hq, Hkv, Nq, Nk, D;
        int causal;
        if (line[0] == '#' || sscanf(line, "%63[^,],%lld,%lld,%lld,%lld,%lld,%lld,%d", name, &B,
                                     &Hq, &Hkv, &Nq, &Nk, &D, &causal) != 8)
            continue;
        for (int wi = 0; wi < 3; wi++) {
            const int workers = 16 << (2 * wi); /* 16, 64, 256 */
            uintptr_t at = (uintptr_t)1 << 32;
            flat_tensor q = fake_view(&at, B, Hq, Nq, D), k = fake_view(&at, B, Hkv, Nk, D);
            flat_tensor v = fake_view(&at, B, Hkv, Nk, D), o = fake_view(&at, B, Hq, Nq, D);
            flat_options opt = {0};
            opt.causal = causal, opt.num_threads = workers;
            flat_plan *plan = NULL;
            assert_int_equal(flat_plan_create(&q, &k, &v, &o, &opt, &plan), FLAT_OK);
            double imb = simulated_imbalance(plan, workers);
            int enough = plan->n_units >= 4 * (int64_t)workers;
            printf("  %-16s %3d workers: %6lld tasks, max/mean %.3f%s\n", name, workers,
                   (long long)plan->n_units, imb, enough ? "" : " (fewer than 4 per worker)");
            if (enough && !(imb <= 1.05))
                fail_msg("%s at %d workers: max/mean load %.3f > 1.05 (%s)", name, workers, imb,
                         flat_plan_describe(plan));
            checked += enough;
            flat_plan_destroy(plan);
        }
    }
    fclose(f);
    assert_true(checked > 0);
}

/* The planner sizes by the visible lengths: a cache allocated for 12,288
 * tokens with kv_lens up to 3,072 plans exactly as one allocated for 3,072
 * (describe differs only in the capacity it reports, Nk). */
static void test_plan_ignores_capacity(void **state)
{
    (void)state;
    char desc[2][640];
    const int64_t caps[2] = {3072, 12288};
    for (int i = 0; i < 2; i++) {
        uintptr_t at = (uintptr_t)1 << 32;
        flat_tensor q = fake_view(&at, 4, 32, 1, 128), k = fake_view(&at, 4, 8, caps[i], 128);
        flat_tensor v = fake_view(&at, 4, 8, caps[i], 128), o = fake_view(&at, 4, 32, 1, 128);
        int32_t lens[4] = {3072, 100, 2000, 1};
        flat_options opt = {0};
        opt.kv_lens = lens, opt.num_threads = 2;
        flat_plan *plan;
        assert_int_equal(flat_plan_create(&q, &k, &v, &o, &opt, &plan), FLAT_OK);
        const char *d = flat_plan_describe(plan), *nk = strstr(d, " Nk="), *end = strchr(nk + 1, ' ');
        snprintf(desc[i], sizeof desc[i], "%.*s%s", (int)(nk - d), d, end);
        flat_plan_destroy(plan);
    }
    printf("  capacity 3072 and 12288, same kv_lens: %s\n", desc[0]);
    assert_string_equal(desc[0], desc[1]);
}

/* ---- the task interface's own checks ---------------------------------------- */

static void test_run_task_checks(void **state)
{
    (void)state;
    problem pr;
    make_problem(&pr, &cases[2]);
    flat_plan *plan = plan_for(&pr, &cases[2], 2);
    void *ws = alloc_workspace(plan);
    tu_tensor_poison(&pr.o);
    int64_t n0 = flat_plan_tasks(plan, 0);
    struct { int phase; int64_t task; int worker; void *ws; const char *names; } bad[] = {
        {2, 0, 0, ws, "phase"},         {-1, 0, 0, ws, "phase"},
        {0, n0, 0, ws, "task"},         {0, -1, 0, ws, "task"},
        {0, 0, flat_plan_workers(plan), ws, "worker"}, {0, 0, -1, ws, "worker"},
        {0, 0, 0, NULL, "workspace"},   {0, 0, 0, (char *)ws + 4, "workspace"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        flat_status s = flat_plan_run_task(plan, bad[i].phase, bad[i].task, bad[i].worker, bad[i].ws);
        assert_int_equal(s, FLAT_ERROR_INVALID_ARGUMENT);
        assert_non_null(strstr(flat_last_error(), bad[i].names));
        printf("  %-10s -> %s\n", bad[i].names, flat_last_error());
    }
    assert_int_equal(tu_tensor_padding_changed(&pr.o), -1);
    for (size_t i = 0; i < pr.o.n; i++)
        if (tu_bits(pr.o.buf[i]) != TU_POISON_BITS)
            fail_msg("a refused task wrote out");
    assert_int_equal(flat_plan_tasks(plan, 2), -1);
    assert_int_equal(flat_plan_tasks(NULL, 0), -1);
    assert_int_equal(flat_plan_execute(NULL, ws), FLAT_ERROR_INVALID_ARGUMENT);
    assert_int_equal(flat_plan_execute(plan, (char *)ws + 8), FLAT_ERROR_INVALID_ARGUMENT);
    assert_int_equal(flat_plan_create(&pr.q.t, &pr.k.t, &pr.v.t, &pr.o.t, NULL, NULL),
                     FLAT_ERROR_INVALID_ARGUMENT);
    flat_plan_destroy(NULL);
    assert_non_null(strstr(flat_plan_describe(plan), "split"));
    free(ws);
    flat_plan_destroy(plan);
    free_problem(&pr);
}

int main(void)
{
    install_counter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_interface_bitwise),
        cmocka_unit_test(test_no_allocation),
        cmocka_unit_test(test_partition_balance),
        cmocka_unit_test(test_run_task_checks),
        cmocka_unit_test(test_plan_ignores_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
