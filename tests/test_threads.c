/*
 * Reentrancy: 8 pthreads call flat_attention at once, each on its own shape
 * and options (ISA, dataflow, num_threads, causal, kv_lens, GQA, layouts),
 * several times over, and every result must match the double reference
 * (relative row error <= 1e-5, as in test_attention). One more thread makes
 * failing calls in a loop: its flat_last_error() must always be its own
 * message (thread-local), and the others must never see one.
 *
 * cmocka's asserts must not run off the main thread, so workers record their
 * first failure in a string that the main thread checks after joining.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "reference.h"
#include "testutil.h"

#define NWORKERS 8
#define ROW_TOL 1e-5

typedef struct {
    /* problem */
    int64_t B, Hq, Hkv, Nq, Nk, D, Dv;
    tu_layout lq, lo;
    int causal, use_kv_lens, nthreads;
    flat_dataflow dataflow;
    flat_isa isa;
    /* data */
    tu_tensor q, k, v, o;
    int32_t kv_lens[4];
    float *lse;
    double *ref, *ref_lse;
    int64_t *seen;
    int iters;
    /* result */
    char failure[512];
    double max_err;
} job;

static const flat_ukernels *tables[8];
static int ntables;

static void *worker(void *arg)
{
    job *j = arg;
    if (flat_last_error()[0] != '\0') {
        snprintf(j->failure, sizeof j->failure, "fresh thread has a last error: %s",
                 flat_last_error());
        return NULL;
    }
    flat_options opt = {0};
    opt.causal = j->causal;
    opt.kv_lens = j->use_kv_lens ? j->kv_lens : NULL;
    opt.lse = j->lse;
    opt.num_threads = j->nthreads;
    opt.dataflow = j->dataflow;
    opt.isa = j->isa;
    for (int it = 0; it < j->iters; it++) {
        tu_tensor_poison(&j->o);
        flat_status st = flat_attention(&j->q.t, &j->k.t, &j->v.t, &j->o.t, &opt);
        if (st != FLAT_OK) {
            snprintf(j->failure, sizeof j->failure, "iteration %d: %s: %s", it,
                     flat_status_string(st), flat_last_error());
            return NULL;
        }
        if (flat_last_error()[0] != '\0') {
            snprintf(j->failure, sizeof j->failure,
                     "iteration %d: successful call left a message: %s", it, flat_last_error());
            return NULL;
        }
        int64_t r = 0;
        for (int64_t b = 0; b < j->B; b++)
            for (int64_t h = 0; h < j->Hq; h++)
                for (int64_t i = 0; i < j->Nq; i++, r++) {
                    const float *got = ref_row(&j->o.t, b, h, i);
                    const double *want = j->ref + r * j->Dv;
                    double num = 0, den = 0;
                    for (int64_t d = 0; d < j->Dv; d++) {
                        double e = got[d] - want[d];
                        num += e * e, den += want[d] * want[d];
                    }
                    int bad = j->seen[r] ? !(sqrt(num) <= ROW_TOL * sqrt(den)) : num != 0;
                    if (!bad && j->seen[r] &&
                        !(fabs(j->lse[r] - j->ref_lse[r]) <= 1e-5 * fmax(1, fabs(j->ref_lse[r]))))
                        bad = 1;
                    if (!bad && !j->seen[r] && !(isinf(j->lse[r]) && j->lse[r] < 0))
                        bad = 1;
                    if (bad) {
                        snprintf(j->failure, sizeof j->failure,
                                 "iteration %d row (%lld,%lld,%lld): relative error %.3g, lse "
                                 "%.9g want %.9g",
                                 it, (long long)b, (long long)h, (long long)i,
                                 sqrt(num / (den > 0 ? den : 1)), j->lse[r], j->ref_lse[r]);
                        return NULL;
                    }
                    if (den > 0 && sqrt(num / den) > j->max_err)
                        j->max_err = sqrt(num / den);
                }
        if (tu_tensor_padding_changed(&j->o) >= 0) {
            snprintf(j->failure, sizeof j->failure, "iteration %d: out padding written", it);
            return NULL;
        }
    }
    return NULL;
}

/* Makes failing calls and checks that the message stays its own. */
typedef struct {
    int iters;
    char failure[512];
} error_job;

static void *error_worker(void *arg)
{
    error_job *e = arg;
    float x[64] = {0}, y[64];
    for (int it = 0; it < e->iters; it++) {
        const int64_t dim = 4 + it % 3; /* a message that differs per iteration */
        flat_tensor q = flat_tensor_bhsd(x, FLAT_F32, 1, 1, 2, 4);
        flat_tensor k = flat_tensor_bhsd(x + 16, FLAT_F32, 1, 1, 2, dim);
        flat_tensor v = flat_tensor_bhsd(x + 32, FLAT_F32, 1, 1, 2, 4);
        flat_tensor o = flat_tensor_bhsd(y, FLAT_F32, 1, 1, 2, 4);
        flat_status st = flat_attention(&q, &k, &v, &o, NULL);
        char want[64];
        snprintf(want, sizeof want, "k.dim (%lld)", (long long)dim);
        if (dim == 4) {
            if (st != FLAT_OK || flat_last_error()[0]) {
                snprintf(e->failure, sizeof e->failure, "valid call: %s \"%s\"",
                         flat_status_string(st), flat_last_error());
                return NULL;
            }
        } else if (st != FLAT_ERROR_INVALID_ARGUMENT || !strstr(flat_last_error(), want)) {
            snprintf(e->failure, sizeof e->failure, "iteration %d: %s \"%s\", want \"%s...\"",
                     it, flat_status_string(st), flat_last_error(), want);
            return NULL;
        }
    }
    return NULL;
}

static void make_job(job *j, int idx)
{
    static const int64_t shapes[NWORKERS][7] = {
        /* B, Hq, Hkv, Nq, Nk, D, Dv */
        {1, 2, 1, 1, 700, 64, 64},  {2, 4, 2, 65, 65, 32, 32},  {1, 8, 1, 30, 200, 128, 128},
        {3, 3, 3, 7, 130, 80, 48},  {2, 6, 2, 100, 63, 96, 96}, {1, 1, 1, 257, 257, 256, 64},
        {4, 2, 2, 9, 90, 64, 64},   {1, 4, 4, 64, 1000, 64, 64}};
    const int64_t *s = shapes[idx];
    memset(j, 0, sizeof *j);
    j->B = s[0], j->Hq = s[1], j->Hkv = s[2], j->Nq = s[3], j->Nk = s[4], j->D = s[5];
    j->Dv = s[6];
    j->lq = (tu_layout)(idx % 4);   /* bhsd, bshd, padded, sbhd */
    j->lo = (tu_layout)((idx + 1) % 4);
    j->causal = idx % 2;
    j->use_kv_lens = idx % 3 == 0;
    j->nthreads = 1 + idx % 2;
    j->dataflow = (flat_dataflow)(idx % 3);
    j->isa = idx == 7 ? FLAT_ISA_AUTO : tables[idx % ntables]->isa;
    j->iters = tu_quick() ? 2 : 4;

    tu_rng rng = {1000 + (uint64_t)idx};
    tu_tensor_alloc(&j->q, j->lq, j->B, j->Hq, j->Nq, j->D);
    tu_tensor_alloc(&j->k, TU_PADDED, j->B, j->Hkv, j->Nk, j->D);
    tu_tensor_alloc(&j->v, TU_BSHD, j->B, j->Hkv, j->Nk, j->Dv);
    tu_tensor_alloc(&j->o, j->lo, j->B, j->Hq, j->Nq, j->Dv);
    tu_tensor_fill(&j->q, &rng, 1.0f);
    tu_tensor_fill(&j->k, &rng, 1.0f);
    tu_tensor_fill(&j->v, &rng, 1.0f);
    for (int b = 0; b < 4; b++)
        j->kv_lens[b] = (int32_t)(b == 1 ? 0 : j->Nk - b * (j->Nk / 5));
    const int64_t rows = j->B * j->Hq * j->Nq;
    j->lse = malloc(sizeof(float) * (size_t)rows);
    j->ref = malloc(sizeof(double) * (size_t)(rows * j->Dv));
    j->ref_lse = malloc(sizeof(double) * (size_t)rows);
    j->seen = malloc(sizeof(int64_t) * (size_t)rows);
    flat_options opt = {0};
    opt.causal = j->causal;
    opt.kv_lens = j->use_kv_lens ? j->kv_lens : NULL;
    ref_attention(&j->q.t, &j->k.t, &j->v.t, &opt, j->ref, j->ref_lse, j->seen);
}

static void free_job(job *j)
{
    tu_tensor_free(&j->q);
    tu_tensor_free(&j->k);
    tu_tensor_free(&j->v);
    tu_tensor_free(&j->o);
    free(j->lse);
    free(j->ref);
    free(j->ref_lse);
    free(j->seen);
}

static void test_concurrent_calls(void **state)
{
    (void)state;
    static job jobs[NWORKERS];
    error_job ej = {tu_quick() ? 200 : 2000, ""};
    for (int i = 0; i < NWORKERS; i++)
        make_job(&jobs[i], i);
    pthread_t th[NWORKERS + 1];
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    assert_int_equal(pthread_create(&th[NWORKERS], NULL, error_worker, &ej), 0);
    for (int i = 0; i <= NWORKERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    int failed = 0;
    for (int i = 0; i < NWORKERS; i++) {
        job *j = &jobs[i];
        printf("  worker %d: B=%lld Hq=%lld Hkv=%lld Nq=%lld Nk=%lld D=%lld Dv=%lld causal=%d "
               "kv_lens=%d isa=%s %s threads=%d: %s (max error %.3g)\n",
               i, (long long)j->B, (long long)j->Hq, (long long)j->Hkv, (long long)j->Nq,
               (long long)j->Nk, (long long)j->D, (long long)j->Dv, j->causal, j->use_kv_lens,
               flat_isa_name(j->isa),
               j->dataflow == FLAT_DATAFLOW_FLAT    ? "FLAT"
               : j->dataflow == FLAT_DATAFLOW_FLASH ? "FLASH"
                                                    : "AUTO",
               j->nthreads, j->failure[0] ? j->failure : "ok", j->max_err);
        failed |= j->failure[0] != '\0';
    }
    printf("  error thread: %s\n", ej.failure[0] ? ej.failure : "ok");
    failed |= ej.failure[0] != '\0';
    for (int i = 0; i < NWORKERS; i++)
        free_job(&jobs[i]);
    assert_false(failed);
}

int main(void)
{
    ntables = tu_runnable_tables("test_threads", tables, 8);
    ntables = tu_fp32_product_tables("test_threads", tables, ntables); /* the 1e-5 bound */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
