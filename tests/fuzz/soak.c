/*
 * Soak: T threads (default 8) each make N random calls (fcase.h: random
 * entry points, shapes, element types and options, a third of them invalid),
 * every result checked against the reference or for a clean refusal.
 * Resident memory must not grow after the warm-up (the first fifth of the
 * calls): the largest figure sampled in the last fifth may exceed the
 * largest in the second fifth by at most 8 MiB (one leaked plan per call
 * would add ~1 KiB x calls; the allocator keeps some slack per thread). Prints calls per
 * second; any failure with the seed that reproduces it alone:
 *
 *   soak [--threads T] [--calls N] [--seed S] [--rss off]   (CI: --calls 400)
 *   soak --replay S                                          one call, seed S
 *
 * --rss off: the calls are checked, RSS is not judged. ctest passes it when
 * the tests run under an emulator (qemu-user): there /proc/self/statm is the
 * emulator's, whose translation cache grows each time the random calls reach
 * code not yet translated (one CI run saw 8.6 MiB late in the run).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fcase.h"

/* Under a sanitizer RSS holds shadow memory and freed-block quarantine, not
 * the program's live memory: the RSS rule is judged in plain builds. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_JUDGED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RSS_JUDGED 0
#endif
#endif
#ifndef RSS_JUDGED
#define RSS_JUDGED 1
#endif

static long threads = 8, calls = 400;
static int rss_judged = RSS_JUDGED;
static uint64_t base_seed = 0x5eed;
static atomic_long done, failures, refused;

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Distinct streams for every (base seed, thread, call). */
static uint64_t seed_of(long thread, long i)
{
    return base_seed * 0x100000001B3ull ^ ((uint64_t)thread << 40) ^ (uint64_t)i;
}

static int one_call(uint64_t seed, int verbose)
{
    fc_source src = {NULL, 0, 0, seed};
    fc_result r;
    fc_run(&src, &r);
    if (r.failure[0]) {
        fprintf(stderr, "soak: FAILED with seed 0x%llx (soak --replay 0x%llx): %s: %s\n",
                (unsigned long long)seed, (unsigned long long)seed, fc_entry_name(r.entry),
                r.failure);
        return 1;
    }
    if (verbose)
        printf("soak: seed 0x%llx: %s, status %d: held\n", (unsigned long long)seed,
               fc_entry_name(r.entry), r.status);
    if (r.status != 0)
        atomic_fetch_add(&refused, 1);
    return 0;
}

static void *worker(void *arg)
{
    long t = (long)(intptr_t)arg;
    for (long i = 0; i < calls; i++) {
        if (one_call(seed_of(t, i), 0))
            atomic_fetch_add(&failures, 1);
        atomic_fetch_add(&done, 1);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--calls")) calls = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) base_seed = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--rss")) rss_judged = rss_judged && strcmp(argv[i + 1], "off");
        else if (!strcmp(argv[i], "--replay")) return one_call(strtoull(argv[i + 1], NULL, 0), 1);
        else { fprintf(stderr, "soak: unknown option %s\n", argv[i]); return 2; }
    }
    if (threads < 1 || threads > 256 || calls < 1) {
        fprintf(stderr, "soak: --threads must be in [1, 256] and --calls >= 1\n");
        return 2;
    }
    /* A fixed mmap threshold: glibc's dynamic one would keep the freed blocks
     * of randomly sized calls in its heaps, and RSS would measure that
     * allocator's retention rather than live memory. */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    pthread_t *tid = malloc(sizeof(pthread_t) * (size_t)threads);
    const double t0 = now();
    for (long t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, worker, (void *)(intptr_t)t);
    const long total = threads * calls;
    long warm = 0, late = 0, start_rss = rss_kib();
    while (atomic_load(&done) < total) {
        long d = atomic_load(&done), rss = rss_kib();
        if (d >= total / 5 && d < 2 * total / 5 && rss > warm)
            warm = rss; /* the second fifth: after warm-up */
        if (d >= 4 * total / 5 && rss > late)
            late = rss; /* the last fifth */
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    for (long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    const double secs = now() - t0;
    const long end_rss = rss_kib();
    printf("soak: %ld threads x %ld calls = %ld calls in %.1f s: %.0f calls/s, %ld refused "
           "cleanly, %ld failed; RSS (KiB): %ld at start, %ld after warm-up (largest in the "
           "second fifth), %ld in the last fifth, %ld after the threads ended\n",
           threads, calls, total, secs, total / secs, atomic_load(&refused),
           atomic_load(&failures), start_rss, warm, late, end_rss);
    free(tid);
    if (!rss_judged) {
        printf("soak: RSS not judged (%s)\n", RSS_JUDGED ? "--rss off"
                                                     : "a sanitizer build: shadow memory, quarantine");
        return atomic_load(&failures) != 0;
    }
    if (warm == 0 || late == 0) {
        fprintf(stderr, "soak: the run was too short to sample RSS (use more --calls)\n");
        return 1;
    }
    if (late > warm + 8 * 1024) {
        fprintf(stderr, "soak: FAILED: RSS grew by %ld KiB after warm-up\n", late - warm);
        return 1;
    }
    return atomic_load(&failures) != 0;
}
