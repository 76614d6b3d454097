/* A pthread_atfork child handler, registered once before the first threaded
 * region, marks every child forked after it. Registering only then keeps the
 * children of processes that never ran threads (pre-fork servers that load
 * before they work) fully threaded. The mark lives in memory the child copies
 * and the handler stays registered there, so grandchildren are marked too.
 * A fork() racing the registration is harmless: the pool's threads are only
 * started after flat_fork_watch() returns, so a child forked before the
 * handler exists has no broken pool to meet. */
#include <pthread.h>

#include "fork.h"

static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
/* Written only by the child handler, while the child has a single thread:
 * every thread it starts later sees the value. */
static int threads_lost;

static void mark_child(void) { threads_lost = 1; }

/* pthread_atfork fails only for lack of memory; the parent then still runs
 * correctly, and only a later child could hang, so there is nothing better
 * to do than to go on (threads are what the caller asked for). */
static void register_handler(void) { (void)pthread_atfork(NULL, NULL, mark_child); }

void flat_fork_watch(void) { pthread_once(&watch_once, register_handler); }

int flat_fork_threads_lost(void) { return threads_lost; }
