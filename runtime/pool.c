/* flat's own thread pool (pool.h), for the build without OpenMP.
 *
 * Each pool thread owns a slot: a caller claims an idle slot (taken 0 -> 1),
 * hands it a job and wakes it; the thread runs the job, frees the slot and
 * counts itself out of the job. Slots are never removed (threads live as
 * long as the process), so the slot array only grows, under `grow`. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pool.h"

/* Threads one process may create; callers past it run with fewer. */
#define MAX_THREADS 256
/* Polls of an idle thread (and of a caller waiting for its helpers) before
 * it sleeps (yields): some tens of microseconds, so that back-to-back calls
 * (a decode step's layers) find the threads awake without a futex wake. */
#define SPIN_POLLS 20000

typedef struct job {
    flat_pool_fn fn;
    void *ctx;
    int workers;
    atomic_int pending; /* helpers that have not returned */
    pthread_mutex_t m;  /* with c: the caller's sleep until pending is 0; */
    pthread_cond_t c;   /* a helper counts itself out holding m */
} job;

typedef struct {
    _Atomic(job *) job;   /* set by the caller that took the slot */
    atomic_int taken;     /* a caller owns the slot until its thread frees it */
    int worker;           /* written before `job` is published */
    pthread_mutex_t m;    /* with c: the thread's sleep */
    pthread_cond_t c;
} slot;

static struct {
    pthread_mutex_t grow;   /* creating threads; held across fork() */
    atomic_int n;           /* slots with a thread */
    slot *slots[MAX_THREADS];
} pool = {.grow = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* Fork: the child has only the forking thread, so it forgets every slot
 * (the memory is the parent's copy; no thread of the child uses it) and
 * re-creates threads on its next call. `grow` is held across fork(), so the
 * array is not being extended while it is copied. */
static void before_fork(void) { pthread_mutex_lock(&pool.grow); }
static void after_fork_parent(void) { pthread_mutex_unlock(&pool.grow); }
static void after_fork_child(void)
{
    int n = atomic_load(&pool.n);
    for (int i = 0; i < n; i++) {
        free(pool.slots[i]);
        pool.slots[i] = NULL;
    }
    atomic_store(&pool.n, 0);
    pthread_mutex_init(&pool.grow, NULL);
}

static void register_fork_handlers(void)
{
    /* fails only for lack of memory: a child could then meet slots whose
     * threads it lacks; nothing better to do than go on */
    (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static job *wait_for_job(slot *s)
{
    job *j;
    for (int i = 0; i < SPIN_POLLS; i++)
        if ((j = atomic_load_explicit(&s->job, memory_order_acquire)))
            return j;
    pthread_mutex_lock(&s->m);
    while (!(j = atomic_load_explicit(&s->job, memory_order_acquire)))
        pthread_cond_wait(&s->c, &s->m);
    pthread_mutex_unlock(&s->m);
    return j;
}

static void *thread_main(void *arg)
{
    slot *s = arg;
    for (;;) {
        job *j = wait_for_job(s);
        j->fn(j->ctx, s->worker, j->workers);
        atomic_store_explicit(&s->job, NULL, memory_order_relaxed);
        /* free the slot first: a caller that returns on pending == 0 and
         * calls again finds this thread idle */
        atomic_store_explicit(&s->taken, 0, memory_order_release);
        /* under the job's mutex, so the caller (which takes it before it
         * returns) never frees the job while this thread still uses it */
        pthread_mutex_lock(&j->m);
        if (atomic_fetch_sub_explicit(&j->pending, 1, memory_order_acq_rel) == 1)
            pthread_cond_signal(&j->c);
        pthread_mutex_unlock(&j->m);
    }
    return NULL;
}

/* A new slot, taken, with its thread started (signals blocked there: they
 * stay the host's business); NULL if either fails. Called under `grow`. */
static slot *new_slot(void)
{
    slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_init(&s->taken, 1);
    pthread_mutex_init(&s->m, NULL);
    pthread_cond_init(&s->c, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t tid;
    int ok = pthread_attr_init(&attr) == 0;
    ok = ok && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
         pthread_create(&tid, &attr, thread_main, s) == 0;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!ok) {
        pthread_cond_destroy(&s->c);
        pthread_mutex_destroy(&s->m);
        free(s);
        return NULL;
    }
    return s;
}

/* Claims up to `need` slots into got[], creating threads when too few are
 * idle; returns how many it has. */
static int take_slots(int need, slot **got)
{
    int have = 0, n = atomic_load_explicit(&pool.n, memory_order_acquire);
    for (int i = 0; i < n && have < need; i++) {
        int idle = 0;
        if (atomic_compare_exchange_strong(&pool.slots[i]->taken, &idle, 1))
            got[have++] = pool.slots[i];
    }
    if (have == need)
        return have;
    pthread_mutex_lock(&pool.grow);
    for (n = atomic_load(&pool.n); have < need && n < MAX_THREADS; n++) {
        slot *s = new_slot();
        if (!s)
            break;
        pool.slots[n] = s;
        atomic_store_explicit(&pool.n, n + 1, memory_order_release);
        got[have++] = s;
    }
    pthread_mutex_unlock(&pool.grow);
    return have;
}

static void hand_over(slot *s, int worker, job *j)
{
    s->worker = worker;
    pthread_mutex_lock(&s->m);
    atomic_store_explicit(&s->job, j, memory_order_release);
    pthread_cond_signal(&s->c);
    pthread_mutex_unlock(&s->m);
}

void flat_pool_run(int want, flat_pool_fn fn, void *ctx)
{
    slot *got[MAX_THREADS]; /* on the stack: a call allocates nothing once threads exist */
    pthread_once(&fork_once, register_fork_handlers);
    int helpers = take_slots(want > MAX_THREADS ? MAX_THREADS - 1 : want - 1, got);
    job j = {fn, ctx, helpers + 1, helpers, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
    for (int i = 0; i < helpers; i++)
        hand_over(got[i], i + 1, &j);
    fn(ctx, 0, helpers + 1);
    /* The helpers' last units: spin a little (a balanced call ends
     * together), then sleep, leaving the CPU to them on a busy machine. */
    for (int i = 0; i < SPIN_POLLS && atomic_load_explicit(&j.pending, memory_order_acquire) > 0; i++)
        ;
    pthread_mutex_lock(&j.m);
    while (atomic_load_explicit(&j.pending, memory_order_acquire) > 0)
        pthread_cond_wait(&j.c, &j.m);
    pthread_mutex_unlock(&j.m);
    pthread_cond_destroy(&j.c);
    pthread_mutex_destroy(&j.m);
}
