/* The score rules of flat_options (window, softcap, sinks, ALiBi, mask):
 * their validation, and the two steps they add to a task (rules.c). The
 * window is not a step: it narrows each row's visible interval
 * (problem.h, flat_visible_range), so masked blocks are never computed. */
#ifndef FLAT_RULES_H
#define FLAT_RULES_H

#include "attend.h"

/* Checks the 0.2 option fields; kv_len is the mask's key extent. */
flat_status flat_check_rules(const flat_options *o, const flat_tensor *q, int64_t kv_len,
                             const flat_tensor *out, const float *lse);
/* Copies the rules into the problem (pointers; plans copy the arrays). */
void flat_fill_rules(const flat_options *o, flat_problem *p);

/* Keys of a 16-bit mask row widened to f32 at a time (the scratch's
 * mask_row), for the fp32 score_rules kernels. */
#define FLAT_MASK_CHUNK 512

/* Whether any rule changes visible scores (softcap, ALiBi, mask). */
static inline int flat_has_score_rules(const flat_problem *p)
{
    return p->softcap > 0 || p->alibi_slopes || p->mask;
}

/* Between qk and the softmax: the scores of keys [k0, k0 + width) of every
 * row of the task, each on its own visible part (score_rules kernel), and
 * each row's max of them into ws->bmax (the same pass: no row_max after). */
void flat_apply_score_rules(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                            flat_scratch *ws, int rows, int k0, int width, int64_t ld_s);

/* A finished row (running max m in base-2 units, sum l): the factor that
 * normalises its output and its lse, with the head's sink joining the
 * softmax once. l == 0 (no key): factor 0, lse the sink or -inf. */
void flat_finish_row(const flat_problem *p, int64_t head, float m, float l, float *factor,
                     float *lse);

#endif
