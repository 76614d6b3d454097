/* flat_quantize: f32/f16/bf16 rows into I8, F8E4M3 or I4 codes with one
 * scale per group (flat.h). Plain C, written so that the compiler
 * vectorises the per-group loops (no intrinsics outside kernels/): the
 * rounding is the 1.5 * 2^23 trick (round to nearest even in the FPU's
 * default mode), the e4m3 rounding integer arithmetic on the f32 bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "error.h"
#include "kvquant.h"

#define INVALID(...) flat_error(FLAT_ERROR_INVALID_ARGUMENT, __VA_ARGS__)

/* x rounded to the nearest integer, ties to even, for |x| <= 2^22. */
static inline float round_even(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: no reassociation without -ffast-math */
    return (x + magic) - magic;
}

/* v (|v| <= 448, not NaN) to the nearest e4m3fn byte, ties to even. */
static inline uint8_t f32_to_e4m3(float v)
{
    uint32_t u = flat_f32_bits(v), sign = (u >> 24) & 0x80u;
    u &= 0x7fffffffu;
    uint32_t code;
    if (u < 0x3c800000u) { /* below 2^-6: subnormal, m * 2^-9 */
        code = (uint32_t)round_even(flat_bits_f32(u) * 512.0f); /* 8 is the smallest normal */
    } else {
        u += 0x7ffffu + ((u >> 20) & 1u); /* round at bit 20 */
        code = (u >> 20) - (120u << 3);  /* rebias 127 -> 7 */
    }
    return (uint8_t)(sign | code);
}

/* Range of each code type and its scale divisor. */
static float code_max(flat_dtype t) { return t == FLAT_I8 ? 127.0f : t == FLAT_I4 ? 7.0f : 448.0f; }

/* x / scale, saturated to [lo, hi] (a zero scale gives 0). */
static inline float quotient(float x, float scale, float lo, float hi)
{
    float q = scale != 0 ? x / scale : 0.0f;
    return q < lo ? lo : q > hi ? hi : q;
}

/* A row of n values x, group g scaled by sc[g], into dst's codes. I4 codes
 * go through `nib` (n bytes) and are packed in pairs after. */
static void encode_row(flat_dtype t, const float *x, int64_t n, int64_t group, const float *sc,
                       void *row, int8_t *nib)
{
    const float lo = t == FLAT_I4 ? -8.0f : -code_max(t), hi = code_max(t);
    for (int64_t g = 0; g < n / group; g++) {
        const float s = sc[g];
        const float *xg = x + g * group;
        if (t == FLAT_I8) {
            int8_t *c = (int8_t *)row + g * group;
            for (int64_t i = 0; i < group; i++)
                c[i] = (int8_t)round_even(quotient(xg[i], s, lo, hi));
        } else if (t == FLAT_I4) {
            int8_t *c = nib + g * group;
            for (int64_t i = 0; i < group; i++)
                c[i] = (int8_t)round_even(quotient(xg[i], s, lo, hi));
        } else {
            uint8_t *c = (uint8_t *)row + g * group;
            for (int64_t i = 0; i < group; i++)
                c[i] = f32_to_e4m3(quotient(xg[i], s, lo, hi));
        }
    }
    if (t == FLAT_I4)
        for (int64_t i = 0; i < n; i += 2)
            ((uint8_t *)row)[i / 2] = (uint8_t)((nib[i] & 15) | (nib[i + 1] & 15) << 4);
}

static float group_amax(const float *x, int64_t n)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* The scale a group gets: amax / max in f32, rounded once to the scale type
 * (f16: to nearest, at most 65504) and stored; the stored value is what its
 * codes divide by, so that code * scale is what the caller dequantizes. */
static float computed_scale(float amax, flat_dtype t, flat_dtype st, void *at)
{
    float s = amax / code_max(t);
    if (st == FLAT_F16) {
        uint16_t h = flat_f32_to_f16(s > 65504.0f ? 65504.0f : s);
        memcpy(at, &h, sizeof h);
        return flat_f16_to_f32(h);
    }
    memcpy(at, &s, sizeof s);
    return s;
}

static void *row_of(const flat_tensor *t, int64_t b, int64_t h, int64_t s)
{
    return (void *)flat_elem_ptr(t->data, b * t->stride_batch + h * t->stride_head +
                                              s * t->stride_seq, t->dtype);
}

flat_status flat_quantize(const flat_tensor *src, const flat_tensor *dst,
                          const flat_tensor *scale, int32_t group, uint32_t flags)
{
    flat_status st = flat_check_quantize(src, dst, scale, group, flags);
    if (st != FLAT_OK)
        return st;
    const int given = (flags & FLAT_QUANTIZE_GIVEN_SCALES) != 0;
    const int64_t d = src->dim, groups = d / group;
    float *x = malloc((size_t)(d + groups) * sizeof *x);
    int8_t *nib = malloc((size_t)d);
    if (!x || !nib) {
        free(x);
        free(nib);
        return flat_error(FLAT_ERROR_OUT_OF_MEMORY, "flat_quantize: %lld bytes of scratch",
                          (long long)(d * 5 + groups * 4));
    }
    float *sc = x + d;
    for (int64_t b = 0; b < src->batch; b++)
        for (int64_t h = 0; h < src->heads; h++)
            for (int64_t s = 0; s < src->seq; s++) {
                const void *in = row_of(src, b, h, s);
                char *srow = row_of(scale, b, h, s);
                for (int64_t c = 0; c < d; c++)
                    x[c] = flat_load_elem(in, c, src->dtype);
                for (int64_t g = 0; g < groups; g++) {
                    void *at = srow + g * flat_dtype_size(scale->dtype);
                    sc[g] = given ? flat_scale_f32(at, 0, scale->dtype)
                                  : computed_scale(group_amax(x + g * group, group), dst->dtype,
                                                   scale->dtype, at);
                }
                encode_row(dst->dtype, x, d, group, sc, row_of(dst, b, h, s), nib);
            }
    free(x);
    free(nib);
    return FLAT_OK;
}
