/* flat's own thread pool: what runs a plan's tasks in a build without OpenMP
 * (-DFLAT_OPENMP=OFF; parallel.c picks it at build time).
 *
 * Threads are created on first use, as many as the largest call has asked
 * for, and kept: between calls each spins briefly (a call that follows soon
 * finds it awake, as libgomp's do), then sleeps on a condition variable.
 * Any number of callers may run at once: each takes idle threads for itself
 * and creates more when none is idle; a call whose thread cannot be created
 * runs with fewer (every plan's tasks run correctly on any number of
 * workers). Fork: a pthread_atfork child handler forgets the parent's
 * threads, which the child does not have, so the child's first threaded
 * call creates its own (no call hangs and none falls back to one thread). */
#ifndef FLAT_POOL_H
#define FLAT_POOL_H

/* The job of one call: run(ctx, worker, workers) on each participant,
 * worker 0 being the calling thread. */
typedef void (*flat_pool_fn)(void *ctx, int worker, int workers);

/* Runs fn on up to `want` threads (the caller and want - 1 pool threads) and
 * returns once every one has returned. The number of participants, passed
 * to fn, is known before any of them starts. */
void flat_pool_run(int want, flat_pool_fn fn, void *ctx);

#endif
