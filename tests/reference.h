/*
 * The double-precision oracle every ISA and dataflow is checked against.
 *
 * Deliberately obvious code: per query row, the scores in double, their max,
 * exp, sum, and the weighted sum of V rows. Same semantics as include/flat.h:
 *   - q [B,Hq,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv]; query head h reads kv
 *     head h / (Hq / Hkv) (GQA, MQA).
 *   - causal is bottom-right aligned: query i sees key j iff
 *     j <= i + (kv_len - q_len), where kv_len is kv_lens[b] when given.
 *   - kv_lens[b]: keys j >= kv_lens[b] are invisible.
 *   - lse: natural log of the sum of exp of the scaled, masked logits.
 *   - a row that sees no key: zero output, lse = -inf.
 * Strided views are read through their strides exactly as the library does.
 */
#ifndef FLAT_TEST_REFERENCE_H
#define FLAT_TEST_REFERENCE_H

#include <stdint.h>

#include "flat.h"

/* Pointer to element [b][h][s][0] of an F32 view. */
static inline float *ref_row(const flat_tensor *t, int64_t b, int64_t h, int64_t s)
{
    return (float *)t->data + b * t->stride_batch + h * t->stride_head + s * t->stride_seq;
}

/* The effective kv length of batch b (kv_lens[b] or k.seq). */
int64_t ref_kv_len(const flat_tensor *k, const flat_options *opt, int64_t b);

/* Whether query row i of batch b sees key j. */
int ref_visible(const flat_tensor *q, const flat_tensor *k, const flat_options *opt,
                int64_t b, int64_t i, int64_t j);

/* The scale flat uses: opt->scale, or 1/sqrt(q.dim) when it is 0 or opt is NULL. */
double ref_scale(const flat_tensor *q, const flat_options *opt);

/*
 * out_ref: [B, Hq, Nq, Dv] contiguous doubles. lse_ref: [B, Hq, Nq] or NULL.
 * visible: [B, Hq, Nq] count of keys each row sees, or NULL.
 * opt may be NULL (defaults). Only F32 views.
 */
void ref_attention(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                   const flat_options *opt, double *out_ref, double *lse_ref,
                   int64_t *visible);

/* One row of the same: out_row [Dv], *lse; returns the number of keys seen.
 * For sampled checks of problems too large for the whole reference. */
int64_t ref_attention_row(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                          const flat_options *opt, int64_t b, int64_t h, int64_t i,
                          double *out_row, double *lse);

#endif
