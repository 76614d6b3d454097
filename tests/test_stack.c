/*
 * Stack use (flat.h "Stack"): every runnable table, K/V type and precision
 * at decode, spec-decode and prefill shapes, on a thread whose stack is the
 * 64 KiB flat.h asks of an engine's threads, or the platform's least where
 * that is more (AArch64 glibc: 128 KiB); sanitizer builds 512 KiB (their
 * redzones grow every frame). A frame that outgrows it hits the guard page
 * and the suite dies; each call must also return FLAT_OK (or UNSUPPORTED for
 * a precision the table's CPU lacks) with finite rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "convert.h"
#include "ukernel.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STACK_KIB 512
#else
#define STACK_KIB 64
#endif

enum { H = 4, D = 128, G = 32, N = 700 };

static const flat_ukernels *tables[8];
static int ntables;

/* One call on table `isa`; 0 when it ran (or was refused as unsupported)
 * with finite rows. */
static int one_call(flat_isa isa, flat_dtype t, flat_precision prec, int nq)
{
    const size_t cnt = (size_t)H * N * D;
    const size_t bytes = (size_t)flat_dtype_bytes(t, (int64_t)cnt);
    uint8_t *k = malloc(bytes), *v = malloc(bytes);
    uint16_t *ks = malloc(2 * cnt / G), *vs = malloc(2 * cnt / G);
    float *q = malloc(sizeof(float) * H * nq * D), *o = malloc(sizeof(float) * H * nq * D);
    tu_rng r = {(uint64_t)nq * 31 + t};
    for (size_t i = 0; i < bytes; i++) {
        k[i] = (uint8_t)tu_uniform(&r, 0, 256), v[i] = (uint8_t)tu_uniform(&r, 0, 256);
        if (t == FLAT_F8E4M3 && (k[i] & 0x7f) == 0x7f)
            k[i] = 0; /* no NaN codes */
        if (t == FLAT_F8E4M3 && (v[i] & 0x7f) == 0x7f)
            v[i] = 0;
        if (t == FLAT_F32 || t == FLAT_BF16) /* small, finite values */
            k[i] &= 0x3f, v[i] &= 0x3f;
    }
    for (size_t i = 0; i < cnt / G; i++)
        ks[i] = vs[i] = 0x2000; /* f16 2^-7 */
    for (int i = 0; i < H * nq * D; i++)
        q[i] = tu_uniform(&r, -1, 1);
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, 1, H, nq, D);
    flat_tensor to = flat_tensor_bhsd(o, FLAT_F32, 1, H, nq, D);
    flat_tensor tk = flat_tensor_bhsd(k, t, 1, H, N, D), tv = flat_tensor_bhsd(v, t, 1, H, N, D);
    flat_kv_quant kq = {0};
    kq.k_scale = flat_tensor_bhsd(ks, FLAT_F16, 1, H, N, D / G);
    kq.v_scale = flat_tensor_bhsd(vs, FLAT_F16, 1, H, N, D / G);
    kq.k_group = kq.v_group = G;
    flat_options opt = {0};
    opt.num_threads = 1, opt.isa = isa, opt.precision = prec, opt.causal = nq > 1;
    if (flat_dtype_quantized(t))
        opt.kv_quant = &kq;
    const flat_status s = flat_attention(&tq, &tk, &tv, &to, &opt);
    int bad = s != FLAT_OK && s != FLAT_ERROR_UNSUPPORTED;
    for (int i = 0; s == FLAT_OK && i < H * nq * D; i++)
        bad |= !isfinite(o[i]);
    if (bad)
        printf("test_stack: isa %d type %d precision %d q_len %d: status %d (%s)\n", (int)isa, (int)t,
               (int)prec, nq, (int)s, flat_last_error());
    free(k), free(v), free(ks), free(vs), free(q), free(o);
    return bad;
}

static void *every_call(void *arg)
{
    static const flat_dtype types[] = {FLAT_F32, FLAT_BF16, FLAT_I8, FLAT_F8E4M3, FLAT_I4};
    static const int q_lens[] = {1, 8, 64};
    int *fails = arg;
    for (int ti = 0; ti < ntables; ti++)
        for (int c = 0; c < 5; c++)
            for (int p = FLAT_PRECISION_AUTO; p <= FLAT_PRECISION_INT8; p++)
                for (int l = 0; l < 3; l++)
                    *fails += one_call(tables[ti]->isa, types[c], (flat_precision)p, q_lens[l]);
    return NULL;
}

static void test_small_stack(void **state)
{
    (void)state;
    pthread_attr_t at;
    pthread_attr_init(&at);
    const long least = sysconf(_SC_THREAD_STACK_MIN);
    size_t bytes = (size_t)STACK_KIB << 10;
    if (least > 0 && (size_t)least > bytes)
        bytes = (size_t)least;
    assert_int_equal(pthread_attr_setstacksize(&at, bytes), 0);
    pthread_t th;
    int fails = 0;
    assert_int_equal(pthread_create(&th, &at, every_call, &fails), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&at);
    printf("test_stack: %d tables x 5 K/V types x 4 precisions x 3 q_lens on a %zu KiB stack\n",
           ntables, bytes >> 10);
    assert_int_equal(fails, 0);
}

int main(void)
{
    ntables = tu_runnable_tables("test_stack", tables, 8);
    if (tu_check_required_isas("test_stack"))
        return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_small_stack)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
