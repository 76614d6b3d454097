/* Quantized K/V in a fuzz case (issue 23): the cache's element type (I8,
 * F8E4M3, I4), its scales through opt.kv_quant at every granularity
 * flat.h lists (groups of a token, per token, per channel, per tensor; per
 * page and channel in the paged pools), f32 or f16 scales, contiguous or
 * padded; the codes, and the dequantized values (fl32(code * scale), what
 * the kernels compute with) in the shadow the reference reads. The
 * mistakes (bad strides, a wrong group, a NULL scale for I8 ...) are
 * fcase_bad.c's bad_quant. */
#include <string.h>

#include "encode.h"
#include "fcase_int.h"

static int64_t pick_group(fc_source *src, int64_t d)
{
    static const int64_t g[] = {1, 2, 4, 8, 16, 32};
    int64_t want = fc_pick(src, 7) == 6 ? d : g[fc_pick(src, 6)];
    return d % want == 0 ? want : d; /* a group that does not divide is a mistake of its own */
}

flat_dtype fc_quant_choose(fc_source *src, fc_case *c, unsigned kb, int64_t *D, int64_t *Dv)
{
    flat_dtype kt = (flat_dtype)(kb % 3);
    fc_quant *q = &c->quant;
    /* a third of the cases: F32 -> I8, F16 -> F8E4M3, BF16 -> I4 (the byte
     * that chose the float type; the corpus's float cases read as before) */
    if ((kb / 3) % 3 != 2)
        return kt;
    kt = (flat_dtype)(FLAT_I8 + kt);
    q->on = 1;
    q->pass = kt != FLAT_F8E4M3 || fc_pick(src, 3) != 0; /* F8E4M3: no scales means 1 */
    if (kt == FLAT_I4) /* even dims and strides (an odd one is bad_quant's mistake) */
        *D += *D & 1, *Dv += *Dv & 1, q->even = 1;
    const int64_t dims[2] = {*D, *Dv};
    for (int i = 0; i < 2; i++) {
        q->gran[i] = fc_pick(src, 4);
        q->group[i] = (int32_t)(q->gran[i] == 0 ? pick_group(src, dims[i])
                                : q->gran[i] == 1 ? 1 : dims[i]);
        q->st[i] = fc_pick(src, 2) ? FLAT_F16 : FLAT_F32;
        q->pad[i] = fc_pick(src, 3);
    }
    return kt;
}

/* The scale tensors' views: [n0, heads, seq, dim / group] like the views of
 * K and V they scale (non-paged: n0 = batch, seq = keys; paged, the pools
 * viewed [pages, heads, page_size, dim]), and broadcast (a 0 stride)
 * wherever the data is: a code shared by two positions has one scale. */
void fc_quant_shape(fc_case *c, const flat_tensor *k, const flat_tensor *v)
{
    fc_quant *q = &c->quant;
    if (!q->on)
        return;
    const flat_tensor *x[2] = {k, v};
    for (int i = 0; i < 2; i++) {
        flat_tensor *t = &q->sc[i].t;
        const int64_t n0 = x[i]->batch, heads = x[i]->heads, seq = x[i]->seq;
        memset(&q->sc[i], 0, sizeof q->sc[i]);
        const int64_t g = x[i]->dim / q->group[i], row = g + q->pad[i];
        t->dtype = q->st[i], t->batch = n0, t->heads = heads, t->seq = seq, t->dim = g;
        if (q->gran[i] == 2) { /* per tensor */
            t->stride_batch = t->stride_head = t->stride_seq = 0;
        } else if (q->gran[i] == 1) { /* per channel (paged: per page and channel) */
            t->stride_seq = 0, t->stride_head = row, t->stride_batch = heads * row;
        } else {
            t->stride_seq = row, t->stride_head = seq * row, t->stride_batch = heads * seq * row;
        }
        t->stride_batch *= x[i]->stride_batch != 0, t->stride_head *= x[i]->stride_head != 0;
        t->stride_seq *= x[i]->stride_seq != 0;
        q->sc[i].extent = (n0 - 1) * t->stride_batch + (heads - 1) * t->stride_head +
                          (seq - 1) * t->stride_seq + g;
    }
}

static int64_t offset(const flat_tensor *t, int64_t b, int64_t h, int64_t s)
{
    return b * t->stride_batch + h * t->stride_head + s * t->stride_seq;
}

/* Scales so that the codes span most of their range for values up to hi. */
static void fill_scales(const flat_tensor *sc, flat_dtype t, float hi, uint64_t *rng)
{
    for (int64_t b = 0; b < sc->batch; b++)
        for (int64_t h = 0; h < sc->heads; h++)
            for (int64_t s = 0; s < sc->seq; s++)
                for (int64_t g = 0; g < sc->dim; g++)
                    flat_store_elem(sc->data, offset(sc, b, h, s) + g,
                                    fc_value(rng, 0.6f, 1.2f) * hi / flat_code_max(t),
                                    sc->dtype);
}

/* A quantized view x (K, V, or a pool viewed [pages, heads, tokens, dim])
 * and its shadow: values drawn in [lo, hi) (every other column negated
 * when asked), coded with their scale (sc, or 1 when sc is NULL), the
 * shadow holding code * scale as the kernels dequantize it. */
void fc_quant_fill(const flat_tensor *x, float *ref, const flat_tensor *sc, int64_t group,
                   uint64_t *rng, float lo, float hi, int sign_per_column)
{
    if (sc)
        fill_scales(sc, x->dtype, hi, rng);
    for (int64_t b = 0; b < x->batch; b++)
        for (int64_t h = 0; h < x->heads; h++)
            for (int64_t s = 0; s < x->seq; s++)
                for (int64_t d = 0; d < x->dim; d++) {
                    const int64_t off = offset(x, b, h, s) + d;
                    float f = fc_value(rng, lo, hi);
                    if (sign_per_column && (d & 1))
                        f = -f;
                    const float scale =
                        sc ? flat_scale_f32(sc->data, offset(sc, b, h, s) + d / group, sc->dtype)
                           : 1.0f;
                    flat_store_code(x->data, off, x->dtype, flat_encode1(x->dtype, f, scale));
                    ref[off] = flat_code_f32(x->data, off, x->dtype) * scale;
                }
}

void fc_quant_finish(fc_case *c)
{
    fc_quant *q = &c->quant;
    if (!q->on || !q->pass)
        return;
    q->kq.k_scale = q->sc[0].t, q->kq.v_scale = q->sc[1].t;
    q->kq.k_group = q->group[0], q->kq.v_group = q->group[1];
    c->opt.kv_quant = &q->kq;
    c->popt = &c->opt; /* NULL options (all defaults) would lack the scales */
}
