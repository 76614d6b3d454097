/*
 * Writing quantized codes (flat_quantize, include/flat.h), in portable C:
 * the reference every table's quantize_row must match bit for bit
 * (kernels/ukernel.h), the scalar and NEON tables' kernel, and the SIMD
 * tables' tails. Rounding is the FPU's default mode, to nearest even: the
 * 1.5 * 2^23 trick for integers (no reassociation without -ffast-math), and
 * integer arithmetic on the f32 bits for e4m3.
 */
#ifndef FLAT_ENCODE_H
#define FLAT_ENCODE_H

#include <stdint.h>
#include <string.h>

#include "convert.h"

#define FLAT_ENCODE_INLINE static inline __attribute__((always_inline))

/* x rounded to the nearest integer, ties to even, for |x| <= 2^22. */
FLAT_ENCODE_INLINE float flat_round_even(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (x + magic) - magic;
}

/* v (|v| <= 448, not NaN) to the nearest e4m3fn byte, ties to even; the
 * sign is kept (-0 and negatives that round to 0 give 0x80). */
FLAT_ENCODE_INLINE uint8_t flat_f32_to_e4m3(float v)
{
    uint32_t u = flat_f32_bits(v), sign = (u >> 24) & 0x80u;
    u &= 0x7fffffffu;
    uint32_t code;
    if (u < 0x3c800000u) { /* below 2^-6: subnormal, m * 2^-9 */
        code = (uint32_t)flat_round_even(flat_bits_f32(u) * 512.0f); /* 8: the smallest normal */
    } else {
        u += 0x7ffffu + ((u >> 20) & 1u); /* round at bit 20 */
        code = (u >> 20) - (120u << 3);  /* rebias 127 -> 7 */
    }
    return (uint8_t)(sign | code);
}

/* The largest code of a quantized type, the divisor of a computed scale. */
FLAT_ENCODE_INLINE float flat_code_max(flat_dtype t)
{
    return t == FLAT_I8 ? 127.0f : t == FLAT_I4 ? 7.0f : 448.0f;
}

/* The smallest: -127 (never -128), -8, -448. */
FLAT_ENCODE_INLINE float flat_code_min(flat_dtype t) { return t == FLAT_I4 ? -8.0f : -flat_code_max(t); }

/* x / s saturated to t's range (s == 0 gives 0), before rounding. */
FLAT_ENCODE_INLINE float flat_code_quotient(float x, float s, flat_dtype t)
{
    const float q = s != 0 ? x / s : 0.0f, lo = flat_code_min(t), hi = flat_code_max(t);
    return q < lo ? lo : q > hi ? hi : q;
}

/* The code of x with scale s: an int8 (I8), a nibble -8..7 (I4) or an e4m3
 * byte (F8E4M3), as an int. */
FLAT_ENCODE_INLINE int flat_encode1(flat_dtype t, float x, float s)
{
    const float q = flat_code_quotient(x, s, t);
    return t == FLAT_F8E4M3 ? flat_f32_to_e4m3(q) : (int)flat_round_even(q);
}

/* The scale of a group of largest |x| amax: amax / max in f32, rounded once
 * to the scale type st (f16: to nearest, at most 65504) and stored at `at`;
 * returns the stored value, which the group's codes divide by, so that
 * code * scale is what a reader dequantizes. */
FLAT_ENCODE_INLINE float flat_computed_scale(float amax, flat_dtype t, flat_dtype st, void *at)
{
    float s = amax / flat_code_max(t);
    if (st == FLAT_F16) {
        uint16_t h = flat_f32_to_f16(s > 65504.0f ? 65504.0f : s);
        memcpy(at, &h, sizeof h);
        return flat_f16_to_f32(h);
    }
    memcpy(at, &s, sizeof s);
    return s;
}

/* Stores code c of element e of a row of quantized type t (I4: the nibble,
 * the other half of the byte kept). */
FLAT_ENCODE_INLINE void flat_store_code(void *row, int64_t e, flat_dtype t, int c)
{
    uint8_t *b = (uint8_t *)row;
    if (t != FLAT_I4)
        b[e] = (uint8_t)c;
    else if (e & 1)
        b[e >> 1] = (uint8_t)((b[e >> 1] & 0x0f) | (c & 15) << 4);
    else
        b[e >> 1] = (uint8_t)((b[e >> 1] & 0xf0) | (c & 15));
}

/* Group g's scale: computed from its n values (and stored) or read. */
FLAT_ENCODE_INLINE float flat_group_scale_ref(const void *x, flat_dtype xt, int64_t c0, int64_t n,
                                         flat_dtype t, void *scale, int64_t g, flat_dtype st,
                                         int given)
{
    void *at = (char *)scale + g * flat_dtype_size(st);
    if (given)
        return flat_scale_f32(at, 0, st);
    float m = 0.0f;
    for (int64_t i = c0; i < c0 + n; i++) {
        const float a = __builtin_fabsf(flat_load_elem(x, i, xt));
        m = a > m ? a : m;
    }
    return flat_computed_scale(m, t, st, at);
}

/* Elements [c0, c1) of a row with scale s (I4: c0 and c1 even, or the
 * neighbouring nibble of the byte is kept). */
FLAT_ENCODE_INLINE void flat_encode_span_ref(const void *x, flat_dtype xt, int64_t c0, int64_t c1,
                                        flat_dtype t, float s, void *codes)
{
    for (int64_t e = c0; e < c1; e++)
        flat_store_code(codes, e, t, flat_encode1(t, flat_load_elem(x, e, xt), s));
}

/* Elements [c0, c1) of a row, each with its group's scale read from the
 * row's scales (the SIMD tables' tails; I4: c0 and c1 even). */
FLAT_ENCODE_INLINE void flat_encode_tail_ref(const void *x, flat_dtype xt, int64_t c0, int64_t c1,
                                             flat_dtype t, const void *scale, flat_dtype st,
                                             int64_t group, void *codes)
{
    for (int64_t e = c0; e < c1; e++)
        flat_store_code(codes, e, t,
                        flat_encode1(t, flat_load_elem(x, e, xt), flat_scale_f32(scale, e / group, st)));
}

/* ukernel.h's quantize_row, element by element: the reference. */
FLAT_ENCODE_INLINE void flat_quantize_row_ref(int64_t n, const void *x, flat_dtype xt, int64_t group,
                                         flat_dtype t, void *codes, void *scale, flat_dtype st,
                                         int given)
{
    for (int64_t g = 0; g < n / group; g++) {
        const float s = flat_group_scale_ref(x, xt, g * group, group, t, scale, g, st, given);
        flat_encode_span_ref(x, xt, g * group, (g + 1) * group, t, s, codes);
    }
}

/* Calls f(X, T, args...) with X == xt (F32, F16 or BF16) and T == t (I8,
 * F8E4M3 or I4) compile-time constants: each table's quantize_row
 * specialises its loops on both this way. */
#define FLAT_QUANTIZE_SWITCH(xt, t, f, ...)                                                 \
    do {                                                                                    \
        if ((xt) == FLAT_F32)                                                               \
            FLAT_QUANTIZE_SWITCH_T_(FLAT_F32, t, f, __VA_ARGS__);                           \
        else if ((xt) == FLAT_F16)                                                          \
            FLAT_QUANTIZE_SWITCH_T_(FLAT_F16, t, f, __VA_ARGS__);                           \
        else                                                                                \
            FLAT_QUANTIZE_SWITCH_T_(FLAT_BF16, t, f, __VA_ARGS__);                          \
    } while (0)
#define FLAT_QUANTIZE_SWITCH_T_(X, t, f, ...)                                               \
    ((t) == FLAT_I8   ? f(X, FLAT_I8, __VA_ARGS__)                                          \
     : (t) == FLAT_I4 ? f(X, FLAT_I4, __VA_ARGS__)                                          \
                      : f(X, FLAT_F8E4M3, __VA_ARGS__))

FLAT_ENCODE_INLINE void flat_quantize_row_ref_xt_(const flat_dtype xt, const flat_dtype t,
                                                  int64_t n, const void *x, int64_t group,
                                                  void *codes, void *scale, flat_dtype st,
                                                  int given)
{
    flat_quantize_row_ref(n, x, xt, group, t, codes, scale, st, given);
}

/* The reference with xt and t compile-time constants, so that its
 * per-element switches fold: the scalar and NEON tables' quantize_row. */
FLAT_ENCODE_INLINE void flat_quantize_row_portable(int64_t n, const void *x, flat_dtype xt,
                                                   int64_t group, flat_dtype t, void *codes,
                                                   void *scale, flat_dtype st, int given)
{
    FLAT_QUANTIZE_SWITCH(xt, t, flat_quantize_row_ref_xt_, n, x, group, codes, scale, st, given);
}

/* ukernel.h's first_nonfinite, element by element. */
FLAT_ENCODE_INLINE int64_t flat_first_nonfinite_ref(int64_t n, const void *x, flat_dtype xt)
{
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = flat_f32_bits(flat_load_elem(x, i, xt));
        if ((u & 0x7f800000u) == 0x7f800000u)
            return i;
    }
    return n;
}

#endif
