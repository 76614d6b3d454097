#include "unfused.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>

double unfused_score_bytes(const bench_shape *s, int threads)
{
    return (double)threads * (double)s->q_len * (double)s->kv_len * sizeof(float);
}

/* One (batch, query head): the three steps of unfused attention. */
static void attend_head(const workload *w, int64_t b, int64_t h, float *scores)
{
    const bench_shape *s = &w->shape;
    int64_t nq = s->q_len, nk = s->kv_len, d = s->head_dim;
    int64_t kvh = h / (s->q_heads / s->kv_heads);
    const float *q = w->q + (b * s->q_heads + h) * nq * d;
    const float *k = w->k + (b * s->kv_heads + kvh) * nk * d;
    const float *v = w->v + (b * s->kv_heads + kvh) * nk * d;
    float *o = w->out + (b * s->q_heads + h) * nq * d;
    float scale = 1.0f / sqrtf((float)d);

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)d, scale, q,
                (int)d, k, (int)d, 0.0f, scores, (int)nk);
    unfused_softmax_rows(scores, nq, nk, s->causal, nk - nq);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)d, (int)nk, 1.0f,
                scores, (int)nk, v, (int)d, 0.0f, o, (int)d);
}

void unfused_attention(const workload *w, int threads, float *scores)
{
    const bench_shape *s = &w->shape;
    int64_t pairs = s->batch * s->q_heads;
    int64_t per_thread = s->q_len * s->kv_len;
    /* Debian links the pthread OpenBLAS; inside our OpenMP threads it must
     * not start threads of its own. */
    openblas_set_num_threads(1);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t i = 0; i < pairs; i++)
        attend_head(w, i / s->q_heads, i % s->q_heads, scores + omp_get_thread_num() * per_thread);
}
