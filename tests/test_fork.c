/*
 * Fork safety: after a threaded call has started the library's threads, a
 * forked child (and its own child) must still get correct results from calls
 * with 2 threads, the default and 1 thread, and within a time limit. The
 * parent keeps its threads and checks its own calls after the fork.
 *   - OpenMP build: libgomp's pool does not survive fork, and entering OpenMP
 *     there would hang (GCC bug 60035), so the child runs every call on its
 *     one thread: it must have no other thread after its calls.
 *   - -DFLAT_OPENMP=OFF: flat's pool forgets the parent's threads in the
 *     child and starts its own, so the child's 2-thread calls are threaded
 *     again: it must have more than one thread after them (given 2 CPUs).
 *
 * The child reports through its exit status only (cmocka must not run in
 * it); the parent asserts that it exited 0 before the deadline, else kills it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reference.h"
#include "testutil.h"

#define ROW_TOL 1e-5
/* Generous for qemu-user and the sanitizers; a hang is forever. */
#define CHILD_SECONDS 60
#define WAIT_SECONDS 90

/* One GQA problem with enough tasks for 2 threads, and its reference. */
static const int64_t B = 2, HQ = 4, HKV = 2, NQ = 96, NK = 300, D = 64;
static tu_tensor q, k, v, o;
static double *ref;

static void make_problem(void)
{
    tu_rng rng = {60035};
    tu_tensor_alloc(&q, TU_BHSD, B, HQ, NQ, D);
    tu_tensor_alloc(&k, TU_BHSD, B, HKV, NK, D);
    tu_tensor_alloc(&v, TU_BSHD, B, HKV, NK, D);
    tu_tensor_alloc(&o, TU_BHSD, B, HQ, NQ, D);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    ref = malloc(sizeof(double) * (size_t)(B * HQ * NQ * D));
    flat_options opt = {0};
    opt.causal = 1;
    ref_attention(&q.t, &k.t, &v.t, &opt, ref, NULL, NULL);
}

/* One causal call with `threads`; 0 when every row is within ROW_TOL of
 * the reference, else 1 with a message on stderr. */
static int call_and_check(const char *who, int threads)
{
    flat_options opt = {0};
    opt.causal = 1;
    opt.num_threads = threads;
    tu_tensor_poison(&o);
    flat_status st = flat_attention(&q.t, &k.t, &v.t, &o.t, &opt);
    if (st != FLAT_OK) {
        fprintf(stderr, "%s: threads %d: %s: %s\n", who, threads, flat_status_string(st),
                flat_last_error());
        return 1;
    }
    double worst = 0;
    for (int64_t r = 0; r < B * HQ * NQ; r++) {
        const float *got = ref_row(&o.t, r / (HQ * NQ), r / NQ % HQ, r % NQ);
        double num = 0, den = 0;
        for (int64_t d = 0; d < D; d++) {
            double e = got[d] - ref[r * D + d];
            num += e * e, den += ref[r * D + d] * ref[r * D + d];
        }
        double err = sqrt(num / den);
        if (!(err <= ROW_TOL)) {
            fprintf(stderr, "%s: threads %d: row %lld: relative error %.3g\n", who, threads,
                    (long long)r, err);
            return 1;
        }
        worst = fmax(worst, err);
    }
    printf("  %s (pid %ld): num_threads %d: ok, max row error %.2g\n", who, (long)getpid(),
           threads, worst);
    fflush(stdout);
    return 0;
}

/* Runs body() in a forked child; returns its exit status (0: passed), or -1
 * with a message when it was killed, by its alarm or at the deadline. */
static int in_child(const char *who, int (*body)(void))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* A crash must end the child, not land in cmocka's handlers. */
        signal(SIGSEGV, SIG_DFL), signal(SIGBUS, SIG_DFL), signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL), signal(SIGSYS, SIG_DFL);
        alarm(CHILD_SECONDS);
        _exit(body());
    }
    int status = 0;
    const struct timespec tick = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < WAIT_SECONDS * 100; waited++) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid && WIFEXITED(status))
            return WEXITSTATUS(status);
        if (got == pid) {
            fprintf(stderr, "%s: killed by signal %d%s\n", who, WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? " (its alarm: it hung)" : "");
            return -1;
        }
        if (got < 0 && errno != EINTR)
            return -1;
        nanosleep(&tick, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fprintf(stderr, "%s: still running after %d s: killed\n", who, WAIT_SECONDS);
    return -1;
}

/* Threads of this process now (entries of /proc/self/task), or -1. */
static int threads_in_process(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* What a forked child's threaded calls ran on (see the top of the file),
 * counted against the threads it had before them (`before`): a process under
 * qemu-user has threads of the emulator's own besides. */
static int threads_as_expected(const char *who, int before)
{
    int n = threads_in_process();
#if FLAT_TEST_OPENMP
    int ok = n == before;
    const char *want = "none new (OpenMP's pool is the parent's)";
#else
    int ok = n > before || sysconf(_SC_NPROCESSORS_ONLN) < 2 || n < 0;
    const char *want = "new ones (flat's pool starts anew)";
#endif
    printf("  %s (pid %ld): %d thread(s) after its calls, %d before, %s expected\n", who,
           (long)getpid(), n, before, want);
    fflush(stdout);
    return ok ? 0 : 1;
}

static int grandchild_body(void)
{
    int before = threads_in_process();
    return call_and_check("grandchild", 2) || threads_as_expected("grandchild", before);
}

static int child_body(void)
{
    int before = threads_in_process();
    if (call_and_check("child", 2) || call_and_check("child", 0) ||
        call_and_check("child", 1) || threads_as_expected("child", before))
        return 1;
    /* The child's own children inherit the broken pool too. */
    return in_child("grandchild", grandchild_body) != 0;
}

static void test_child_after_threaded_calls(void **state)
{
    (void)state;
    assert_int_equal(call_and_check("parent", 2), 0);
    assert_int_equal(in_child("child", child_body), 0);
    /* The parent's pool is intact: its threaded calls go on working. */
    assert_int_equal(call_and_check("parent after fork", 2), 0);
}

int main(void)
{
    make_problem();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_after_threaded_calls),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&v);
    tu_tensor_free(&o);
    free(ref);
    return failed;
}
