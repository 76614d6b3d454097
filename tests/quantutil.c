/* Quantized K/V for the tests: an independent decoder (the values the
 * reference sees), code and scale accessors, random codes and scales. */
#include <math.h>
#include <string.h>

#include "convert.h"
#include "quantutil.h"

const char *qu_type_name(flat_dtype t)
{
    return t == FLAT_I8 ? "i8" : t == FLAT_F8E4M3 ? "f8e4m3" : "i4";
}

float qu_decode_f8(uint8_t b)
{
    int e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7)
        return NAN;
    double v = e == 0 ? ldexp(m, -9) : ldexp(1.0 + m / 8.0, e - 7);
    return (float)((b & 0x80) ? -v : v);
}

void qu_set_code(void *buf, flat_dtype t, int64_t e, int code)
{
    uint8_t *p = buf;
    if (t == FLAT_I4)
        p[e / 2] = (uint8_t)((e % 2) ? (p[e / 2] & 0x0f) | (code & 15) << 4
                                     : (p[e / 2] & 0xf0) | (code & 15));
    else
        p[e] = (uint8_t)code;
}

float qu_code_value(const void *buf, flat_dtype t, int64_t e)
{
    const uint8_t *p = buf;
    if (t == FLAT_I8)
        return (float)(int8_t)p[e];
    if (t == FLAT_I4) {
        int nib = (e % 2) ? p[e / 2] >> 4 : p[e / 2] & 15;
        return (float)(nib >= 8 ? nib - 16 : nib);
    }
    return qu_decode_f8(p[e]);
}

int qu_random_code(tu_rng *r, flat_dtype t)
{
    if (t == FLAT_I8)
        return (int)(tu_next(r) % 255) - 127;
    if (t == FLAT_I4)
        return (int)(tu_next(r) % 16) - 8;
    int b;
    do
        b = (int)(tu_next(r) % 256);
    while ((b & 0x7f) == 0x7f); /* NaN codes tested in test_quantize */
    return b;
}

float qu_scale_value(const void *buf, flat_dtype st, int64_t i)
{
    if (st == FLAT_F16) {
        uint16_t h;
        memcpy(&h, (const char *)buf + 2 * i, 2);
        return flat_f16_to_f32(h);
    }
    float f;
    memcpy(&f, (const char *)buf + 4 * i, 4);
    return f;
}

void qu_set_scale(void *buf, flat_dtype st, int64_t i, float s)
{
    if (st == FLAT_F16) {
        uint16_t h = flat_f32_to_f16(s);
        memcpy((char *)buf + 2 * i, &h, 2);
    } else {
        memcpy((char *)buf + 4 * i, &s, 4);
    }
}

/* Scales that keep dequantized values O(1) for random codes. */
float qu_random_scale(tu_rng *r, flat_dtype t)
{
    const float range = t == FLAT_I8 ? 127.0f : t == FLAT_I4 ? 7.0f : 448.0f;
    return tu_uniform(r, 0.25f, 2.0f) / (t == FLAT_F8E4M3 ? 224.0f : range);
}

