/* The case a byte source decodes to (fcase_gen.c), checked by fcase.c. */
#ifndef FLAT_FUZZ_FCASE_INT_H
#define FLAT_FUZZ_FCASE_INT_H

#include "fcase.h"
#include "flat.h"

#define FC_MAX_B 3
#define FC_MAX_HQ 12

/* A tensor in the arena, and its values as fp32 (rounded to the element type)
 * in a shadow buffer with the same strides, which the reference reads. */
typedef struct {
    flat_tensor t;   /* the view passed to flat (data in the arena) */
    flat_tensor ref; /* the shadow: F32, same shape and strides */
    int64_t extent;  /* elements the view spans (0: not allocated) */
} fc_tensor;

/* Quantized K/V (fcase_quant.c). */
typedef struct {
    int on;           /* k/v dtype I8, F8E4M3 or I4 */
    int pass;         /* opt.kv_quant given (F8E4M3 may go without: scale 1) */
    int even;         /* I4: dims and element strides made even */
    unsigned gran[2]; /* K, V: 0 groups of a token, 1 per channel, 2 per tensor, 3 per token */
    int32_t group[2];
    flat_dtype st[2]; /* scale types */
    int64_t pad[2];   /* scale row padding */
    fc_tensor sc[2];  /* the scale tensors in the arena (no shadow) */
    flat_kv_quant kq;
} fc_quant;

typedef struct {
    int entry;   /* 0 attention, 1 paged, 2 plan, 3 paged plan by tasks */
    int plan_ws; /* plans: 0 execute with NULL workspace, 1 with a caller's */
    uint8_t *arena, *before; /* the guarded arena and its copy before the call */
    size_t arena_bytes;
    uint8_t *writable; /* per arena byte: 1 if out's elements or lse cover it */
    float *shadows;    /* one allocation for every shadow */

    fc_tensor q, k, v, out, mask;
    const flat_tensor *pq, *pk, *pv, *pout; /* as passed (may be NULL) */
    flat_options opt;
    const flat_options *popt; /* &opt or NULL */
    int32_t kv_lens[FC_MAX_B];
    float sinks[FC_MAX_HQ], alibi[FC_MAX_HQ];
    float *lse; /* in the arena, or NULL */

    /* paged */
    flat_paged_kv kv;
    const flat_paged_kv *pkv;
    float *kpool_ref, *vpool_ref; /* shadows of the pools */
    int32_t seq_lens[FC_MAX_B], q_offsets[FC_MAX_B + 1];
    int32_t block_table[FC_MAX_B * 16];

    fc_quant quant;

    int bad_task; /* plans: first try run_task with a bad argument (1..5) */
    double logit_bound; /* max over rows and keys of scale*sum|q k| + rules */
} fc_case;

/* Decodes a case; returns 0 on success (else the source asked for sizes the
 * arena cannot hold, and the case is skipped as trivially holding). */
int fc_generate(fc_source *src, fc_case *c);
void fc_release(fc_case *c);

/* Quantized K/V (fcase_quant.c): the k/v type from the byte that chose
 * it (quantized in a third of the cases; I4 evens out D and Dv), the
 * scale views, the values and shadows, opt.kv_quant. */
flat_dtype fc_quant_choose(fc_source *src, fc_case *c, unsigned kb, int64_t *D, int64_t *Dv);
void fc_quant_shape(fc_case *c, const flat_tensor *k, const flat_tensor *v);
void fc_quant_fill(const flat_tensor *x, float *ref, const flat_tensor *sc, int64_t group,
                   uint64_t *rng, float lo, float hi, int sign_per_column);
void fc_quant_finish(fc_case *c);

/* Injects at most one mistake into the case (fcase_bad.c); its name or NULL. */
const char *fc_inject(fc_source *src, fc_case *c);

/* Judging (fcase.c, fcase_paged.c): the first failure is kept. */
void fc_fail(fc_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fc_check_rows(fc_case *c, fc_result *r, const flat_tensor *q, const flat_tensor *k,
                   const flat_tensor *v, const flat_options *opt, int64_t qb, int64_t i0,
                   int64_t lse_b);
void fc_check_paged(fc_case *c, fc_result *r);

/* The next byte / a choice in [0, n) from the source. */
unsigned fc_byte(fc_source *s);
unsigned fc_pick(fc_source *s, unsigned n);
/* A value in [lo, hi) from a case's private RNG state (fcase_gen.c). */
float fc_value(uint64_t *st, float lo, float hi);

#endif
