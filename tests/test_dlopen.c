/*
 * The shared library as an engine loads it: dlopen() the built libflat.so
 * (FLAT_LIB_PATH, from CMake's $<TARGET_FILE:flat>), dlsym() every public
 * function, run a small attention through the pointers and check it against
 * the reference. Internal symbols must not resolve (only flat_* API is
 * exported). This executable does not link libflat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "flat.h"
#include "reference.h"

#ifndef FLAT_LIB_PATH
#error "FLAT_LIB_PATH must name the built libflat.so"
#endif

typedef const char *(*status_string_fn)(flat_status);
typedef const char *(*str_fn)(void);
typedef flat_tensor (*tensor_fn)(void *, flat_dtype, int64_t, int64_t, int64_t, int64_t);
typedef flat_status (*attention_fn)(const flat_tensor *, const flat_tensor *,
                                    const flat_tensor *, const flat_tensor *,
                                    const flat_options *);
typedef flat_isa (*detect_fn)(void);
typedef const char *(*isa_name_fn)(flat_isa);

static void *lib;

static void *sym(const char *name)
{
    dlerror();
    void *p = dlsym(lib, name);
    if (!p)
        fail_msg("dlsym(%s): %s", name, dlerror());
    return p;
}

static int setup(void **state)
{
    (void)state;
    lib = dlopen(FLAT_LIB_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen(%s): %s\n", FLAT_LIB_PATH, dlerror());
        return -1;
    }
    return 0;
}

/* dlclose must be safe after multi-threaded calls: if it unmapped the
 * library (and with it libgomp) under the idle OpenMP pool threads, they
 * would crash the process as soon as they run again; give them time to. */
static void crashed_after_dlclose(int sig)
{
    static const char msg[] = "[  ERROR   ] --- a thread crashed after dlclose(libflat.so): the "
                              "library (and libgomp) were unmapped under live OpenMP threads\n"
                              "[  FAILED  ] dlclose\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(2);
    _exit(1);
}

static int teardown(void **state)
{
    (void)state;
    signal(SIGSEGV, crashed_after_dlclose);
    signal(SIGBUS, crashed_after_dlclose);
    signal(SIGILL, crashed_after_dlclose);
    if (lib && dlclose(lib) != 0)
        return -1;
    struct timespec wait = {0, 300 * 1000 * 1000};
    nanosleep(&wait, NULL);
    printf("  dlclose: the process survived 300 ms of idle OpenMP threads\n");
    return 0;
}

static void test_every_symbol(void **state)
{
    (void)state;
    static const char *api[] = {"flat_status_string", "flat_last_error", "flat_version",
                                "flat_tensor_bhsd",   "flat_tensor_bshd", "flat_attention",
                                "flat_isa_detect",    "flat_isa_name"};
    for (size_t i = 0; i < sizeof api / sizeof api[0]; i++)
        assert_non_null(sym(api[i]));
    status_string_fn ss = (status_string_fn)sym("flat_status_string");
    assert_string_equal(ss(FLAT_ERROR_UNSUPPORTED), "FLAT_ERROR_UNSUPPORTED");
    assert_string_equal(((str_fn)sym("flat_version"))(), FLAT_VERSION_STRING);
    isa_name_fn name = (isa_name_fn)sym("flat_isa_name");
    flat_isa best = ((detect_fn)sym("flat_isa_detect"))();
    printf("  %s: version %s, best isa %s\n", FLAT_LIB_PATH, ((str_fn)sym("flat_version"))(),
           name(best));
    assert_string_not_equal(name(best), "unknown");
}

static void test_internals_hidden(void **state)
{
    (void)state;
    static const char *internal[] = {"flat_dispatch_tables", "flat_dispatch_select",
                                     "flat_validate",        "flat_error",
                                     "flat_ukernels_scalar", "flat_plan_choose",
                                     "flat_cpu"};
    for (size_t i = 0; i < sizeof internal / sizeof internal[0]; i++)
        if (dlsym(lib, internal[i]))
            fail_msg("internal symbol %s is exported", internal[i]);
}

static void test_attention_through_pointers(void **state)
{
    (void)state;
    tensor_fn bhsd = (tensor_fn)sym("flat_tensor_bhsd");
    tensor_fn bshd = (tensor_fn)sym("flat_tensor_bshd");
    attention_fn attn = (attention_fn)sym("flat_attention");
    str_fn last_error = (str_fn)sym("flat_last_error");
    enum { B = 2, HQ = 4, HKV = 2, NQ = 9, NK = 33, D = 16, DV = 24 };
    static float q[B * NQ * HQ * D], k[B * HKV * NK * D], v[B * HKV * NK * DV],
        o[B * HQ * NQ * DV], lse[B * HQ * NQ];
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        q[i] = (float)sin(0.37 * (double)i);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        k[i] = (float)cos(0.11 * (double)i);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        v[i] = (float)sin(0.05 * (double)i + 1.0);
    flat_tensor tq = bshd(q, FLAT_F32, B, NQ, HQ, D);
    flat_tensor tk = bhsd(k, FLAT_F32, B, HKV, NK, D);
    flat_tensor tv = bhsd(v, FLAT_F32, B, HKV, NK, DV);
    flat_tensor to = bhsd(o, FLAT_F32, B, HQ, NQ, DV);
    flat_options opt = {0};
    opt.causal = 1;
    opt.lse = lse;
    opt.num_threads = 2; /* an OpenMP pool exists when the library is closed */
    flat_status st = attn(&tq, &tk, &tv, &to, &opt);
    if (st != FLAT_OK)
        fail_msg("flat_attention: %d: %s", (int)st, last_error());
    static double ref[B * HQ * NQ * DV], ref_lse[B * HQ * NQ];
    ref_attention(&tq, &tk, &tv, &opt, ref, ref_lse, NULL);
    for (int r = 0; r < B * HQ * NQ; r++) {
        double num = 0, den = 0;
        for (int d = 0; d < DV; d++) {
            double e = o[r * DV + d] - ref[r * DV + d];
            num += e * e, den += ref[r * DV + d] * ref[r * DV + d];
        }
        if (!(sqrt(num) <= 1e-5 * sqrt(den)))
            fail_msg("row %d: relative error %.3g", r, sqrt(num / den));
        if (!(fabs(lse[r] - ref_lse[r]) <= 1e-5 * fmax(1.0, fabs(ref_lse[r]))))
            fail_msg("row %d: lse %.9g, want %.9g", r, lse[r], ref_lse[r]);
    }
    /* and an error through the pointers */
    tk.dim = 8;
    assert_int_equal(attn(&tq, &tk, &tv, &to, &opt), FLAT_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(last_error(), "k.dim"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_symbol),
        cmocka_unit_test(test_internals_hidden),
        cmocka_unit_test(test_attention_through_pointers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
