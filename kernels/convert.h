/*
 * Element types of K, V, Q and out, in portable C: the conversions every
 * kernel table shares for scalar code and tails (SIMD tables convert whole
 * vectors with their own instructions and must agree bit for bit).
 *   f16 and bf16 -> f32: exact.
 *   f32 -> f16 and bf16: round to nearest, ties to even; NaN stays a (quiet)
 *   NaN; f16 overflows to +-inf past 65504 as IEEE rounding does.
 */
#ifndef FLAT_CONVERT_H
#define FLAT_CONVERT_H

#include <stdint.h>
#include <string.h>

#include "flat.h"

static inline uint32_t flat_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float flat_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Bytes of one element. */
static inline int64_t flat_dtype_size(flat_dtype t) { return t == FLAT_F32 ? 4 : 2; }

static inline float flat_bf16_to_f32(uint16_t b) { return flat_bits_f32((uint32_t)b << 16); }

static inline float flat_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in f32 */
        float v = (float)mant * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) /* inf, NaN */
        return flat_bits_f32(sign | 0x7f800000u | (mant << 13));
    return flat_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

static inline uint16_t flat_f32_to_bf16(float f)
{
    uint32_t u = flat_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN, sign kept */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline uint16_t flat_f32_to_f16(float f)
{
    uint32_t u = flat_f32_bits(f), sign = (u >> 16) & 0x8000u;
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) /* NaN: quiet, top mantissa bits kept */
        return (uint16_t)(sign | 0x7e00u | ((u >> 13) & 0x3ffu));
    if (u >= 0x477ff000u) /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (u < 0x38800000u) { /* below 2^-14: f16 subnormal or zero, |f| * 2^24 rounded */
        float a = flat_bits_f32(u) * 16777216.0f; /* exact: a power-of-two scale */
        uint32_t m = (uint32_t)a;
        float frac = a - (float)m; /* exact: a < 1024 */
        if (frac > 0.5f || (frac == 0.5f && (m & 1u)))
            m++; /* 1024 becomes the smallest normal, as it should */
        return (uint16_t)(sign | m);
    }
    u += 0xfffu + ((u >> 13) & 1u) - (112u << 23); /* rebias, round at bit 13 */
    return (uint16_t)(sign | (u >> 13));
}

/* Element i of a row of type t, as f32. */
static inline __attribute__((always_inline)) float flat_load_elem(const void *row, int64_t i,
                                                                  const flat_dtype t)
{
    if (t == FLAT_F32)
        return ((const float *)row)[i];
    uint16_t h = ((const uint16_t *)row)[i];
    return t == FLAT_BF16 ? flat_bf16_to_f32(h) : flat_f16_to_f32(h);
}

/* Stores x as element i of a row of type t, rounded to nearest even. */
static inline __attribute__((always_inline)) void flat_store_elem(void *row, int64_t i, float x,
                                                                  const flat_dtype t)
{
    if (t == FLAT_F32)
        ((float *)row)[i] = x;
    else
        ((uint16_t *)row)[i] = t == FLAT_BF16 ? flat_f32_to_bf16(x) : flat_f32_to_f16(x);
}

/* A row pointer advanced by `elems` elements of type t. */
static inline const void *flat_elem_ptr(const void *row, int64_t elems, flat_dtype t)
{
    return (const char *)row + elems * flat_dtype_size(t);
}

#endif
