/*
 * The precision policy (flat.h, flat_precision; runtime/dispatch.c): which
 * table each call takes under AUTO, FP32 and BF16 for every pairing of
 * element types, that the call then meets the bound of the table it took,
 * that an explicit isa wins, and that asking for amx_bf16 where it cannot
 * run is FLAT_ERROR_UNSUPPORTED naming the missing feature, out untouched.
 *
 * The expected table is derived here from the rule as the header states it:
 *   FP32, or AUTO with any of q, k, v not bf16: the first runnable table with
 *     fp32 products (the order of flat_dispatch_tables);
 *   BF16, or AUTO with q, k, v all bf16: amx_bf16 if it runs here; else
 *     avx512_bf16 if it runs and (BF16, or the CPU is AMD's: measured faster
 *     than fp32 FMA there, slower on Intel); else BF16 is UNSUPPORTED and
 *     AUTO falls back to fp32 products.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "dispatch.h"
#include "reference.h"
#include "testutil.h"

enum { B = 1, HQ = 4, HKV = 2, NQ = 40, NK = 300, D = 64 };

static const char *dt_name(int t) { return t == FLAT_F16 ? "f16" : t == FLAT_BF16 ? "bf16" : "f32"; }

static const flat_ukernels *runnable_table(flat_isa isa)
{
    int count;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    for (int i = 0; i < count; i++)
        if (all[i]->isa == isa)
            return flat_dispatch_runnable(all[i]) ? all[i] : NULL;
    return NULL;
}

static const flat_ukernels *first_fp32(void)
{
    int count;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    for (int i = 0; i < count; i++)
        if (all[i]->compute == FLAT_F32 && flat_dispatch_runnable(all[i]))
            return all[i];
    return NULL;
}

/* The table the rule names, or NULL where the call must be UNSUPPORTED. */
static const flat_ukernels *expected(int precision, flat_dtype qd, flat_dtype kd)
{
    if (precision == FLAT_PRECISION_INT8) /* int8 products on I8 caches only */
        return kd == FLAT_I8 || kd == FLAT_I4 ? runnable_table(FLAT_ISA_AVX512_VNNI) : first_fp32();
    const int bf16 = precision == FLAT_PRECISION_BF16 ||
                     (precision == FLAT_PRECISION_AUTO && qd == FLAT_BF16 && kd == FLAT_BF16);
    if (!bf16)
        return first_fp32();
    const flat_ukernels *amx = runnable_table(FLAT_ISA_AMX_BF16);
    const flat_ukernels *vdp = runnable_table(FLAT_ISA_AVX512_BF16);
    if (amx && (amx->dtypes & FLAT_DTYPE_BIT(kd)))
        return amx;
    if (vdp && (precision == FLAT_PRECISION_BF16 || flat_cpu()->amd))
        return vdp;
    return precision == FLAT_PRECISION_BF16 ? NULL : first_fp32();
}

/* Row bound of a call on table t with out type qd (test_dtypes' bounds). */
static double row_bound(const flat_ukernels *t, flat_dtype qd)
{
    if (t->compute == FLAT_BF16)
        return 1e-2;
    return qd == FLAT_F32 ? 1e-5 : qd == FLAT_F16 ? 1e-3 : 8e-3;
}

static tu_tensor q, k, v, o;

static int setup(void **state)
{
    (void)state;
    tu_rng rng = {2026};
    tu_tensor_alloc(&q, TU_BHSD, B, HQ, NQ, D);
    tu_tensor_alloc(&k, TU_BHSD, B, HKV, NK, D);
    tu_tensor_alloc(&v, TU_BHSD, B, HKV, NK, D);
    tu_tensor_alloc(&o, TU_BHSD, B, HQ, NQ, D);
    tu_tensor_fill(&q, &rng, 1.0f);
    tu_tensor_fill(&k, &rng, 1.0f);
    tu_tensor_fill(&v, &rng, 1.0f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_tensor *all[4] = {&q, &k, &v, &o};
    for (int i = 0; i < 4; i++)
        tu_tensor_free(all[i]);
    return 0;
}

/* The table named in a plan's description ("isa=<name> ..."). */
static void described_isa(const flat_plan *plan, char *name, size_t n)
{
    const char *d = flat_plan_describe(plan), *at = strstr(d, "isa=");
    assert_non_null(at);
    snprintf(name, n, "%.*s", (int)strcspn(at + 4, " "), at + 4);
}

/* Max row relative 2-norm error of `to` against the double reference. */
static double worst_row(const tu_tensor *qf, const tu_tensor *kf, const tu_tensor *vf,
                        const tu_tensor *to, const flat_options *opt)
{
    const int64_t rows = B * HQ * NQ;
    double *ref = malloc(sizeof(double) * (size_t)(rows * D)), *lse = malloc(sizeof(double) * (size_t)rows);
    ref_attention(&qf->t, &kf->t, &vf->t, opt, ref, lse, NULL);
    double worst = 0;
    for (int64_t h = 0; h < HQ; h++)
        for (int64_t i = 0; i < NQ; i++) {
            const double *w = ref + ((h * NQ) + i) * D;
            double num = 0, den = 0;
            for (int64_t c = 0; c < D; c++) {
                double x = tu_tensor_get(to, 0, h, i, c) - w[c];
                num += x * x, den += w[c] * w[c];
            }
            worst = fmax(worst, sqrt(num / fmax(den, 1e-300)));
        }
    free(ref);
    free(lse);
    return worst;
}

static void test_policy(void **state)
{
    (void)state;
    static const char *pname[4] = {"auto", "fp32", "bf16", "int8"};
    for (int qd = FLAT_F32; qd <= FLAT_BF16; qd++)
        for (int kd = FLAT_F32; kd <= FLAT_BF16; kd++) {
            tu_tensor qf, kf, vf, tq, tk, tv, to;
            /* fresh fp32 copies, rounded to the types, as the reference sees them */
            tu_tensor *src[3] = {&q, &k, &v}, *dst[3] = {&qf, &kf, &vf};
            for (int i = 0; i < 3; i++) {
                tu_tensor_alloc(dst[i], TU_BHSD, src[i]->t.batch, src[i]->t.heads, src[i]->t.seq, src[i]->t.dim);
                memcpy(dst[i]->buf, src[i]->buf, sizeof(float) * src[i]->n);
            }
            tu_tensor_typed(&qf, (flat_dtype)qd, &tq);
            tu_tensor_typed(&kf, (flat_dtype)kd, &tk);
            tu_tensor_typed(&vf, (flat_dtype)kd, &tv);
            tu_tensor_typed(&o, (flat_dtype)qd, &to);
            for (int pr = FLAT_PRECISION_AUTO; pr <= FLAT_PRECISION_INT8; pr++) {
                flat_options opt = {0};
                opt.causal = 1;
                opt.precision = pr;
                const flat_ukernels *want = expected(pr, (flat_dtype)qd, (flat_dtype)kd);
                flat_plan *plan = NULL;
                tu_tensor_poison(&to);
                flat_status s = flat_plan_create(&tq.t, &tk.t, &tv.t, &to.t, &opt, &plan);
                if (!want) {
                    if (s != FLAT_ERROR_UNSUPPORTED || !strstr(flat_last_error(), "opt.precision"))
                        fail_msg("q %s kv %s precision %s: %s (%s), want UNSUPPORTED naming "
                                 "opt.precision", dt_name(qd), dt_name(kd), pname[pr],
                                 flat_status_string(s), flat_last_error());
                    printf("  q/out %-4s k/v %-4s precision %-4s -> UNSUPPORTED: %s\n", dt_name(qd),
                           dt_name(kd), pname[pr], flat_last_error());
                    continue;
                }
                if (s != FLAT_OK)
                    fail_msg("q %s kv %s precision %s: %s", dt_name(qd), dt_name(kd), pname[pr],
                             flat_last_error());
                char got[32];
                described_isa(plan, got, sizeof got);
                const char *reason = strstr(flat_plan_describe(plan), "; isa ");
                assert_non_null(reason); /* the reason is part of the description */
                char why[256];
                snprintf(why, sizeof why, "%s", reason);
                if (strcmp(got, want->name) != 0)
                    fail_msg("q %s kv %s precision %s: took %s, want %s (%s)", dt_name(qd),
                             dt_name(kd), pname[pr], got, want->name, why);
                assert_int_equal(flat_plan_execute(plan, NULL), FLAT_OK);
                flat_plan_destroy(plan);
                const double err = worst_row(&qf, &kf, &vf, &to, &opt), bound = row_bound(want, (flat_dtype)qd);
                printf("  q/out %-4s k/v %-4s precision %-4s -> %-11s row error %.2e (bound %g)%s\n",
                       dt_name(qd), dt_name(kd), pname[pr], got, err, bound, why);
                if (!(err <= bound))
                    fail_msg("q %s kv %s precision %s on %s: row error %g > %g", dt_name(qd),
                             dt_name(kd), pname[pr], got, err, bound);
            }
            tu_tensor *all[7] = {&qf, &kf, &vf, &tq, &tk, &tv, &to};
            for (int i = 0; i < 7; i++)
                tu_tensor_free(all[i]);
        }
}

/* opt.isa wins over the precision: named tables run whatever it says. */
/* FLAT_PRECISION_INT8 on an I8 cache: avx512_vnni where it runs (named in
 * the plan's description), else UNSUPPORTED naming opt.precision. */
static void test_int8_policy(void **state)
{
    (void)state;
    int8_t k[4 * 64], v[4 * 64];
    float q[64], out[64], ks = 0.01f, vs = 0.02f;
    for (int i = 0; i < 4 * 64; i++)
        k[i] = (int8_t)(i % 61 - 30), v[i] = (int8_t)(i % 53 - 26);
    for (int i = 0; i < 64; i++)
        q[i] = (float)(i % 7) / 7.0f;
    flat_tensor qt = flat_tensor_bhsd(q, FLAT_F32, 1, 1, 1, 64);
    flat_tensor kt = flat_tensor_bhsd(k, FLAT_I8, 1, 1, 4, 64);
    flat_tensor vt = flat_tensor_bhsd(v, FLAT_I8, 1, 1, 4, 64);
    flat_tensor ot = flat_tensor_bhsd(out, FLAT_F32, 1, 1, 1, 64);
    flat_kv_quant kq = {0};
    kq.k_scale = flat_tensor_bhsd(&ks, FLAT_F32, 1, 1, 4, 1);
    kq.k_scale.stride_seq = 0;
    kq.v_scale = flat_tensor_bhsd(&vs, FLAT_F32, 1, 1, 4, 1);
    kq.v_scale.stride_seq = 0;
    kq.k_group = kq.v_group = 64;
    flat_options opt = {0};
    opt.kv_quant = &kq;
    opt.precision = FLAT_PRECISION_INT8;
    flat_plan *plan = NULL;
    const flat_status s = flat_plan_create(&qt, &kt, &vt, &ot, &opt, &plan);
    const flat_ukernels *want = runnable_table(FLAT_ISA_AVX512_VNNI);
    if (!want) {
        assert_int_equal(s, FLAT_ERROR_UNSUPPORTED);
        assert_non_null(strstr(flat_last_error(), "opt.precision"));
        printf("  k/v i8 precision int8 -> UNSUPPORTED: %s\n", flat_last_error());
        return;
    }
    assert_int_equal(s, FLAT_OK);
    char got[32];
    described_isa(plan, got, sizeof got);
    printf("  k/v i8 precision int8 -> %s\n", got);
    assert_string_equal(got, want->name);
    assert_int_equal(flat_plan_execute(plan, NULL), FLAT_OK);
    flat_plan_destroy(plan);
}

static void test_isa_wins(void **state)
{
    (void)state;
    tu_tensor tq, tk, tv, to;
    tu_tensor_typed(&q, FLAT_BF16, &tq);
    tu_tensor_typed(&k, FLAT_BF16, &tk);
    tu_tensor_typed(&v, FLAT_BF16, &tv);
    tu_tensor_typed(&o, FLAT_BF16, &to);
    flat_options opt = {0};
    opt.isa = FLAT_ISA_SCALAR;
    opt.precision = FLAT_PRECISION_BF16;
    flat_plan *plan = NULL;
    assert_int_equal(flat_plan_create(&tq.t, &tk.t, &tv.t, &to.t, &opt, &plan), FLAT_OK);
    char got[32];
    described_isa(plan, got, sizeof got);
    assert_string_equal(got, "scalar");
    assert_non_null(strstr(flat_plan_describe(plan), "by opt.isa"));
    flat_plan_destroy(plan);
    tu_tensor *all[4] = {&tq, &tk, &tv, &to};
    for (int i = 0; i < 4; i++)
        tu_tensor_free(all[i]);
}

/* Asking for amx_bf16: it runs where the CPU has AMX (or the build emulates
 * the tiles); elsewhere UNSUPPORTED naming the missing feature, out untouched. */
static void test_amx_request(void **state)
{
    (void)state;
    int count, built = 0;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    for (int i = 0; i < count; i++)
        built |= all[i]->isa == FLAT_ISA_AMX_BF16;
    flat_options opt = {0};
    opt.isa = FLAT_ISA_AMX_BF16;
    tu_tensor_poison(&o);
    flat_status s = flat_attention(&q.t, &k.t, &v.t, &o.t, &opt);
    if (runnable_table(FLAT_ISA_AMX_BF16)) {
        printf("  amx_bf16 runs here\n");
        assert_int_equal(s, FLAT_OK);
        return;
    }
    printf("  amx_bf16 %s: %s\n", built ? "built, not runnable" : "not built", flat_last_error());
    assert_int_equal(s, FLAT_ERROR_UNSUPPORTED);
    assert_int_equal(tu_tensor_padding_changed(&o), -1);
    for (size_t i = 0; i < o.n; i++)
        if (o.in_view[i] && tu_bits(o.buf[i]) != TU_POISON_BITS)
            fail_msg("out element %zu written by a refused call", i);
    const char *msg = flat_last_error();
    if (built && !strstr(msg, "amx_tile") && !strstr(msg, "amx_bf16") && !strstr(msg, "avx512"))
        fail_msg("message \"%s\" names no missing feature", msg);
    if (!built && !strstr(msg, "no amx_bf16 kernels"))
        fail_msg("message \"%s\" does not say the build lacks the table", msg);
}

/* All-bf16 AUTO calls (amx_bf16 where it runs: tile state set up and
 * released inside each kernel call) in a thread that never called flat
 * and in a forked child give the parent's bits. */
static tu_tensor bq, bk, bv, bo;
static float first[HQ * NQ * D];

static int bf16_call(void)
{
    flat_options opt = {0};
    opt.causal = 1;
    opt.num_threads = 1; /* a child forked after threaded calls runs one */
    tu_tensor_poison(&bo);
    if (flat_attention(&bq.t, &bk.t, &bv.t, &bo.t, &opt) != FLAT_OK)
        return 1;
    for (int64_t h = 0, i = 0; h < HQ; h++)
        for (int64_t r = 0; r < NQ; r++)
            for (int64_t c = 0; c < D; c++, i++)
                if (tu_bits(tu_tensor_get(&bo, 0, h, r, c)) != tu_bits(first[i]))
                    return 2;
    return 0;
}

static void *thread_main(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)bf16_call();
}

static void test_threads_and_fork(void **state)
{
    (void)state;
    tu_tensor_typed(&q, FLAT_BF16, &bq);
    tu_tensor_typed(&k, FLAT_BF16, &bk);
    tu_tensor_typed(&v, FLAT_BF16, &bv);
    tu_tensor_typed(&o, FLAT_BF16, &bo);
    flat_options opt = {0};
    opt.causal = 1;
    opt.num_threads = 1; /* a child forked after threaded calls runs one */
    assert_int_equal(flat_attention(&bq.t, &bk.t, &bv.t, &bo.t, &opt), FLAT_OK);
    for (int64_t h = 0, i = 0; h < HQ; h++)
        for (int64_t r = 0; r < NQ; r++)
            for (int64_t c = 0; c < D; c++, i++)
                first[i] = tu_tensor_get(&bo, 0, h, r, c);
    pthread_t th;
    void *ret = NULL;
    assert_int_equal(pthread_create(&th, NULL, thread_main, NULL), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(bf16_call());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    printf("  all-bf16 AUTO in a fresh thread and a forked child: the parent's bits\n");
    tu_tensor *all[4] = {&bq, &bk, &bv, &bo};
    for (int i = 0; i < 4; i++)
        tu_tensor_free(all[i]);
}

int main(void)
{
    const flat_ukernels *tables[8];
    tu_runnable_tables("test_precision", tables, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_int8_policy),
        cmocka_unit_test(test_isa_wins),
        cmocka_unit_test(test_amx_request),
        cmocka_unit_test(test_threads_and_fork),
    };
    if (tu_check_required_isas("test_precision"))
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
