/* The score rules of flat_options (window, softcap, sinks, ALiBi, mask):
 * their validation, and the two steps they add to a task (rules.c). The
 * window is not a step: it narrows each row's visible interval
 * (problem.h, flat_visible_range), so masked blocks are never computed. */
#ifndef FLAT_RULES_H
#define FLAT_RULES_H

#include "attend.h"

/* Whether any rule changes visible scores (softcap, ALiBi, mask). */
static inline int flat_has_score_rules(const flat_problem *p)
{
    return p->softcap > 0 || p->alibi_slopes || p->mask;
}

/* Between qk and the softmax: the scores of keys [k0 + c0, k0 + c1) of
 * task rows [r0, r1), each on its own visible part (score_rules kernel),
 * their max joining each row's ws->bmax (the same pass: no row_max after;
 * the caller sets bmax to -inf before a block's first part). The GEMM path
 * calls it on each Q panel right after its qk call, while the panel's
 * scores are still in L1/L2 (keys.c); the rules are elementwise and the max
 * exact, so any cut into parts gives the same bits. */
void flat_apply_score_rules(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                            flat_scratch *ws, int r0, int r1, int k0, int c0, int c1,
                            int64_t ld_s);

/* Asks for the mask of keys [k0, k0 + width) of task rows [r0, r1), into
 * L2, ahead of the rules that read it (keys.c spreads these over its qk
 * calls). always_inline: GCC deems a prefetch-only function const and
 * deletes its calls. */
static inline __attribute__((always_inline)) void
flat_prefetch_mask(const flat_problem *p, const flat_task *t, int r0, int r1, int64_t k0,
                   int64_t width)
{
    const int64_t bytes = flat_min(width, flat_kv_len_of(p, t->b) - k0) *
                          flat_dtype_size(p->mask_dtype);
    for (int r = r0; r < r1; r++) {
        int64_t h = t->head0 + r / t->positions, pos = t->pos0 + r % t->positions, qb, qs;
        flat_q_index(p, t->b, pos, &qb, &qs);
        const char *row = (const char *)flat_elem_ptr(
            p->mask, qb * p->mask_sb + h * p->mask_sh + qs * p->mask_ss + k0, p->mask_dtype);
        for (int64_t c = 0; c < bytes; c += 64)
            __builtin_prefetch(row + c, 0, 1);
    }
}

/* A finished row (running max m in base-2 units, sum l): the factor that
 * normalises its output and its lse, with the head's sink joining the
 * softmax once. l == 0 (no key): factor 0, lse the sink or -inf. */
void flat_finish_row(const flat_problem *p, int64_t head, float m, float l, float *factor,
                     float *lse);

#endif
