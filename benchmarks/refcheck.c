#include "refcheck.h"

#include <math.h>
#include <stdlib.h>

/* Keys query position i may see: all, or a bottom-right aligned prefix. */
static int64_t visible_keys(const bench_shape *s, int64_t i)
{
    if (!s->causal)
        return s->kv_len;
    int64_t lim = i + (s->kv_len - s->q_len) + 1;
    return lim < 0 ? 0 : lim > s->kv_len ? s->kv_len : lim;
}

/* ref[0..D) = softmax(scale * q . K^T) V for one query row, in double;
 * scores is scratch of kv_len doubles. */
static void reference_row(const workload *w, int64_t b, int64_t h, int64_t i, double *scores,
                          double *ref)
{
    const bench_shape *s = &w->shape;
    int64_t d = s->head_dim, kvh = h / (s->q_heads / s->kv_heads);
    const float *q = w->q + ((b * s->q_heads + h) * s->q_len + i) * d;
    const float *k = w->k + (b * s->kv_heads + kvh) * s->kv_len * d;
    const float *v = w->v + (b * s->kv_heads + kvh) * s->kv_len * d;
    int64_t n = visible_keys(s, i);
    double scale = 1.0 / sqrt((double)d), max = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++) {
        double dot = 0;
        for (int64_t c = 0; c < d; c++)
            dot += (double)q[c] * k[j * d + c];
        scores[j] = dot * scale;
        max = fmax(max, scores[j]);
    }
    for (int64_t c = 0; c < d; c++)
        ref[c] = 0;
    for (int64_t j = 0; j < n; j++) {
        double p = exp(scores[j] - max);
        sum += p;
        for (int64_t c = 0; c < d; c++)
            ref[c] += p * v[j * d + c];
    }
    for (int64_t c = 0; c < d; c++)
        ref[c] = n > 0 ? ref[c] / sum : 0; /* no visible key: a zero row */
}

/* NaN counts as an infinite error (fmax alone would drop it). */
static double worst(double a, double b) { return isnan(b) ? INFINITY : fmax(a, b); }

static void compare_row(const float *out, const double *ref, int64_t d, ref_check *c)
{
    double diff2 = 0, ref2 = 0;
    for (int64_t k = 0; k < d; k++) {
        double e = fabs((double)out[k] - ref[k]);
        c->max_abs = worst(c->max_abs, e);
        diff2 += e * e;
        ref2 += ref[k] * ref[k];
    }
    c->max_row_rel = worst(c->max_row_rel, ref2 > 0 ? sqrt(diff2 / ref2) : sqrt(diff2));
}

ref_check ref_check_rows(const workload *w, int64_t max_rows)
{
    const bench_shape *s = &w->shape;
    ref_check c = {0, 0, 0, s->batch * s->q_heads * s->q_len};
    int64_t rows = c.rows_total <= max_rows ? c.rows_total : max_rows;
    double *scores = malloc((size_t)s->kv_len * sizeof *scores);
    double *ref = malloc((size_t)s->head_dim * sizeof *ref);
    if (!scores || !ref) {
        c.max_abs = c.max_row_rel = NAN;
        rows = 0;
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t row = rows == 1 ? 0 : r * (c.rows_total - 1) / (rows - 1);
        int64_t i = row % s->q_len, h = row / s->q_len % s->q_heads;
        int64_t b = row / (s->q_len * s->q_heads);
        reference_row(w, b, h, i, scores, ref);
        compare_row(w->out + row * s->head_dim, ref, s->head_dim, &c);
        c.rows_checked++;
    }
    free(scores);
    free(ref);
    return c;
}
