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

/* 0.2's score rules exist only in 0.2's header (test_abi_0_1 builds this
 * file against 0.1's, where options carry none). */
#if FLAT_VERSION_MINOR >= 2
#define REF_RULES 1
#endif

int ref_visible(const flat_tensor *q, const flat_tensor *k, const flat_options *opt,
                int64_t b, int64_t i, int64_t j)
{
    int64_t kv_len = ref_kv_len(k, opt, b), p = i + (kv_len - q->seq);
    if (j >= kv_len)
        return 0;
    if (opt && opt->causal && j > p)
        return 0;
#ifdef REF_RULES
    if (opt && opt->window_left > 0 && j < p - opt->window_left)
        return 0;
    if (opt && opt->window_right > 0 && j > p + opt->window_right)
        return 0;
#endif
    return 1;
}

/* The scaled logit of a visible key after softcap, ALiBi and the mask. */
static double rule_logit(const flat_tensor *q, const flat_tensor *k, const flat_options *opt,
                         double s, int64_t b, int64_t h, int64_t i, int64_t j)
{
#ifdef REF_RULES
    if (!opt)
        return s;
    int64_t p = i + (ref_kv_len(k, opt, b) - q->seq);
    if (opt->softcap > 0)
        s = opt->softcap * tanh(s / opt->softcap);
    if (opt->alibi_slopes)
        s -= opt->alibi_slopes[h] * fabs((double)(p - j));
    if (opt->mask)
        s += ref_row(opt->mask, b, h, i)[j];
#else
    (void)q, (void)k, (void)opt, (void)b, (void)h, (void)i, (void)j;
#endif
    return s;
}

/* The head's sink logit, or -inf without one. */
static double sink_of(const flat_options *opt, int64_t h)
{
#ifdef REF_RULES
    if (opt && opt->sinks)
        return opt->sinks[h];
#else
    (void)opt, (void)h;
#endif
    return -INFINITY;
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
        s[j] = rule_logit(q, k, opt, scale * dot, b, h, i, j);
        /* NaN propagates through the exp and the sum below. */
        if (s[j] > mx)
            mx = s[j];
        if (s[j] != -INFINITY) /* a -inf mask entry hides the key */
            seen++;
    }
    const double sink = sink_of(opt, h);
    if (seen == 0) {
        for (int64_t c = 0; c < Dv; c++)
            o[c] = 0.0;
        if (lse)
            *lse = sink;
        return 0;
    }
    if (sink > mx) /* the sink takes part in the max */
        mx = sink;
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
    if (sink > -INFINITY)
        sum += exp(sink - mx); /* in the denominator only */
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
