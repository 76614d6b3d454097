/* opt.kv_quant and the quantized element types' rules (runtime/kvquant.c). */
#ifndef FLAT_KVQUANT_H
#define FLAT_KVQUANT_H

#include "problem.h"

/* t is a flat_dtype value; for FLAT_I4 each of even[0..n_even) (dims and
 * element strides, named by even_names) is even. */
flat_status flat_check_kv_dtype(const char *name, flat_dtype t, const int64_t *even,
                                const char *const *even_names, int n_even);

/* opt->kv_quant against K/V of type t, shapes kshape and vshape ({batch,
 * heads, seq, dim}: for the paged call {pages, heads, page_size, dim}):
 * required for I8 and I4, optional for F8E4M3, NULL otherwise; every field
 * as flat.h states; no scale memory shared with out (out_bytes from out) or
 * lse (lse_bytes). */
flat_status flat_check_kv_quant(const flat_options *opt, flat_dtype t, const int64_t kshape[4],
                                const int64_t vshape[4], const void *out, int64_t out_bytes,
                                int64_t lse_bytes);

/* The validated scales into p->k_scales and p->v_scales (p->kv_dtype set). */
void flat_fill_kv_quant(const flat_options *opt, flat_problem *p);

/* flat_quantize's argument rules (flat.h), before anything is written;
 * nonfinite (a table's first_nonfinite, or NULL) speeds up the scan of src. */
flat_status flat_check_quantize(const flat_tensor *src, const flat_tensor *dst,
                                const flat_tensor *scale, int32_t group, uint32_t flags,
                                flat_first_nonfinite_fn nonfinite);

#endif
