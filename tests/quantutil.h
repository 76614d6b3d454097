/* Quantized K/V helpers shared by the quantized-cache suites (quantutil.c). */
#ifndef FLAT_TEST_QUANTUTIL_H
#define FLAT_TEST_QUANTUTIL_H

#include <stdint.h>

#include "flat.h"
#include "testutil.h"

const char *qu_type_name(flat_dtype t);
/* e4m3fn byte -> value by ldexp (no bit tricks shared with the library);
 * S.1111.111 is NaN. */
float qu_decode_f8(uint8_t b);
/* Element e (I4: nibble e) of a code buffer of quantized type t. */
void qu_set_code(void *buf, flat_dtype t, int64_t e, int code);
float qu_code_value(const void *buf, flat_dtype t, int64_t e);
/* A random code over the type's whole range (F8E4M3: any non-NaN byte). */
int qu_random_code(tu_rng *r, flat_dtype t);
/* Scale i of an f32 or f16 scale buffer (f16: stored rounded). */
float qu_scale_value(const void *buf, flat_dtype st, int64_t i);
void qu_set_scale(void *buf, flat_dtype st, int64_t i, float s);
/* A scale that keeps random codes' values within a few units. */
float qu_random_scale(tu_rng *r, flat_dtype t);

#endif
