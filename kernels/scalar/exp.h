/* Portable exp2 with the contract's accuracy and flushing rules. */
#ifndef FLAT_SCALAR_EXP_H
#define FLAT_SCALAR_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/*
 * exp2(x) = 2^n * 2^f with n = round(x), f in [-1/2, 1/2]. 2^f comes from a
 * degree-6 minimax polynomial (Cephes exp2f coefficients, ~1 ulp), 2^n is
 * built in the exponent field. Below -126 the result would be denormal (or
 * zero), so it is flushed to exactly 0; the runtime never passes x > 0 except
 * in tests, where results above 2^127 saturate to +inf.
 */
static inline float flat_exp2_scalar(float x)
{
    if (x != x)
        return x;
    if (x < -126.0f)
        return 0.0f;
    if (x > 127.0f)
        return INFINITY;
    float n = nearbyintf(x);
    float f = x - n;
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
