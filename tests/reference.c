/* The double-precision attention oracle (see reference.h). */
#include "reference.h"

#include <math.h>
#include <stdlib.h>

int64_t ref_kv_len(const flat_tensor *k, const flat_options *opt, int64_t b)
{
    if (opt && opt->kv_lens)
        return opt->kv_lens[b];
    return k->seq;
}

int ref_visible(const flat_tensor *q, const flat_tensor *k, const flat_options *opt,
                int64_t b, int64_t i, int64_t j)
{
    int64_t kv_len = ref_kv_len(k, opt, b);
    if (j >= kv_len)
        return 0;
    if (opt && opt->causal && j > i + (kv_len - q->seq))
        return 0;
    return 1;
}

double ref_scale(const flat_tensor *q, const flat_options *opt)
{
    if (opt && opt->scale != 0.0f)
        return opt->scale;
    return 1.0 / sqrt((double)q->dim);
}

/* s: scratch of k->seq doubles, acc: scratch of v->dim doubles. */
static int64_t one_row(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                       const flat_options *opt, int64_t b, int64_t h, int64_t i, double *o,
                       double *lse, double *s, double *acc)
{
    const int64_t D = q->dim, Nk = k->seq, Dv = v->dim, hk = h / (q->heads / k->heads);
    const double scale = ref_scale(q, opt);
    const float *qi = ref_row(q, b, h, i);
    double mx = -INFINITY;
    int64_t seen = 0;
    for (int64_t j = 0; j < Nk; j++) {
        if (!ref_visible(q, k, opt, b, i, j))
            continue;
        const float *kj = ref_row(k, b, hk, j);
        double dot = 0.0;
        for (int64_t d = 0; d < D; d++)
            dot += (double)qi[d] * (double)kj[d];
        s[j] = scale * dot;
        /* NaN propagates through the exp and the sum below. */
        if (s[j] > mx)
            mx = s[j];
        seen++;
    }
    if (seen == 0) {
        for (int64_t c = 0; c < Dv; c++)
            o[c] = 0.0;
        if (lse)
            *lse = -INFINITY;
        return 0;
    }
    if (isinf(mx)) /* +inf logit: exp(inf - inf) is NaN, like fp32 */
        mx = mx > 0 ? mx : 0.0;
    double sum = 0.0;
    for (int64_t c = 0; c < Dv; c++)
        acc[c] = 0.0;
    for (int64_t j = 0; j < Nk; j++) {
        if (!ref_visible(q, k, opt, b, i, j))
            continue;
        const double w = exp(s[j] - mx);
        const float *vj = ref_row(v, b, hk, j);
        sum += w;
        for (int64_t c = 0; c < Dv; c++)
            acc[c] += w * (double)vj[c];
    }
    for (int64_t c = 0; c < Dv; c++)
        o[c] = acc[c] / sum;
    if (lse)
        *lse = mx + log(sum);
    return seen;
}

int64_t ref_attention_row(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                          const flat_options *opt, int64_t b, int64_t h, int64_t i,
                          double *out_row, double *lse)
{
    double *s = malloc(sizeof(double) * (size_t)(k->seq > 0 ? k->seq : 1));
    double *acc = malloc(sizeof(double) * (size_t)v->dim);
    int64_t seen = one_row(q, k, v, opt, b, h, i, out_row, lse, s, acc);
    free(s);
    free(acc);
    return seen;
}

void ref_attention(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                   const flat_options *opt, double *out_ref, double *lse_ref,
                   int64_t *visible)
{
    double *s = malloc(sizeof(double) * (size_t)(k->seq > 0 ? k->seq : 1));
    double *acc = malloc(sizeof(double) * (size_t)v->dim);
    for (int64_t b = 0; b < q->batch; b++)
        for (int64_t h = 0; h < q->heads; h++)
            for (int64_t i = 0; i < q->seq; i++) {
                const int64_t row = (b * q->heads + h) * q->seq + i;
                int64_t seen = one_row(q, k, v, opt, b, h, i, out_ref + row * v->dim,
                                       lse_ref ? lse_ref + row : NULL, s, acc);
                if (visible)
                    visible[row] = seen;
            }
    free(s);
    free(acc);
}
