/* Score rules: validation and the steps they add (rules.h). */
#include <math.h>
#include <string.h>

#include "error.h"
#include "rules.h"
#include "tile.h"
#include "validate.h"

#define INVALID(...) flat_error(FLAT_ERROR_INVALID_ARGUMENT, __VA_ARGS__)

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

void flat_apply_score_rules(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                            flat_scratch *ws, int r0, int r1, int k0, int c0, int c1,
                            int64_t ld_s)
{
    for (int r = r0; r < r1; r++) {
        int a = (int)flat_max(ws->lo[r] - k0, c0), e = (int)flat_min(ws->limit[r] - k0, c1);
        if (e <= a)
            continue;
        int64_t h = t->head0 + r / t->positions, pos = t->pos0 + r % t->positions, qb, qs;
        int64_t at = pos + flat_kv_len_of(p, t->b) - flat_q_len_of(p, t->b);
        flat_rules_row rule = {p->softcap * FLAT_LOG2E, 0, (float)(at - (k0 + a)), NULL, FLAT_F32};
        if (p->alibi_slopes)
            rule.slope = -p->alibi_slopes[h] * FLAT_LOG2E;
        if (p->mask) { /* a 16-bit one as it is: the kernel widens it in registers */
            flat_q_index(p, t->b, pos, &qb, &qs);
            rule.mask = flat_elem_ptr(
                p->mask, qb * p->mask_sb + h * p->mask_sh + qs * p->mask_ss + k0 + a, p->mask_dtype);
            rule.mask_t = p->mask_dtype;
        }
        float m = uk->score_rules(e - a, ws->s + r * ld_s + a, &rule);
        ws->bmax[r] = m > ws->bmax[r] ? m : ws->bmax[r];
    }
}

void flat_finish_row(const flat_problem *p, int64_t head, float m, float l, float *factor,
                     float *lse)
{
    if (!p->sinks) {
        *factor = l == 0.0f ? 0.0f : 1.0f / l;
        *lse = l == 0.0f ? -INFINITY : FLAT_LN2 * (m + log2f(l));
        return;
    }
    float sink = p->sinks[head] * FLAT_LOG2E;
    if (l == 0.0f) { /* no key: nothing to weigh, the sink alone */
        *factor = 0.0f;
        *lse = p->sinks[head];
        return;
    }
    /* The sink joins the max first, so exp2 never overflows. */
    float top = fmaxf(m, sink), denom = l * exp2f(m - top) + exp2f(sink - top);
    *factor = exp2f(m - top) / denom;
    *lse = FLAT_LN2 * (top + log2f(denom));
}
