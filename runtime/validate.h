/* The argument checks validate.c and paged.c share. Each returns FLAT_OK
 * or sets the thread's message naming the argument (`name` prefixes it). */
#ifndef FLAT_VALIDATE_H
#define FLAT_VALIDATE_H

#include "problem.h"

/* Sizes > 0, strides >= 0, element count within int64. */
flat_status flat_check_shape(const char *name, const flat_tensor *t);
/* A flat_dtype value; equal to pair's when pair is not NULL; for q (a name
 * starting with 'q'), not a quantized type. */
flat_status flat_check_dtype(const char *name, const flat_tensor *t, const char *pair_name,
                             const flat_tensor *pair);
/* *last = offset (elements) of the view's last element, overflow-checked. */
flat_status flat_last_offset(const char *name, const flat_tensor *t, int64_t *last);
/* out is one-to-one (no two elements share memory). */
flat_status flat_check_out_layout(const flat_tensor *t);
/* The same for any written view, messages prefixed by `name`. */
flat_status flat_check_one_to_one(const char *name, const flat_tensor *t);
int flat_ranges_overlap(const void *a, int64_t a_bytes, const void *b, int64_t b_bytes);
/* Bytes of a view whose last element is at `last`. */
int64_t flat_view_bytes(const flat_tensor *t, int64_t last);
/* reserved words, scale, num_threads, dataflow (and the 0.2 score rules). */
flat_status flat_check_option_words(const flat_options *o);
/* The score rules' option fields (window, softcap, precision, sinks, ALiBi,
 * mask); kv_len is the mask's key extent. */
flat_status flat_check_rules(const flat_options *o, const flat_tensor *q, int64_t kv_len,
                             const flat_tensor *out, const float *lse);
/* Copies the rules into the problem (pointers; plans copy the arrays). */
void flat_fill_rules(const flat_options *o, flat_problem *p);

#endif
