/* Score rules: the steps they add to a block of scores (rules.h); their
 * options are checked and copied into the problem by validate.c. */
#include <math.h>
#include <string.h>

#include "rules.h"
#include "tile.h"

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
