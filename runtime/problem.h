/* One validated attention call, in the runtime's own terms. */
#ifndef FLAT_PROBLEM_H
#define FLAT_PROBLEM_H

#include <stdint.h>

#include "convert.h"
#include "flat.h"

typedef struct {
    const void *data;
    int64_t sb, sh, ss; /* strides of batch, head, seq, in elements */
} flat_view;

typedef struct {
    flat_view q, k, v;
    flat_dtype q_dtype;  /* of q and out */
    flat_dtype kv_dtype; /* of k and v */
    void *out;
    int64_t out_sb, out_sh, out_ss;
    float *lse; /* optional, [B, Hq, Nq] contiguous */
    const int32_t *kv_lens;
    int64_t batch, q_heads, kv_heads, q_len, kv_len, dim, v_dim;
    int64_t kv_visible; /* max over batches of the visible keys (kv_lens), <= kv_len:
                           the planner sizes by it, never by the cache's capacity */
    int causal;
    float scale; /* natural-log units; pack_q folds in log2(e) */
} flat_problem;

/* Checks every argument rule of flat.h before anything is written; on
 * success fills *p. On failure returns the status with the message set. */
flat_status flat_validate(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                          const flat_tensor *out, const flat_options *opt, flat_problem *p);

/* Element (b, h, s, 0) of a view of type t. */
static inline const void *flat_view_row(const flat_view *v, flat_dtype t, int64_t b, int64_t h,
                                        int64_t s)
{
    return flat_elem_ptr(v->data, b * v->sb + h * v->sh + s * v->ss, t);
}

/* Output row (b, h, s). */
static inline void *flat_out_row(const flat_problem *p, int64_t b, int64_t h, int64_t s)
{
    return (char *)p->out +
           (b * p->out_sb + h * p->out_sh + s * p->out_ss) * flat_dtype_size(p->q_dtype);
}

static inline int64_t flat_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t flat_max(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t flat_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Keys row `pos` of batch b may see: a prefix [0, limit). */
static inline int64_t flat_visible_keys(const flat_problem *p, int64_t b, int64_t pos)
{
    int64_t kvl = p->kv_lens ? p->kv_lens[b] : p->kv_len;
    if (!p->causal)
        return kvl;
    int64_t lim = pos + (kvl - p->q_len) + 1; /* bottom-right aligned */
    return lim < 0 ? 0 : lim > kvl ? kvl : lim;
}

#endif
