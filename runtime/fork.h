/* Fork safety: which processes may enter OpenMP. libgomp's thread pool does
 * not survive fork() (GCC bug 60035): in a child forked after a threaded
 * region, the next multi-thread region waits forever for pool threads that
 * only exist in the parent, and no library can repair libgomp from outside.
 * So such a child runs every call serially, without any OpenMP construct. */
#ifndef FLAT_FORK_H
#define FLAT_FORK_H

/* Call before entering a multi-thread OpenMP region: from then on, every
 * child forked from this process (and every descendant of one) is marked. */
void flat_fork_watch(void);

/* Non-zero in a marked process: a child forked, at any depth, from a process
 * that had called flat_fork_watch(). It must not enter OpenMP. */
int flat_fork_threads_lost(void);

#endif
