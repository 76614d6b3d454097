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

/* The paged pools (flat_paged_kv), when the call is paged. */
typedef struct {
    const void *k, *v;
    int64_t page_size;
    int64_t k_sp, k_st, k_sh, v_sp, v_st, v_sh; /* page, token, head strides */
    const int32_t *block_table;
    int64_t bt_stride;
} flat_pages;

/* Scales of a quantized K or V (flat_kv_quant): element (b, h, s, d) of K
 * is code * data[b*sb + h*sh + s*ss + d / group]; paged: b = pool page,
 * s = token in the page. data NULL: scale 1 (or K/V not quantized). */
typedef struct {
    const void *data;
    flat_dtype t; /* FLAT_F32 or FLAT_F16 */
    int64_t sb, sh, ss, group;
} flat_scales;

typedef struct {
    flat_view q, k, v; /* k and v unused when paged */
    flat_scales k_scales, v_scales; /* quantized kv_dtype only */
    flat_dtype q_dtype;  /* of q and out */
    flat_dtype kv_dtype; /* of k and v */
    void *out;
    int64_t out_sb, out_sh, out_ss;
    float *lse; /* optional, [B, Hq, Nq] contiguous */
    const int32_t *kv_lens;
    int64_t batch, q_heads, kv_heads, q_len, kv_len, dim, v_dim;
    int64_t q_rows; /* q.seq (the lse row stride; = q_len unless ragged) */
    int64_t kv_visible; /* max over batches of the visible keys (kv_lens), <= kv_len:
                           the planner sizes by it, never by the cache's capacity */
    int causal;
    float scale; /* natural-log units; pack_q folds in log2(e) */
    int paged;   /* K and V come from `pages` (kv_lens then holds the seq_lens) */
    flat_pages pages;
    const int32_t *q_offsets; /* ragged: sequence b's rows q_offsets[b].. of q batch 0;
                                 q_len is then the largest count */
    /* Score rules (runtime/rules.c); zero / NULL = off. */
    int64_t window_left, window_right;
    float softcap;             /* natural-log units */
    const float *sinks;        /* [q_heads], natural-log units */
    const float *alibi_slopes; /* [q_heads] */
    const void *mask;          /* [B, Hq, q_rows, kv] with mask_sb/sh/ss strides */
    flat_dtype mask_dtype;     /* f32, f16 or bf16 (the score_rules kernels widen the last two) */
    int64_t mask_sb, mask_sh, mask_ss;
    int batch_invariant; /* FLAT_FLAG_BATCH_INVARIANT (tiling.c: the fixed key grid) */
    uint64_t flags; /* flat_options.flags (FLAT_FLAGS_KNOWN bits only) */
} flat_problem;

/* The FLAT_FLAG_* bits this build knows (others are INVALID_ARGUMENT). */
#define FLAT_FLAGS_KNOWN ((uint64_t)(FLAT_FLAG_BATCH_INVARIANT | FLAT_FLAG_ONE_PHASE))

/* Checks the rules of flat_attention_paged (runtime/paged.c); fills *p. */
flat_status flat_validate_paged(const flat_tensor *q, const flat_paged_kv *kv,
                                const flat_tensor *out, const flat_options *opt,
                                flat_problem *p);

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

/* Query rows of sequence b. */
static inline int64_t flat_q_len_of(const flat_problem *p, int64_t b)
{
    return p->q_offsets ? p->q_offsets[b + 1] - p->q_offsets[b] : p->q_len;
}

/* Keys of sequence b (kv_lens, seq_lens, or the tensor's). */
static inline int64_t flat_kv_len_of(const flat_problem *p, int64_t b)
{
    return p->kv_lens ? p->kv_lens[b] : p->kv_len;
}

/* (batch, position) in q, out and lse of sequence b's query `pos`. */
static inline void flat_q_index(const flat_problem *p, int64_t b, int64_t pos, int64_t *qb,
                                int64_t *qs)
{
    *qb = p->q_offsets ? 0 : b;
    *qs = p->q_offsets ? p->q_offsets[b] + pos : pos;
}

static inline const void *flat_q_row(const flat_problem *p, int64_t b, int64_t h, int64_t pos)
{
    int64_t qb, qs;
    flat_q_index(p, b, pos, &qb, &qs);
    return flat_view_row(&p->q, p->q_dtype, qb, h, qs);
}

/* Output row of sequence b, head h, query pos. */
static inline void *flat_out_row(const flat_problem *p, int64_t b, int64_t h, int64_t pos)
{
    int64_t qb, qs;
    flat_q_index(p, b, pos, &qb, &qs);
    return (char *)p->out +
           (qb * p->out_sb + h * p->out_sh + qs * p->out_ss) * flat_dtype_size(p->q_dtype);
}

/* Its lse element ([q.batch, Hq, q.seq] contiguous), or NULL. */
static inline float *flat_lse_at(const flat_problem *p, int64_t b, int64_t h, int64_t pos)
{
    int64_t qb, qs;
    flat_q_index(p, b, pos, &qb, &qs);
    return p->lse ? p->lse + (qb * p->q_heads + h) * p->q_rows + qs : NULL;
}

static inline int64_t flat_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t flat_max(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t flat_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Keys query `pos` of sequence b sees: the interval [*lo, *hi) that
 * kv_lens, causal and the window leave (bottom-right aligned: the query's
 * position is p = pos + kv_len - q_len); empty as lo == hi. */
static inline void flat_visible_range(const flat_problem *p, int64_t b, int64_t pos,
                                      int64_t *lo, int64_t *hi)
{
    int64_t kvl = flat_kv_len_of(p, b), at = pos + (kvl - flat_q_len_of(p, b));
    int64_t l = 0, h = kvl;
    if (p->causal)
        h = flat_min(h, at + 1);
    if (p->window_left > 0)
        l = flat_max(l, at - p->window_left);
    if (p->window_right > 0)
        h = flat_min(h, at + p->window_right + 1);
    *lo = flat_min(l, kvl);
    *hi = flat_max(*lo, flat_max(h, 0));
}

/* Keys the queries [pos0, pos1) of sequence b see together: intervals only
 * move right as the position grows, so from pos0's lo to pos1 - 1's hi. */
static inline void flat_unit_keys(const flat_problem *p, int64_t b, int64_t pos0, int64_t pos1,
                                  int64_t *lo, int64_t *hi)
{
    int64_t ignored;
    flat_visible_range(p, b, pos0, lo, &ignored);
    flat_visible_range(p, b, pos1 - 1, &ignored, hi);
}

/* How many keys it sees. */
static inline int64_t flat_visible_keys(const flat_problem *p, int64_t b, int64_t pos)
{
    int64_t lo, hi;
    flat_visible_range(p, b, pos, &lo, &hi);
    return hi - lo;
}

#endif
