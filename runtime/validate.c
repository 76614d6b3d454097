/* Argument rules of flat.h, checked before anything is written. Each
 * failure names the first offending argument and its value. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "convert.h"
#include "error.h"
#include "kvquant.h"
#include "problem.h"
#include "validate.h"

#define INVALID(...) flat_error(FLAT_ERROR_INVALID_ARGUMENT, __VA_ARGS__)

static int mul_overflows(int64_t a, int64_t b, int64_t *r)
{
    return __builtin_mul_overflow(a, b, r);
}

flat_status flat_check_shape(const char *name, const flat_tensor *t)
{
    const int64_t dims[4] = {t->batch, t->heads, t->seq, t->dim};
    static const char *dim_names[4] = {"batch", "heads", "seq", "dim"};
    for (int i = 0; i < 4; i++)
        if (dims[i] <= 0)
            return INVALID("%s.%s (%lld) must be > 0", name, dim_names[i], (long long)dims[i]);
    const int64_t strides[3] = {t->stride_batch, t->stride_head, t->stride_seq};
    static const char *stride_names[3] = {"stride_batch", "stride_head", "stride_seq"};
    for (int i = 0; i < 3; i++)
        if (strides[i] < 0)
            return INVALID("%s.%s (%lld) must be >= 0", name, stride_names[i],
                           (long long)strides[i]);
    int64_t n;
    if (mul_overflows(t->batch, t->heads, &n) || mul_overflows(n, t->seq, &n) ||
        mul_overflows(n, t->dim, &n) || mul_overflows(n, 4, &n))
        return INVALID("%s size (%lld x %lld x %lld x %lld) overflows", name,
                       (long long)t->batch, (long long)t->heads, (long long)t->seq,
                       (long long)t->dim);
    return FLAT_OK;
}

/* Offset of the last element; overflow-checked (the caller already knows
 * every extent is positive and every stride non-negative). */
flat_status flat_last_offset(const char *name, const flat_tensor *t, int64_t *last)
{
    int64_t a, b, c, sum;
    if (mul_overflows(t->batch - 1, t->stride_batch, &a) ||
        mul_overflows(t->heads - 1, t->stride_head, &b) ||
        mul_overflows(t->seq - 1, t->stride_seq, &c) || __builtin_add_overflow(a, b, &sum) ||
        __builtin_add_overflow(sum, c, &sum) || __builtin_add_overflow(sum, t->dim - 1, &sum) ||
        sum == INT64_MAX || mul_overflows(sum + 1, 4, &a)) /* sum + 1: found by fuzzing */
        return INVALID("%s strides address beyond the int64 range", name);
    *last = sum;
    return FLAT_OK;
}

/* out must be a one-to-one view: sorted by stride, each dimension must step
 * past everything the inner ones cover, or threads would race on it. */
flat_status flat_check_out_layout(const flat_tensor *t) { return flat_check_one_to_one("out", t); }

flat_status flat_check_one_to_one(const char *name, const flat_tensor *t)
{
    char sn[3][80];
    snprintf(sn[0], sizeof sn[0], "%s.stride_batch", name);
    snprintf(sn[1], sizeof sn[1], "%s.stride_head", name);
    snprintf(sn[2], sizeof sn[2], "%s.stride_seq", name);
    struct { int64_t stride, extent; const char *name; } d[3] = {
        {t->stride_batch, t->batch, sn[0]},
        {t->stride_head, t->heads, sn[1]},
        {t->stride_seq, t->seq, sn[2]},
    };
    for (int i = 0; i < 3; i++) /* sort 3 by stride */
        for (int j = i + 1; j < 3; j++)
            if (d[j].stride < d[i].stride) {
                __typeof__(d[0]) tmp = d[i];
                d[i] = d[j];
                d[j] = tmp;
            }
    int64_t covered = t->dim; /* elements spanned by the inner dimensions */
    for (int i = 0; i < 3; i++) {
        if (d[i].extent == 1)
            continue;
        if (d[i].stride < covered)
            return INVALID("%s (%lld) makes %s overlap itself (needs >= %lld)", d[i].name,
                           (long long)d[i].stride, name, (long long)covered);
        if (__builtin_mul_overflow(d[i].stride, d[i].extent, &covered)) /* found by fuzzing */
            return INVALID("%s (%lld) x %lld addresses beyond the int64 range", d[i].name,
                           (long long)d[i].stride, (long long)d[i].extent);
    }
    return FLAT_OK;
}

int flat_ranges_overlap(const void *a, int64_t a_bytes, const void *b, int64_t b_bytes)
{
    uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
    return a0 < b0 + (uintptr_t)b_bytes && b0 < a0 + (uintptr_t)a_bytes;
}

/* q and out share a type, k and v share one; the two pairs combine freely. */
flat_status flat_check_dtype(const char *name, const flat_tensor *t, const char *pair_name,
                               const flat_tensor *pair)
{
    if ((int)t->dtype < FLAT_F32 || (int)t->dtype > FLAT_I4)
        return INVALID("%s.dtype (%d) is not a flat_dtype value", name, (int)t->dtype);
    if (name[0] == 'q' && flat_dtype_quantized(t->dtype)) /* q (and so out): a float type */
        return INVALID("%s.dtype (%d) must be FLAT_F32, FLAT_F16 or FLAT_BF16 (quantized types "
                       "are for K and V only)", name, (int)t->dtype);
    if (pair && t->dtype != pair->dtype)
        return INVALID("%s.dtype (%d) != %s.dtype (%d)", name, (int)t->dtype, pair_name,
                       (int)pair->dtype);
    return FLAT_OK;
}

/* Bytes a view spans, from its first element to past its last. */
int64_t flat_view_bytes(const flat_tensor *t, int64_t last)
{
    return flat_dtype_bytes(t->dtype, last + 1);
}

static flat_status check_tensors(const flat_tensor *q, const flat_tensor *k,
                                 const flat_tensor *v, const flat_tensor *out)
{
    const flat_tensor *all[4] = {q, k, v, out};
    static const char *names[4] = {"q", "k", "v", "out"};
    for (int i = 0; i < 4; i++) {
        if (!all[i])
            return INVALID("%s is NULL", names[i]);
        if (!all[i]->data)
            return INVALID("%s.data is NULL", names[i]);
    }
    flat_status s;
    const flat_tensor *pairs[4] = {NULL, NULL, k, q};
    static const char *pair_names[4] = {"", "", "k", "q"};
    for (int i = 0; i < 4; i++)
        if ((s = flat_check_dtype(names[i], all[i], pair_names[i], pairs[i])) != FLAT_OK ||
            (s = flat_check_shape(names[i], all[i])) != FLAT_OK)
            return s;
    if (k->batch != q->batch) return INVALID("k.batch (%lld) != q.batch (%lld)", (long long)k->batch, (long long)q->batch);
    if (v->batch != q->batch) return INVALID("v.batch (%lld) != q.batch (%lld)", (long long)v->batch, (long long)q->batch);
    if (out->batch != q->batch) return INVALID("out.batch (%lld) != q.batch (%lld)", (long long)out->batch, (long long)q->batch);
    if (q->heads % k->heads != 0)
        return INVALID("q.heads (%lld) is not a multiple of k.heads (%lld)", (long long)q->heads, (long long)k->heads);
    if (v->heads != k->heads) return INVALID("v.heads (%lld) != k.heads (%lld)", (long long)v->heads, (long long)k->heads);
    if (out->heads != q->heads) return INVALID("out.heads (%lld) != q.heads (%lld)", (long long)out->heads, (long long)q->heads);
    if (k->dim != q->dim) return INVALID("k.dim (%lld) != q.dim (%lld)", (long long)k->dim, (long long)q->dim);
    if (v->seq != k->seq) return INVALID("v.seq (%lld) != k.seq (%lld)", (long long)v->seq, (long long)k->seq);
    if (out->seq != q->seq) return INVALID("out.seq (%lld) != q.seq (%lld)", (long long)out->seq, (long long)q->seq);
    if (out->dim != v->dim) return INVALID("out.dim (%lld) != v.dim (%lld)", (long long)out->dim, (long long)v->dim);
    /* Kernels index rows and columns with int. */
    const int64_t extents[4] = {q->seq, k->seq, q->dim, v->dim};
    static const char *extent_names[4] = {"q.seq", "k.seq", "q.dim", "v.dim"};
    for (int i = 0; i < 4; i++)
        if (extents[i] > INT32_MAX)
            return INVALID("%s (%lld) must be < 2^31", extent_names[i], (long long)extents[i]);

    int64_t last[4];
    for (int i = 0; i < 4; i++)
        if ((s = flat_last_offset(names[i], all[i], &last[i])) != FLAT_OK)
            return s;
    if ((s = flat_check_out_layout(out)) != FLAT_OK)
        return s;
    const int64_t even[8] = {k->dim, k->stride_batch, k->stride_head, k->stride_seq,
                             v->dim, v->stride_batch, v->stride_head, v->stride_seq};
    static const char *even_names[8] = {"k.dim", "k.stride_batch", "k.stride_head",
                                        "k.stride_seq", "v.dim", "v.stride_batch",
                                        "v.stride_head", "v.stride_seq"};
    if ((s = flat_check_kv_dtype("k.dtype", k->dtype, even, even_names, 8)) != FLAT_OK)
        return s;
    for (int i = 0; i < 3; i++)
        if (flat_ranges_overlap(out->data, flat_view_bytes(out, last[3]), all[i]->data,
                           flat_view_bytes(all[i], last[i])))
            return INVALID("out overlaps %s (out must not share memory with an input)",
                           names[i]);
    return FLAT_OK;
}

/* lse is written, so like out it may share memory with nothing. */
static flat_status check_lse(const float *lse, const flat_tensor *q, const flat_tensor *k,
                             const flat_tensor *v, const flat_tensor *out)
{
    const flat_tensor *all[4] = {q, k, v, out};
    static const char *names[4] = {"q", "k", "v", "out"};
    int64_t lse_bytes = q->batch * q->heads * q->seq * 4, last;
    for (int i = 0; i < 4; i++) {
        flat_last_offset(names[i], all[i], &last); /* already checked not to overflow */
        if (flat_ranges_overlap(lse, lse_bytes, all[i]->data, flat_view_bytes(all[i], last)))
            return INVALID("opt.lse overlaps %s", names[i]);
    }
    return FLAT_OK;
}

flat_status flat_check_option_words(const flat_options *o)
{
    for (int i = 0; i < (int)(sizeof o->reserved / sizeof o->reserved[0]); i++)
        if (o->reserved[i] != 0)
            return INVALID("opt.reserved[%d] (%llu) must be 0", i,
                           (unsigned long long)o->reserved[i]);
    if (o->flags & ~(uint64_t)FLAT_FLAGS_KNOWN)
        return INVALID("opt.flags (0x%llx) has bits no FLAT_FLAG_* names (0x%llx)",
                       (unsigned long long)o->flags,
                       (unsigned long long)(o->flags & ~(uint64_t)FLAT_FLAGS_KNOWN));
    if (!isfinite(o->scale) || o->scale < 0)
        return INVALID("opt.scale (%g) must be finite and >= 0", (double)o->scale);
    if (o->num_threads < 0)
        return INVALID("opt.num_threads (%d) must be >= 0", o->num_threads);
    if (o->dataflow < FLAT_DATAFLOW_AUTO || o->dataflow > FLAT_DATAFLOW_DECODE)
        return INVALID("opt.dataflow (%d) is not a flat_dataflow value", (int)o->dataflow);
    return FLAT_OK;
}

/* The score rules' options (window, softcap, precision, sinks, ALiBi, mask). */
static flat_status check_finite(const char *name, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return INVALID("%s[%lld] (%g) must be finite", name, (long long)i, (double)x[i]);
    return FLAT_OK;
}

static flat_status check_mask(const flat_tensor *m, const flat_tensor *q, int64_t kv_len,
                              const flat_tensor *out, const float *lse)
{
    if (!m->data)
        return INVALID("opt.mask->data is NULL");
    if (m->dtype != FLAT_F32 && m->dtype != FLAT_F16 && m->dtype != FLAT_BF16)
        return INVALID("opt.mask->dtype (%d) must be FLAT_F32, FLAT_F16 or FLAT_BF16",
                       (int)m->dtype);
    flat_status s = flat_check_shape("opt.mask", m);
    if (s != FLAT_OK)
        return s;
    const int64_t got[4] = {m->batch, m->heads, m->seq, m->dim};
    const int64_t want[4] = {q->batch, q->heads, q->seq, kv_len};
    static const char *names[4] = {"batch", "heads", "seq", "dim"};
    static const char *of[4] = {"q.batch", "q.heads", "q.seq", "the keys"};
    for (int i = 0; i < 4; i++)
        if (got[i] != want[i])
            return INVALID("opt.mask->%s (%lld) != %s (%lld)", names[i], (long long)got[i], of[i],
                           (long long)want[i]);
    int64_t last, lo;
    if ((s = flat_last_offset("opt.mask", m, &last)) != FLAT_OK ||
        (s = flat_last_offset("out", out, &lo)) != FLAT_OK)
        return s;
    if (flat_ranges_overlap(m->data, flat_view_bytes(m, last), out->data, flat_view_bytes(out, lo)))
        return INVALID("opt.mask overlaps out");
    if (lse && flat_ranges_overlap(m->data, flat_view_bytes(m, last), lse,
                                   q->batch * q->heads * q->seq * 4))
        return INVALID("opt.mask overlaps opt.lse");
    return FLAT_OK;
}

flat_status flat_check_rules(const flat_options *o, const flat_tensor *q, int64_t kv_len,
                             const flat_tensor *out, const float *lse)
{
    if (o->window_left < 0)
        return INVALID("opt.window_left (%d) must be >= 0 (0: no left bound)", (int)o->window_left);
    if (o->window_right < 0)
        return INVALID("opt.window_right (%d) must be >= 0 (0: no right bound)",
                       (int)o->window_right);
    if (!isfinite(o->softcap) || o->softcap < 0)
        return INVALID("opt.softcap (%g) must be finite and >= 0", (double)o->softcap);
    if (o->precision < FLAT_PRECISION_AUTO || o->precision > FLAT_PRECISION_INT8)
        return INVALID("opt.precision (%d) is not a flat_precision value (0 auto, 1 fp32, 2 bf16, "
                       "3 int8)",
                       (int)o->precision);
    flat_status s;
    if (o->sinks && (s = check_finite("opt.sinks", o->sinks, q->heads)) != FLAT_OK)
        return s;
    if (o->alibi_slopes && (s = check_finite("opt.alibi_slopes", o->alibi_slopes, q->heads)) != FLAT_OK)
        return s;
    return o->mask ? check_mask(o->mask, q, kv_len, out, lse) : FLAT_OK;
}

void flat_fill_rules(const flat_options *o, flat_problem *p)
{
    p->window_left = o->window_left;
    p->window_right = o->window_right;
    p->softcap = o->softcap;
    p->sinks = o->sinks;
    p->alibi_slopes = o->alibi_slopes;
    p->batch_invariant = (o->flags & FLAT_FLAG_BATCH_INVARIANT) != 0;
    p->flags = o->flags;
    if (o->mask) {
        p->mask = o->mask->data;
        p->mask_dtype = o->mask->dtype;
        p->mask_sb = o->mask->stride_batch;
        p->mask_sh = o->mask->stride_head;
        p->mask_ss = o->mask->stride_seq;
    }
}

static flat_status check_options(const flat_options *o, const flat_tensor *q,
                                 const flat_tensor *k, const flat_tensor *v,
                                 const flat_tensor *out)
{
    flat_status s = flat_check_option_words(o);
    if (s != FLAT_OK)
        return s;
    if (o->kv_lens)
        for (int64_t b = 0; b < q->batch; b++)
            if (o->kv_lens[b] < 0 || o->kv_lens[b] > k->seq)
                return INVALID("opt.kv_lens[%lld] (%d) outside [0, %lld]", (long long)b,
                               (int)o->kv_lens[b], (long long)k->seq);
    if ((s = flat_check_rules(o, q, k->seq, out, o->lse)) != FLAT_OK)
        return s;
    int64_t last;
    flat_last_offset("out", out, &last); /* already checked */
    const int64_t ks[4] = {k->batch, k->heads, k->seq, k->dim};
    const int64_t vs[4] = {v->batch, v->heads, v->seq, v->dim};
    if ((s = flat_check_kv_quant(o, k->dtype, ks, vs, out->data, flat_view_bytes(out, last),
                                 q->batch * q->heads * q->seq * 4)) != FLAT_OK)
        return s;
    return o->lse ? check_lse(o->lse, q, k, v, out) : FLAT_OK;
}

flat_status flat_validate(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                          const flat_tensor *out, const flat_options *opt, flat_problem *p)
{
    flat_status s = check_tensors(q, k, v, out);
    if (s == FLAT_OK)
        s = check_options(opt, q, k, v, out);
    if (s != FLAT_OK)
        return s;
    memset(p, 0, sizeof *p);
    p->q = (flat_view){q->data, q->stride_batch, q->stride_head, q->stride_seq};
    p->k = (flat_view){k->data, k->stride_batch, k->stride_head, k->stride_seq};
    p->v = (flat_view){v->data, v->stride_batch, v->stride_head, v->stride_seq};
    p->q_dtype = q->dtype;
    p->kv_dtype = k->dtype;
    flat_fill_kv_quant(opt, p);
    p->out = out->data;
    p->out_sb = out->stride_batch;
    p->out_sh = out->stride_head;
    p->out_ss = out->stride_seq;
    p->lse = opt->lse;
    p->kv_lens = opt->kv_lens;
    p->batch = q->batch;
    p->q_heads = q->heads;
    p->kv_heads = k->heads;
    p->q_len = q->seq;
    p->q_rows = q->seq;
    p->kv_len = k->seq;
    p->kv_visible = k->seq;
    if (opt->kv_lens) {
        p->kv_visible = 0;
        for (int64_t b = 0; b < q->batch; b++)
            p->kv_visible = opt->kv_lens[b] > p->kv_visible ? opt->kv_lens[b] : p->kv_visible;
    }
    p->dim = q->dim;
    p->v_dim = v->dim;
    p->causal = opt->causal != 0;
    p->scale = opt->scale != 0 ? opt->scale : 1.0f / sqrtf((float)q->dim);
    flat_fill_rules(opt, p);
    return FLAT_OK;
}
