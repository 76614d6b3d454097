/*
 * An engine-style decode loop on flat's engine path.
 *
 * A handful of sequences of different lengths share one paged KV cache
 * (bf16 by default, pages of 16 tokens handed out from a free list, so a
 * sequence's pages lie anywhere in the pool). Each step appends one token to
 * every sequence, makes a plan for the step's attention
 * (flat_plan_create_paged) and runs its tasks on the engine's own pthread
 * pool through the task interface (flat_plan_run_task), in a workspace
 * allocated once. Every few steps the output is checked against
 * flat_attention on the same cache laid out contiguously (bitwise: same
 * problem, same thread count). At the end it prints tokens per second.
 *
 *   engine_decode [steps [threads [f32|f16|bf16]]]     (defaults 64, 2, bf16)
 */
#include <flat.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SEQS = 5, HQ = 8, HKV = 2, D = 64, PAGE = 16, MAX_TOKENS = 4096 };
#define MAX_PAGES (SEQS * MAX_TOKENS / PAGE)

static const int start_len[SEQS] = {100, 900, 2000, 37, 1500};

/* ---- the cache: a pool of pages, a block table, a free list ---- */

typedef struct {
    flat_dtype dtype;
    size_t elem;
    unsigned char *k, *v;         /* [MAX_PAGES][PAGE][HKV][D] (vLLM's layout) */
    int32_t table[SEQS][MAX_TOKENS / PAGE];
    int32_t len[SEQS];
    int32_t free_pages[MAX_PAGES];
    int n_free;
} kv_cache;

static uint16_t to_half(float f, flat_dtype t)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if (t == FLAT_BF16)
        return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    /* f16 for |f| < 2 (the values here), round to nearest even */
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a < 0x38800000u)
        return (uint16_t)sign; /* tiny: flush (the example's values are never that small) */
    a += 0xfffu + ((a >> 13) & 1u) - (112u << 23);
    return (uint16_t)(sign | (a >> 13));
}

static void store(kv_cache *c, unsigned char *pool, int64_t at, float x)
{
    if (c->dtype == FLAT_F32)
        memcpy(pool + at * 4, &x, 4);
    else {
        uint16_t h = to_half(x, c->dtype);
        memcpy(pool + at * 2, &h, 2);
    }
}

static float uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffff) / 32768.0f - 1.0f;
}

/* Appends one token's K and V to sequence b, taking a page when it needs one. */
static int append_token(kv_cache *c, int b, uint64_t *rng)
{
    int32_t pos = c->len[b];
    if (pos % PAGE == 0) {
        if (c->n_free == 0)
            return -1;
        c->table[b][pos / PAGE] = c->free_pages[--c->n_free];
    }
    int64_t page = c->table[b][pos / PAGE];
    for (int h = 0; h < HKV; h++)
        for (int d = 0; d < D; d++) {
            int64_t at = ((page * PAGE + pos % PAGE) * HKV + h) * D + d;
            store(c, c->k, at, uniform(rng));
            store(c, c->v, at, uniform(rng));
        }
    c->len[b] = pos + 1;
    return 0;
}

static int cache_init(kv_cache *c, flat_dtype t, uint64_t *rng)
{
    memset(c, 0, sizeof *c);
    c->dtype = t;
    c->elem = t == FLAT_F32 ? 4 : 2;
    c->k = malloc((size_t)MAX_PAGES * PAGE * HKV * D * c->elem);
    c->v = malloc((size_t)MAX_PAGES * PAGE * HKV * D * c->elem);
    if (!c->k || !c->v)
        return -1;
    for (int i = 0; i < MAX_PAGES; i++) /* handed out in a scrambled order */
        c->free_pages[c->n_free++] = (int32_t)((i * 37 + 11) % MAX_PAGES);
    for (int b = 0; b < SEQS; b++)
        for (int i = 0; i < start_len[b]; i++)
            if (append_token(c, b, rng) != 0)
                return -1;
    return 0;
}

static flat_paged_kv paged_view(const kv_cache *c)
{
    return (flat_paged_kv){c->dtype, c->k, c->v, MAX_PAGES, PAGE, HKV, D, D,
                           PAGE * HKV * D, HKV * D, D, PAGE * HKV * D, HKV * D, D,
                           SEQS, c->len, &c->table[0][0], MAX_TOKENS / PAGE, NULL};
}

/* ---- the engine's thread pool: workers run one step's tasks per phase ---- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    const flat_plan *plan;
    void *workspace;
    int phase, generation, busy, threads, stop;
    int64_t next, tasks;
    int failures;
} engine_pool;

typedef struct {
    engine_pool *pool;
    int id;
} worker_arg;

static void *worker_main(void *p)
{
    worker_arg *w = p;
    engine_pool *pl = w->pool;
    int seen = 0;
    pthread_mutex_lock(&pl->lock);
    for (;;) {
        while (pl->generation == seen && !pl->stop)
            pthread_cond_wait(&pl->wake, &pl->lock);
        if (pl->stop)
            break;
        seen = pl->generation;
        /* a plan may have fewer workers than the pool has threads (it caps
         * them at its tasks and at the CPUs): the others sit this one out */
        while (w->id < flat_plan_workers(pl->plan) && pl->next < pl->tasks) {
            int64_t task = pl->next++;
            pthread_mutex_unlock(&pl->lock);
            /* worker ids are the plan's: one task at a time per id */
            flat_status s = flat_plan_run_task(pl->plan, pl->phase, task, w->id, pl->workspace);
            pthread_mutex_lock(&pl->lock);
            pl->failures += s != FLAT_OK;
        }
        if (--pl->busy == 0)
            pthread_cond_signal(&pl->done);
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* One phase on the pool; returns when every task has returned (the barrier
 * flat's task interface asks the caller for between the phases). */
static void run_phase(engine_pool *pl, int phase)
{
    pthread_mutex_lock(&pl->lock);
    pl->phase = phase;
    pl->next = 0;
    pl->tasks = flat_plan_tasks(pl->plan, phase);
    pl->busy = pl->threads;
    pl->generation++;
    pthread_cond_broadcast(&pl->wake);
    while (pl->busy > 0)
        pthread_cond_wait(&pl->done, &pl->lock);
    pthread_mutex_unlock(&pl->lock);
}

/* ---- the check: the same step on a contiguous copy of the cache ---- */

static int check_step(const kv_cache *c, const float *q, const float *out, int threads)
{
    int32_t maxlen = 0;
    for (int b = 0; b < SEQS; b++)
        maxlen = c->len[b] > maxlen ? c->len[b] : maxlen;
    size_t n = (size_t)SEQS * HKV * maxlen * D;
    unsigned char *k = calloc(n, c->elem), *v = calloc(n, c->elem);
    float *ref = malloc(sizeof(float) * SEQS * HQ * D);
    if (!k || !v || !ref)
        return -1;
    for (int b = 0; b < SEQS; b++)
        for (int j = 0; j < c->len[b]; j++)
            for (int h = 0; h < HKV; h++) {
                size_t src = ((size_t)(c->table[b][j / PAGE] * PAGE + j % PAGE) * HKV + h) * D;
                size_t dst = (((size_t)b * HKV + h) * maxlen + j) * D;
                memcpy(k + dst * c->elem, c->k + src * c->elem, D * c->elem);
                memcpy(v + dst * c->elem, c->v + src * c->elem, D * c->elem);
            }
    flat_tensor tq = flat_tensor_bhsd((void *)q, FLAT_F32, SEQS, HQ, 1, D);
    flat_tensor tk = flat_tensor_bhsd(k, c->dtype, SEQS, HKV, maxlen, D);
    flat_tensor tv = flat_tensor_bhsd(v, c->dtype, SEQS, HKV, maxlen, D);
    flat_tensor to = flat_tensor_bhsd(ref, FLAT_F32, SEQS, HQ, 1, D);
    flat_options opt = {0};
    opt.kv_lens = c->len;
    opt.num_threads = threads;
    flat_status s = flat_attention(&tq, &tk, &tv, &to, &opt);
    int same = s == FLAT_OK && memcmp(ref, out, sizeof(float) * SEQS * HQ * D) == 0;
    if (s != FLAT_OK)
        fprintf(stderr, "engine_decode: contiguous call: %s\n", flat_last_error());
    free(k), free(v), free(ref);
    return same ? 0 : -1;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 64, threads = argc > 2 ? atoi(argv[2]) : 2;
    const char *type = argc > 3 ? argv[3] : "bf16";
    flat_dtype t = strcmp(type, "f32") == 0 ? FLAT_F32 : strcmp(type, "f16") == 0 ? FLAT_F16 : FLAT_BF16;
    if (steps < 1 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: engine_decode [steps [threads [f32|f16|bf16]]]\n");
        return 2;
    }
    uint64_t rng = 42;
    kv_cache cache;
    float *q = malloc(sizeof(float) * SEQS * HQ * D), *out = malloc(sizeof(float) * SEQS * HQ * D);
    if (!q || !out || cache_init(&cache, t, &rng) != 0) {
        fprintf(stderr, "engine_decode: out of memory\n");
        return 1;
    }
    engine_pool pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                        PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0, threads, 0, 0, 0, 0};
    pthread_t tid[64];
    worker_arg args[64];
    for (int i = 0; i < threads; i++) {
        args[i] = (worker_arg){&pool, i};
        pthread_create(&tid[i], NULL, worker_main, &args[i]);
    }
    void *workspace = NULL;
    size_t workspace_bytes = 0;
    int checked = 0, failed = 0;
    double busy = 0;
    for (int step = 0; step < steps && !failed; step++) {
        for (int b = 0; b < SEQS; b++)
            if (append_token(&cache, b, &rng) != 0)
                failed = 1;
        for (int i = 0; i < SEQS * HQ * D; i++)
            q[i] = uniform(&rng);
        flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, SEQS, HQ, 1, D);
        flat_tensor to = flat_tensor_bhsd(out, FLAT_F32, SEQS, HQ, 1, D);
        flat_paged_kv kv = paged_view(&cache);
        flat_options opt = {0};
        opt.num_threads = threads; /* the plan's workers: the pool's threads */
        double t0 = now();
        flat_plan *plan;
        flat_status s = flat_plan_create_paged(&tq, &kv, &to, &opt, &plan);
        if (s != FLAT_OK) {
            fprintf(stderr, "engine_decode: %s: %s\n", flat_status_string(s), flat_last_error());
            return 1;
        }
        if (flat_plan_workspace_size(plan) > workspace_bytes) { /* grows rarely, never per step */
            free(workspace);
            workspace_bytes = flat_plan_workspace_size(plan) * 2;
            if (posix_memalign(&workspace, 64, workspace_bytes) != 0)
                return 1;
        }
        pool.plan = plan;
        pool.workspace = workspace;
        run_phase(&pool, 0);
        run_phase(&pool, 1);
        busy += now() - t0;
        if (step % 16 == 0 || step == steps - 1) {
            checked++;
            if (flat_plan_workers(plan) > threads || check_step(&cache, q, out, threads) != 0) {
                fprintf(stderr, "engine_decode: step %d differs from the contiguous call (%s)\n",
                        step, flat_plan_describe(plan));
                failed = 1;
            }
        }
        if (step == 0)
            printf("engine_decode: %s\n", flat_plan_describe(plan));
        flat_plan_destroy(plan);
    }
    pthread_mutex_lock(&pool.lock);
    pool.stop = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    failed |= pool.failures != 0;
    printf("engine_decode: %d sequences, %s paged cache (page %d), %d steps on %d threads: "
           "%.0f tokens/s (attention only, plan included); %d checks against the contiguous "
           "call: %s\n",
           SEQS, type, PAGE, steps, threads, steps * SEQS / busy, checked,
           failed ? "FAILED" : "bitwise equal");
    free(workspace), free(q), free(out), free(cache.k), free(cache.v);
    return failed;
}
