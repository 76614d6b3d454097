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
#include "ukernel.h"

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

/* Bits of one element (an I4 element is half a byte). */
static inline int64_t flat_dtype_bits(flat_dtype t)
{
    return t == FLAT_F32 ? 32 : t == FLAT_I4 ? 4 : t >= FLAT_I8 ? 8 : 16;
}

/* Bytes of one element of a float type (q, out, scales); 1 for I4. */
static inline int64_t flat_dtype_size(flat_dtype t)
{
    return t == FLAT_I4 ? 1 : flat_dtype_bits(t) / 8;
}

/* Bytes that `elems` elements of type t take (rounded up for I4). */
static inline int64_t flat_dtype_bytes(flat_dtype t, int64_t elems)
{
    return (elems * flat_dtype_bits(t) + 7) / 8;
}

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

/* A row pointer advanced by `elems` elements of type t (I4: elems even). */
static inline const void *flat_elem_ptr(const void *row, int64_t elems, flat_dtype t)
{
    /* bytes per element first where it is whole: elems * bits / 8 of a signed
     * count cost every row address in the kernels' loops a rounding fix-up
     * (lea, cmov, sar) */
    const int bits = flat_dtype_bits(t);
    return (const char *)row + (bits % 8 == 0 ? elems * (bits / 8) : elems * bits / 8);
}

/* Whether rows of t, ld elements apart from `data`, start off a 64-byte line
 * (a caller's buffer from malloc starts 16 bytes into one; a view's row
 * stride need not be whole lines). Such a row spans one line more than its
 * bytes fill, and the decode kernels' one prefetch per line from its first
 * byte misses the line of its last: with heads interleaved per token (BSHD,
 * NHD pages) no hardware prefetcher fetches that line either, and each row
 * waited on memory once (gqa_decode_8k BSHD with a bf16 cache from malloc:
 * 23 ms, 14.5 with the kernels' tail prefetch; 13 from aligned buffers). */
static inline int flat_rows_unaligned(const void *data, int64_t ld, flat_dtype t)
{
    return (int)(((uintptr_t)data | (uintptr_t)flat_dtype_bytes(t, ld)) & 63);
}

/* ---- Quantized K/V (kernels/ukernel.h's flat_kv_src) ----
 * Every conversion below is exact except the one fp32 product code * scale
 * (round to nearest even), which every table computes the same way. */

/* OCP fp8 e4m3fn -> f32, exact: S.EEEE.MMM, bias 7, subnormals m * 2^-9,
 * no infinities, S.1111.111 NaN. */
static inline float flat_f8e4m3_to_f32(uint8_t b)
{
    uint32_t sign = (uint32_t)(b & 0x80u) << 24, e = (b >> 3) & 15u, m = b & 7u;
    if (e == 15 && m == 7)
        return flat_bits_f32(sign | 0x7fc00000u);
    if (e == 0) {
        float v = (float)m * 0.001953125f; /* 2^-9 */
        return sign ? -v : v;
    }
    return flat_bits_f32(sign | ((e + 120) << 23) | (m << 20));
}

/* The signed nibble of I4 element e of a row (even e: low nibble). */
static inline int flat_i4_code(const void *row, int64_t e)
{
    uint8_t b = ((const uint8_t *)row)[e >> 1];
    int nib = (e & 1) ? b >> 4 : b & 15;
    return (nib ^ 8) - 8;
}

/* The code of element e of a row of quantized type t, as f32 (exact). */
static inline __attribute__((always_inline)) float flat_code_f32(const void *row, int64_t e,
                                                                 const flat_dtype t)
{
    if (t == FLAT_I8)
        return (float)((const int8_t *)row)[e];
    if (t == FLAT_I4)
        return (float)flat_i4_code(row, e);
    return flat_f8e4m3_to_f32(((const uint8_t *)row)[e]);
}

/* Scale i of a scale row (f32 or f16), as f32; NULL reads as 1. */
static inline float flat_scale_f32(const void *scale, int64_t i, flat_dtype st)
{
    if (!scale)
        return 1.0f;
    return st == FLAT_F16 ? flat_f16_to_f32(((const uint16_t *)scale)[i])
                          : ((const float *)scale)[i];
}

static inline int flat_dtype_quantized(flat_dtype t) { return t >= FLAT_I8 && t <= FLAT_I4; }

/* Row j, column c of a K/V source as the kernels compute with it: the value
 * (float types) or fl32(code * scale) (quantized types). t is src->t,
 * passed as a compile-time constant by kernels that specialise on it. */
static inline __attribute__((always_inline)) float flat_kv_load(const flat_kv_src *src, int64_t j,
                                                                int64_t c, const flat_dtype t)
{
    if (!flat_dtype_quantized(t))
        return flat_load_elem(flat_elem_ptr(src->data, j * src->ld, t), c, t);
    float code = flat_code_f32(src->data, j * src->ld + c, t);
    return code * flat_scale_f32(src->scale, j * src->ld_scale + c / src->group, src->scale_t);
}

/* widen_rows (ukernel.h) element by element: the scalar table's, and the
 * NEON table's (only quantized V reaches it, which its pv reads this way). */
static inline __attribute__((always_inline)) void
flat_kv_widen_rows(const flat_dtype t, int n, int cols, const flat_kv_src *v, float *restrict y,
                   int64_t ld_y)
{
    for (int j = 0; j < n; j++)
        for (int c = 0; c < cols; c++)
            y[j * ld_y + c] = flat_kv_load(v, j, c, t);
}

/* The source advanced by `rows` rows (codes and scales alike). */
static inline flat_kv_src flat_kv_src_rows(const flat_kv_src *src, int64_t rows)
{
    flat_kv_src r = *src;
    r.along = NULL; /* rows of `along` are not offset with these */
    r.data = flat_elem_ptr(src->data, rows * src->ld, src->t);
    if (r.scale)
        r.scale = flat_elem_ptr(src->scale, rows * src->ld_scale, src->scale_t);
    return r;
}

/* Calls f(T, args...) with T the compile-time constant equal to t, for
 * every K/V type: kernels specialise their loops on it this way. */
#define FLAT_KV_SWITCH(t, f, ...)                                                           \
    do {                                                                                    \
        switch (t) {                                                                        \
        case FLAT_F16: f(FLAT_F16, __VA_ARGS__); break;                                     \
        case FLAT_BF16: f(FLAT_BF16, __VA_ARGS__); break;                                   \
        case FLAT_I8: f(FLAT_I8, __VA_ARGS__); break;                                       \
        case FLAT_F8E4M3: f(FLAT_F8E4M3, __VA_ARGS__); break;                               \
        case FLAT_I4: f(FLAT_I4, __VA_ARGS__); break;                                       \
        default: f(FLAT_F32, __VA_ARGS__); break;                                           \
        }                                                                                   \
    } while (0)

/* FLAT_KV_TYPE_FNS(name, f, (params), args...) defines one function
 * name_<T>(params) per K/V type T, each calling the always_inline body
 * f(T, args...). A file then defines `#define name(T, ...) name##_##T(__VA_ARGS__)`
 * and passes `name` to FLAT_KV_SWITCH. Why: a switch over f itself inlines
 * every type's instance into one function, and gcc's time grows faster than
 * a function's size (one such kernel file took a minute to compile). */
#define FLAT_KV_TYPE_FN_(name, T, f, params, ...)                                           \
    static __attribute__((noinline)) void name##_##T params { f(T, __VA_ARGS__); }
#define FLAT_KV_TYPE_FNS(name, f, params, ...)                                              \
    FLAT_KV_TYPE_FN_(name, FLAT_F32, f, params, __VA_ARGS__)                                \
    FLAT_KV_TYPE_FN_(name, FLAT_F16, f, params, __VA_ARGS__)                                \
    FLAT_KV_TYPE_FN_(name, FLAT_BF16, f, params, __VA_ARGS__)                               \
    FLAT_KV_TYPE_FN_(name, FLAT_I8, f, params, __VA_ARGS__)                                 \
    FLAT_KV_TYPE_FN_(name, FLAT_F8E4M3, f, params, __VA_ARGS__)                             \
    FLAT_KV_TYPE_FN_(name, FLAT_I4, f, params, __VA_ARGS__)
/* FLAT_KV_TYPE_FNS over a pv body f(T, m, n, dv, p, ld_p, v, o, ld_o, alpha)
 * (ukernel.h's pv parameters). */
#define FLAT_KV_PV_FNS(name, f)                                                             \
    FLAT_KV_TYPE_FNS(name, f,                                                               \
                     (int m, int n, int dv, const float *restrict p, int64_t ld_p,          \
                      const flat_kv_src *v, float *restrict o, int64_t ld_o,                \
                      const float *restrict alpha),                                         \
                     m, n, dv, p, ld_p, v, o, ld_o, alpha)

/* A plain (unquantized) source: `data` rows `ld` elements of t apart. */
/* Where row i past a call's last row lies in src->next's chain: the run
 * holding it, with *i made relative to that run; NULL past the chain. */
static inline const flat_kv_src *flat_kv_ahead(const flat_kv_src *src, int64_t *i)
{
    const flat_kv_src *r = src->next;
    int64_t rows = src->next_n;
    while (r && *i >= rows) {
        *i -= rows;
        rows = r->next_n;
        r = r->next;
    }
    return r;
}

static inline flat_kv_src flat_kv_src_plain(const void *data, int64_t ld, flat_dtype t)
{
    flat_kv_src r = {data, ld, t, FLAT_F32, NULL, 0, 1, NULL, 0, NULL, 0};
    return r;
}

#endif
